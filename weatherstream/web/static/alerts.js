// Every alert message of the network (or of one station), filtered and paged by the server (/api/alerts). The
// filters live in the page's address, so a filtered view can be bookmarked or linked to.
"use strict";

const PAGE = 50;
let offset = 0, total = 0;

// The kinds' boxes, once the server has said which kinds there are (checked as the page's address says).
function showKinds(kinds) {
  const box = document.getElementById("kinds");
  if (box.children.length) return;
  const chosen = (new URLSearchParams(location.search).get("kind") || "").split(",");
  for (const kind of kinds) {
    const label = el("label"), input = el("input");
    input.type = "checkbox"; input.name = "kind"; input.value = kind; input.checked = chosen.includes(kind);
    label.append(input, ` ${kind.replaceAll("_", " ")}`);
    box.appendChild(label);
  }
}

function setUpFilters() {
  const params = new URLSearchParams(location.search);
  for (const name of ["severity", "state"]) {
    const chosen = (params.get(name) || "").split(",");
    for (const box of document.querySelectorAll(`input[name=${name}]`)) box.checked = chosen.includes(box.value);
  }
  for (const name of ["city", "since", "until"]) {
    const value = params.get(name) || "";
    document.getElementById(name).value = name === "city" ? value : value.slice(0, 16);
  }
  offset = Number(params.get("offset")) || 0;
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault(); offset = 0; reload();
  });
  document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); reload(); });
  document.getElementById("next").addEventListener("click", () => {
    if (offset + PAGE < total) { offset += PAGE; reload(); }
  });
}

function query() {
  const params = new URLSearchParams();
  for (const name of ["kind", "severity", "state"]) {
    const chosen = [...document.querySelectorAll(`input[name=${name}]:checked`)].map((box) => box.value);
    if (chosen.length) params.set(name, chosen.join(","));
  }
  const asked = new URLSearchParams(location.search).get("kind");
  if (!document.getElementById("kinds").children.length && asked) params.set("kind", asked);  // boxes not there yet
  const city = document.getElementById("city").value.trim();
  if (city) params.set("city", city);
  for (const name of ["since", "until"]) {
    const value = document.getElementById(name).value;
    if (value) params.set(name, `${value}:00Z`);
  }
  if (offset) params.set("offset", String(offset));
  return params;
}

async function load() {
  const params = query();
  history.replaceState(null, "", `/alerts${params.toString() ? `?${params}` : ""}`);
  params.set("limit", String(PAGE));
  const data = await getJSON(`/api/alerts?${params}`);
  total = data.total;
  showKinds(data.kinds);
  showAlertRows("#alerts tbody", data.alerts, true, "no alerts match");
  showPager(data, data.alerts.length, `${data.total} alert messages`);
  document.getElementById("note").textContent = `from ${utc(data.from)} to ${utc(data.to)}` + (data.truncated
    ? ` · only the newest messages were read, back to ${utc(data.oldest_read)}: set "until" to that time for older ones`
    : "");
  setStatus(`updated ${new Date().toLocaleTimeString()}`);
}

setUpFilters();
const reload = every(load);
