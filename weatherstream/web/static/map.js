// The station map: Natural Earth's 110 m land (world-atlas, TopoJSON, served by this worker) drawn on a canvas in
// an equirectangular projection, and a dot per station coloured by the chosen quantity. Thousands of dots: the
// land is one Path2D built once; dots are found under the pointer through a grid of screen cells.
"use strict";

const SCALES = {  // quantity -> [low, high, unit, digits]; colours run blue (low) to red (high)
  temp: [-30, 40, " °C", 1], wind: [0, 25, " m/s", 1], pressure: [960, 1050, " hPa", 0],
  tendency: [-6, 6, " hPa in 3 h", 1], humidity: [0, 100, " %", 0],
};
const SIGNED = new Set(["tendency"]);  // a change: rises carry a plus sign
const FRESHNESS = [[3600, "#137333", "under 1 h"], [6 * 3600, "#e37400", "1 h – 6 h"], [Infinity, "#c5221f", "over 6 h"]];
const CELL = 8;  // px, the grid used to find the dot under the pointer

const view = { lon: 0, lat: 15, zoom: 1 };  // the map's centre and zoom (1: the whole world fits)
let land = null, points = null, bins = new Map(), grid = new Map(), quantity = "temp";

// TopoJSON: arcs are quantized and delta-encoded; a ring is a list of arc indexes (~i: arc i reversed).
function decodeLand(topology) {
  const [sx, sy] = topology.transform.scale, [tx, ty] = topology.transform.translate;
  const arcs = topology.arcs.map((arc) => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  // Rings that cross the antimeridian (Russia, Fiji, Antarctica) are unwrapped into longitudes past ±180, so
  // that a ring never jumps across the map; draw() draws the land three times, 360° apart.
  const path = new Path2D();
  const ring = (indexes) => {
    let first = true, last = null;
    for (const index of indexes) {
      const arc = index < 0 ? arcs[~index].slice().reverse() : arcs[index];
      arc.forEach(([lon, lat], i) => {
        if (!first && i === 0) return;  // the previous arc's last point
        if (last !== null) lon += 360 * Math.round((last - lon) / 360);
        if (first && i === 0) path.moveTo(lon, -lat);
        else path.lineTo(lon, -lat);
        last = lon;
      });
      first = false;
    }
    path.closePath();
  };
  for (const geometry of topology.objects.land.geometries) {
    const polygons = geometry.type === "Polygon" ? [geometry.arcs] : geometry.arcs;
    for (const polygon of polygons) for (const r of polygon) ring(r);
  }
  return path;
}

function colour(value) {
  if (value === null || value === undefined) return "#9aa4ae";
  if (quantity === "age") return FRESHNESS.find(([edge]) => value < edge)[1];
  if (quantity === "incidents") return value === 0 ? "#7f8c99" : value === 1 ? "#e37400" : "#c5221f";
  const [low, high] = SCALES[quantity];
  const t = Math.max(0, Math.min(1, (value - low) / (high - low)));
  return `hsl(${5 * Math.round(48 - 48 * t)}, 75%, 45%)`;  // 49 hues: few colours to switch between
}

function describe(value) {
  if (value === null || value === undefined) return "no value";
  if (quantity === "age") return age(value)[0];
  if (quantity === "incidents") return `${value} open incident${value === 1 ? "" : "s"}`;
  const [, , unit, digits] = SCALES[quantity];
  return scaled(value, digits, unit);
}

function scaled(value, digits, unit) {
  return (SIGNED.has(quantity) ? fmtChange : fmt)(value, digits, unit);
}

function showLegend() {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  const swatch = (text, fill) => {
    const item = el("span", text, "swatch");
    item.style.setProperty("--swatch", fill);
    legend.appendChild(item);
  };
  if (quantity === "age") for (const [edge, fill, text] of FRESHNESS) swatch(text, fill);
  else if (quantity === "incidents") { swatch("none", "#7f8c99"); swatch("1", "#e37400"); swatch("2 or more", "#c5221f"); }
  else {
    const [low, high, unit, digits] = SCALES[quantity];
    for (const t of [0, 0.25, 0.5, 0.75, 1]) swatch(scaled(low + t * (high - low), digits, unit), colour(low + t * (high - low)));
  }
  swatch("no value", "#9aa4ae");
}

// A CSS colour as one 32-bit pixel of the canvas' ImageData (found by painting it once).
const pixels32 = new Map();
function pixelOf(fill) {
  let found = pixels32.get(fill);
  if (found === undefined) {
    const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    probe.fillStyle = fill;
    probe.fillRect(0, 0, 1, 1);
    found = new Uint32Array(probe.getImageData(0, 0, 1, 1).data.buffer)[0];
    pixels32.set(fill, found);
  }
  return found;
}

// Draw at the next frame (once, however many moves asked for it).
let drawing = false;
function redraw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => { drawing = false; draw(); });
}

function transform(canvas) {
  const k = (canvas.width / 360) * view.zoom;
  return { k, x0: canvas.width / 2 - view.lon * k, y0: canvas.height / 2 + view.lat * k };
}

