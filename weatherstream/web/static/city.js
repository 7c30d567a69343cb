// A station's page: its newest observation, its windows' aggregates on uPlot charts (final and open windows told
// apart, corrections marked, alerts drawn where they happened), the windows as a table and its alerts.
"use strict";

const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const state = { kind: null, days: 2, offset: 0, charts: {} };
const SEVERITY_COLOURS = { critical: "#c5221f", warning: "#e37400", info: "#7f8c99" };
const CHARTS = {  // chart -> series: [label, field, unit, colour, thin]
  temp: [["mean", "temp_mean_c", "°C", "#c5221f"], ["min", "temp_min_c", "°C", "#1a73e8", true],
    ["max", "temp_max_c", "°C", "#e37400", true]],
  pressure: [["mean", "pressure_mean_hpa", "hPa", "#5b3fa8"]],
  wind: [["mean", "wind_mean_ms", "m/s", "#137333"], ["gust max", "gust_max_ms", "m/s", "#7f8c99", true]],
};

// "tumbling-1h" -> "hourly", "day-local" -> "local day", "hopping-24h-1h" -> "24 h every 1 h"
function kindLabel(kind) {
  const parts = kind.split("-");
  if (kind === "day-local") return "local day";
  if (parts[0] === "tumbling") return parts[1] === "1h" ? "hourly" : `every ${parts[1]}`;
  if (parts[0] === "hopping") return `${parts[1]} every ${parts[2]}`;
  return kind;
}

function pad(n) { return String(n).padStart(2, "0"); }

// A Date whose local fields are the station's local time (uPlot formats axes with a Date's local fields).
function stationDate(ts) {
  const shifted = new Date((ts + state.offset) * 1000);
  return new Date(shifted.getTime() + shifted.getTimezoneOffset() * 60000);
}

// A Date whose local fields are UTC's.
function utcFields(ts) {
  const date = new Date(ts * 1000);
  return new Date(date.getTime() + date.getTimezoneOffset() * 60000);
}

// Axis labels in 24-hour time, with the date under the first label of each day.
function timeLabels(splits, fields) {
  let day = null;
  return splits.map((ts) => {
    const d = fields(ts), date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const text = `${pad(d.getHours())}:${pad(d.getMinutes())}${date !== day ? `\n${date}` : ""}`;
    day = date;
    return text;
  });
}

