import { defineConfig } from "tsup";

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
 */
export const binEntries: Record<string, string> = {
  "cli/index": "src/cli/index.ts",
};

export default defineConfig({
  entry: { ...entries, ...binEntries },
  format: ["esm"],
  target: "es2022",
  dts: true,
  clean: true,
  sourcemap: true,
  splitting: true,
  treeshake: true,
  external: ["redis", "ioredis", "@upstash/redis", "zod", "prom-client", "react", "bullmq"],
});
