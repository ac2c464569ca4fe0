// Builds the test page (index.html + main.js) into dist/.
//
// Hydrogen needs a few assets next to the app: its olm worker and download
// sandbox (imported with `?url` in main.js) and a service worker `sw.js` at the
// site root (used for authenticated media). The plugin below copies `sw.js` out
// of the SDK package at build time, so no symlink has to live in the repo.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const swPath = fileURLToPath(
  new URL("./node_modules/hydrogen-view-sdk/lib-build/sw.js", import.meta.url),
);

function hydrogenServiceWorker() {
  return {
    name: "hydrogen-service-worker",
    // `vite build`: emit sw.js at the root of dist/.
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "sw.js", source: readFileSync(swPath) });
    },
    // `vite` (dev server): serve it at /sw.js.
    configureServer(server) {
      server.middlewares.use("/sw.js", (_req, res) => {
        res.setHeader("content-type", "text/javascript");
        res.end(readFileSync(swPath));
      });
    },
  };
}

export default defineConfig({
  // Relative asset URLs: dist/ works from any static server and path.
  base: "./",
  plugins: [hydrogenServiceWorker()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Hydrogen's bundle is large; the warning is noise here.
    chunkSizeWarningLimit: 4096,
  },
});
