// The playground page in Debian's headless Chromium (make playground-test).
//
// Serves playground/www (built by `make playground`) on 127.0.0.1 on a free
// port, in this process, and drives /usr/bin/chromium (or $CHROMIUM) with
// playwright-core. Every fixture is loaded through the page's example picker
// and what the page shows is compared with the fixture's expected.json, the
// golden answer of policy.wasm (format: e2e-tests/tests/fixtures.rs): a
// differential test of the browser build against the wasm module. Any page
// error, console error or request leaving 127.0.0.1 fails the run. The browser
// and the server are stopped in `after`, whatever happened.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const WWW = join(ROOT, "playground/www");
const FIXTURES = join(ROOT, "fixtures");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".png": "image/png",
};
const EDITORS = ["settings", "request", "serviceAccount", "userInfo"];

let server;
let browser;
let base;
const problems = []; // page errors, console errors, requests leaving the server

// A static server for playground/www, as `make playground-serve` (python3 -m http.server) serves it.
function serve(root) {
  return new Promise((resolvePromise, reject) => {
    const s = createServer(async (req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
      const file = join(root, path.endsWith("/") ? `${path}index.html` : path);
      try {
        if (!file.startsWith(root) || !(await stat(file)).isFile()) throw new Error("not a file");
        const body = await readFile(file);
        res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream" });
        res.end(body);
      } catch {
        res.writeHead(404).end("not found");
      }
    });
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => resolvePromise(s));
  });
}

async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) problems.push(`request leaving the server: ${r.url()}`);
  });
  return page;
}

async function open(page, fragment = "") {
  await page.goto(`${base}/${fragment}`);
  await page.waitForSelector("body[data-ready]:not([data-busy])", { timeout: 30000 });
}

async function idle(page) {
  await page.waitForSelector("body[data-ready]:not([data-busy])", { timeout: 30000 });
}

// What the page shows, read from the DOM.
function read(page) {
  return page.evaluate(() => {
    const el = (id) => document.getElementById(id);
    const dt = [...el("audit").querySelectorAll("dt")];
    return {
      verdict: el("verdict").textContent,
      message: el("message").textContent,
      errors: Object.fromEntries(
        ["settings", "request", "serviceAccount", "userInfo"].map((id) => [
          id,
          el(`${id}-error`).hidden ? null : el(`${id}-error`).textContent,
        ]),
      ),
      warnings: [...el("warnings").querySelectorAll("li")].map((li) => li.textContent),
      warningsShown: !el("warnings-box").hidden,
      audit: Object.fromEntries(dt.map((d) => [d.textContent, d.nextElementSibling.textContent])),
      lookups: el("lookups").dataset.count,
      lookupsText: el("lookups").textContent,
      response: el("admission-response").textContent,
      patch: el("patch").textContent,
      mutated: el("mutated").textContent,
      inserted: Number(el("diff-summary").dataset.inserted || 0),
      deleted: Number(el("diff-summary").dataset.deleted || 0),
      insertedShown: el("diff").querySelectorAll(".line.insert").length,
      more: el("diff").querySelector("button.more")?.textContent ?? null,
    };
  });
}

// RFC 6902 add / remove / replace (what json-patch's diff emits), on a copy.
function applyPatch(document, patch) {
  let doc = structuredClone(document);
  for (const op of patch) {
    const keys = op.path.split("/").slice(1).map((k) => k.replaceAll("~1", "/").replaceAll("~0", "~"));
    if (keys.length === 0) {
      assert.ok(op.op === "replace" || op.op === "add", `unsupported op ${op.op} at the root`);
      doc = structuredClone(op.value);
      continue;
    }
    const last = keys.pop();
    const parent = keys.reduce((node, key) => node[key], doc);
    if (Array.isArray(parent)) {
      const index = last === "-" ? parent.length : Number(last);
      if (op.op === "add") parent.splice(index, 0, op.value);
      else if (op.op === "remove") parent.splice(index, 1);
      else if (op.op === "replace") parent[index] = op.value;
      else assert.fail(`unsupported op ${op.op}`);
    } else if (op.op === "add" || op.op === "replace") {
      parent[last] = op.value;
    } else if (op.op === "remove") {
      delete parent[last];
    } else {
      assert.fail(`unsupported op ${op.op}`);
    }
  }
  return doc;
}

