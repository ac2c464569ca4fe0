#!/usr/bin/env node
// Drives the synapse-admin web UI (built by build-synapse-admin.sh) in headless Chromium
// against a homeserver, doing what IT does with it day to day:
//
//   node synapse_admin.mjs <dist_dir> <scenario.json> <screenshot.png>
//
// The scenario names the homeserver and the admin's login ("hs", "user", "password"), a user
// the user list must show ("listed_user", a full ID), an account to create through the form
// ("create": {"localpart", "displayname", "password"}), a user to deactivate with "Erase user
// data" ("erase_user") and a room to delete from its page ("delete_room": {"room_id", "name"}).
// Each step waits for what the UI shows when it worked (the list row, the saved form, the
// confirmation's return to the list); the caller checks the server's state afterwards.
//
// Success: one JSON line {"ok":true,"steps":[…]} on stdout, exit 0. Failure: {"ok":false,
// "step":…, "reason":…}, the screenshot, and the browser's diagnostics on stderr, exit 1.
// Knobs: CHROMIUM_PATH, CONCLAVE_WEB_TIMEOUT_MS (per step, default 20000),
// CONCLAVE_WEB_VERBOSE=1 (diagnostics on success too).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Recorder, launchBrowser, startStaticServer } from "./browser.mjs";

const [distDir, scenarioPath, screenshot] = process.argv.slice(2);
if (!distDir || !scenarioPath || !screenshot) {
  console.error("usage: node synapse_admin.mjs <dist_dir> <scenario.json> <screenshot.png>");
  process.exit(2);
}
if (!existsSync(path.join(distDir, "index.html"))) {
  console.error(`${distDir}/index.html not found: run build-synapse-admin.sh first`);
  process.exit(2);
}
const scenario = JSON.parse(readFileSync(scenarioPath, "utf8"));
const stepTimeout = Number(process.env.CONCLAVE_WEB_TIMEOUT_MS || 20000);
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const recorder = new Recorder();
const server = await startStaticServer(path.resolve(distDir));
const origin = `http://127.0.0.1:${server.address().port}`;
const t0 = Date.now();
const steps = [];
let current = "start the browser";
let browser;
let result;

/** Runs one named step; its name is the failure's "step". */
async function step(name, body) {
  current = name;
  const started = Date.now();
  await body();
  steps.push({ step: name, seconds: (Date.now() - started) / 1000 });
}

/** Waits until the page's hash route starts with `prefix` (react-admin navigates by hash). */
async function routeIs(page, prefix) {
  await page.waitForFunction((p) => window.location.hash.startsWith(p), prefix, { timeout: stepTimeout });
}

/** Clicks a dialog's confirmation button (react-admin's Confirm). */
async function confirmDialog(page) {
  const dialog = page.getByRole("dialog");
  await dialog.waitFor({ timeout: stepTimeout });
  await dialog.getByRole("button", { name: "Confirm" }).click();
}

try {
  browser = await launchBrowser(chromiumPath);
  const page = browser.page;
  page.setDefaultTimeout(stepTimeout);
  recorder.attach(browser.context, page);

  await step("log in", async () => {
    await page.goto(`${origin}/`, { waitUntil: "load" });
    await page.getByLabel("Homeserver URL").fill(scenario.hs);
    await page.getByLabel("Username").fill(scenario.user);
    await page.locator('input[name="password"]').fill(scenario.password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await routeIs(page, "#/users");
  });

  await step("list users", async () => {
    await page.getByText(scenario.listed_user, { exact: true }).first().waitFor();
  });

  await step("create a user", async () => {
    const { localpart, displayname, password } = scenario.create;
    await page.goto(`${origin}/#/users/create`);
    await page.getByLabel("User-ID").fill(localpart);
    await page.getByLabel("Displayname").fill(displayname);
    await page.locator('input[name="password"]').fill(password);
    await page.getByRole("button", { name: "Save" }).click();
    // Saved: react-admin leaves the creation form for the new user's page.
    await page.waitForFunction(() => !window.location.hash.startsWith("#/users/create"), null, {
      timeout: stepTimeout,
    });
  });

  await step("erase a user", async () => {
    await page.goto(`${origin}/#/users/${encodeURIComponent(scenario.erase_user)}`);
    await page.getByRole("button", { name: "Erase user data" }).click();
    await confirmDialog(page);
    await page.waitForFunction(
      () => window.location.hash === "#/users" || window.location.hash.startsWith("#/users?"),
      null,
      { timeout: stepTimeout },
    );
  });

  await step("delete a room", async () => {
    const { room_id, name } = scenario.delete_room;
    await page.goto(`${origin}/#/rooms/${encodeURIComponent(room_id)}/show`);
    await page.getByText(name, { exact: true }).first().waitFor();
    await page.getByRole("button", { name: "Delete" }).click();
    await confirmDialog(page);
    await page.waitForFunction(
      () => window.location.hash === "#/rooms" || window.location.hash.startsWith("#/rooms?"),
      null,
      { timeout: stepTimeout },
    );
  });

  result = { ok: true, steps, seconds: (Date.now() - t0) / 1000 };
} catch (err) {
  const text = await browser?.page
    .locator("body")
    .innerText({ timeout: 1000 })
    .catch(() => "");
  result = {
    ok: false,
    step: current,
    steps,
    reason: String(err && (err.message || err)).slice(0, 2000),
    page_text: (text || "").slice(0, 1500),
    url: browser?.page.url(),
    seconds: (Date.now() - t0) / 1000,
  };
}

try {
  if (browser) {
    mkdirSync(path.dirname(path.resolve(screenshot)), { recursive: true });
    await browser.page.screenshot({ path: screenshot, fullPage: true, timeout: 15000 });
    result.screenshot = screenshot;
  }
} catch (err) {
  result.screenshot_error = String(err && err.message);
}

if (!result.ok || process.env.CONCLAVE_WEB_VERBOSE === "1") recorder.dump();
console.log(JSON.stringify(result));
await browser?.close();
server.close();
process.exit(result.ok ? 0 : 1);
