// The live status page: fills itself from the API, then follows the WebSocket. No build step, no secrets.
// Nothing stale is ever shown as live: when the stream drops, every value is greyed and the score is unknown.
"use strict";

const $ = (id) => document.getElementById(id);
const KINDS = ["http_error", "validation_failed", "run_failed", "assumption_violated", "silent_failure"];
const STATUS_LABELS = {
  operational: "All systems operational",
  degraded_performance: "Degraded performance",
  partial_outage: "Partial outage",
  major_outage: "Major outage",
  under_maintenance: "Under maintenance",
  unknown: "Status unknown",
};
const RESOLVED_SHOWN = 10;   // "Recently resolved": how many
const HEALTH_TTL_MS = 1200;  // /health re-reads the open incidents at most once a second: ask again after that
const state = {
  token: sessionStorage.getItem("bizra-token") || "",
  incidents: new Map(),   // id -> incident (open or acknowledged)
  resolved: new Map(),    // id -> incident: the last RESOLVED_SHOWN resolved ones
  resolvedAsked: 0,       // the newest request for them: an older answer arriving later is dropped
  actionErrors: new Map(), // incident id -> the message of its last failed action
  runs: new Map(),        // id -> run
  history: [],            // [[unix seconds, score]]
  cmdb: null,
  heartbeat: 30,
  lastUpdate: 0,          // ms: the last time fresh data arrived (a message, or a successful fetch)
  lastHealth: 0,
  connected: false,
  stale: true,
  backoff: 500,
  selected: null,
  pending: [],            // messages that arrived while a fresh state was loading, applied after it
  loadError: "",
};

// -- the API -------------------------------------------------------------------------------------------------

class ApiError extends Error {  // field: the input the server blames (e.g. a parameter); code: its error code
  constructor(message, status, field = null, code = null) {
    super(message); this.status = status; this.field = field; this.code = code;
  }
}

