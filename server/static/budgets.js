// The error budgets: one bar per SLO from GET /slo, on load, every minute and after an audit succeeds.
// Built with DOM calls: display names, explanations, reasons and errors come from spec files and sources: plain text,
// set as text (never markup).
"use strict";

const BUDGET_REFRESH_MS = 60000;
const BUDGET_BEHIND_MS = 300000;  // data ending more than 5 min before the answer: said
const BUDGET_STATES = {  // state -> [the bar's colour class, the word shown next to it]
  ok: ["ok", "ok"], warning: ["warning", "low"], exhausted: ["bad", "exhausted"],
  fast_burn: ["bad", "fast burn"], unknown: ["unknown", "unknown"],
};
const budgets = { loading: false, again: false, timer: null, lastOk: 0, asOf: "", shown: false };

function finite(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function percent(ratio, digits = 0) {  // 0.6213 -> "62 %"; rounded down to 0 is said "< 1 %" (never "0 %" for some)
  const p = ratio * 100;
  if (p > 0 && p < 0.5 && digits === 0) return "< 1 %";
  return `${p.toFixed(digits)} %`;
}

function targetText(target) {  // 0.999 -> "99.9 %", 0.99 -> "99 %", 0.9995 -> "99.95 %"
  if (!finite(target)) return "target ?";
  return `${(target * 100).toFixed(3).replace(/\.?0+$/, "")} %`;
}

function times(rate) {  // a burn rate: "0.4×", "15×"
  return `${rate < 10 ? (Math.round(rate * 10) / 10).toString() : Math.round(rate).toString()}×`;
}

function windowWords(name) {  // "1h" -> "1 h"
  return String(name).replace(/^(\d+)([a-z])$/, "$1 $2");
}

function burnText(s) {  // the burn now: the 1 h rate; a page or a ticket names the window that set it off
  const rates = s.burn_rates && typeof s.burn_rates === "object" ? s.burn_rates : {};
  const rate = (w) => (finite(rates[w]) ? rates[w] : null);
  if (s.alerting === "page") {
    const w = rate("1h") !== null && rate("1h") >= 14.4 ? "1h" : rate("6h") !== null && rate("6h") >= 6 ? "6h" : "1h";
    return rate(w) === null ? "fast burn" : `fast burn: ${times(rate(w))} over ${windowWords(w)}`;
  }
  if (s.alerting === "ticket") {
    const w = rate("1d") !== null && rate("1d") >= 3 ? "1d" : rate("3d") !== null ? "3d" : "1d";
    return rate(w) === null ? "slow burn" : `slow burn: ${times(rate(w))} over ${windowWords(w)}`;
  }
  return rate("1h") === null ? "no burn rate yet (1 h)" : `burning ${times(rate("1h"))} (1 h)`;
}

function leftText(s, state) {  // what is left of the budget, in words
  if (s.stale === true && finite(s.remaining)) {  // the numbers of when the data ends, said as such
    return s.remaining <= 0 ? `exhausted on old data${finite(s.consumed) ? ` (${percent(s.consumed)} used)` : ""}`
      : `${percent(Math.min(s.remaining, 1))} left on old data`;
  }
  if (state === "unknown" || !finite(s.remaining)) return "budget unknown";
  if (s.remaining <= 0 || state === "exhausted") {
    return finite(s.consumed) ? `exhausted, ${percent(s.consumed)} used` : "exhausted";
  }
  return `${percent(Math.min(s.remaining, 1))} left`;
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"];

function isoMs(value) {  // an ISO-8601 time from the API in ms, or NaN (Date.parse alone reads years out of prose)
  const text = String(value || "");
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(text) ? Date.parse(text) : NaN;
}

function periodText(s) {  // the period the numbers are for: "November 2026", or "28 days to 2026-11-05 15:00 UTC"
  const start = isoMs(s.period_start), end = isoMs(s.period_end);
  if (Number.isNaN(start) || Number.isNaN(end) || end <= start) return "";
  const first = new Date(start), next = new Date(end);
  const midnightFirst = (d) => d.getUTCDate() === 1 && d.getUTCHours() === 0 && d.getUTCMinutes() === 0
    && d.getUTCSeconds() === 0;
  const months = (next.getUTCFullYear() - first.getUTCFullYear()) * 12 + next.getUTCMonth() - first.getUTCMonth();
  if (midnightFirst(first) && midnightFirst(next) && months === 1) {
    return `${MONTHS[first.getUTCMonth()]} ${first.getUTCFullYear()}`;
  }
  const days = (end - start) / 86400000;
  const span = Number.isInteger(days) ? `${days} day${days === 1 ? "" : "s"}`
    : `${Math.round((end - start) / 3600000)} h`;
  return `${span} to ${utcDateTime(end)}`;
}

function staleText(s) {  // "data ends 2026-12-01 00:00 UTC — too old to judge deploys", or the server's reason
  // Prometheus without recent data says so in its own words; a dataset's old end is said by its time
  if (typeof s.stale_reason === "string" && s.stale_reason.startsWith("no data")) return `${clip(s.stale_reason, 200)} — cannot judge deploys`;
  const end = isoMs(s.end || s.as_of);  // the interval measured ends where the data ends
  return `${Number.isNaN(end) ? "the data is old" : `data ends ${utcDateTime(end)}`} — too old to judge deploys`;
}

function gateText(s, state) {  // "deploys blocked: …" when the gate says no or cannot judge on old data; else ""
  if (s.stale === true) return "deploys blocked: data too old";
  if (s.deploy_allowed !== false) return "";
  const why = state === "exhausted" ? "budget exhausted" : state === "fast_burn" ? "fast burn"
    : clip(String(s.reason || "").split(":")[0] || "the gate says no", 60);
  return `deploys blocked: ${why}`;
}

function howCounted(s) {  // the arithmetic (plain text from the API) and the gate's own words, without hover;
  // nothing when they only repeat the error shown under the bar
  const lines = [];
  const error = String(s.error || "");
  if (s.explanation && !(error && String(s.explanation).includes(error))) lines.push(el("p", {}, clip(String(s.explanation), 600)));
  if (s.reason && s.reason !== s.explanation && !(error && String(s.reason).includes(error))) {
    lines.push(el("p", {}, `Deploy gate: ${clip(String(s.reason), 400)}`));
  }
  if (!lines.length) return "";
  return el("details", { className: "budget-how" }, el("summary", {}, "How counted"), ...lines);
}

function budgetRow(s) {
  const state = Object.prototype.hasOwnProperty.call(BUDGET_STATES, s.state) ? s.state : "unknown";
  const colour = BUDGET_STATES[state][0];
  const word = state === "warning" && s.alerting === "ticket" ? "slow burn" : BUDGET_STATES[state][1];
  const stale = s.stale === true;  // old numbers: shown greyed, never as the state of now
  const known = (state !== "unknown" || stale) && finite(s.remaining);
  // unknown: a full grey (striped) bar; a state without a number (a ticket, no data yet): an empty one
  const width = known ? Math.max(0, Math.min(100, s.remaining * 100)) : state === "unknown" ? 100 : 0;
  const name = clip(String(s.display_name || s.slo || "SLO"), 120);
  const left = leftText(s, state);
  const fill = el("div", { className: "budget-fill" });
  fill.style.width = `${width}%`;
  const bar = el("div", { className: "budget-bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
                          "aria-valuenow": known ? Math.round(width) : null,
                          "aria-valuetext": `${word}: ${left}`,
                          "aria-label": `${name}: error budget remaining` }, fill);
  const audit = localHref(s.audit_url) || "/reports/";
  const window_ = typeof s.window === "string" && s.window ? clip(s.window, 40) : "window ?";
  const period = periodText(s);
  const gate = gateText(s, state);
  const error = state === "unknown" && !stale ? clip(String(s.error || "no number: the server gave no reason"), 300) : "";
  return el("li", { className: `budget budget-${colour}${stale ? " budget-old" : ""}`,
                    dataset: { slo: String(s.slo || ""), state, stale: String(stale) } },
    el("div", { className: "budget-head" },
      el("span", { className: "budget-name" }, name), " ",
      el("span", { className: "budget-state" }, word), " ",
      el("span", { className: "budget-left" }, left)),
    bar,
    stale ? el("div", { className: "budget-old-note" }, staleText(s)) : "",
    el("div", { className: "budget-detail" },
      state === "unknown" ? "" : [el("span", { className: "budget-burn" }, burnText(s)), " · "],
      el("span", { className: "budget-target" }, `${targetText(s.target)} · ${window_}`), " · ",
      period ? [el("span", { className: "budget-period" }, period), " · "] : "",
      el("a", { className: "budget-audit", href: audit, target: "_blank", rel: "noopener noreferrer" }, "audit"),
      gate ? [" · ", el("span", { className: "budget-gate" }, gate)] : ""),
    error ? el("div", { className: "budget-error" }, error) : "",
    howCounted(s));
}

function renderBudgets(body) {
  const list = Array.isArray(body.slos) ? body.slos.filter((s) => s && typeof s === "object") : [];
  $("budgets").replaceChildren(...list.map(budgetRow));
  $("budgets-empty").hidden = list.length > 0;
  const ms = Date.parse(String(body.as_of || ""));
  // a source whose data ends earlier (a dataset, a Prometheus behind): say up to when the numbers go
  const ends = list.filter((s) => s.state !== "unknown").map((s) => Date.parse(String(s.end || "")))
    .filter((t) => !Number.isNaN(t));
  const end = ends.length ? Math.max(...ends) : NaN;
  const behind = !Number.isNaN(ms) && ends.length && ms - end > BUDGET_BEHIND_MS
    ? `, from data up to ${utcDateTime(end)}` : "";
  budgets.asOf = Number.isNaN(ms) ? "" : `${utcDateTime(ms)}${behind}`;
  budgets.shown = true;
}

function showBudgetsNote(message) {
  $("budgets-as-of").textContent = budgets.asOf ? `Numbers as of ${budgets.asOf}.` : "";
  $("budgets-note").textContent = message || "";
  $("budgets-card").classList.toggle("budgets-stale", Boolean(message) && budgets.shown);
}

async function loadBudgets() {  // one fetch at a time: a request meanwhile asks for one more after it
  if (budgets.loading) { budgets.again = true; return; }
  budgets.loading = true;
  clearTimeout(budgets.timer);
  try {
    const body = await api("/slo", { strict: true });
    if (!Array.isArray(body.slos)) throw new ApiError("the answer lists no SLOs", 200);
    renderBudgets(body);
    budgets.lastOk = Date.now();
    showBudgetsNote("");
  } catch (error) {
    const why = error.status === 404 ? "this server has no GET /slo"
      : `${error.message}${error.status ? ` (HTTP ${error.status})` : ""}`;
    showBudgetsNote(budgets.lastOk
      ? `Not updated since ${utcDateTime(budgets.lastOk)}: ${clip(why, 200)}. The bars above may be out of date.`
      : `Could not load the error budgets: ${clip(why, 200)}.`);
  } finally {
    budgets.loading = false;
    if (budgets.again) { budgets.again = false; loadBudgets(); }
    else budgets.timer = setTimeout(loadBudgets, BUDGET_REFRESH_MS);
  }
}

function budgetRunSeen(run) {  // a `run` event: a succeeded audit has new numbers
  if (run && run.kind === "audit" && run.status === "succeeded") loadBudgets();
}

function initBudgets() {
  loadBudgets();
}
