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
import { createServer } from "node:http";
import { mkdtempSync, rmSync, mkdirSync, existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

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

// ---- static server for dist/ --------------------------------------------------

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
};

function startStaticServer(root) {
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://x");
      let rel = decodeURIComponent(url.pathname);
      if (rel.endsWith("/")) rel += "index.html";
      const file = path.normalize(path.join(root, rel));
      if (!file.startsWith(root + path.sep)) {
        res.writeHead(403).end();
        return;
      }
      const st = await stat(file).catch(() => null);
      if (!st || !st.isFile()) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found");
        return;
      }
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": MIME[path.extname(file)] || "application/octet-stream",
        "cache-control": "no-store",
      });
      res.end(req.method === "HEAD" ? undefined : body);
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

// ---- run ----------------------------------------------------------------------

const t0 = Date.now();
const consoleLines = [];
const pageErrors = [];
const failedRequests = [];
const badResponses = [];
const matrixRequests = [];

function note(list, item, max = 500) {
  if (list.length < max) list.push(item);
}

const server = await startStaticServer(distDir);
const pageOrigin = `http://127.0.0.1:${server.address().port}`;
const profileDir = mkdtempSync(path.join(tmpdir(), "conclave-web-chromium-"));
let context;
let page;
let result;

try {
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: opts.chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });

  // Context-level events also see requests made by the service worker.
  context.on("requestfailed", (req) =>
    note(failedRequests, `${req.method()} ${req.url()} -> ${req.failure()?.errorText}`),
  );
  context.on("response", async (resp) => {
    const req = resp.request();
    const url = resp.url();
    if (url.includes("/_matrix/") || url.includes("/.well-known/")) {
      note(matrixRequests, `${resp.status()} ${req.method()} ${url}`, 2000);
    }
    if (resp.status() >= 400) {
      let body = "";
      try {
        body = (await resp.text()).slice(0, 500);
      } catch {
        /* body not available (e.g. redirect or aborted) */
      }
      let reqBody = req.postData() || "";
      // Keep passwords out of the logs.
      reqBody = reqBody.replace(/"password"\s*:\s*"[^"]*"/g, '"password":"<redacted>"').slice(0, 500);
      note(
        badResponses,
        `${resp.status()} ${req.method()} ${url}` +
          (reqBody ? `\n    request:  ${reqBody}` : "") +
          (body ? `\n    response: ${body}` : ""),
      );
    }
  });

  page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => note(consoleLines, `[${msg.type()}] ${msg.text()}`, 1000));
  page.on("pageerror", (err) => note(pageErrors, err.stack || String(err)));

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
      matrix_requests: matrixRequests.length,
      failed_or_error_responses: failedRequests.length + badResponses.length,
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

if (!result.ok || opts.verbose) {
  const section = (title, lines) =>
    console.error(`--- ${title} (${lines.length}) ---\n${lines.join("\n") || "(none)"}`);
  section("browser console", consoleLines);
  section("page errors", pageErrors);
  section("failed requests", failedRequests);
  section("responses with status >= 400", badResponses);
  section("Matrix API requests", matrixRequests);
}

console.log(JSON.stringify(result));

await context?.close().catch(() => {});
server.close();
rmSync(profileDir, { recursive: true, force: true });
process.exit(result.ok ? 0 : 1);