function requestObject(review) {
  const request = review.kind === "AdmissionReview" || (!("uid" in review) && "request" in review) ? review.request : review;
  return request.object ?? null;
}

// The shown result in expected.json's shape, checking that the page's parts agree.
function asExpected(shown, fixtureRequest) {
  if (shown.verdict === "Settings refused by validate_settings") {
    assert.equal(shown.errors.settings, shown.message, "settings error under the editor = verdict message");
    return { settingsValid: false, settingsMessage: shown.message };
  }
  for (const [editor, error] of Object.entries(shown.errors)) assert.equal(error, null, `${editor}: ${error}`);
  const response = JSON.parse(shown.response);
  const warnings = response.warnings ?? [];
  assert.deepEqual(shown.warnings, warnings, "warnings list = AdmissionResponse warnings");
  assert.equal(shown.warningsShown, warnings.length > 0);
  assert.deepEqual(shown.audit, response.auditAnnotations ?? {}, "audit list = AdmissionResponse auditAnnotations");
  let object = null;
  if (response.patch) {
    const patch = JSON.parse(Buffer.from(response.patch, "base64").toString("utf8"));
    assert.deepEqual(JSON.parse(shown.patch), patch, "JSON patch shown = AdmissionResponse patch");
    object = applyPatch(requestObject(fixtureRequest), patch);
    assert.deepEqual(JSON.parse(shown.mutated), object, "mutated object shown = object + patch");
    assert.ok(shown.inserted + shown.deleted > 0, "the diff counts changed lines");
    assert.ok(shown.insertedShown > 0, "the diff shows changed lines");
    assert.equal(shown.verdict, "Allowed, mutated");
  } else {
    assert.equal(shown.inserted + shown.deleted, 0);
    if (response.allowed) assert.equal(shown.verdict, "Allowed, unchanged");
  }
  if (!response.allowed) {
    assert.equal(shown.verdict, `Denied (${response.status.code})`);
    assert.equal(shown.message, response.status.message);
  }
  const result = { allowed: response.allowed, warnings };
  if (response.status) result.status = response.status;
  result.object = object;
  result.lookups = Number(shown.lookups);
  if (response.auditAnnotations) result.auditAnnotations = response.auditAnnotations;
  return result;
}

// Every fixture but those whose lookup fails otherwise than "not found" (the lookup-error-*
// cases), which the playground cannot replay (playground/src/fixtures.rs, `load`).
async function fixtureNames() {
  const names = [];
  for (const name of await readdir(FIXTURES)) {
    if (!(await stat(join(FIXTURES, name, "request.json")).then((s) => s.isFile(), () => false))) continue;
    const session = await readFile(join(FIXTURES, name, "session.yml"), "utf8").catch(() => "");
    if (session.includes("type: Error") && !session.includes('not found"')) continue;
    names.push(name);
  }
  return names.sort();
}

const readJson = async (...path) => JSON.parse(await readFile(join(...path), "utf8"));

before(async () => {
  server = await serve(WWW);
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await new Promise((done) => (server ? server.close(done) : done()));
});

test("every fixture, picked in the page, shows policy.wasm's answer (expected.json)", async (t) => {
  const page = await newPage();
  await open(page);
  const names = await fixtureNames();
  const options = await page.$$eval("#example option", (os) => os.map((o) => o.value).filter(Boolean));
  assert.deepEqual(options, names, "the picker holds every fixture");
  const started = performance.now();
  const refused = [];
  for (const name of names) {
    await t.test(name, async () => {
      await page.selectOption("#example", name);
      await idle(page);
      assert.equal(await page.evaluate(() => location.hash), `#example=${name}`);
      const expected = await readJson(FIXTURES, name, "expected.json");
      const request = await readJson(FIXTURES, name, "request.json");
      const shown = await read(page);
      if ("requestRefused" in expected) {
        // kwctl refuses this request before the policy runs (its typed
        // AdmissionRequest); the page shows the policy's own answer.
        for (const [editor, error] of Object.entries(shown.errors)) assert.equal(error, null, `${editor}: ${error}`);
        assert.equal(typeof JSON.parse(shown.response).allowed, "boolean");
        refused.push(name);
        return;
      }
      assert.deepEqual(asExpected(shown, request), expected);
    });
  }
  t.diagnostic(
    `${names.length} fixtures in ${Math.round(performance.now() - started)} ms: ` +
      `${names.length - refused.length} equal to expected.json, ${refused.length} refused by kwctl ` +
      `before the policy runs shown with the policy's own answer (${refused.join(", ")})`,
  );
  await page.close();
});

