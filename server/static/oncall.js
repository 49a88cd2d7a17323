// Schedules ("Run now") and one incident's view: its timeline, notes, postmortem draft and Alertmanager silences.
// Built with DOM calls: alert labels, notes and comments are always text.
"use strict";

const NO_ALERTMANAGER = "Silences are off on this server: it has no Alertmanager to talk to (start it with "
  + "--alertmanager-url URL). Notes and the timeline still work.";
const EVENT_LABELS = {
  opened: "Opened", alert_updated: "Alert updated", diagnosis_started: "Diagnosis started",
  diagnosis_finished: "Diagnosis finished", diagnosis_failed: "Diagnosis failed", acknowledged: "Acknowledged",
  note: "Note", silence_created: "Silenced", silence_expired: "Silence expired", resolved: "Resolved",
  reopened: "Reopened",
};
const schedules = { list: [], timer: null };
const incidentView = { id: null, timer: null, status: null, silenceAllowed: false };  // status: once known

function timeText(value) {  // unix seconds or an ISO string, as the page writes times (UTC)
  const ms = typeof value === "number" ? value * 1000 : Date.parse(String(value || ""));
  return Number.isNaN(ms) ? String(value || "") : since(ms);
}

function inTime(ms) {  // "in 5 min", "in 3 h"
  const s = Math.max(0, (ms - Date.now()) / 1000);
  if (s < 90) return "in under 2 min";
  if (s < 5400) return `in ${Math.round(s / 60)} min`;
  if (s < 172800) return `in ${Math.round(s / 3600)} h`;
  return `in ${Math.round(s / 86400)} days`;
}

function refusal(error, what) {  // what a failed action says, in words
  if (error.status === 0) return `Could not ${what}: the server did not answer; nothing was changed.`;
  if (error.status === 401) return `Could not ${what}: the server refused the token (HTTP 401). Enter the current token under Actions.`;
  if (error.status === 409 && error.code === "no_alertmanager") return NO_ALERTMANAGER;
  return `Could not ${what}: ${error.message} (HTTP ${error.status}).`;
}

// -- schedules ------------------------------------------------------------------------------------------------------

function viewerZone() {  // the browser's time zone (IANA name), or "" when it cannot say
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (error) { return ""; }
}

