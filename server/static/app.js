// The live status page: fills itself from the API, then follows the WebSocket. No build step, no secrets.
"use strict";

const $ = (id) => document.getElementById(id);
const KINDS = ["http_error", "validation_failed", "run_failed", "assumption_violated", "silent_failure"];
const state = {
  token: sessionStorage.getItem("bizra-token") || "",
  incidents: new Map(),   // id -> incident (open or acknowledged)
  runs: new Map(),        // id -> run
  history: [],            // [[unix seconds, score]]
  cmdb: null,
  heartbeat: 30,
  lastMessage: 0,
  connected: false,
  backoff: 500,
  selected: null,
};

// -- the API -------------------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (state.token && options.method && options.method !== "GET") headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok && response.status !== 503) {
    const message = (body.error && body.error.message) || response.statusText;
    throw new Error(message);
  }
  return body;
}

// -- the connection dot --------------------------------------------------------------------------------------

function setConnection(colour, text) {
  const el = $("connection");
  el.className = "conn " + colour;
  $("connection-text").textContent = text;
}

function connect() {
  setConnection("amber", "connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(scheme + "://" + location.host + "/ws/live-updates");
  ws.onopen = () => {
    state.connected = true;
    state.backoff = 500;
    state.lastMessage = Date.now();
    setConnection("green", "live");
    refreshAll();
  };
  ws.onmessage = (event) => {
    state.lastMessage = Date.now();
    if (state.connected) setConnection("green", "live");
    handle(JSON.parse(event.data));
  };
  ws.onclose = () => {
    state.connected = false;
    setConnection("red", "disconnected, retrying");
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 5000);
  };
  ws.onerror = () => {}; // onclose follows and says it
}

setInterval(() => {  // a heartbeat (or any message) is late: amber, while the socket still looks open
  if (state.connected && Date.now() - state.lastMessage > 2.5 * state.heartbeat * 1000) {
    setConnection("amber", "heartbeat late");
  }
}, 1000);

// -- messages --------------------------------------------------------------------------------------------------

function handle(message) {
  const data = message.data || {};
  if (message.type === "score") showScore(data);
  else if (message.type === "cycle") {
    state.history.push([message.ts, data.score]);
    const cutoff = message.ts - 3600;
    while (state.history.length && state.history[0][0] < cutoff) state.history.shift();
    showTier(data.score, data.tier);
    drawSparkline();
    showComponents(data.components);
  } else if (message.type === "incident" || message.type === "rca") {
    const id = data.id || data.incident_id;
    if (id) refreshIncident(id);
  } else if (message.type === "run") {
    state.runs.set(data.id, Object.assign(state.runs.get(data.id) || {}, data));
    renderRuns();
  }
}

// -- the score ---------------------------------------------------------------------------------------------------

function showTier(score, tier) {
  $("score").textContent = Number(score).toFixed(1);
  $("tier").textContent = tier;
  $("score-card").className = "card tier-" + tier;
}

function showScore(snap) {
  showTier(snap.score, snap.tier);
  if (snap.window_seconds) $("window").textContent = Math.round(snap.window_seconds / 60);
  const rows = KINDS.map((kind) => {
    const n = (snap.violations || {})[kind] || 0;
    return `<tr class="${n ? "nonzero" : ""}"><td>${kind.replace("_", " ")}</td><td class="n">${n}</td></tr>`;
  });
  $("violations").innerHTML = rows.join("");
}

function drawSparkline() {
  if (!window.Plotly || !state.history.length) return;
  const x = state.history.map((p) => new Date(p[0] * 1000));
  const y = state.history.map((p) => p[1]);
  window.Plotly.react("sparkline", [{ x, y, mode: "lines", line: { color: "#1565c0", width: 2 }, hoverinfo: "x+y" }], {
    margin: { l: 30, r: 5, t: 5, b: 20 }, height: 110, showlegend: false,
    yaxis: { range: [Math.min(90, Math.min(...y) - 1), 100.5], fixedrange: true },
    xaxis: { fixedrange: true, showgrid: false, tickformat: "%H:%M", nticks: 5 },
    shapes: [95, 97].map((v) => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: v, y1: v,
      line: { dash: "dot", width: 1, color: v === 95 ? "#c62828" : "#ef6c00" } })),
  }, { displayModeBar: false, responsive: true });
}

// -- incidents ---------------------------------------------------------------------------------------------------

