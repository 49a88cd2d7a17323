// "Run a notebook": a form made from GET /runs/notebooks, checked here before the server sees it, and prefilled
// from a run (#rerun=<id>) or a shared link (#run=<notebook>&<param>=<value>…). Nothing runs without the token
// and a click on "Run": a link or a re-run only fills the form.
"use strict";

const FORMAT_LABELS = {
  month: "a month", json: "JSON", number: "a number", integer: "a whole number", boolean: "yes or no",
  text: "text", datetime: "a date and time",
};
const KIND_HINTS = {
  path: "A file inside the server's data dir, named relative to it.",
  url: "One of the URLs the server was started with.",
  "path|url": "A file inside the server's data dir, or one of the URLs the server was started with.",
};
const RUN_ID = /^[0-9a-f]{6,32}$/;
const runForm = {
  notebooks: null,     // name -> {parameter: {type, default, help, kind, format?}}, once loaded
  loaded: null,        // the promise of the notebooks
  fields: new Map(),   // parameter -> {format, type, input, error, defaultText, explicit}
};

// -- what each parameter is ---------------------------------------------------------------------------------------

function parameterFormat(spec) {  // the server's format, else guessed from the declared type and help
  if (spec.format in FORMAT_LABELS) return spec.format;
  const type = String(spec.type || "").split("[")[0].trim().toLowerCase();
  if (type === "int") return "integer";
  if (type === "float") return "number";
  if (type === "bool") return "boolean";
  if (type === "list" || type === "dict") return "json";
  if (type === "str" && /YYYY-MM(?!-)/.test(spec.help || "")) return "month";
  return "text";
}