test("malformed JSON in each editor is a message at that editor, never an exception", async () => {
  const page = await newPage();
  await open(page, "#example=aws-named-sa");
  for (const editor of EDITORS) {
    const before = await page.inputValue(`#${editor}`);
    await page.fill(`#${editor}`, '{"containers": [');
    await idle(page);
    const shown = await read(page);
    assert.match(shown.errors[editor] ?? "", /^not JSON: .* at line 1 column \d+$/, editor);
    assert.match(shown.verdict, /^Fix the input: /);
    assert.equal(shown.response, "");
    assert.equal(await page.getAttribute(`#${editor}`, "aria-invalid"), "true");
    await page.fill(`#${editor}`, before);
    await idle(page);
    assert.equal((await read(page)).verdict, "Allowed, mutated", `${editor} restored`);
  }
  // A settings error names the field.
  await page.fill("#settings", '{"aws": {"region": 5}}');
  await idle(page);
  const shown = await read(page);
  assert.equal(shown.verdict, "Settings refused by validate_settings");
  assert.match(shown.errors.settings, /^aws\.region: /);
  assert.equal(await page.textContent("#settings-error code.path"), "aws.region");
  await page.close();
});

test("a bare workload object is sent as a CREATE; the lookup can fail", async () => {
  const page = await newPage();
  await open(page, "#example=aws-named-sa");
  const review = await readJson(FIXTURES, "aws-named-sa", "request.json");
  const pod = { ...review.request.object, metadata: { ...review.request.object.metadata, namespace: "team-a" } };
  await page.fill("#request", JSON.stringify(pod, null, 2));
  await idle(page);
  let shown = await read(page);
  assert.equal(shown.verdict, "Allowed, mutated");
  assert.match(shown.lookupsText, /team-a\/s3-reader: found/);
  await page.selectOption("#lookup", "notFound");
  await idle(page);
  shown = await read(page);
  assert.equal(shown.verdict, "Allowed, unchanged");
  assert.match(shown.warnings[0], /ServiceAccount team-a\/s3-reader could not be read \(serviceaccounts "s3-reader" not found\)/);
  await page.fill("#settings", '{"lookupFailure": "reject"}');
  await idle(page);
  shown = await read(page);
  assert.equal(shown.verdict, "Denied (503)");
  await page.close();
});

test("the URL fragment reproduces an edited case", async () => {
  const page = await newPage();
  await open(page, "#example=lookup-failure-reject");
  await page.fill("#userInfo", JSON.stringify({ username: "alice", groups: ["dev"] }));
  await page.selectOption("#lookup", "found");
  await page.fill("#serviceAccount", JSON.stringify({ "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app" }));
  await idle(page);
  await page.waitForFunction(() => location.hash.startsWith("#state="));
  await page.waitForTimeout(200); // the last fragment write (async compression)
  const url = page.url();
  const first = await read(page);
  assert.equal(first.verdict, "Allowed, mutated");
  const values = async (p) => Promise.all([...EDITORS, "lookup"].map((id) => p.inputValue(`#${id}`)));
  const other = await newPage();
  await open(other, url.slice(url.indexOf("#")));
  assert.deepEqual(await values(other), await values(page));
  assert.deepEqual(await read(other), first);
  assert.equal(await other.inputValue("#example"), "", "an edited case is no example");
  await other.close();
  await page.close();
});

