#!/usr/bin/env node
// Drives the Hydrogen test page (dist/, built by `vite build`) in headless
// Chromium and checks that a room's timeline shows an expected message.
//
//   node drive.mjs <homeserver_url> <username> <password> <room_id> <expected_text> <screenshot.png>
//
// Each argument may instead come from the environment: CONCLAVE_WEB_HS,
// CONCLAVE_WEB_USER, CONCLAVE_WEB_PASSWORD, CONCLAVE_WEB_ROOM,
// CONCLAVE_WEB_TEXT, CONCLAVE_WEB_SCREENSHOT. Further knobs:
// CONCLAVE_WEB_E2EE=0 (run Hydrogen without olm: no E2EE device keys are
// created or uploaded; default 1, Hydrogen as shipped),
// CONCLAVE_WEB_TIMEOUT_MS (default 60000), CHROMIUM_PATH (default
// /usr/bin/chromium), CONCLAVE_WEB_VERBOSE=1 (print the diagnostics to
// stderr on success too).
//
// It serves dist/ from a tiny static server on an ephemeral loopback port,
// starts Chromium with a fresh profile, opens the page with the login details
// in the query string, and waits until the expected text is visible in a
// timeline message. Either way it saves a full-page screenshot.
// Success: one JSON line on stdout, exit 0. Failure: one JSON line on stdout,
// the browser console, page errors, failed and non-2xx requests on stderr,
// exit 1. Bad usage: exit 2.
import { mkdirSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Recorder, launchBrowser, startStaticServer } from "./browser.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const distDir = path.join(here, "dist");

const argv = process.argv.slice(2);
const env = process.env;
const opts = {
  hs: argv[0] ?? env.CONCLAVE_WEB_HS,
  user: argv[1] ?? env.CONCLAVE_WEB_USER,
  password: argv[2] ?? env.CONCLAVE_WEB_PASSWORD,
  room: argv[3] ?? env.CONCLAVE_WEB_ROOM,
  text: argv[4] ?? env.CONCLAVE_WEB_TEXT,
  screenshot: argv[5] ?? env.CONCLAVE_WEB_SCREENSHOT,
  timeoutMs: Number(env.CONCLAVE_WEB_TIMEOUT_MS || 60000),
  chromiumPath: env.CHROMIUM_PATH || "/usr/bin/chromium",
  verbose: env.CONCLAVE_WEB_VERBOSE === "1",
  e2ee: env.CONCLAVE_WEB_E2EE !== "0",
};

const missing = ["hs", "user", "password", "room", "text", "screenshot"].filter((k) => !opts[k]);
if (missing.length) {
  console.error(
    "usage: node drive.mjs <homeserver_url> <username> <password> <room_id> <expected_text> <screenshot.png>\n" +
      `missing: ${missing.join(", ")}`,
  );
  process.exit(2);
}
if (!existsSync(path.join(distDir, "index.html"))) {
  console.error(`${distDir}/index.html not found: build the page first (npx vite build, or run.sh)`);
  process.exit(2);
}
if (!existsSync(opts.chromiumPath)) {
  console.error(`Chromium not found at ${opts.chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`);
  process.exit(2);
}

// ---- run ----------------------------------------------------------------------

const t0 = Date.now();
const recorder = new Recorder();

const server = await startStaticServer(distDir);
const pageOrigin = `http://127.0.0.1:${server.address().port}`;
let browser;
let page;
let result;

try {
  browser = await launchBrowser(opts.chromiumPath);
  page = browser.page;
  recorder.attach(browser.context, page);

  const q = new URLSearchParams({ hs: opts.hs, user: opts.user, password: opts.password, room: opts.room });
  if (!opts.e2ee) q.set("e2ee", "0");
  await page.goto(`${pageOrigin}/index.html?${q}`, { waitUntil: "load", timeout: 30000 });

  // A text message in the timeline containing the expected text.
  const message = page.locator("#app .Timeline_message").filter({ hasText: opts.text });
  const deadline = t0 + opts.timeoutMs;
  let state = null;
  let found = false;
  while (Date.now() < deadline) {
    state = await page.evaluate(() => window.__conclaveE2E ?? null).catch(() => state);
    if (state?.status === "error") break;
    if (await message.first().isVisible().catch(() => false)) {
      found = true;
      break;
    }
    await page.waitForTimeout(250);
  }
  state = await page.evaluate(() => window.__conclaveE2E ?? null).catch(() => state);

  if (found) {
    // Let avatars/fonts settle so the screenshot shows the finished timeline.
    await page.waitForTimeout(500);
    const sender = await message
      .first()
      .locator(".Timeline_messageSender")
      .textContent({ timeout: 1000 })
      .catch(() => null);
    result = {
      ok: true,
      text: opts.text,
      sender: sender?.trim() || null,
      user_id: state?.userId ?? null,
      room: opts.room,
      e2ee: opts.e2ee,
      status: state?.detail ?? null,
      seconds: (Date.now() - t0) / 1000,
      screenshot: opts.screenshot,
      matrix_requests: recorder.matrixRequests.length,
      failed_or_error_responses: recorder.failedRequests.length + recorder.badResponses.length,
    };
  } else {
    const timelineText = await page
      .locator("#app")
      .innerText({ timeout: 1000 })
      .catch(() => "");
    result = {
      ok: false,
      text: opts.text,
      room: opts.room,
      e2ee: opts.e2ee,
      reason:
        state?.status === "error"
          ? `page reported an error: ${state.detail}`
          : `expected text not visible in the timeline after ${opts.timeoutMs} ms ` +
            `(page status: ${state ? `${state.status}: ${state.detail}` : "unknown"})`,
      app_text: timelineText.slice(0, 1000),
      seconds: (Date.now() - t0) / 1000,
      screenshot: opts.screenshot,
    };
  }
} catch (err) {
  result = {
    ok: false,
    text: opts.text,
    room: opts.room,
    reason: `driver error: ${err && (err.stack || err.message || err)}`,
    seconds: (Date.now() - t0) / 1000,
    screenshot: opts.screenshot,
  };
}

try {
  if (page) {
    mkdirSync(path.dirname(path.resolve(opts.screenshot)), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 15000 });
  } else {
    result.screenshot = null;
  }
} catch (err) {
  result.screenshot = null;
  result.screenshot_error = String(err && err.message);
}

if (!result.ok || opts.verbose) recorder.dump();

console.log(JSON.stringify(result));

await browser?.close();
server.close();
process.exit(result.ok ? 0 : 1);