function zoneTime(ms, zone) {  // "2026-12-01 01:00" in an IANA zone
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: zone, hourCycle: "h23", year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

function viewerTime(ms, scheduleLocal) {  // ", your time …" when the viewer's clock differs from the schedule's and from UTC
  const zone = viewerZone();
  if (!zone || Number.isNaN(ms)) return "";
  let mine;
  try { mine = zoneTime(ms, zone); } catch (error) { return ""; }
  const utc = new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  return mine === utc || mine === scheduleLocal ? "" : `; your time ${mine} ${zone}`;
}

function nextFire(s) {
  if (!s.next_fire) return "not planned";
  const local = String(s.next_fire_local || "").slice(0, 16).replace("T", " ");
  const ms = Date.parse(s.next_fire);
  const utc = Number.isNaN(ms) ? String(s.next_fire) : since(ms);
  const zoned = local && s.tz && s.tz !== "UTC";
  const mine = viewerTime(ms, zoned ? local : "");
  return zoned ? `${local} ${s.tz} (${utc}${mine}), ${inTime(ms)}`
               : `${utc}${mine ? ` (${mine.slice(2)})` : ""}, ${inTime(ms)}`;
}

function lastRun(s) {
  const run = s.last_run;
  if (!run) return el("span", { className: "muted" }, "not run yet");
  const status = RUN_STATUSES.includes(run.status) ? run.status : "unknown";
  return [el("span", { className: "status " + status }, String(run.status)), ` ${timeText(run.created_at)} (run ${run.id})`,
          reportLinks(run)];
}

function scheduleItem(s) {
  const off = s.enabled === false;
  return el("li", { dataset: { schedule: s.name }, className: off ? "off" : null },
    el("div", {}, el("strong", {}, String(s.name)), " runs ", el("code", {}, String(s.notebook))),
    off ? el("div", { className: "schedule-off" }, "Off: ", clip(String(s.reason || "no cron").replace(/^off: /, ""), 300))
        : el("div", {}, "When: ", el("code", {}, String(s.cron)), ` (cron, ${s.tz || "UTC"})`),
    off ? "" : el("div", {}, "Next run: ", el("span", { className: "next-fire" }, nextFire(s))),
    el("div", { className: "last-run" }, "Last run: ", lastRun(s)),
    off ? "" : el("div", { className: "actions" }, tokenButton("Run now", { dataset: { runSchedule: s.name } })),
    el("p", { className: "schedule-note", "aria-live": "polite" }));
}

function renderSchedules() {
  $("schedules").replaceChildren(...schedules.list.map(scheduleItem));
  $("schedules-empty").hidden = schedules.list.length > 0;
}

async function loadSchedules() {
  try {
    schedules.list = (await api("/schedules")).schedules || [];
    $("schedules-error").textContent = "";
    renderSchedules();
  } catch (error) {
    $("schedules-error").textContent = error.status === 404 ? "This server does not list its schedules."
                                                            : `Could not load the schedules: ${error.message}.`;
  }
}

function scheduleRunSeen(run) {  // a run of a schedule started or changed: its "last run" line follows, at most every 2 s
  const known = schedules.list.some((s) => s.last_run && s.last_run.id === run.id);
  if ((known || run.status === "queued") && !schedules.timer) {
    schedules.timer = setTimeout(() => { schedules.timer = null; loadSchedules(); }, 2000);
  }
}

function scheduleNote(name, ...content) {
  const item = [...$("schedules").children].find((li) => li.dataset.schedule === name);
  if (item) item.querySelector(".schedule-note").replaceChildren(...content);
}

async function runScheduleNow(button) {
  const name = button.dataset.runSchedule;
  button.disabled = true;
  try {
    const run = await api(`/schedules/${encodeURIComponent(name)}/run`, { method: "POST", strict: true });
    mergeRun(run);
    await loadSchedules();
    scheduleNote(name, "Started run ", el("strong", {}, String(run.id)), ": follow it in the runs list.");
  } catch (error) {
    if (error.status === 401) forgetToken("The server refused the token: enter it again.");
    scheduleNote(name, el("span", { className: "error" }, refusal(error, `run ${name} now`)));
    button.disabled = !state.token;
  }
}

function initSchedules() {
  $("schedules").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-run-schedule]");
    if (button) runScheduleNow(button);
  });
}

// -- one incident: timeline, notes, postmortem ----------------------------------------------------------------------

function confidenceText(value) {
  if (value && typeof value === "object") return value.level ? String(value.level) : "";
  return value === undefined || value === null ? "" : String(value);
}

function eventDetail(event) {
  const d = event.detail || {};
  switch (event.kind) {
    case "note": return el("div", { className: "note-text" }, String(d.text || ""));
    case "diagnosis_started": return el("div", { className: "muted" }, d.mode === "report" ? "the full report" : "the quick diagnosis");
    case "diagnosis_finished": {
      const href = localHref(d.report_url);
      const confidence = confidenceText(d.confidence);
      const cause = d.verdict === "nothing_to_blame" ? "nothing to blame"
        : d.top_cause ? `suspected cause ${d.top_cause}${confidence ? ` (confidence ${confidence})` : ""}` : "no cause found";
      return el("div", {}, clip(cause, 300),
        href ? [" · ", el("a", { href, target: "_blank", rel: "noopener noreferrer" }, "report")] : "");
    }
    case "opened": case "alert_updated": case "resolved": case "reopened":
      if (d.alertname || d.labels) return alertDetail(d);
      return d.title ? el("div", { className: "muted" }, clip(`${d.severity ? d.severity + " " : ""}${d.title}`, 300)) : "";
    case "silence_created":
      return el("div", {}, `until ${timeText(d.ends_at)}${d.comment ? `: ${clip(d.comment, 300)}` : ""}`);
    case "silence_expired": return el("div", { className: "muted" }, `silence ${clip(d.silence_id || "", 60)}`);
    default: {
      const text = d.error || d.reason || d.status || d.title || "";
      return text ? el("div", { className: "muted" }, clip(text, 300)) : "";
    }
  }
}

