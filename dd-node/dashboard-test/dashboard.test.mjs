// Browser test of the dd-node dashboard (run by scripts/dashboard-test.sh): headless Chromium
// (Debian's package) driven by playwright-core against a real 3-replica cluster whose base URLs
// are in DD_BASES (comma-separated). An update made through the API on replica a appears on
// replica b's dashboard, a later one live, and an operation applied with b's form reaches c.
// Writes a screenshot to DD_DASHBOARD_SCREENSHOT when it is set. Every wait is bounded.
import { createRequire } from "node:module";

// playwright-core is installed by the script outside the source tree (DD_NODE_MODULES_DIR).
const require = createRequire(`${process.env.DD_NODE_MODULES_DIR || "."}/package.json`);
const { chromium } = require("playwright-core");

const bases = (process.env.DD_BASES || "").split(",").filter(Boolean);
if (bases.length !== 3) {
  console.error("DD_BASES must list the 3 replicas' base URLs");
  process.exit(2);
}
const [a, b, c] = bases;
const BOUND = 30000;
let passed = 0;
let failed = 0;

async function post(base, path, body) {
  const r = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`POST ${base}${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function until(what, check) {
  const deadline = Date.now() + BOUND;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last === true) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not within ${BOUND} ms (last: ${last})`);
}

const cellOf = (id) => `tr[data-id="${id}"] td.value`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 820 } });
  const streams = [];
  page.on("request", (r) => {
    if (r.url().includes("/subscribe")) streams.push(r.url());
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => {
    // Event streams are cut when the page closes; anything else is an error.
    if (!r.url().includes("/subscribe")) errors.push(`${r.url()}: ${r.failure()?.errorText}`);
  });
  await page.goto(b + "/", { timeout: BOUND });

  // Members and health of b, its store.
  await page.waitForFunction(
    () => document.querySelectorAll("#members tbody tr").length === 3,
    null,
    { timeout: BOUND },
  );
  const members = await page.locator("#members tbody").innerText();
  for (const name of ["a", "b (this node)", "c"]) {
    if (!members.includes(name)) throw new Error(`members lack ${name}: ${members}`);
  }
  await page.waitForFunction(() => document.querySelector("#status")?.textContent === "ok", null, {
    timeout: BOUND,
  });
  const store = await page.locator("#store").innerText();
  if (!store.includes("sqlite://") || !store.includes("healthy")) {
    throw new Error(`store section: ${store}`);
  }

  // An update through the API on a appears on b's dashboard, with its type.
  await post(a, "/keys/orset/fruits", [
    { op: "add", element: "pear" },
    { op: "add", element: "apple" },
  ]);
  await post(a, "/keys/gcounter/visits", { op: "increment", by: 5 });
  await post(a, "/keys/lwwmap/settings", { op: "put", key: "color", value: "blue" });
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent === '["apple","pear"]',
    cellOf("orset/fruits"),
    { timeout: BOUND },
  );
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent === "5",
    cellOf("gcounter/visits"),
    { timeout: BOUND },
  );
  // And a later one, live.
  await post(c, "/keys/gcounter/visits", { op: "increment", by: 2 });
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent === "7",
    cellOf("gcounter/visits"),
    { timeout: BOUND },
  );
  if (!streams.some((u) => u.includes("/keys/gcounter/visits/subscribe"))) {
    throw new Error(`the dashboard follows no event stream of the key: ${streams}`);
  }
  passed++;

  // The form on b applies an operation; it reaches c.
  await page.selectOption("#op-type", "flag");
  await page.fill("#op-key", "from-form");
  await page.fill("#op-body", '{"op": "enable"}');
  await page.click("#apply button");
  await page.waitForFunction(() => document.querySelector("#result")?.textContent.startsWith("200"), null, {
    timeout: BOUND,
  });
  await until("the form's update on c", async () => {
    const r = await fetch(c + "/keys/flag/from-form");
    return r.ok && (await r.json()).value === true;
  });
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent === "true",
    cellOf("flag/from-form"),
    { timeout: BOUND },
  );
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  passed++;

  if (process.env.DD_DASHBOARD_SCREENSHOT) {
    await page.screenshot({ path: process.env.DD_DASHBOARD_SCREENSHOT, fullPage: true });
    console.log(`screenshot: ${process.env.DD_DASHBOARD_SCREENSHOT}`);
  }
} catch (e) {
  failed++;
  console.error(e);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