test("copy as kwctl run gives the files and the command", async () => {
  const page = await newPage();
  await open(page, "#example=lookup-failure-admit");
  await page.click("#copy-kwctl");
  const script = await page.textContent("#kwctl-script");
  assert.ok(await page.isVisible("#kwctl-dialog"));
  assert.match(script, /^cat > settings\.json <<'EOF'$/m);
  assert.match(script, /^cat > request\.json <<'EOF'$/m);
  assert.match(script, /^cat > session\.yml <<'EOF'\n- type: Exchange\n/m);
  assert.match(script, /^    type: Error\n    message: "serviceaccounts \\"app\\" not found"$/m);
  assert.ok(
    script.trimEnd().endsWith(
      "kwctl run --allow-context-aware --replay-host-capabilities-interactions session.yml --settings-path settings.json --request-path request.json annotated-policy.wasm",
    ),
  );
  await page.close();
});

test("a 1,000-container pod renders a result", async (t) => {
  const page = await newPage();
  await open(page, "#example=aws-named-sa");
  const review = await readJson(FIXTURES, "aws-named-sa", "request.json");
  const [container] = review.request.object.spec.containers;
  review.request.object.spec.containers = Array.from({ length: 1000 }, (_, i) => ({ ...container, name: `c-${i}` }));
  const text = JSON.stringify(review, null, 2);
  const started = performance.now();
  // As a paste does: the whole text at once, then one input event.
  await page.$eval("#request", (el, value) => {
    el.value = value;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, text);
  await idle(page);
  const elapsed = Math.round(performance.now() - started);
  const shown = await read(page);
  assert.equal(shown.verdict, "Allowed, mutated");
  const mutated = JSON.parse(shown.mutated);
  assert.equal(mutated.spec.containers.length, 1000);
  assert.ok(mutated.spec.containers.every((c) => c.env.some((e) => e.name === "AWS_ROLE_ARN")));
  assert.ok(shown.inserted >= 1000, `${shown.inserted} inserted lines`);
  assert.ok(shown.insertedShown > 0 && shown.insertedShown < shown.inserted, "the diff is cut");
  assert.match(shown.more, /^Show the other \d+ lines$/);
  t.diagnostic(`${(text.length / 1e6).toFixed(1)} MB request: result shown in ${elapsed} ms`);
  await page.close();
});

test("a trap in the module is a message, then a fresh module answers", async () => {
  // A module whose evaluate traps as a Rust panic does (the policy has none to trigger).
  const page = await newPage();
  const source = await readFile(join(WWW, "pkg/playground.js"), "utf8");
  const trapping = source.replace(
    "export function evaluate(state) {",
    'export function evaluate(state) { if (state.includes("TRAP")) { globalThis.playgroundPanic = "panicked at test"; throw new WebAssembly.RuntimeError("unreachable"); }',
  );
  assert.notEqual(trapping, source);
  await page.route("**/pkg/playground.js*", (route) =>
    route.fulfill({ body: trapping, contentType: "text/javascript" }),
  );
  await open(page, "#example=aws-named-sa");
  await page.fill("#settings", '{"TRAP": 1}');
  await idle(page);
  let shown = await read(page);
  assert.equal(shown.verdict, "Internal error");
  assert.match(shown.message, /^the policy module stopped \(panicked at test\): a bug/);
  await page.fill("#settings", "{}");
  await page.waitForFunction(() => document.getElementById("verdict").textContent !== "Internal error");
  await idle(page);
  shown = await read(page);
  assert.equal(shown.verdict, "Allowed, mutated");
  await page.close();
});

// PLAYGROUND_SCREENSHOT=path: the README's picture of the page.
test("screenshot", { skip: !process.env.PLAYGROUND_SCREENSHOT }, async () => {
  const page = await newPage();
  await open(page, `#example=${process.env.PLAYGROUND_EXAMPLE || "azure-proxy-annotation-warning"}`);
  await page.screenshot({ path: resolve(process.env.PLAYGROUND_SCREENSHOT) });
  await page.close();
});

test("no page error, console error or request off 127.0.0.1", () => {
  assert.deepEqual(problems, []);
});
