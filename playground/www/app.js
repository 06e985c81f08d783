// The playground page: editors in, the policy's answer out. All decisions are
// made by the wasm module (pkg/, built by `make playground`); this file only
// moves text between the editors, the module, the URL fragment and the page.

import examples from "./pkg/fixtures.js";

const EDITORS = ["settings", "request", "serviceAccount", "userInfo"];
const DEFAULT_EXAMPLE = "both-providers";
const $ = (id) => document.getElementById(id);

let engine = null;
let engineGeneration = 0;
let outcome = null;

// --- the wasm module -------------------------------------------------------

async function loadEngine() {
  // A fresh import after a trap gives a fresh module instance.
  const suffix = engineGeneration ? `?instance=${engineGeneration}` : "";
  const module = await import(`./pkg/playground.js${suffix}`);
  await module.default();
  engine = module;
}

// A Rust panic aborts the module (a trap, thrown here): it becomes a message
// and a new instance; the page never sees an exception.
function evaluate(state, call = "evaluate") {
  if (!engine) return { inputErrors: {}, internalError: "the policy module is not loaded yet" };
  try {
    return JSON.parse(engine[call](JSON.stringify(state)));
  } catch (error) {
    const panic = globalThis.playgroundPanic;
    globalThis.playgroundPanic = undefined;
    engine = null;
    engineGeneration += 1;
    // Run again once reloaded if the input changed meanwhile (the same input would trap again).
    const trapped = JSON.stringify(state);
    loadEngine().then(
      () => JSON.stringify(currentState()) !== trapped && schedule(),
      (e) => showInternalError(`the policy module could not be reloaded: ${e}`),
    );
    return {
      inputErrors: {},
      internalError: `the policy module stopped (${panic || error}): a bug, please report it with this page's link`,
    };
  }
}

// --- state: editors, URL fragment ------------------------------------------

function currentState() {
  const state = { lookup: $("lookup").value };
  for (const id of EDITORS) state[id] = $(id).value;
  return state;
}

function setState(state) {
  for (const id of EDITORS) $(id).value = state[id] ?? "";
  $("lookup").value = state.lookup === "notFound" ? "notFound" : "found";
}