function alertDetail(d) {  // an Alertmanager delivery: the alert's name, state and common labels
  const counts = d.firing !== undefined ? `, ${d.firing} firing, ${d.resolved || 0} resolved` : "";
  const labels = Object.entries(d.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return el("div", {}, clip(`${d.alertname || "alert"} (${d.status || "?"}${counts})`, 300),
    labels ? el("div", { className: "muted small" }, "labels: ", clip(labels, 600)) : "");
}

function timelineItem(event) {
  return el("li", { dataset: { event: event.kind } },
    el("span", { className: "event-time" }, timeText(event.ts)), " ",
    el("strong", {}, EVENT_LABELS[event.kind] || String(event.kind)),
    event.actor ? el("span", { className: "muted" }, ` by ${clip(event.actor, 80)}`) : "",
    event.from_record ? el("span", { className: "muted small" }, " (from the incident's record: no event was kept)") : "",
    eventDetail(event));
}

async function loadTimeline(id) {
  try {
    const body = await api(`/rca/incidents/${id}/timeline`);
    if (incidentView.id !== id) return;
    const events = body.events || [];
    $("timeline").replaceChildren(...(events.length ? events.map(timelineItem)
                                                     : [el("li", { className: "muted" }, "Nothing recorded yet.")]));
    $("timeline-error").textContent = "";
  } catch (error) {
    if (incidentView.id === id) $("timeline-error").textContent = refusal(error, "load the timeline");
  }
}

async function addNote(event) {
  event.preventDefault();
  const id = incidentView.id, text = $("note-text").value.trim();
  $("note-error").textContent = "";
  if (!text) { $("note-error").textContent = "Write the note first."; return; }
  if (text.length > 4000) { $("note-error").textContent = `A note is 4000 characters at most (this one is ${text.length}).`; return; }
  if (!state.token) { $("note-error").textContent = "Enter the API token under Actions first: adding a note needs it."; return; }
  try {
    await api(`/rca/incidents/${id}/notes`, { method: "POST", strict: true, headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text }) });
    $("note-text").value = "";
    await loadTimeline(id);
  } catch (error) {
    if (error.status === 401) forgetToken("The server refused the token: enter it again.");
    $("note-error").textContent = refusal(error, "add the note");
  }
}

// -- one incident: silences -------------------------------------------------------------------------------------------

function matchersText(matchers) {
  return (matchers || []).map((m) => m.text || `${m.name}${m.isEqual === false ? "!" : ""}${m.isRegex ? "=~" : "="}${m.value}`).join(", ");
}

function silenceItem(s) {
  return el("li", { dataset: { silence: s.id } },
    el("strong", {}, String(s.status && s.status.state ? s.status.state : s.status || "active")),
    ` until ${timeText(s.ends_at)}`, s.created_by ? ` · by ${clip(s.created_by, 80)}` : "",
    s.comment ? el("div", {}, clip(s.comment, 300)) : "",
    el("div", { className: "muted small" }, "matches ", clip(matchersText(s.matchers), 400)),
    el("div", { className: "actions" }, tokenButton("Expire", { dataset: { expireSilence: s.id } })));
}

function silenceAllowed(allowed) {  // the form, as the silences' state allows; never for a resolved incident
  const resolved = incidentView.status === "resolved";  // the server would answer 409 incident_resolved
  $("silence-resolved").hidden = !resolved;
  $("silence-duration").disabled = $("silence-comment").disabled = resolved;
  if (allowed !== undefined) incidentView.silenceAllowed = allowed;
  $("silence-submit").disabled = resolved || !incidentView.silenceAllowed;
}

