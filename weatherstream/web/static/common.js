// weatherstream dashboard, shared by every page: plain DOM, nothing from the network but this worker's API.
// Every value goes on the page with textContent, never as HTML: a station called <script>…</script> is text.
"use strict";

const REFRESH_MS = 15000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit}`;
}

// a change: fmt with a plus sign for rises
function fmtChange(value, digits, unit) {
  return (value > 0 ? "+" : "") + fmt(value, digits, unit);
}

// [text, css class] of a number of seconds since an observation
function age(seconds) {
  if (seconds === null || seconds === undefined) return ["never", "old"];
  const cls = seconds < 3600 ? "fresh" : seconds < 6 * 3600 ? "stale" : "old";
  if (seconds < 120) return [`${Math.round(seconds)} s ago`, cls];
  if (seconds < 7200) return [`${Math.round(seconds / 60)} min ago`, cls];
  if (seconds < 172800) return [`${Math.round(seconds / 3600)} h ago`, cls];
  return [`${Math.round(seconds / 86400)} d ago`, cls];
}

// "2026-12-05 14:03 UTC" of an ISO time or epoch seconds
function utc(value) {
  if (value === null || value === undefined) return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    let reason = `HTTP ${response.status}`;
    try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
    throw new Error(`${path.split("?")[0]}: ${reason}`);
  }
  return response.json();
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function cityLink(id, name) {
  const link = el("a", name || `station ${id}`);
  link.href = `/city/${encodeURIComponent(id)}`;
  return link;
}

// Fill the table body `selector` with alert messages, one row each (time, station when `withCity`, kind,
// severity and state, its text), or one row saying `none` when there are none.
function showAlertRows(selector, alerts, withCity, none) {
  const body = document.querySelector(selector);
  body.replaceChildren();
  for (const alert of alerts) {
    const row = el("tr");
    row.appendChild(el("td", utc(alert.observed_at), "time"));
    if (withCity) row.appendChild(el("td")).appendChild(cityLink(alert.city_id, alert.city_name));
    row.appendChild(el("td", alert.kind));
    row.appendChild(el("td", `${alert.severity} · ${alert.state}`, `severity-${alert.severity}`));
    row.appendChild(el("td", alert.message));  // says itself when it is about historical data
    body.appendChild(row);
  }
  if (!alerts.length) body.appendChild(el("tr")).appendChild(el("td", none));
}

// The pager under a server-paged list: "first–last" of `data.total`, previous and next enabled as they apply.
function showPager(data, shown, countText) {
  const last = Math.min(data.offset + shown, data.total);
  document.getElementById("count").textContent = countText;
  document.getElementById("pageinfo").textContent = data.total ? `${data.offset + 1}–${last}` : "";
  document.getElementById("prev").disabled = data.offset === 0;
  document.getElementById("next").disabled = last >= data.total;
}

// Run `load` now and every REFRESH_MS; its errors go to the status line.
function every(load) {
  const run = async () => {
    try { await load(); } catch (error) { setStatus(`could not load: ${error.message}`); }
  };
  run();
  setInterval(run, REFRESH_MS);
  return run;
}