function base64url(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function unbase64url(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function pipe(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function encodeState(state) {
  const json = new TextEncoder().encode(JSON.stringify(state));
  return base64url(await pipe(json, new CompressionStream("deflate-raw")));
}

async function decodeState(text) {
  const json = await pipe(unbase64url(text), new DecompressionStream("deflate-raw"));
  return JSON.parse(new TextDecoder().decode(json));
}

// `#example=NAME` (an unedited example) or `#state=...` (deflated JSON).
async function stateFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("example")) {
    const example = examples.find((e) => e.name === params.get("example"));
    if (example) return { example };
  }
  if (params.has("state")) {
    try {
      return { state: await decodeState(params.get("state")) };
    } catch (error) {
      return { error: `The link's state could not be read (${error}); showing an example instead.` };
    }
  }
  return {};
}

let fragmentWrite = Promise.resolve();
function updateFragment() {
  const name = $("example").value;
  if (name) {
    history.replaceState(null, "", `#example=${encodeURIComponent(name)}`);
    return;
  }
  const state = currentState();
  fragmentWrite = fragmentWrite
    .then(() => encodeState(state))
    .then((encoded) => history.replaceState(null, "", `#state=${encoded}`))
    .catch((error) => toast(`The link could not be updated: ${error}`));
}

// --- rendering -------------------------------------------------------------

function show(id, visible) {
  $(id).hidden = !visible;
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function showInternalError(message) {
  render({ inputErrors: {}, internalError: message });
}

function render(result) {
  outcome = result;
  const errors = result.inputErrors || {};
  for (const id of EDITORS) {
    const message = errors[id];
    const box = $(`${id}-error`);
    show(`${id}-error`, Boolean(message));
    $(id).setAttribute("aria-invalid", message ? "true" : "false");
    if (!message) {
      box.textContent = "";
    } else if (id === "settings" && result.settings && result.settings.valid === false) {
      // validate_settings' message starts with the field path: set it apart.
      const match = /^([^\s:]+): ([\s\S]*)$/.exec(message);
      box.innerHTML = match
        ? `<code class="path">${escapeHtml(match[1])}</code>: ${escapeHtml(match[2])}`
        : escapeHtml(message);
    } else {
      box.textContent = message;
    }
  }

  const verdict = $("verdict");
  const response = result.response;
  let kind;
  let title;
  let message = "";
  if (result.internalError) {
    [kind, title, message] = ["error", "Internal error", result.internalError];
  } else if (result.settings && result.settings.valid === false) {
    [kind, title, message] = ["denied", "Settings refused by validate_settings", result.settings.message || ""];
  } else if (!response) {
    const label = (id) => ($(id) && $(id).labels.length ? $(id).labels[0].firstChild.textContent.trim() : id);
    const where = Object.keys(errors).map(label);
    [kind, title] = ["error", `Fix the input: ${where.join(", ")}`];
  } else if (!response.allowed) {
    const status = response.status || {};
    [kind, title, message] = ["denied", `Denied${status.code ? ` (${status.code})` : ""}`, status.message || ""];
  } else if (response.patch) {
    [kind, title] = ["mutated", "Allowed, mutated"];
  } else {
    [kind, title] = ["allowed", "Allowed, unchanged"];
  }
  verdict.className = `verdict ${kind}`;
  verdict.textContent = title;
  $("message").textContent = message;

  const warnings = (response && response.warnings) || [];
  $("warnings").replaceChildren(...warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  show("warnings-box", warnings.length > 0);

  const audit = Object.entries((response && response.auditAnnotations) || {});
  $("audit").replaceChildren(
    ...audit.flatMap(([k, v]) => [
      Object.assign(document.createElement("dt"), { textContent: k }),
      Object.assign(document.createElement("dd"), { textContent: v }),
    ]),
  );
  show("audit-box", audit.length > 0);

  const lookups = result.lookups || [];
  const lookupText = lookups.map((l) => `${l.namespace}/${l.name}: ${l.error ? l.error : "found"}`);
  $("lookups").dataset.count = String(lookups.length);
  $("lookups").textContent = response
    ? `${lookups.length} ServiceAccount lookup${lookups.length === 1 ? "" : "s"}${lookups.length ? ` (${lookupText.join("; ")})` : ""}`
    : "";

  renderDiff(result.diff || [], response);
  $("patch").textContent = result.patchText || (response ? "(no patch)" : "");
  $("admission-response").textContent = result.responseText || "";
  $("mutated").textContent = result.mutatedText || (response ? "(not mutated)" : "");
  $("copy-kwctl").disabled = !result.exportable;
}

// Lines of the diff shown at first: laying out tens of thousands takes seconds.
const DIFF_LINES_SHOWN = 1500;

function renderDiff(lines, response, limit = DIFF_LINES_SHOWN) {
  const box = $("diff");
  const count = (tag) => lines.filter((line) => line.tag === tag).length;
  const [inserted, deleted] = [count("insert"), count("delete")];
  Object.assign($("diff-summary").dataset, { inserted, deleted });
  $("diff-summary").textContent = lines.length ? `: +${inserted} −${deleted} lines` : "";
  if (!lines.length) {
    box.innerHTML = response ? `<p class="empty">No change: the object is admitted as sent.</p>` : "";
    return;
  }
  const sign = { equal: " ", delete: "-", insert: "+" };
  const html = lines
    .slice(0, limit)
    .map((line) =>
      line.tag === "skip"
        ? `<div class="line skip">⋯</div>`
        : `<div class="line ${line.tag}"><span class="ln">${line.old ?? ""}</span><span class="ln">${line.new ?? ""}</span><span class="sign">${sign[line.tag]}</span>${escapeHtml(line.text)}</div>`,
    );
  if (lines.length > limit) {
    html.push(`<button type="button" class="more">Show the other ${lines.length - limit} lines</button>`);
  }
  box.innerHTML = html.join("");
  const more = box.querySelector("button.more");
  if (more) more.addEventListener("click", () => renderDiff(lines, response, Infinity));
}

// --- events ----------------------------------------------------------------

let pending = null;
function schedule() {
  document.body.dataset.busy = "true";
  clearTimeout(pending);
  pending = setTimeout(runNow, 60);
}

function runNow() {
  clearTimeout(pending);
  pending = null;
  render(evaluate(currentState()));
  delete document.body.dataset.busy;
}

function pickExample(name) {
  const example = examples.find((e) => e.name === name);
  $("example").value = example ? name : "";
  show("notes", Boolean(example));
  $("notes-text").textContent = example ? example.notes : "";
  if (example) setState(example.state);
}

let toastTimer = null;
function toast(text) {
  $("toast").textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => ($("toast").textContent = ""), 4000);
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied to the clipboard`);
  } catch {
    toast(`Select and copy the ${what.toLowerCase()}`);
  }
}

async function main() {
  const picker = $("example");
  for (const example of examples) picker.add(new Option(example.name, example.name));

  for (const id of [...EDITORS, "lookup"]) {
    $(id).addEventListener("input", () => {
      if (picker.value) {
        picker.value = "";
        show("notes", false);
      }
      schedule();
      updateFragment();
    });
  }
  picker.addEventListener("change", () => {
    pickExample(picker.value);
    runNow();
    updateFragment();
  });
  $("copy-kwctl").addEventListener("click", () => {
    const exported = evaluate(currentState(), "kwctl_export");
    if (!exported.kwctl) {
      render(exported);
      return;
    }
    $("kwctl-script").textContent = exported.kwctl.script;
    $("kwctl-dialog").showModal();
    copy(exported.kwctl.script, "Script");
  });
  $("copy-link").addEventListener("click", async () => {
    await fragmentWrite;
    copy(location.href, "Link");
  });

  const initial = await stateFromFragment();
  if (initial.state) {
    setState(initial.state);
  } else {
    pickExample(initial.example ? initial.example.name : DEFAULT_EXAMPLE);
    if (!picker.value && examples.length) pickExample(examples[0].name);
  }
  if (initial.error) toast(initial.error);

  try {
    await loadEngine();
  } catch (error) {
    showInternalError(`the policy module could not be loaded: ${error}`);
    return;
  }
  runNow();
  document.body.dataset.ready = "true";
}

main();