function offsetText() {
  const minutes = Math.round(state.offset / 60), sign = minutes < 0 ? "−" : "+";
  return `UTC${sign}${pad(Math.floor(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

// " (+1.2 hPa in 3 h)": the pressure tendency after the pressure, or nothing when it is not known
function tendencyText(change) {
  if (change === null || change === undefined) return "";
  return ` (${fmtChange(change, 1, " hPa in 3 h")})`;
}

function showNow(city) {
  const latest = city.latest || {};
  state.offset = latest.timezone_offset_s || 0;
  document.getElementById("name").textContent = latest.city_name || `station ${id}`;
  document.title = `weatherstream: ${latest.city_name || id}`;
  const observed = latest.observed_at;
  const local = observed ? stationDate(observed) : null;
  const now = document.getElementById("now");
  now.replaceChildren(
    el("p", `${fmt(latest.temp_c, 1, " °C")} · humidity ${fmt(latest.humidity_pct, 0, " %")} · ` +
      `${fmt(latest.pressure_hpa, 1, " hPa")}${tendencyText(latest.pressure_tendency_3h_hpa)} · wind ${fmt(latest.wind_speed_ms, 1, " m/s")} · ` +
      `${latest.condition_description || latest.condition_main || ""}`, "big-line"),
    el("p", observed ? `observed ${local.getFullYear()}-${pad(local.getMonth() + 1)}-${pad(local.getDate())} ` +
      `${pad(local.getHours())}:${pad(local.getMinutes())} local time (${offsetText()}), ${utc(observed)} · ` +
      `${age(Date.now() / 1000 - observed)[0]}` : "no observation yet", "status"),
    el("p", city.open_incidents.length ? `open incidents: ${city.open_incidents.join(", ")}` : "no open incidents",
      city.open_incidents.length ? "severity-warning" : "status"),
  );
}

function showKinds(kinds) {
  const box = document.getElementById("kinds");
  if (box.querySelectorAll("input").length === kinds.length) return;
  box.replaceChildren(el("legend", "windows"));
  if (!state.kind || !kinds.includes(state.kind)) state.kind = kinds.includes("tumbling-1h") ? "tumbling-1h" : kinds[0];
  for (const kind of kinds) {
    const label = el("label");
    const input = el("input");
    input.type = "radio"; input.name = "kind"; input.value = kind; input.checked = kind === state.kind;
    input.addEventListener("change", () => { state.kind = kind; reload(); });
    label.append(input, ` ${kindLabel(kind)}`);
    box.appendChild(label);
  }
}

// The chart's columns: x (window starts, epoch seconds), then per series its final and its open values.
function columns(rows, series) {
  const xs = [...new Set(rows.map((r) => Date.parse(r.window_start) / 1000))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  for (const [, field] of series) {
    const final = new Array(xs.length).fill(null), open = new Array(xs.length).fill(null);
    for (const row of rows) (row.final ? final : open)[at.get(Date.parse(row.window_start) / 1000)] = row[field];
    data.push(final, open);
  }
  return data;
}

function alertLines(alerts) {
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx, { top, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = 2 * devicePixelRatio;
        for (const alert of alerts) {
          const x = u.valToPos(Date.parse(alert.observed_at) / 1000, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = SEVERITY_COLOURS[alert.severity] || "#7f8c99";
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

function corrections(rows, seriesIndex) {
  const revised = new Set(rows.filter((r) => r.final && r.revision > 1).map((r) => Date.parse(r.window_start) / 1000));
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#1d2733"; ctx.lineWidth = 1.5 * devicePixelRatio;
        u.data[0].forEach((x, i) => {
          const y = u.data[seriesIndex][i];
          if (!revised.has(x) || y === null) return;
          ctx.beginPath();
          ctx.arc(u.valToPos(x, "x", true), u.valToPos(y, "y", true), 5 * devicePixelRatio, 0, 2 * Math.PI);
          ctx.stroke();
        });
        ctx.restore();
      }],
    },
  };
}

function drawChart(name, rows, alerts) {
  const box = document.getElementById(`chart-${name}`), spec = CHARTS[name];
  if (state.charts[name]) state.charts[name].destroy();
  box.replaceChildren();
  if (!rows.length) { box.appendChild(el("p", "no windows in this range yet", "status")); return; }
  const series = [{ label: "window start (local)", value: (u, ts) => {
    if (ts === null) return "–";
    const d = stationDate(ts);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())} (${utc(ts)})`;
  } }];
  for (const [label, , unit, colour, thin] of spec) {
    const value = (u, v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} ${unit}`);
    series.push({ label: `${label} final`, stroke: colour, width: thin ? 1 : 2, value, points: { show: false } });
    series.push({ label: `${label} open`, stroke: colour, width: thin ? 1 : 2, dash: [6, 4], value,
      points: { show: true, size: 6 } });
  }
  const width = Math.max(300, box.clientWidth);
  const axis = { stroke: "#5f6b7a", grid: { stroke: "#e3e8ee" }, ticks: { stroke: "#e3e8ee" } };
  const options = {
    width, height: 240, series, tzDate: stationDate, legend: { live: true },
    cursor: { focus: { prox: 16 } },
    axes: [
      { ...axis, scale: "x", space: 70, label: `local time (${offsetText()})`, labelSize: 18, size: 44,
        values: (u, splits) => timeLabels(splits, stationDate) },
      { ...axis, scale: "x", space: 70, side: 0, label: "UTC", labelSize: 18, size: 44, grid: { show: false },
        values: (u, splits) => timeLabels(splits, (ts) => utcFields(ts)) },
      { ...axis, scale: "y", label: spec[0][2], labelSize: 18, size: 56 },
    ],
    plugins: [alertLines(alerts), corrections(rows, 1)],
  };
  state.charts[name] = new uPlot(options, columns(rows, spec), box);
}

function showTable(rows) {
  const body = document.querySelector("#windows tbody");
  body.replaceChildren();
  for (const row of [...rows].reverse()) {
    const tr = el("tr");
    tr.appendChild(el("td", `${utc(row.window_start)} – ${utc(row.window_end).slice(11)}`));
    tr.appendChild(el("td", row.final ? (row.revision > 1 ? `final, corrected (revision ${row.revision})` : "final") : "open"));
    tr.appendChild(el("td", row.count === undefined ? "–" : String(row.count), "num"));
    for (const [field, unit] of [["temp_mean_c", " °C"], ["temp_min_c", " °C"], ["temp_max_c", " °C"],
      ["pressure_mean_hpa", " hPa"], ["wind_mean_ms", " m/s"], ["gust_max_ms", " m/s"]]) {
      tr.appendChild(el("td", fmt(row[field], 1, unit), "num"));
    }
    body.appendChild(tr);
  }
}

async function load() {
  const from = new Date(Date.now() - state.days * 86400 * 1000).toISOString();
  const [city, windows, alerts] = await Promise.all([
    getJSON(`/api/cities/${encodeURIComponent(id)}`),
    getJSON(`/api/cities/${encodeURIComponent(id)}/aggregates?from=${encodeURIComponent(from)}`),
    getJSON(`/api/alerts?city=${encodeURIComponent(id)}&since=${encodeURIComponent(from)}&limit=500`),
  ]);
  showNow(city);
  const kinds = [...new Set(windows.aggregates.map((a) => a.kind))].sort();
  showKinds(kinds);
  const rows = windows.aggregates.filter((a) => a.kind === state.kind)
    .sort((a, b) => Date.parse(a.window_start) - Date.parse(b.window_start));
  for (const name of Object.keys(CHARTS)) drawChart(name, rows, alerts.alerts);
  showTable(rows);
  showAlertRows("#alerts tbody", alerts.alerts.slice(0, 50), false, `no alerts in the last ${state.days} days`);
  setStatus(`served by ${city.served_by} · updated ${new Date().toLocaleTimeString()}`);
}

const reload = every(load);
document.getElementById("range").addEventListener("change", (e) => { state.days = Number(e.target.value); reload(); });
document.getElementById("controls").addEventListener("submit", (e) => e.preventDefault());
