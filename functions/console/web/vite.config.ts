// Build: hashed names under /assets/, no inline script (CSP `script-src 'self'`), editor and
// terminal split into chunks loaded on first use.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "es2022",
    assetsDir: "assets",
    assetsInlineLimit: 0, // no data: URLs for assets: every file is hashed and cached
    modulePreload: { polyfill: false }, // modern browsers only: no injected polyfill
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 800,
  },
});
