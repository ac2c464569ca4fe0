import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Upstream sets the footer's version from git with a plugin; here it is the vendored release.
const version = {
  name: "synapse-admin-version",
  transformIndexHtml: (html: string) => html.replace("__SYNAPSE_ADMIN_VERSION__", JSON.stringify("0.11.4")),
};

export default defineConfig({
  plugins: [react(), version],
  base: "./",
  build: {
    chunkSizeWarningLimit: 1500,
  },
  ssr: {
    noExternal: ["react-dropzone", "react-admin", "ra-ui-materialui"],
  },
});