function silencesOff(message) {
  $("silences").replaceChildren();
  $("silences-state").textContent = message;
  silenceAllowed(false);
}

function silencesUnreachable(id, message) {  // Alertmanager (or the server) did not answer: it may come back
  $("silences").replaceChildren();
  const retry = el("button", { type: "button", className: "silences-retry" }, "Try again");
  retry.addEventListener("click", () => {
    $("silences-state").textContent = "Asking Alertmanager again…";
    loadSilences(id);
  });
  $("silences-state").replaceChildren(message, " ", retry);
  silenceAllowed(true);  // creating one may work once it is back: the answer says so
}

async function loadSilences(id) {
  try {
    const body = await api(`/rca/incidents/${id}/silences`, { strict: true });
    if (incidentView.id !== id) return;
    if (body.enabled === false) { silencesOff(NO_ALERTMANAGER); return; }
    const list = body.silences || [];
    $("silences").replaceChildren(...list.map(silenceItem));
    $("silences-state").textContent = (list.length ? "" : "No active silence for this incident's alerts.") +
      (body.partial ? " Only the silences made from this incident (and those checked in time) are shown: checking the others against its alerts took too long." : "");
    silenceAllowed(true);
  } catch (error) {
    if (incidentView.id !== id) return;
    if (error.status === 409) silencesOff(error.code === "no_alertmanager" || !error.message ? NO_ALERTMANAGER : error.message);
    else if (error.status === 404) silencesOff("This server does not manage silences.");
    else if (error.status === 0 || error.status >= 500) silencesUnreachable(id, refusal(error, "list the silences"));
    else silencesOff(refusal(error, "list the silences"));
  }
}

async function createSilence(event) {
  event.preventDefault();
  const id = incidentView.id, comment = $("silence-comment").value.trim();
  $("silence-error").textContent = "";
  if (!comment) { $("silence-error").textContent = "Say why (the comment is shown to everyone the silence hides alerts from)."; return; }
  if (!state.token) { $("silence-error").textContent = "Enter the API token under Actions first: silencing needs it."; return; }
  try {
    await api(`/rca/incidents/${id}/silences`, { method: "POST", strict: true, headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ duration: $("silence-duration").value, comment }) });
    $("silence-comment").value = "";
    await Promise.all([loadSilences(id), loadTimeline(id)]);
  } catch (error) {
    if (error.status === 401) forgetToken("The server refused the token: enter it again.");
    if (error.code === "incident_resolved" && incidentView.id === id) { incidentView.status = "resolved"; silenceAllowed(); }
    $("silence-error").textContent = refusal(error, "create the silence");
  }
}

async function expireSilence(button) {
  const id = incidentView.id, silence = button.dataset.expireSilence;
  button.disabled = true;
  try {
    await api(`/rca/incidents/${id}/silences/${encodeURIComponent(silence)}`, { method: "DELETE", strict: true });
    await Promise.all([loadSilences(id), loadTimeline(id)]);
  } catch (error) {
    if (error.status === 401) forgetToken("The server refused the token: enter it again.");
    $("silence-error").textContent = refusal(error, "expire the silence");
    button.disabled = !state.token;
  }
}

// -- opening and following the view ----------------------------------------------------------------------------------

