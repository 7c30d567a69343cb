// weatherstream dashboard: plain DOM, no libraries, nothing from the network but this worker's API.
// Every value is put on the page with textContent, never as HTML: a city called <script>…</script> is text.
"use strict";

const REFRESH_MS = 15000;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit}`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return ["–", ""];
  const cls = seconds < 1800 ? "fresh" : seconds < 7200 ? "stale" : "old";
  if (seconds < 120) return [`${Math.round(seconds)} s ago`, cls];
  if (seconds < 7200) return [`${Math.round(seconds / 60)} min ago`, cls];
  if (seconds < 172800) return [`${Math.round(seconds / 3600)} h ago`, cls];
  return [`${Math.round(seconds / 86400)} d ago`, cls];
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

// The station list is paged, sorted and searched by the server (/api/cities): a page at a time, however
// many stations there are.
const PAGE = 50;
const list = { q: "", sort: "name", order: "asc", offset: 0, total: 0 };

async function showCities() {
  const query = new URLSearchParams({ q: list.q, sort: list.sort, order: list.order, offset: list.offset,
    limit: PAGE });
  const data = await getJSON(`/api/cities?${query}`);
  list.total = data.total;
  const body = document.querySelector("#cities tbody");
  body.replaceChildren();
  for (const city of data.cities) {
    const row = el("tr");
    const link = el("a", city.city_name || `city ${city.city_id}`);
    link.href = `/city/${encodeURIComponent(city.city_id)}`;
    const name = el("td");
    name.appendChild(link);
    row.appendChild(name);
    row.appendChild(el("td", city.country || ""));
    row.appendChild(el("td", fmt(city.temp_c, 1, " °C"), "num"));
    row.appendChild(el("td", fmt(city.humidity_pct, 0, " %"), "num"));
    row.appendChild(el("td", fmt(city.pressure_hpa, 0, " hPa"), "num"));
    row.appendChild(el("td", fmt(city.wind_speed_ms, 1, " m/s"), "num"));
    row.appendChild(el("td", city.condition_description || city.condition_main || ""));
    const [text, cls] = age(city.age_s);
    row.appendChild(el("td", text, cls));
    body.appendChild(row);
  }
  const last = Math.min(data.offset + data.cities.length, data.total);
  document.getElementById("count").textContent = `${data.total} stations${list.q ? " found" : ""}`;
  document.getElementById("pageinfo").textContent = data.total ? `${data.offset + 1}–${last}` : "";
  document.getElementById("prev").disabled = data.offset === 0;
  document.getElementById("next").disabled = last >= data.total;
  setStatus(`${data.total} cities · updated ${new Date().toLocaleTimeString()}`);
}

function setUpCityList() {
  let typing = null;
  document.getElementById("find").addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("q").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => { list.q = event.target.value; list.offset = 0; refresh(); }, 250);
  });
  document.getElementById("prev").addEventListener("click", () => {
    list.offset = Math.max(0, list.offset - PAGE); refresh();
  });
  document.getElementById("next").addEventListener("click", () => {
    if (list.offset + PAGE < list.total) { list.offset += PAGE; refresh(); }
  });
  for (const button of document.querySelectorAll("button[data-sort]")) {
    button.addEventListener("click", () => {
      const sort = button.dataset.sort;
      list.order = list.sort === sort && list.order === "asc" ? "desc" : "asc";
      list.sort = sort; list.offset = 0; refresh();
    });
  }
}

function drawChart(svg, points) {
  svg.replaceChildren();
  const width = svg.clientWidth || 320, height = svg.clientHeight || 160, pad = 28;
  const values = points.filter((p) => p.y !== null && p.y !== undefined);
  if (values.length < 2) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", 10); t.setAttribute("y", 20); t.setAttribute("class", "axis");
    t.textContent = "not enough data yet";
    svg.appendChild(t);
    return;
  }
  const xs = values.map((p) => p.x), ys = values.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - 2 * pad);
  const sy = (y) => height - pad + 4 - ((y - y0) / (y1 - y0 || 1)) * (height - 2 * pad);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", values.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" "));
  path.setAttribute("class", "line");
  svg.appendChild(path);
  for (const p of values.filter((v) => v.live)) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", sx(p.x)); dot.setAttribute("cy", sy(p.y)); dot.setAttribute("r", 3);
    dot.setAttribute("class", "live");
    svg.appendChild(dot);
  }
  for (const [y, label] of [[y0, y0], [y1, y1]]) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", 2); t.setAttribute("y", sy(y)); t.setAttribute("class", "axis");
    t.textContent = Number(label).toFixed(1);
    svg.appendChild(t);
  }
}

async function showCity() {
  const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const from = new Date(Date.now() - 48 * 3600 * 1000).toISOString();
  const [city, windows, alerts] = await Promise.all([
    getJSON(`/api/cities/${encodeURIComponent(id)}`),
    getJSON(`/api/cities/${encodeURIComponent(id)}/aggregates?kind=tumbling-1h&from=${encodeURIComponent(from)}`),
    getJSON(`/api/alerts?city=${encodeURIComponent(id)}`),
  ]);
  const latest = city.latest || {};
  document.getElementById("name").textContent = latest.city_name || `city ${id}`;
  document.title = `weatherstream: ${latest.city_name || id}`;
  const now = document.getElementById("now");
  now.replaceChildren(el("p", `${fmt(latest.temp_c, 1, " °C")} · ${fmt(latest.humidity_pct, 0, " %")} · ` +
    `${fmt(latest.pressure_hpa, 0, " hPa")} · wind ${fmt(latest.wind_speed_ms, 1, " m/s")} · ` +
    `${latest.condition_description || latest.condition_main || ""}`));
  const series = (field) => windows.aggregates.map((a) => ({
    x: Date.parse(a.window_start), y: a[field], live: !a.final,
  }));
  drawChart(document.getElementById("chart-temp"), series("temp_mean_c"));
  drawChart(document.getElementById("chart-pressure"), series("pressure_mean_hpa"));
  drawChart(document.getElementById("chart-wind"), series("wind_mean_ms"));
  const list = document.getElementById("alerts");
  list.replaceChildren();
  for (const a of alerts.alerts.slice(0, 50)) {
    const item = el("li");
    item.appendChild(el("span", `${a.observed_at} `));
    item.appendChild(el("span", `${a.severity} ${a.state}`, `severity-${a.severity}`));
    item.appendChild(el("span", `: ${a.message}`));
    list.appendChild(item);
  }
  if (!alerts.alerts.length) list.appendChild(el("li", "no alerts in the last 7 days"));
  setStatus(`served by ${city.served_by} · updated ${new Date().toLocaleTimeString()}`);
}

async function refresh() {
  try {
    if (document.body.dataset.page === "city") await showCity();
    else await showCities();
  } catch (error) {
    setStatus(`could not load: ${error.message}`);
  }
}

if (document.body.dataset.page !== "city") setUpCityList();
refresh();
setInterval(refresh, REFRESH_MS);