async function api(path, options = {}) {  // options.strict: a 503 is an error too (default: its body is the answer)
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (state.token && options.method && options.method !== "GET") headers.Authorization = "Bearer " + state.token;
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch (error) {
    throw new ApiError("the server did not answer", 0);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok && (response.status !== 503 || options.strict)) {
    const error = body.error && typeof body.error === "object" ? body.error : {};
    const message = error.message || (typeof body.error === "string" ? body.error : "") || response.statusText;
    throw new ApiError(String(message), response.status, error.field || body.field || null, error.code || body.code || null);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {  // an element whose string children are text, never markup
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {  // nested lists of parts (e.g. a line's links) all become children
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function localHref(value) {  // an untrusted link target: a path on this server or an absolute http(s) URL, else null
  const text = String(value || "");
  if (text.startsWith("/") && !text.startsWith("//") && !text.includes("\\")) return text;
  return webUrl(text);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function clip(text, limit) {
  const s = String(text);
  return s.length <= limit ? s : s.slice(0, limit - 1) + "…";
}

function webUrl(value) {  // an untrusted URL becomes a link only when it is absolute http(s)
  try {
    const url = new URL(String(value));
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (error) { return null; }
}

function clock(ms) {
  const d = new Date(ms), pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function utcDateTime(ms) {  // always with the date: "2026-12-01 01:39 UTC"
  const d = new Date(ms), pad = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

function since(ms) {  // UTC, with the date unless today (UTC): as the reports write times
  const d = new Date(ms), pad = (n) => String(n).padStart(2, "0");
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  return day === new Date().toISOString().slice(0, 10) ? time : `${day} ${time}`;
}

function reportState(incident) {  // the diagnosis report: its link, why it could not be made, or pending
  const why = incident.report_error || incident.diagnosis_error;
  const href = incident.report_url ? localHref(incident.report_url) : null;
  const link = href ? `<a href="${escapeHtml(href)}" target="_blank" rel="noopener noreferrer">${why ? "the run's report" : "diagnosis report"}</a>` : "";
  if (why) {  // failed: said first; a report of a failed run is not offered as the diagnosis
    const what = incident.report_error ? "report failed" : "diagnosis failed";
    return `<span class="report-failed">${what}: ${escapeHtml(clip(why, 160))}</span>${link ? " · " + link : ""}`;
  }
  return link || `<span class="muted">report pending</span>`;
}

function age(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

// -- freshness: the connection dot, "updated N s ago", and the stale marking -----------------------------------

function setConnection(colour, text) {
  $("connection").className = "conn " + colour;
  $("connection-text").textContent = text;
}

function fresh() {
  state.lastUpdate = Date.now();
}

function markStale(why) {
  state.stale = true;
  document.body.classList.add("stale");
  $("score").textContent = "—";
  $("tier").textContent = "unknown";
  $("score-card").className = "card tier-unknown";
  showOverall({ status: "unknown", reasons: [why] });
  showFreshness();
}

function markFresh() {
  state.stale = false;
  state.loadError = "";
  document.body.classList.remove("stale");
  setConnection("green", "live");
  fresh();
  showFreshness();
}

function showFreshness() {
  const last = state.lastUpdate ? clock(state.lastUpdate) : null;
  const ago = state.lastUpdate ? Math.round((Date.now() - state.lastUpdate) / 1000) : null;
  $("updated").textContent = last ? `updated ${ago} s ago (${last})` : "no data yet";
  const banner = $("stale-banner");
  banner.hidden = !state.stale;
  if (state.stale) {
    banner.textContent = last
      ? `Not live: last update ${last}, reconnecting… Values below are greyed and may be out of date; the score is unknown.`
      : "Not live yet: connecting… nothing below is live.";
    if (state.loadError) banner.textContent += " " + state.loadError;
  }
}

function connect() {
  setConnection("amber", "connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(scheme + "://" + location.host + "/ws/live-updates");
  ws.onopen = () => {
    state.connected = true;
    state.backoff = 500;
    state.pending = [];
    setConnection("amber", "loading");
    refreshAll();
  };
  ws.onmessage = (event) => {
    if (!state.stale) fresh();
    if (state.connected && !state.stale) setConnection("green", "live");
    handle(JSON.parse(event.data));
  };
  ws.onclose = () => {
    const wasConnected = state.connected;
    state.connected = false;
    setConnection("red", "disconnected, reconnecting");
    if (wasConnected || !state.stale) markStale("no live data: the connection to the server is lost");
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 5000);
  };
  ws.onerror = () => {}; // onclose follows and says it
}

setInterval(() => {  // a heartbeat (or any message) is late: amber and stale, while the socket still looks open
  if (state.connected && !state.stale && Date.now() - state.lastUpdate > 2.5 * state.heartbeat * 1000) {
    setConnection("amber", "heartbeat late");
    markStale("no live data: the server's heartbeat is late");
  }
  showFreshness();
}, 1000);

// -- messages --------------------------------------------------------------------------------------------------

function handle(message) {
  const data = message.data || {};
  if (state.stale) {  // refreshAll is loading a fresh state: these apply after it
    if (state.connected) state.pending.push(message);
    return;
  }
  if (message.type === "score") showScore(data);
  else if (message.type === "cycle") {
    state.history.push([message.ts, data.score]);
    const cutoff = message.ts - 3600;
    while (state.history.length && state.history[0][0] < cutoff) state.history.shift();
    showTier(data.score, data.tier);
    drawSparkline();
    showComponents(data.components);
    if (Date.now() - state.lastHealth > 2000) refreshHealth();
  } else if (message.type === "incident" || message.type === "rca") {
    const id = data.id || data.incident_id;
    if (id) refreshIncident(id);
    if (id) refreshIncidentView(id);
    refreshHealth();
    setTimeout(refreshHealth, HEALTH_TTL_MS);
  } else if (message.type === "run") {
    mergeRun(data);
    budgetRunSeen(data);
  } else if (data.incident_id) {  // a timeline, note or silence event of an incident
    refreshIncidentView(data.incident_id);
  }
}

// -- the overall status ----------------------------------------------------------------------------------------

function showOverall(overall) {
  const status = overall.status in STATUS_LABELS ? overall.status : "unknown";
  const el = $("overall-status");
  el.textContent = STATUS_LABELS[status];
  el.dataset.status = status;
  $("overall").className = "card wide overall status-" + status;
  const reasons = overall.reasons || [];
  $("overall-reasons").innerHTML = reasons.length
    ? reasons.map((r) => `<li>${escapeHtml(clip(r, 300))}</li>`).join("")
    : `<li class="muted">no open incident, platform score at or above 97, every component up</li>`;
}

function showHealth(health) {
  state.lastHealth = Date.now();
  state.heartbeat = (health.controller && health.controller.heartbeat_interval_seconds) || 30;
  if (health.overall_status) showOverall(health.overall_status);
  $("version").textContent = health.version;
  $("uptime").textContent = uptime(health.uptime_seconds);
  const source = health.metric_source || { configured: true };
  const warning = $("source-warning");
  warning.hidden = source.configured;
  if (!source.configured) {
    warning.innerHTML = "No metric source configured: diagnoses cannot run. Restart the server with "
      + "<code>--prometheus-url URL</code> (Prometheus) or <code>--dataset FILE</code> (CSV/Parquet), "
      + "or set <code>BIZRA_PROMETHEUS_URL</code> / <code>BIZRA_DATASET</code>.";
  }
  const grafana = webUrl((health.links || {}).grafana || "");
  const link = $("grafana-link");
  link.hidden = !grafana;
  if (grafana) link.href = grafana;
}

async function refreshHealth() {
  if (state.stale) return;
  try {
    const health = await api("/health");
    if (state.stale) return;
    showHealth(health);
    showScore({ score: health.ahsan_score, tier: health.tier, violations: health.violations,
                window_seconds: health.window_seconds });
    fresh();
  } catch (error) { /* the stream's state says it */ }
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

const TICK_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

function timeTicks(first, last) {  // distinct, evenly spaced, readable labels: at most 5, seconds only when needed
  const span = Math.max(last - first, 1);
  const step = TICK_STEPS.find((s) => span / s <= 4) || 3600;
  const values = [], labels = [];
  for (let t = Math.ceil(first / step) * step; t <= last; t += step) {
    values.push(new Date(t * 1000));
    labels.push(step < 60 ? clock(t * 1000) : clock(t * 1000).slice(0, 5));
  }
  return { values, labels };
}

function drawSparkline() {
  if (!window.Plotly || !state.history.length) return;
  const x = state.history.map((p) => new Date(p[0] * 1000));
  const y = state.history.map((p) => p[1]);
  const last = state.history[state.history.length - 1][0];
  const first = Math.min(state.history[0][0], last - 60);  // at least a minute wide
  const ticks = timeTicks(first, last);
  window.Plotly.react("sparkline", [{ x, y, mode: y.length < 3 ? "lines+markers" : "lines",
    line: { color: "#1565c0", width: 2 }, hoverinfo: "x+y" }], {
    margin: { l: 34, r: 8, t: 6, b: 24 }, height: 120, showlegend: false, autosize: true,
    font: { size: 12 },
    yaxis: { range: [Math.min(88, Math.min(...y) - 2), 101], fixedrange: true, tickvals: [90, 95, 100] },
    xaxis: { fixedrange: true, showgrid: false, range: [new Date(first * 1000), new Date(last * 1000)],
             tickmode: "array", tickvals: ticks.values, ticktext: ticks.labels },
    shapes: [95, 97].map((v) => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: v, y1: v,
      line: { dash: "dot", width: 1, color: v === 95 ? "#c62828" : "#ef6c00" } })),
  }, { displayModeBar: false, responsive: true });
}

// -- incidents ---------------------------------------------------------------------------------------------------

async function refreshIncident(id) {
  try {
    const incident = await api("/rca/incidents/" + id);
    if (incident.status === "resolved") {  // from one list to the other at once; the server's list then settles it
      state.incidents.delete(incident.id);
      state.resolved.set(incident.id, incident);
      renderResolved();
      loadResolved();
    } else {
      state.incidents.set(incident.id, incident);
      if (state.resolved.delete(incident.id)) { renderResolved(); loadResolved(); }  // reopened
    }
    renderIncidents();
    renderGraph();
  } catch (error) { /* gone or not allowed: the next refresh settles it */ }
}

// -- recently resolved incidents: their views hold the postmortem drafts --------------------------------------------

function lasted(seconds) {  // "45 s", "12 min", "3 h 5 min", "2 days 4 h"
  const s = Math.max(0, Math.round(Number(seconds)));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} days ${Math.round((s % 86400) / 3600)} h`;
}

function resolvedItem(i) {  // DOM calls only: the title is the alert's (untrusted) text
  const severity = String(i.severity || "");
  const resolvedAt = Number(i.resolved_at);
  const ttr = i.ttr_seconds === null || i.ttr_seconds === undefined ? null : Number(i.ttr_seconds);
  return el("li", { dataset: { resolvedIncident: i.id } },
    el("div", {},
      el("span", { className: /^P[0-3]$/.test(severity) ? "sev " + severity : "sev" }, severity), " ",
      el("span", { className: "incident-title" }, clip(String(i.title || ""), 300)), " ",
      el("span", { className: "muted" }, `(incident ${i.id})`)),
    el("div", { className: "muted resolved-when" },
      Number.isFinite(resolvedAt) && resolvedAt > 0 ? `resolved ${utcDateTime(resolvedAt * 1000)}` : "resolved",
      ttr !== null && Number.isFinite(ttr) ? `, ${lasted(ttr)} after it opened` : ""),
    el("div", { className: "actions" },
      el("button", { type: "button", className: "open-incident", dataset: { openIncident: i.id } },
         "Timeline, notes, silences")));
}

function renderResolved() {
  const list = [...state.resolved.values()]
    .sort((a, b) => (b.resolved_at || 0) - (a.resolved_at || 0) || b.id - a.id).slice(0, RESOLVED_SHOWN);
  $("resolved-incidents").replaceChildren(...list.map(resolvedItem));
  $("resolved-empty").hidden = list.length > 0;
}

async function loadResolved() {
  const asked = ++state.resolvedAsked;
  try {
    const body = await api(`/rca/incidents?status=resolved&limit=${RESOLVED_SHOWN}`, { strict: true });
    if (asked !== state.resolvedAsked) return;
    const listed = (body.incidents || []).filter((i) => i.status === "resolved" && !state.incidents.has(i.id));
    state.resolved = new Map(listed.map((i) => [i.id, i]));
    $("resolved-error").textContent = "";
    renderResolved();
  } catch (error) {
    if (asked === state.resolvedAsked) $("resolved-error").textContent = `Could not load the resolved incidents: ${error.message}.`;
  }
}

function topCause(incident) {  // the suspected cause and the diagnosis' confidence; "nothing to blame" names none
  const diagnosis = incident.diagnosis || {};
  if (diagnosis.verdict === "nothing_to_blame") return "";
  const ranking = diagnosis.ranking || [];
  if (!ranking.length) return null;
  const level = diagnosis.confidence && diagnosis.confidence.level;
  return `suspected cause <strong>${escapeHtml(ranking[0].service)}</strong>` +
    (level ? ` (confidence ${escapeHtml(level)})` : "");
}

function runbook(value) {
  if (!value) return `<span class="muted">no runbook</span>`;
  const url = webUrl(value);
  return url
    ? `<a class="runbook" href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">runbook</a>`
    : `runbook (not a web link): <code>${escapeHtml(clip(value, 200))}</code>`;
}

function alertLines(incident) {
  const alerts = Object.values(incident.alerts || {});
  if (!alerts.length) {
    const url = (incident.annotations || {}).runbook_url;
    return url ? `<ul class="alerts"><li>${runbook(url)}</li></ul>` : "";
  }
  return `<ul class="alerts">${alerts.slice(0, 10).map((a) => {
    const name = (a.labels || {}).alertname || "alert";
    return `<li><span class="alertname">${escapeHtml(clip(name, 120))}</span> <span class="muted">${escapeHtml(a.status || "")}</span>
      · ${runbook((a.annotations || {}).runbook_url || (incident.annotations || {}).runbook_url)}</li>`;
  }).join("")}</ul>`;
}

function renderIncidents() {
  const list = [...state.incidents.values()].sort((a, b) => a.severity.localeCompare(b.severity) || b.opened_at - a.opened_at);
  $("incidents-empty").hidden = list.length > 0;
  const disabled = state.token ? "" : "disabled";
  const title = state.token ? "" : ` title="enter the API token under Actions first"`;
  $("incidents").innerHTML = list.map((i) => {
    const cause = topCause(i);
    const report = reportState(i);
    const ack = i.status === "open" ? `<button type="button" data-action="acknowledged" data-id="${i.id}" ${disabled}${title}>Acknowledge</button>` : "";
    const error = state.actionErrors.get(i.id) || "";
    return `<li data-incident="${i.id}">
      <div><span class="sev ${escapeHtml(i.severity)}">${escapeHtml(i.severity)}</span>
      <span class="incident-title">${escapeHtml(i.title)}</span></div>
      <div><strong class="age">open for ${age(i.opened_at)}</strong> <span class="muted">(since ${since(i.opened_at * 1000)}), ${escapeHtml(i.status)}${cause ? `; ${cause}` : cause === "" ? "; nothing to blame" : ""}; ${report}</span></div>
      ${alertLines(i)}
      <div class="actions">${ack}<button type="button" data-action="resolved" data-id="${i.id}" ${disabled}${title}>Resolve</button>
        <button type="button" class="open-incident" data-open-incident="${i.id}">Timeline, notes, silences</button></div>
      <p class="error action-error" role="alert">${escapeHtml(error)}</p>
    </li>`;
  }).join("");
}

function actionMessage(verb, id, error) {
  if (error.status === 0) return `Could not ${verb} incident ${id}: the server did not answer; nothing was changed.`;
  if (error.status === 401) {
    return `Could not ${verb} incident ${id}: the server refused the token (HTTP 401). Enter the current token under Actions.`;
  }
  if (error.status === 404) return `Could not ${verb} incident ${id}: it no longer exists (HTTP 404).`;
  return `Could not ${verb} incident ${id}: ${error.message} (HTTP ${error.status}).`;
}

$("incidents").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = Number(button.dataset.id);
  const verb = button.dataset.action === "resolved" ? "resolve" : "acknowledge";
  state.actionErrors.delete(id);
  button.disabled = true;
  try {
    await api("/rca/incidents/" + id, { method: "PATCH", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ status: button.dataset.action }) });
  } catch (error) {
    state.actionErrors.set(id, actionMessage(verb, id, error));
    if (error.status === 401) forgetToken("The server refused the token: enter it again.");
  }
  await refreshIncident(id);
  renderIncidents();
  refreshHealth();
  setTimeout(refreshHealth, HEALTH_TTL_MS);
});

// -- the CMDB graph (a drawing on wide screens, a list on narrow ones) -----------------------------------------

function anomalous() {
  const services = new Set();
  for (const incident of state.incidents.values()) {
    if (incident.diagnosis && incident.diagnosis.verdict === "nothing_to_blame") continue;
    for (const c of (incident.diagnosis && incident.diagnosis.ranking) || []) {
      if ((c.evidence && c.evidence.length) || (c.callers && c.callers.length)) services.add(c.service);
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

function emptyCmdb() {
  const origin = escapeHtml(location.origin);
  return `<div class="empty-hint"><p><strong>The CMDB is empty</strong>, so diagnoses cannot follow dependencies
    and there is nothing to draw. Import one (YAML or JSON, items and relations) with the API token
    (in the server's <code>data/api_token</code> file, or its <code>--api-token</code> /
    <code>BIZRA_API_TOKEN</code> setting):</p>
    <pre><code>curl -X POST --data-binary @cmdb.yaml \\
  -H "Authorization: Bearer $(cat data/api_token)" \\
  ${origin}/cmdb/import</code></pre></div>`;
}

function renderGraph() {
  const graph = state.cmdb;
  if (!graph) return;
  const nodes = graph.nodes.filter((n) => n.kind !== "host").map((n) => n.id);
  const edges = graph.edges.filter((e) => e.type === "depends_on" && nodes.includes(e.source) && nodes.includes(e.target));
  if (!nodes.length) { $("graph").innerHTML = emptyCmdb(); return; }
  const depth = layers(nodes, edges);
  const rows = new Map();
  for (const n of [...nodes].sort()) {
    const d = depth.get(n);
    if (!rows.has(d)) rows.set(d, []);
    rows.get(d).push(n);
  }
  const width = Math.max(640, $("graph").clientWidth || 1000), rowHeight = 80, height = rows.size * rowHeight + 10;
  const pos = new Map();
  for (const [d, members] of rows) members.forEach((n, i) => pos.set(n, [(i + 1) * width / (members.length + 1), 34 + d * rowHeight]));
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
  const dependsOn = (n) => edges.filter((e) => e.source === n).map((e) => escapeHtml(e.target)).join(", ") || "nothing";
  const items = [...rows.entries()].sort((a, b) => a[0] - b[0]).flatMap(([, members]) => members).map((n) => {
    const cls = (bad.has(n) ? "bad" : "ok") + (state.selected === n ? " selected" : "");
    return `<li class="${cls}"><button type="button" class="node-button" data-node="${escapeHtml(n)}">${escapeHtml(n)}</button>
      <span class="state">${bad.has(n) ? "anomalous" : "healthy"}</span><div class="muted">depends on ${dependsOn(n)}</div></li>`;
  });
  $("graph").innerHTML = `<svg viewBox="0 0 ${width} ${height}" aria-label="service dependency graph">${lines.join("")}${circles.join("")}</svg>
    <ul class="graph-list" aria-label="services, callers first">${items.join("")}</ul>`;
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
  const node = event.target.closest("g[data-node]");
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
    ? "Token accepted for this tab: you can acknowledge and resolve incidents, run notebooks and add notes."
    : "Read-only: enter the token to acknowledge and resolve incidents, run notebooks and add notes.";
  renderIncidents();
  showTokenNeeds();
}

function forgetToken(message) {
  state.token = "";
  sessionStorage.removeItem("bizra-token");
  $("token-error").textContent = message || "";
  showToken();
}

async function checkToken(token) {  // true: accepted; otherwise the message to show next to the field
  try {
    await api("/auth/check", { headers: { Authorization: "Bearer " + token } });
    return true;
  } catch (error) {
    if (error.status === 401) {
      return "The server refused this token (HTTP 401): check it for typos. `bizra-nb serve` prints it at first "
        + "start and keeps it in the data dir's api_token file.";
    }
    return `Could not check the token: ${error.message}${error.status ? ` (HTTP ${error.status})` : ""}.`;
  }
}

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) { $("token-error").textContent = "Paste the token first."; return; }
  $("token-error").textContent = "";
  $("token-state").textContent = "Checking the token…";
  const verdict = await checkToken(token);
  if (verdict === true) {
    $("token").value = "";
    state.token = token;
    sessionStorage.setItem("bizra-token", token);
    showToken();
  } else {
    $("token-error").textContent = verdict;
    showToken();
  }
});
$("token-clear").addEventListener("click", () => forgetToken(""));

async function refreshAll() {
  try {
    const [health, history, ready, incidents, runs, graph] = await Promise.all([
      api("/health"), api("/score/history"), api("/ready"),
      api("/rca/incidents?limit=200"), api(runsPath()), api("/cmdb/graph"),
    ]);
    if (!state.connected) return;  // the stream dropped meanwhile: stay stale
    markFresh();
    showHealth(health);
    showScore({ score: health.ahsan_score, tier: health.tier, violations: health.violations, window_seconds: health.window_seconds });
    state.history = history.points;
    drawSparkline();
    showComponents(ready.components);
    state.incidents = new Map(incidents.incidents.filter((i) => i.status !== "resolved").map((i) => [i.id, i]));
    state.runs = new Map(runs.runs.filter(runMatches).map((r) => [r.id, r]));
    state.cmdb = graph;
    renderIncidents();
    renderRuns();
    renderGraph();
    loadSchedules();
    loadResolved();
    const pending = state.pending;
    state.pending = [];
    pending.forEach(handle);
  } catch (error) {
    state.loadError = "Could not load the status: " + error.message + "; retrying.";
    showFreshness();
    setTimeout(() => { if (state.connected && state.stale) refreshAll(); }, 2000);
  }
}

setInterval(() => { if (!state.stale) renderIncidents(); }, 10000); // ages
window.addEventListener("resize", () => { if (state.cmdb) renderGraph(); });
if (state.token) {  // a token kept from earlier in this tab: check it is still the server's
  checkToken(state.token).then((verdict) => { if (verdict !== true) forgetToken("The saved token is no longer accepted: enter it again."); });
}
initRunForm();
initRunsView();
initSchedules();
initIncidentView();
initBudgets();
showToken();
connect();
