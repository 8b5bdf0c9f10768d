import { rmSync } from "node:fs";
import { defineConfig, type Options } from "tsup";

/** Build entries: each is one package.json `exports` subpath (checked by scripts/check-exports.ts). */
export const entries: Record<string, string> = {
  index: "src/index.ts",
  "adapters/memory/index": "src/adapters/memory/index.ts",
  "adapters/node-redis/index": "src/adapters/node-redis/index.ts",
  "adapters/upstash/index": "src/adapters/upstash/index.ts",
  "adapters/ioredis/index": "src/adapters/ioredis/index.ts",

  "client/index": "src/client/index.ts",
  "node/index": "src/node/index.ts",
  "prometheus/index": "src/prometheus/index.ts",
  "schema/index": "src/schema/index.ts",
  "react/index": "src/react/index.ts",
  "bullmq/index": "src/bullmq/index.ts",
};

/**
 * Executables: built like the entries but reached through package.json `bin`,
 * not `exports` (so scripts/check-exports.ts leaves them out). The source
 * starts with `#!/usr/bin/env node`, which the build keeps and marks executable.
 * ESM only: the command awaits at top level, which CommonJS cannot.
 */
export const binEntries: Record<string, string> = {
  "cli/index": "src/cli/index.ts",
};

const shared: Options = {
  target: "es2022",
  dts: true,
  sourcemap: true,
  splitting: true,
  treeshake: true,
  // Each config's `clean` would race the other's output (the two builds run at once): dist/ is emptied once, below.
  clean: false,
  external: ["redis", "ioredis", "@upstash/redis", "zod", "prom-client", "react", "bullmq"],
};

/**
 * Two builds side by side: ESM (`.js`, `.d.ts`) of the entries and the
 * command, sharing chunks as before; CommonJS (`.cjs`, `.d.cts`) of the
 * entries, for `require`. Their file names never collide.
 */
export default defineConfig(() => {
  rmSync("dist", { recursive: true, force: true });
  return [
    { ...shared, name: "esm", entry: { ...entries, ...binEntries }, format: ["esm"] },
    { ...shared, name: "cjs", entry: entries, format: ["cjs"] },
  ];
});
