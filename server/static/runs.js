// The runs view: recent runs live from the stream, or the runs a filter asks for; each with its report, why it
// failed, "Re-run", "Copy link" and "Compare with previous run". Built with DOM calls: data is always text.
"use strict";

const RUN_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const RECENT_RUNS = 10, FILTERED_RUNS = 50;
// state.runFilters: {notebook, status, since, until (unix seconds)}, or null for the recent runs

// -- which runs ---------------------------------------------------------------------------------------------------

function runsPath() {
  const f = state.runFilters;
  if (!f) return `/runs?limit=${RECENT_RUNS}`;
  const query = new URLSearchParams({ limit: String(FILTERED_RUNS) });
  for (const key of ["notebook", "status", "since", "until"]) if (f[key] !== "" && f[key] !== null) query.set(key, f[key]);
  return "/runs?" + query;
}

function runMatches(run) {  // the filter, applied here too, so a live update never shows a run it excludes
  const f = state.runFilters;
  if (!f) return true;
  if (f.notebook && run.notebook !== undefined && run.notebook !== f.notebook) return false;
  if (f.status && run.status !== f.status) return false;
  if (f.since !== null && run.created_at !== undefined && run.created_at < f.since) return false;
  if (f.until !== null && run.created_at !== undefined && run.created_at >= f.until) return false;
  return true;
}

function mergeRun(data) {  // a run event from the stream, or a run this page started
  if (!data || !data.id) return;
  const known = state.runs.get(data.id);
  const run = Object.assign(known || {}, data);
  if (known || runMatches(run)) state.runs.set(run.id, run);
  renderRuns();
  scheduleRunSeen(run);
}

function readFilters() {  // {filters} or {field, message}
  // a day is a UTC day, as the runs list writes times: 2026-12-01 is 2026-12-01T00:00Z to the next 00:00Z
  const day = (id) => $(id).value ? Date.parse($(id).value + "T00:00:00Z") / 1000 : null;
  const since = day("filter-since"), untilDay = day("filter-until");
  if (since !== null && untilDay !== null && untilDay < since) {
    return { field: "filter-until", message: "The 'to' day is before the 'from' day." };
  }
  const filters = { notebook: $("filter-notebook").value, status: $("filter-status").value, since,
                    until: untilDay === null ? null : untilDay + 86400 };  // to the end of that day
  const none = !filters.notebook && !filters.status && since === null && untilDay === null;
  return { filters: none ? null : filters };
}

async function showFilteredRuns(event) {
  if (event) event.preventDefault();
  $("runs-error").textContent = "";
  const read = readFilters();
  if (read.message) { $("runs-error").textContent = read.message; $(read.field).focus(); return; }
  state.runFilters = read.filters;
  $("runs-filter-state").textContent = read.filters
    ? "Showing the runs that match the filters (at most 50), newest first."
    : `Showing the ${RECENT_RUNS} most recent runs, updated live.`;
  try {
    const body = await api(runsPath());
    state.runs = new Map((body.runs || []).filter(runMatches).map((r) => [r.id, r]));
    renderRuns();
  } catch (error) {
    $("runs-error").textContent = `Could not load the runs: ${error.message}.`;
  }
}

function clearFilters() {
  for (const id of ["filter-notebook", "filter-status", "filter-since", "filter-until"]) $(id).value = "";
  showFilteredRuns();
}

// -- one run ------------------------------------------------------------------------------------------------------

function runProgress(r) {
  if (r.status === "running" && r.progress) {
    const { cell, cells } = r.progress;
    return [el("progress", { max: cells, value: cell, "aria-label": `cell ${cell} of ${cells}` }), ` cell ${cell}/${cells}`];
  }
  if (r.started_at && r.finished_at) return `${(r.finished_at - r.started_at).toFixed(1)} s`;
  return "";
}

function reportLinks(r) {
  const links = r.links || {};
  const out = [];
  for (const [key, label] of [["html", "report"], ["pdf", "PDF"]]) {
    const href = localHref(links[key]);
    if (href) out.push(" ", el("a", { href, target: "_blank", rel: "noopener noreferrer", className: "report-link" }, label));
  }
  return out;
}

function runActions(r) {
  const buttons = [el("button", { type: "button", dataset: { runAction: "rerun" } }, "Re-run"),
                   el("button", { type: "button", dataset: { runAction: "copy" } }, "Copy link")];
  if (r.status === "succeeded" || r.status === "failed") {
    buttons.push(el("button", { type: "button", dataset: { runAction: "compare" } }, "Compare with previous succeeded run"));
  }
  return el("div", { className: "actions" }, buttons);
}