async function refreshIncident(id) {
  try {
    const incident = await api("/rca/incidents/" + id);
    if (incident.status === "resolved") state.incidents.delete(incident.id);
    else state.incidents.set(incident.id, incident);
    renderIncidents();
    renderGraph();
  } catch (error) { /* gone or not allowed: the next refresh settles it */ }
}

function age(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

function topCause(incident) {
  const ranking = (incident.diagnosis && incident.diagnosis.ranking) || [];
  return ranking.length ? ranking[0].service : null;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function renderIncidents() {
  const list = [...state.incidents.values()].sort((a, b) => a.severity.localeCompare(b.severity) || b.opened_at - a.opened_at);
  $("incidents-empty").hidden = list.length > 0;
  const disabled = state.token ? "" : "disabled";
  $("incidents").innerHTML = list.map((i) => {
    const cause = topCause(i);
    const report = i.report_url ? `<a href="${escapeHtml(i.report_url)}" target="_blank" rel="noopener noreferrer">diagnosis report</a>` : `<span class="muted">report pending</span>`;
    const ack = i.status === "open" ? `<button type="button" data-action="acknowledged" data-id="${i.id}" ${disabled}>Acknowledge</button>` : "";
    return `<li data-incident="${i.id}">
      <span class="sev ${escapeHtml(i.severity)}">${escapeHtml(i.severity)}</span>
      <span class="incident-title">${escapeHtml(i.title)}</span>
      <div class="muted">${escapeHtml(i.status)}, opened ${age(i.opened_at)} ago${cause ? `; suspected cause <strong>${escapeHtml(cause)}</strong>` : ""}; ${report}</div>
      <div class="actions">${ack}<button type="button" data-action="resolved" data-id="${i.id}" ${disabled}>Resolve</button></div>
    </li>`;
  }).join("");
}

$("incidents").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  $("action-error").textContent = "";
  try {
    await api("/rca/incidents/" + button.dataset.id, { method: "PATCH", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ status: button.dataset.action }) });
    await refreshIncident(button.dataset.id);
  } catch (error) {
    $("action-error").textContent = "Could not change the incident: " + error.message;
  }
});

// -- runs ------------------------------------------------------------------------------------------------------

function renderRuns() {
  const runs = [...state.runs.values()].sort((a, b) => b.created_at - a.created_at).slice(0, 10);
  $("runs").innerHTML = runs.map((r) => {
    const name = r.notebook || r.kind;
    let detail = "";
    if (r.status === "running" && r.progress) {
      detail = `<progress max="${r.progress.cells}" value="${r.progress.cell}" aria-label="cell ${r.progress.cell} of ${r.progress.cells}"></progress> cell ${r.progress.cell}/${r.progress.cells}`;
    } else if (r.started_at && r.finished_at) {
      detail = `${(r.finished_at - r.started_at).toFixed(1)} s`;
    }
    const link = r.links && r.links.html ? ` <a href="${escapeHtml(r.links.html)}" target="_blank" rel="noopener noreferrer">report</a>` : "";
    const headline = r.headline ? `<div class="muted">${escapeHtml(r.headline)}</div>` : "";
    return `<li data-run="${escapeHtml(r.id)}"><strong>${escapeHtml(name)}</strong>
      <span class="status ${escapeHtml(r.status)}">${escapeHtml(r.status)}</span> ${detail}${link}${headline}</li>`;
  }).join("") || `<li class="muted">No run yet.</li>`;
}

// -- the CMDB graph ----------------------------------------------------------------------------------------------

function anomalous() {
  const services = new Set();
  for (const incident of state.incidents.values()) {
    for (const c of (incident.diagnosis && incident.diagnosis.ranking) || []) {
      if (c.evidence && c.evidence.length) services.add(c.service);
    }
  }
  return services;
}