function draw() {
  const canvas = document.getElementById("map"), ctx = canvas.getContext("2d", { willReadFrequently: true });
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) { canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio); }
  const { k, x0, y0 } = transform(canvas);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#dbe7f2";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (land) {
    ctx.fillStyle = "#f4f1ea"; ctx.strokeStyle = "#a9a390"; ctx.lineWidth = 0.8 / k;
    for (const shift of [-360, 0, 360]) {
      ctx.setTransform(k, 0, 0, k, x0 + shift * k, y0);
      ctx.fill(land, "evenodd"); ctx.stroke(land);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }
  grid = new Map();
  if (!points) return;
  // The dots are written into the canvas' pixels: at 100,000 stations, ten times faster than a fillRect each.
  const size = Math.round(Math.max(3, Math.min(8, 2 + view.zoom)) * ratio), cell = CELL * ratio;
  const { lon, lat } = points, right = canvas.width, bottom = canvas.height;
  const image = ctx.getImageData(0, 0, right, bottom), pixels = new Uint32Array(image.data.buffer);
  let shown = 0;
  for (const [fill, members] of bins) {
    const pixel = pixelOf(fill);
    for (const i of members) {
      const cx = x0 + lon[i] * k, cy = y0 - lat[i] * k;
      const x = Math.round(cx - size / 2), y = Math.round(cy - size / 2);
      if (x < 0 || y < 0 || x + size > right || y + size > bottom) continue;
      for (let row = y; row < y + size; row++) pixels.fill(pixel, row * right + x, row * right + x + size);
      const key = Math.floor(cx / cell) * 65536 + Math.floor(cy / cell);
      const found = grid.get(key);
      if (found) found.push(i); else grid.set(key, [i]);
      shown++;
    }
  }
  ctx.putImageData(image, 0, 0);
  document.getElementById("shown").textContent = `${shown} of ${points.ids.length} stations in view`;
}

// The station nearest to (x, y) in CSS pixels, within 8 px, or -1.
function stationAt(x, y) {
  let best = -1, bestDistance = 64;
  const canvas = document.getElementById("map"), ratio = window.devicePixelRatio || 1;
  const { k, x0, y0 } = transform(canvas);
  const cx = Math.floor(x / CELL), cy = Math.floor(y / CELL);
  for (let gx = cx - 1; gx <= cx + 1; gx++) {
    for (let gy = cy - 1; gy <= cy + 1; gy++) {
      for (const i of grid.get(gx * 65536 + gy) || []) {
        const px = (x0 + points.lon[i] * k) / ratio, py = (y0 - points.lat[i] * k) / ratio;
        const d = (px - x) ** 2 + (py - y) ** 2;
        if (d < bestDistance) { best = i; bestDistance = d; }
      }
    }
  }
  return best;
}

function setUpInteraction() {
  const canvas = document.getElementById("map"), tip = document.getElementById("tip");
  let drag = null;
  const degreesPerPixel = () => 360 / (canvas.clientWidth * view.zoom);
  const move = (dx, dy) => {
    view.lon = Math.max(-180, Math.min(180, view.lon - dx * degreesPerPixel()));
    view.lat = Math.max(-80, Math.min(80, view.lat + dy * degreesPerPixel()));
    redraw();
  };
  const zoom = (factor) => { view.zoom = Math.max(1, Math.min(64, view.zoom * factor)); redraw(); };
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
  canvas.addEventListener("mousemove", (e) => {
    if (drag && e.buttons) {
      move(e.clientX - drag.x, e.clientY - drag.y);
      drag = { x: e.clientX, y: e.clientY, moved: true };
      return;
    }
    const i = points ? stationAt(e.offsetX, e.offsetY) : -1;
    tip.hidden = i < 0;
    canvas.style.cursor = i < 0 ? "grab" : "pointer";
    if (i >= 0) {
      tip.replaceChildren(el("strong", points.names[i] || `station ${points.ids[i]}`), el("span", ` ${describe(points.values[i])}`));
      tip.style.left = `${e.offsetX + 12}px`; tip.style.top = `${e.offsetY + 12}px`;
    }
  });
  canvas.addEventListener("click", (e) => {
    if (drag && drag.moved) return;
    const i = points ? stationAt(e.offsetX, e.offsetY) : -1;
    if (i >= 0) location.href = `/city/${encodeURIComponent(points.ids[i])}`;
  });
  canvas.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1.25 : 0.8); }, { passive: false });
  canvas.addEventListener("keydown", (e) => {
    const step = 60, keys = {
      ArrowLeft: () => move(step, 0), ArrowRight: () => move(-step, 0), ArrowUp: () => move(0, step),
      ArrowDown: () => move(0, -step), "+": () => zoom(1.5), "=": () => zoom(1.5), "-": () => zoom(1 / 1.5),
      "0": () => { Object.assign(view, { lon: 0, lat: 15, zoom: 1 }); draw(); },
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  window.addEventListener("resize", draw);
  document.getElementById("quantity").addEventListener("change", (e) => {
    quantity = e.target.value; showLegend(); load().catch((error) => setStatus(`could not load: ${error.message}`));
  });
}

async function load() {
  const data = await getJSON(`/api/map?quantity=${encodeURIComponent(quantity)}`);
  if (data.quantity !== quantity) return;  // the choice changed while this loaded
  if (quantity === "age") data.values = data.values.map((observed) => (observed === null ? null : data.now - observed));
  points = data;
  bins = new Map();  // stations by the colour of their value, for draw()
  points.values.forEach((value, i) => {
    const fill = colour(value), members = bins.get(fill);
    if (members) members.push(i); else bins.set(fill, [i]);
  });
  draw();
  setStatus(`${points.ids.length} stations with a position · updated ${new Date().toLocaleTimeString()}`);
}

async function start() {
  setUpInteraction();
  showLegend();
  const params = new URLSearchParams(location.search);
  if (SCALES[params.get("quantity")] || ["age", "incidents"].includes(params.get("quantity"))) {
    quantity = params.get("quantity");
    document.getElementById("quantity").value = quantity;
    showLegend();
  }
  land = decodeLand(await getJSON("/static/vendor/land-110m.json"));
  draw();
  every(load);
}

start().catch((error) => setStatus(`could not load: ${error.message}`));
