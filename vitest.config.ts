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

/** Files that measure the heap after `gc()`: run in their own project, with `--expose-gc`. */
const GC_TESTS = "test/**/*.gc.test.ts";

export default defineConfig({
  resolve: { alias },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    globalSetup: ["test/support/global-setup.ts"],
    // The JSON report lets .ci/run print one plain "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".vitest-results.json" }]],
    projects: [
      {
        extends: true,
        test: {
          name: "default",
          include: ["test/**/*.test.ts"],
          exclude: ["test/runtimes/deno/**", "node_modules/**", GC_TESTS],
        },
      },
      {
        extends: true,
        test: { name: "gc", include: [GC_TESTS], execArgv: ["--expose-gc"] },
      },
    ],
  },
});