function runItem(r) {
  const status = RUN_STATUSES.includes(r.status) ? r.status : "unknown";
  const when = r.created_at ? el("span", { className: "muted run-time" }, ` started ${utcDateTime(r.created_at * 1000)}`) : "";
  return el("li", { dataset: { run: r.id } },
    el("strong", {}, String(r.notebook || r.kind || "run")), " ",
    el("span", { className: "status " + status }, String(r.status)), " ", runProgress(r), reportLinks(r), when,
    r.headline ? el("div", { className: "muted" }, String(r.headline)) : "",
    r.status === "failed" && r.error ? el("div", { className: "run-error" }, "why: " + clip(r.error, 300)) : "",
    runActions(r),
    el("p", { className: "run-note", "aria-live": "polite" }),
    el("p", { className: "compare-note", "aria-live": "polite" }));
}

function emptyRuns() {
  if (state.runFilters) return el("li", { className: "muted" }, "No run matches these filters.");
  return el("li", { className: "muted" }, "No run yet. Runs start on alerts and on schedule, or with ",
    el("code", {}, "bizra-nb run NOTEBOOK"), " or ", el("code", {}, "POST /runs"), ", or from the form below.");
}

function renderRuns() {
  const runs = [...state.runs.values()].filter(runMatches).sort((a, b) => (b.created_at || 0) - (a.created_at || 0))
    .slice(0, state.runFilters ? FILTERED_RUNS : RECENT_RUNS);
  $("runs").replaceChildren(...(runs.length ? runs.map(runItem) : [emptyRuns()]));
}

// -- the actions ----------------------------------------------------------------------------------------------------

function runNote(id, ...content) {  // "Copy link" writes here
  noteOf(id, ".run-note", content);
}

function compareNote(id, ...content) {  // "Compare with previous run" writes here: the two never replace each other
  noteOf(id, ".compare-note", content);
}

function noteOf(id, selector, content) {
  const item = [...$("runs").children].find((li) => li.dataset.run === id);
  if (item) item.querySelector(selector).replaceChildren(...content.flat(Infinity));
}

async function copyRunLink(id) {
  const link = rerunLink(id);
  const box = el("input", { type: "text", readonly: true, className: "share-link", "aria-label": "link to re-run " + id });
  box.value = link;
  let copied = false;
  try { await navigator.clipboard.writeText(link); copied = true; } catch (error) { /* the box below has it */ }
  runNote(id, copied ? "Link copied. It opens the form filled in; it does not start anything: " : "Copy this link. It opens the form filled in; it does not start anything: ", box);
  box.select();
}

async function previousSucceeded(id) {  // the last succeeded run of the same notebook before run id, or null
  let previous;
  try {
    previous = await api(`/runs/${encodeURIComponent(id)}/previous?status=succeeded`, { strict: true });
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
  if (previous.status === "succeeded") return previous;
  // a server that ignores ?status answers with the previous finished run: look further back among the succeeded ones
  const run = state.runs.get(id) || await api(`/runs/${encodeURIComponent(id)}`, { strict: true });
  const query = new URLSearchParams({ notebook: run.notebook, status: "succeeded", until: String(run.created_at), limit: "5" });
  const body = await api("/runs?" + query, { strict: true });
  return (body.runs || []).find((r) => r.id !== id && r.status === "succeeded") || null;
}

async function compareWithPrevious(id) {
  compareNote(id, "Looking for the previous succeeded run of this notebook…");
  let previous;
  try {
    previous = await previousSucceeded(id);
  } catch (error) {
    compareNote(id, `Could not find the previous succeeded run: ${error.message}.`);
    return;
  }
  if (!previous) {
    compareNote(id, "Nothing to compare with: there is no earlier succeeded run of this notebook.");
    return;
  }
  const url = `/runs/compare?a=${encodeURIComponent(previous.id)}&b=${encodeURIComponent(id)}`;
  compareNote(id, el("a", { href: url, target: "_blank", rel: "noopener noreferrer", className: "compare-link" },
    `Comparison with the previous succeeded run, ${previous.id}, started ${utcDateTime(previous.created_at * 1000)} (opens in a new tab)`));
  window.open(url, "_blank", "noopener");
}

function onRunAction(event) {
  const button = event.target.closest("button[data-run-action]");
  if (!button) return;
  const id = button.closest("li[data-run]").dataset.run;
  if (button.dataset.runAction === "rerun") prefillFromRun(id);
  else if (button.dataset.runAction === "copy") copyRunLink(id);
  else if (button.dataset.runAction === "compare") compareWithPrevious(id);
}

function initRunsView() {
  state.runFilters = null;
  $("runs").addEventListener("click", onRunAction);
  $("runs-filter").addEventListener("submit", showFilteredRuns);
  $("filter-clear").addEventListener("click", clearFilters);
  $("filter-status").replaceChildren(el("option", { value: "" }, "any status"),
    ...RUN_STATUSES.map((s) => el("option", { value: s }, s)));
  renderRuns();
}