function pythonDefault(source) {  // a default as the notebook wrote it (a Python literal) as a JS value, or undefined
  const text = String(source ?? "").trim();
  if (!text || text === "None") return undefined;
  if (text === "True" || text === "False") return text === "True";
  const quoted = /^'([^'"\\]*)'$/.exec(text);
  if (quoted) return quoted[1];
  try { return JSON.parse(text); } catch (error) { /* a Python literal: try the simple cases */ }
  if (/["\\]/.test(text)) return undefined;
  try {
    return JSON.parse(text.replace(/'/g, '"').replace(/\bTrue\b/g, "true").replace(/\bFalse\b/g, "false")
      .replace(/\bNone\b/g, "null"));
  } catch (error) { return undefined; }
}

function valueText(value, format) {  // how a value shows in its field
  if (value === null || value === undefined) return "";
  if (format === "json") return JSON.stringify(value);
  if (format === "boolean") return value ? "true" : "false";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// -- building the form --------------------------------------------------------------------------------------------

function fieldInput(format, id, defaultText) {
  let input;
  if (format === "json") {
    input = el("textarea", { id, rows: 3, spellcheck: "false" });
  } else if (format === "boolean") {
    input = el("select", { id }, el("option", { value: "true" }, "yes (true)"), el("option", { value: "false" }, "no (false)"));
    if (defaultText === "") input.prepend(el("option", { value: "" }, "the notebook's default"));
  } else if (format === "number" || format === "integer") {
    input = el("input", { id, type: "number", step: format === "integer" ? "1" : "any",
                          inputmode: format === "integer" ? "numeric" : "decimal" });
  } else if (format === "month") {
    input = el("input", { id, type: "month", placeholder: "YYYY-MM" });
  } else {
    input = el("input", { id, type: "text", spellcheck: "false",
                          placeholder: format === "datetime" ? "e.g. 2026-12-01T09:00:00Z" : null });
  }
  input.value = defaultText;
  return input;
}

function sentence(text) {  // a part of the help as a sentence of its own: it ends with a full stop
  const t = String(text).trim();
  return !t || /[.!?]$/.test(t) ? t : t + ".";
}

function isFolder(name, spec) {  // a [path] parameter naming a folder rather than a file
  return /(^|_)dir$/.test(name) || /\b(folder|directory)\b/i.test(String(spec.help || ""));
}

function kindHint(name, spec) {
  const hint = KIND_HINTS[spec.kind];
  if (!hint) return "";
  return isFolder(name, spec) ? hint.replace("A file inside the server's data dir, named relative to it",
                                             "A folder inside the server's data dir, named relative to it")
                                    .replace("A file inside", "A folder inside") : hint;
}

function defaultSentence(field) {  // what leaving the field empty does, as it stands now
  if (field.defaultText !== "") return `Default: ${field.defaultText}.`;
  return field.input.value === "" ? "Left empty, the notebook uses its default."
                                  : "Empty it to let the notebook use its default.";
}

function helpText(name, spec, format) {  // the notebook's help and the page's hints, each a sentence
  const parts = [];
  if (spec.help) parts.push(sentence(spec.help));
  parts.push(kindHint(name, spec));
  if (format === "json") parts.push('Lists look like ["a", "b"], objects like {"key": 1}.');
  if (format === "datetime" && !/ISO.?8601/i.test(String(spec.help || ""))) {
    parts.push("A time in ISO-8601, e.g. 2026-12-01T09:00:00Z (UTC) or with an offset such as +01:00.");
  }
  return parts.filter((p) => p !== "").join(" ");
}

function showDefaultSentence(field) {
  field.defaultNote.textContent = defaultSentence(field);
}

function buildField(name, spec) {
  const format = parameterFormat(spec);
  const id = "param-" + name;
  const fallback = pythonDefault(spec.default);
  const defaultText = valueText(fallback, format);
  const input = fieldInput(format, id, defaultText);
  input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
  const error = el("p", { id: id + "-error", className: "error field-error", role: "alert" });
  const defaultNote = el("span", { className: "field-default" });
  // refused: the link's value this field could not take (kept invalid until the user edits the field)
  const field = { format, type: String(spec.type || ""), input, error, defaultText, explicit: false, refused: null, defaultNote };
  input.addEventListener("input", () => { field.refused = null; showFieldError(name, ""); showDefaultSentence(field); });
  runForm.fields.set(name, field);
  showDefaultSentence(field);
  const help = helpText(name, spec, format);
  return el("div", { className: "field", dataset: { param: name } },
    el("label", { for: id }, el("span", { className: "param-name" }, name), " ",
       el("span", { className: "muted" }, `(${FORMAT_LABELS[format]})`)),
    input,
    el("p", { id: id + "-help", className: "muted small field-help" }, help ? help + " " : "", defaultNote),
    error);
}

function showNotebookFields(notebook) {
  runForm.fields.clear();
  const specs = Object.hasOwn(runForm.notebooks || {}, notebook) ? runForm.notebooks[notebook] : null;
  const box = $("run-fields");
  if (!specs) { box.replaceChildren(); return; }
  const names = Object.keys(specs);
  box.replaceChildren(...(names.length
    ? names.map((name) => buildField(name, specs[name]))
    : [el("p", { className: "muted" }, "This notebook takes no parameters.")]));
}

function fillNotebookChoices() {
  const names = Object.keys(runForm.notebooks || {}).sort();
  $("run-notebook").replaceChildren(el("option", { value: "" }, "choose a notebook…"),
    ...names.map((n) => el("option", { value: n }, n)));
  $("filter-notebook").replaceChildren(el("option", { value: "" }, "any notebook"),
    ...names.map((n) => el("option", { value: n }, n)));
}

async function loadNotebooks() {
  try {
    runForm.notebooks = (await api("/runs/notebooks")).notebooks || {};
    fillNotebookChoices();
  } catch (error) {
    runForm.notebooks = {};
    showRunMessage(`Could not load the notebooks: ${error.message}. Reload the page to try again.`, "error");
  }
}

// -- reading and checking the values -------------------------------------------------------------------------------

function readNumber(field, text) {
  if (field.input.validity && field.input.validity.badInput) return { message: "Enter a number, such as 12 or 0.5." };
  if (text.trim() === "") return { skip: true };
  const n = Number(text);
  if (!Number.isFinite(n)) return { message: "Enter a number, such as 12 or 0.5." };
  if (field.format === "integer" && !Number.isInteger(n)) return { message: "Enter a whole number, such as 3 (no decimals)." };
  return { value: n };
}

function readJson(field, text) {
  if (text.trim() === "") return { skip: true };
  let value;
  try { value = JSON.parse(text); } catch (error) {
    return { message: `This is not valid JSON (${error.message}). Lists look like ["a", "b"], objects like {"key": 1}.` };
  }
  const type = field.type.split("[")[0].trim().toLowerCase();
  if (type === "list" && !Array.isArray(value)) return { message: 'This must be a list, such as ["a", "b"].' };
  if (type === "dict" && (value === null || typeof value !== "object" || Array.isArray(value))) {
    return { message: 'This must be an object, such as {"key": 1}.' };
  }
  return { value };
}

function readMonth(text) {
  if (text === "") return { skip: true };
  return /^\d{4}-(0[1-9]|1[0-2])$/.test(text) ? { value: text } : { message: "Pick a month, written YYYY-MM (e.g. 2026-11)." };
}

function readDatetime(text) {
  if (text.trim() === "") return { value: "" };
  const iso = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;
  if ((iso.test(text.trim()) && !Number.isNaN(Date.parse(text.trim()))) || /^\d+(\.\d+)?$/.test(text.trim())) {
    return { value: text.trim() };
  }
  return { message: "Enter a time such as 2026-12-01T09:00:00Z (UTC), or unix seconds." };
}

function readField(field) {  // {value} to send, {skip} to leave to the notebook's default, or {message} when wrong
  if (field.refused !== null) return { message: field.refused };  // a link's bad value is not "use the default"
  const text = field.input.value;
  if (!field.explicit && text === field.defaultText && !(field.input.validity && field.input.validity.badInput)) {
    return { skip: true };  // untouched: the notebook's own default applies, exactly as declared
  }
  if (field.format === "number" || field.format === "integer") return readNumber(field, text);
  if (field.format === "json") return readJson(field, text);
  if (field.format === "boolean") return text === "" ? { skip: true } : { value: text === "true" };
  if (field.format === "month") return readMonth(text);
  if (field.format === "datetime") return readDatetime(text);
  return { value: text };
}

function collectParameters() {
  const parameters = {}, errors = new Map();
  for (const [name, field] of runForm.fields) {
    const read = readField(field);
    if (read.message) errors.set(name, read.message);
    else if (!read.skip) parameters[name] = read.value;
  }
  return { parameters, errors };
}

// -- messages -----------------------------------------------------------------------------------------------------

function showFieldError(name, message) {
  const field = runForm.fields.get(name);
  if (!field) return false;
  field.error.textContent = message;
  field.input.setAttribute("aria-invalid", message ? "true" : "false");
  return true;
}

function showRunMessage(message, kind = "note") {  // the form's top line: an error, or what happened
  const top = $("run-message");
  top.className = kind === "error" ? "error run-message" : "run-message note";
  top.replaceChildren(...[].concat(message).filter((part) => part !== ""));  // empty: hidden
}

function clearRunMessages() {
  for (const name of runForm.fields.keys()) showFieldError(name, "");
  $("run-notebook-error").textContent = "";
  showRunMessage("");
}

function showServerRefusal(error) {
  if (error.status === 401) {
    forgetToken("The server refused the token: enter it again.");
    showRunMessage("The server refused the token (HTTP 401): enter the current token under Actions. Nothing was started.", "error");
    return;
  }
  const name = String(error.field || "").replace(/^parameters\./, "");
  if (name === "notebook") {
    $("run-notebook-error").textContent = error.message;
  } else if (showFieldError(name, `The server refused this value: ${error.message}`)) {
    runForm.fields.get(name).input.focus();
  } else {
    showRunMessage(`The server refused the run: ${error.message}${error.status ? ` (HTTP ${error.status})` : ""}. Nothing was started.`, "error");
    return;
  }
  showRunMessage("The server refused the run: see the field marked below. Nothing was started.", "error");
}

// -- submitting ---------------------------------------------------------------------------------------------------

async function submitRun(event) {
  event.preventDefault();
  clearRunMessages();
  const notebook = $("run-notebook").value;
  if (!notebook) { $("run-notebook-error").textContent = "Choose a notebook first."; return; }
  const { parameters, errors } = collectParameters();
  if (errors.size) {
    for (const [name, message] of errors) showFieldError(name, message);
    runForm.fields.get(errors.keys().next().value).input.focus();
    showRunMessage(`Fix the ${errors.size === 1 ? "field" : `${errors.size} fields`} marked below. Nothing was started.`, "error");
    return;
  }
  if (!state.token) { showRunMessage("Enter the API token under Actions first: starting a run needs it. Nothing was started.", "error"); return; }
  const button = $("run-submit");
  button.disabled = true;
  showRunMessage("Starting…");
  try {
    const run = await api("/runs", { method: "POST", strict: true, headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ notebook, parameters }) });
    mergeRun(run);
    showRunMessage([run.deduplicated ? "Already running as run " : "Started run ", el("strong", {}, run.id),
      `: it is at the top of the runs list.`]);
  } catch (error) {
    showServerRefusal(error);
  } finally {
    button.disabled = false;
  }
}

// -- prefilling: from a run, or from a link -------------------------------------------------------------------------

function setFieldFromLink(name, field, text) {  // a link's value is text: placed as typed, checked at submit
  let refused = null;
  if (field.format === "boolean" && !["true", "false"].includes(text)) {
    refused = `The link's value ${clip(JSON.stringify(text), 80)} is not true or false; pick one.`;
  } else {
    field.input.value = text;
    if (field.input.value !== text) {  // a number or month input refused it (and shows "" instead)
      refused = `The link's value ${clip(JSON.stringify(text), 80)} is not ${FORMAT_LABELS[field.format]}; enter one.`;
    }
  }
  if (field.format === "boolean" && refused) field.input.value = "";
  field.refused = refused;  // stays wrong until the user edits the field: Run does not fall back to the default
  if (refused) showFieldError(name, refused);
  showDefaultSentence(field);
}

function prefillForm(notebook, values, origin, { fromLink = false } = {}) {
  clearRunMessages();
  if (!Object.hasOwn(runForm.notebooks || {}, notebook)) {
    $("run-notebook").value = "";
    showNotebookFields("");
    showRunMessage(`The ${origin} names a notebook this server does not have: ${clip(JSON.stringify(String(notebook)), 80)}.`, "error");
    return;
  }
  $("run-notebook").value = notebook;
  showNotebookFields(notebook);
  const ignored = [];
  for (const [name, value] of Object.entries(values)) {
    const field = runForm.fields.get(name);
    if (!field) { ignored.push(clip(JSON.stringify(name), 40)); continue; }
    field.explicit = true;
    if (fromLink) setFieldFromLink(name, field, String(value));
    else { field.input.value = valueText(value, field.format); showDefaultSentence(field); }
  }
  const lines = [`Filled in from the ${origin}. Check the values, then press Run: nothing has run yet.`];
  if (ignored.length) lines.push(` Ignored (not parameters of ${notebook}): ${ignored.join(", ")}.`);
  showRunMessage(lines.join(""));
  $("run-card").scrollIntoView({ block: "start" });
  $("run-notebook").focus({ preventScroll: true });
}

async function prefillFromRun(id) {
  if (!RUN_ID.test(id)) { showRunMessage("This link does not name a run.", "error"); return; }
  await runForm.loaded;
  try {
    const run = await api("/runs/" + id);
    prefillForm(run.notebook, run.rerun_parameters || run.parameters || {}, `run ${run.id}`);
  } catch (error) {
    showRunMessage(error.status === 404 ? `There is no run ${id} on this server.` : `Could not load run ${id}: ${error.message}.`, "error");
  }
}

async function openFromHash() {  // #rerun=<id>, #run=<notebook>&<param>=<value>…, #incident=<id>; never submits
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("rerun")) {
    await prefillFromRun(params.get("rerun"));
  } else if (params.has("run")) {
    await runForm.loaded;
    const values = {};
    for (const [name, value] of params) if (name !== "run") values[name] = value;
    prefillForm(params.get("run"), values, "link", { fromLink: true });
  } else if (params.has("incident") && /^\d{1,12}$/.test(params.get("incident"))) {
    openIncident(Number(params.get("incident")));
  }
}

function rerunLink(id) {
  return `${location.origin}/#rerun=${encodeURIComponent(id)}`;
}

function tokenButton(label, attrs = {}) {  // a button that changes something: off without the token, saying why
  const button = el("button", Object.assign({ type: "button", "data-needs-token": true }, attrs), label);
  button.disabled = !state.token;
  if (!state.token) button.title = "enter the API token under Actions first";
  return button;
}

function showTokenNeeds() {
  for (const button of document.querySelectorAll("[data-needs-token]")) {
    button.disabled = !state.token;
    if (state.token) button.removeAttribute("title"); else button.title = "enter the API token under Actions first";
  }
}

function initRunForm() {
  $("run-notebook").addEventListener("change", () => { clearRunMessages(); showNotebookFields($("run-notebook").value); });
  $("run-form").addEventListener("submit", submitRun);
  runForm.loaded = loadNotebooks();
  window.addEventListener("hashchange", openFromHash);
  openFromHash();
}