async function openIncident(id) {
  incidentView.id = id;
  const view = $("incident-view");
  view.hidden = false;
  $("incident-view-title").textContent = `Incident ${id}`;
  $("postmortem-link").href = `/rca/incidents/${id}/postmortem`;
  $("postmortem-md-link").href = `/rca/incidents/${id}/postmortem?format=markdown`;
  $("timeline").replaceChildren(el("li", { className: "muted" }, "Loading…"));
  $("silences").replaceChildren();  // not the previously shown incident's
  $("silences-state").textContent = "Loading the silences…";
  $("incident-diagnosis").replaceChildren();
  $("note-error").textContent = $("silence-error").textContent = "";
  view.scrollIntoView({ block: "start" });
  $("incident-view-title").focus({ preventScroll: true });
  const known = state.incidents.get(id) || state.resolved.get(id);
  incidentView.status = known ? known.status : null;
  silenceAllowed(false);  // until its silences are listed
  loadHeader(id, known);
  if (location.hash !== `#incident=${id}`) history.replaceState(null, "", `#incident=${id}`);  // a link to copy
  await Promise.all([loadTimeline(id), loadSilences(id), loadDiagnosis(id)]);
}

async function loadHeader(id, known) {  // the title and status; a resolved incident takes no silence
  if (id === null) return;
  try {
    const incident = await api(`/rca/incidents/${id}`);
    if (incidentView.id !== id) return;
    $("incident-view-title").textContent = `Incident ${id}: ${clip(incident.title || "", 200)} (${incident.status})`;
    incidentView.status = incident.status;
    silenceAllowed();
  } catch (error) {
    if (known && incidentView.id === id) $("incident-view-title").textContent = `Incident ${id}: ${clip(known.title || "", 200)}`;
  }
}

async function loadDiagnosis(id) {  // how the incident's diagnosis went: its report, why it failed, or pending
  if (id === null) return;
  const box = $("incident-diagnosis");
  let evidence;
  try {
    evidence = await api(`/rca/incidents/${id}/evidence`, { strict: true });
  } catch (error) {
    if (incidentView.id === id) box.replaceChildren(el("span", { className: "muted" }, refusal(error, "load the diagnosis")));
    return;
  }
  if (incidentView.id !== id) return;
  const report = evidence.report || {};
  const href = report.status === "ready" ? localHref(report.url) : null;
  if (evidence.status === "failed") {
    box.replaceChildren(el("strong", { className: "report-failed" }, "Diagnosis failed: "),
      clip(String(evidence.error || "no reason given"), 400),
      href ? [" · ", el("a", { href, target: "_blank", rel: "noopener noreferrer", className: "failed-run-report" },
                       "the run's report (it may say more)")] : "");
  } else if (evidence.status === "ready") {
    const cause = evidence.diagnosis && evidence.diagnosis.verdict === "nothing_to_blame" ? "nothing to blame"
      : ((evidence.diagnosis || {}).ranking || [])[0] ? `suspected cause ${clip(evidence.diagnosis.ranking[0].service, 120)}` : "no cause found";
    box.replaceChildren("Diagnosis: ", cause,
      href ? [" · ", el("a", { href, target: "_blank", rel: "noopener noreferrer" }, "diagnosis report")]
           : el("span", { className: "muted" }, " · report pending"));
  } else {
    box.replaceChildren(el("span", { className: "muted" }, "Diagnosis pending."));
  }
}

function refreshIncidentView(id) {  // a live event of the shown incident: reload its timeline (once per burst)
  if (Number(id) !== incidentView.id || incidentView.timer) return;
  incidentView.timer = setTimeout(() => {
    incidentView.timer = null;
    loadTimeline(incidentView.id);
    loadDiagnosis(incidentView.id);
    loadHeader(incidentView.id);  // resolved or reopened meanwhile: the silence form follows
  }, 300);
}

function closeIncident() {
  incidentView.id = incidentView.status = null;
  $("incident-view").hidden = true;
  if (location.hash.startsWith("#incident=")) history.replaceState(null, "", location.pathname + location.search);
}

function initIncidentView() {
  for (const list of [$("incidents"), $("resolved-incidents")]) {
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-open-incident]");
      if (button) openIncident(Number(button.dataset.openIncident));
    });
  }
  $("incident-close").addEventListener("click", closeIncident);
  $("note-form").addEventListener("submit", addNote);
  $("silence-form").addEventListener("submit", createSilence);
  $("silences").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-expire-silence]");
    if (button) expireSilence(button);
  });
}
