import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/** `progresscast/...` imports (as the examples write them) resolve to the sources, as in deno.json. */
const denoExports = (
  JSON.parse(readFileSync(new URL("deno.json", import.meta.url), "utf8")) as {
    exports: Record<string, string>;
  }
).exports;
const alias = Object.entries(denoExports).map(([subpath, file]) => ({
  find: new RegExp(`^${subpath === "." ? "progresscast" : `progresscast/${subpath.slice(2)}`}$`),
  replacement: fileURLToPath(new URL(file, import.meta.url)),
}));

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/runtimes/deno/**", "node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    globalSetup: ["test/support/global-setup.ts"],
    // The JSON report lets .ci/run print one plain "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".vitest-results.json" }]],
  },
});
