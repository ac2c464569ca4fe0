// What the browser checks share: a static server for a built page, Debian's Chromium with a
// fresh profile, and a recorder of what went wrong (console, page errors, failed requests,
// answers >= 400 with their bodies, the Matrix API requests made) for the failure report.
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
};

/** Serves `root` on an ephemeral loopback port; resolves to the listening server. */
export function startStaticServer(root) {
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

/** Headless Chromium with a throw-away profile; `close()` removes the profile too. */
export async function launchBrowser(chromiumPath) {
  const profileDir = mkdtempSync(path.join(tmpdir(), "conclave-web-chromium-"));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
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
  const page = context.pages()[0] || (await context.newPage());
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profileDir, { recursive: true, force: true });
  };
  return { context, page, close };
}

/** Collects the diagnostics printed when a check fails. */
export class Recorder {
  consoleLines = [];
  pageErrors = [];
  failedRequests = [];
  badResponses = [];
  matrixRequests = [];

  static note(list, item, max = 500) {
    if (list.length < max) list.push(item);
  }

  /** Listens on the context (which also sees a service worker's requests) and the page. */
  attach(context, page) {
    const note = Recorder.note;
    context.on("requestfailed", (req) =>
      note(this.failedRequests, `${req.method()} ${req.url()} -> ${req.failure()?.errorText}`),
    );
    context.on("response", async (resp) => {
      const req = resp.request();
      const url = resp.url();
      if (url.includes("/_matrix/") || url.includes("/_synapse/") || url.includes("/.well-known/")) {
        note(this.matrixRequests, `${resp.status()} ${req.method()} ${url}`, 2000);
      }
      if (resp.status() >= 400) {
        let body = "";
        try {
          body = (await resp.text()).slice(0, 500);
        } catch {
          /* body not available (e.g. redirect or aborted) */
        }
        // Keep passwords out of the logs.
        const reqBody = (req.postData() || "")
          .replace(/"password"\s*:\s*"[^"]*"/g, '"password":"<redacted>"')
          .slice(0, 500);
        note(
          this.badResponses,
          `${resp.status()} ${req.method()} ${url}` +
            (reqBody ? `\n    request:  ${reqBody}` : "") +
            (body ? `\n    response: ${body}` : ""),
        );
      }
    });
    page.on("console", (msg) => note(this.consoleLines, `[${msg.type()}] ${msg.text()}`, 1000));
    page.on("pageerror", (err) => note(this.pageErrors, err.stack || String(err)));
  }

  /** Prints every section to stderr. */
  dump() {
    const section = (title, lines) =>
      console.error(`--- ${title} (${lines.length}) ---\n${lines.join("\n") || "(none)"}`);
    section("browser console", this.consoleLines);
    section("page errors", this.pageErrors);
    section("failed requests", this.failedRequests);
    section("responses with status >= 400", this.badResponses);
    section("Matrix API requests", this.matrixRequests);
  }
}