function layers(nodes, edges) {
  const depth = new Map(nodes.map((n) => [n, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      if (depth.has(e.source) && depth.has(e.target) && depth.get(e.target) < depth.get(e.source) + 1) {
        depth.set(e.target, depth.get(e.source) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

function renderGraph() {
  const graph = state.cmdb;
  if (!graph) return;
  const nodes = graph.nodes.filter((n) => n.kind !== "host").map((n) => n.id);
  const edges = graph.edges.filter((e) => e.type === "depends_on" && nodes.includes(e.source) && nodes.includes(e.target));
  if (!nodes.length) { $("graph").innerHTML = `<p class="muted">The CMDB is empty.</p>`; return; }
  const depth = layers(nodes, edges);
  const rows = new Map();
  for (const n of [...nodes].sort()) {
    const d = depth.get(n);
    if (!rows.has(d)) rows.set(d, []);
    rows.get(d).push(n);
  }
  const width = 1000, rowHeight = 90, height = rows.size * rowHeight + 20;
  const pos = new Map();
  for (const [d, members] of rows) members.forEach((n, i) => pos.set(n, [(i + 1) * width / (members.length + 1), 30 + d * rowHeight]));
  const bad = anomalous();
  const lines = edges.map((e) => {
    const [x1, y1] = pos.get(e.source), [x2, y2] = pos.get(e.target);
    return `<line class="edge" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}"></line>`;
  });
  const circles = nodes.map((n) => {
    const [x, y] = pos.get(n);
    const cls = (bad.has(n) ? "bad" : "ok") + (state.selected === n ? " selected" : "");
    const label = `${n}, ${bad.has(n) ? "anomalous" : "healthy"}`;
    return `<g class="node ${cls}" data-node="${escapeHtml(n)}" role="button" tabindex="0" aria-label="${escapeHtml(label)}">
      <circle cx="${x}" cy="${y}" r="10"></circle><text x="${x}" y="${y - 15}" text-anchor="middle">${escapeHtml(n)}</text></g>`;
  });
  $("graph").innerHTML = `<svg viewBox="0 0 ${width} ${height}" aria-label="service dependency graph">${lines.join("")}${circles.join("")}</svg>`;
}

async function selectNode(id) {
  state.selected = id;
  renderGraph();
  try {
    const [up, impact] = await Promise.all([api(`/cmdb/items/${encodeURIComponent(id)}/upstream`),
                                            api(`/cmdb/items/${encodeURIComponent(id)}/impact`)]);
    const names = (items) => items.map((i) => escapeHtml(i.id)).join(", ") || "none";
    $("node-detail").innerHTML = `<strong>${escapeHtml(id)}</strong> depends on: ${names(up.upstream)}.<br>
      Blast radius (${impact.count}): ${names(impact.impact)}.`;
  } catch (error) {
    $("node-detail").textContent = "Could not load " + id + ": " + error.message;
  }
}

$("graph").addEventListener("click", (event) => {
  const node = event.target.closest("[data-node]");
  if (node) selectNode(node.dataset.node);
});
$("graph").addEventListener("keydown", (event) => {
  const node = event.target.closest("[data-node]");
  if (node && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); selectNode(node.dataset.node); }
});

// -- footer, token, loading ------------------------------------------------------------------------------------------

function showComponents(components) {
  if (!components) return;
  const parts = Object.entries(components).map(([name, c]) => `${name} ${c.ok ? "ok" : "DOWN"}`);
  $("components").textContent = "components: " + (parts.join(", ") || "–");
}

function uptime(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${Math.floor(seconds % 60)} s`;
}

function showToken() {
  $("token-state").textContent = state.token
    ? "Token set for this tab: you can acknowledge and resolve incidents."
    : "Read-only: enter the token to acknowledge and resolve incidents.";
  renderIncidents();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  if (state.token) sessionStorage.setItem("bizra-token", state.token);
  showToken();
});
$("token-clear").addEventListener("click", () => {
  state.token = "";
  sessionStorage.removeItem("bizra-token");
  showToken();
});

async function refreshAll() {
  try {
    const [health, history, ready, incidents, runs, graph] = await Promise.all([
      api("/health"), api("/score/history"), api("/ready"),
      api("/rca/incidents?limit=200"), api("/runs?limit=10"), api("/cmdb/graph"),
    ]);
    state.heartbeat = (health.controller && health.controller.heartbeat_interval_seconds) || 30;
    showScore({ score: health.ahsan_score, tier: health.tier, violations: health.violations, window_seconds: health.window_seconds });
    $("version").textContent = health.version;
    $("uptime").textContent = uptime(health.uptime_seconds);
    state.history = history.points;
    drawSparkline();
    showComponents(ready.components);
    state.incidents = new Map(incidents.incidents.filter((i) => i.status !== "resolved").map((i) => [i.id, i]));
    state.runs = new Map(runs.runs.map((r) => [r.id, r]));
    state.cmdb = graph;
    renderIncidents();
    renderRuns();
    renderGraph();
  } catch (error) {
    $("action-error").textContent = "Could not load the status: " + error.message;
  }
}

setInterval(() => { if (state.connected) api("/health").then((h) => { $("uptime").textContent = uptime(h.uptime_seconds); }).catch(() => {}); }, 30000);
setInterval(renderIncidents, 30000); // ages
showToken();
connect();
