// The network overview: stations by freshness, open incidents, newest alerts, and the station list
// (paged, sorted and searched by the server, /api/cities: a page at a time, however many stations there are).
"use strict";

const PAGE = 50;
const SEVERITIES = ["critical", "warning", "info"];
const list = { q: "", sort: "name", order: "asc", offset: 0, total: 0 };

function hours(seconds) {
  return seconds >= 3600 ? `${seconds / 3600} h` : `${seconds / 60} min`;
}

async function showSummary() {
  const data = await getJSON("/api/network");
  const stations = data.stations, edges = data.freshness_edges_s;
  for (const key of ["total", "reporting", "stale", "silent"]) {
    document.getElementById(`n-${key}`).textContent = String(stations[key]);
  }
  document.getElementById("l-reporting").textContent = `reporting (newest < ${hours(edges.reporting)} old)`;
  document.getElementById("l-stale").textContent = `stale (${hours(edges.reporting)} – ${hours(edges.stale)})`;
  document.getElementById("l-silent").textContent = `silent (over ${hours(edges.stale)}, or never)`;
  const incidents = data.incidents;
  document.getElementById("n-incidents").textContent = String(incidents.open);
  const body = document.querySelector("#incidents tbody");
  body.replaceChildren();
  for (const kind of Object.keys(incidents.by_kind).sort()) {
    const row = el("tr");
    const link = el("a", kind);
    link.href = `/alerts?kind=${encodeURIComponent(kind)}&state=open,update`;
    const name = el("td");
    name.appendChild(link);
    row.appendChild(name);
    for (const severity of SEVERITIES) {
      const count = incidents.by_kind[kind][severity] || 0;
      row.appendChild(el("td", count ? String(count) : "", `num ${count ? `severity-${severity}` : ""}`));
    }
    body.appendChild(row);
  }
  if (!incidents.open) body.appendChild(el("tr")).appendChild(el("td", "no open incidents"));
  document.getElementById("incidents-note").textContent = `incidents with a message since ${utc(incidents.since)}` +
    (incidents.truncated ? " (only the newest messages were read: there are more)" : "");
  showAlertRows("#newest tbody", incidents.newest_alerts, true, "no alerts this week");
  return data;
}

async function showCities() {
  const query = new URLSearchParams({ q: list.q, sort: list.sort, order: list.order, offset: list.offset,
    limit: PAGE });
  const data = await getJSON(`/api/cities?${query}`);
  list.total = data.total;
  const body = document.querySelector("#cities tbody");
  body.replaceChildren();
  for (const city of data.cities) {
    const row = el("tr");
    const name = el("td");
    name.appendChild(cityLink(city.city_id, city.city_name));
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
  showPager(data, data.cities.length, `${data.total} stations${list.q ? " found" : ""}`);
  for (const button of document.querySelectorAll("button[data-sort]")) {
    const sorted = button.dataset.sort === list.sort;
    button.parentElement.setAttribute("aria-sort", sorted ? (list.order === "asc" ? "ascending" : "descending") : "none");
  }
}

function setUpCityList(reload) {
  let typing = null;
  document.getElementById("find").addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("q").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => { list.q = event.target.value; list.offset = 0; reload(); }, 250);
  });
  document.getElementById("prev").addEventListener("click", () => {
    list.offset = Math.max(0, list.offset - PAGE); reload();
  });
  document.getElementById("next").addEventListener("click", () => {
    if (list.offset + PAGE < list.total) { list.offset += PAGE; reload(); }
  });
  for (const button of document.querySelectorAll("button[data-sort]")) {
    button.addEventListener("click", () => {
      const sort = button.dataset.sort;
      list.order = list.sort === sort && list.order === "asc" ? "desc" : "asc";
      list.sort = sort; list.offset = 0; reload();
    });
  }
}

every(async () => {
  const [summary] = await Promise.all([showSummary(), showCities()]);
  setStatus(`${summary.stations.total} stations · updated ${new Date().toLocaleTimeString()}`);
});
setUpCityList(() => showCities().catch((error) => setStatus(`could not load: ${error.message}`)));
