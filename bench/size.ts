/**
 * Bundle size of each entry as a browser or edge bundler would see it:
 * esbuild, platform browser, ESM, minified, tree-shaken, then gzipped.
 * The Redis clients, BullMQ and React stay external (peer dependencies the
 * application brings); each entry is measured with
 * zod external (what the package ships: zod is a dependency) and bundled
 * (what lands in an edge function or a browser bundle).
 *
 * Run: `npx tsx bench/size.ts [--dry-run]` (also run by `npm run bench`).
 * Prints a table and rewrites the `size` section of `bench/RESULTS.md`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { build, version as esbuildVersion, type Metafile } from "esbuild";
import { machine } from "./support/machine.ts";
import { markdownTable, textTable, writeSection } from "./support/results.ts";

const { values: flags } = parseArgs({ options: { "dry-run": { type: "boolean", default: false } } });

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Peer dependencies: the application brings them, so they stay out of the measured bundles. */
const CLIENT_LIBS = ["redis", "@upstash/redis", "ioredis", "bullmq", "react", "react-dom"];

/** A bundle to measure: a file of the package, or a small program using it. */
interface Entry {
  readonly name: string;
  readonly what: string;
  /** A source file (relative to the repository root)... */
  readonly file?: string;
  /** ...or the source of an entry written for this measurement (imports relative to the root). */
  readonly contents?: string;
  /** Files that must exist for the entry to be measured. */
  readonly needs: readonly string[];
  /** Also bundle the client libraries (`@upstash/redis`), as a deployed edge function would. */
  readonly bundleClients?: boolean;
}

/** A worker on the edge: build the manager on Upstash and publish. */
const EDGE_PUBLISHER = `import { createProgress } from "./src/index.ts";
import { upstash } from "./src/adapters/upstash/index.ts";
export default {
  async fetch(request, env) {
    const progress = createProgress({ port: upstash({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }) });
    const { op } = await request.json();
    const result = await progress.publish(op, { progress: 50, message: "Halfway" });
    await progress.close();
    return Response.json(result);
  },
};
`;

const ENTRIES: readonly Entry[] = [
  { name: "core (`progresscast`)", what: "src/index.ts, every export", file: "src/index.ts", needs: ["src/index.ts"] },
  {
    name: "memory (`progresscast/memory`)",
    what: "src/adapters/memory/index.ts",
    file: "src/adapters/memory/index.ts",
    needs: ["src/adapters/memory/index.ts"],
  },
  {
    name: "node-redis (`progresscast/node-redis`)",
    what: "src/adapters/node-redis/index.ts, `redis` external",
    file: "src/adapters/node-redis/index.ts",
    needs: ["src/adapters/node-redis/index.ts"],
  },
  {
    name: "upstash (`progresscast/upstash`)",
    what: "src/adapters/upstash/index.ts, `@upstash/redis` external",
    file: "src/adapters/upstash/index.ts",
    needs: ["src/adapters/upstash/index.ts"],
  },
  {
    name: "client (`progresscast/client`)",
    what: "src/client/index.ts, the browser client",
    file: "src/client/index.ts",
    needs: ["src/client/index.ts"],
  },
  {
    name: "ioredis (`progresscast/ioredis`)",
    what: "src/adapters/ioredis/index.ts, `ioredis` external",
    file: "src/adapters/ioredis/index.ts",
    needs: ["src/adapters/ioredis/index.ts"],
  },
  {
    name: "client, `follow` alone",
    what: "a page importing only `follow` (SSE) from the browser client, tree-shaken",
    contents: `export { follow } from "./src/client/index.ts";\n`,
    needs: ["src/client/index.ts"],
  },
  {
    name: "client, `followWebSocket` alone",
    what: "a page importing only `followWebSocket` (the WebSocket protocol) from the browser client, tree-shaken",
    contents: `export { followWebSocket } from "./src/client/index.ts";\n`,
    needs: ["src/client/index.ts"],
  },
  {
    name: "react (`progresscast/react`)",
    what: "src/react/index.ts, `useProgress` and `useProgressList` over the client; `react` external",
    file: "src/react/index.ts",
    needs: ["src/react/index.ts"],
  },
  {
    name: "bullmq (`progresscast/bullmq`)",
    what: "src/bullmq/index.ts, the bridge and `withProgress`; `bullmq` external",
    file: "src/bullmq/index.ts",
    needs: ["src/bullmq/index.ts"],
  },
  {
    name: "edge publisher: core + upstash",
    what: "a Worker importing `createProgress` and `upstash` and publishing; `@upstash/redis` external",
    contents: EDGE_PUBLISHER,
    needs: ["src/index.ts", "src/adapters/upstash/index.ts"],
  },
  {
    name: "edge publisher, all bundled",
    what: "the same Worker with `@upstash/redis` bundled too: what gets deployed",
    contents: EDGE_PUBLISHER,
    needs: ["src/index.ts", "src/adapters/upstash/index.ts"],
    bundleClients: true,
  },
];

interface Size {
  readonly min: number;
  readonly gzip: number;
  /** Bytes of zod in the minified output (0 when external). */
  readonly zod: number;
}

async function measure(entry: Entry, bundleZod: boolean): Promise<Size> {
  const externals = [...(entry.bundleClients ? [] : CLIENT_LIBS), ...(bundleZod ? [] : ["zod"])];
  const result = await build({
    ...(entry.file
      ? { entryPoints: [entry.file] }
      : { stdin: { contents: entry.contents ?? "", resolveDir: ROOT, sourcefile: "entry.ts", loader: "ts" } }),
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    minify: true,
    treeShaking: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    external: externals.flatMap((name) => [name, `${name}/*`]),
    metafile: true,
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error(`esbuild produced nothing for ${entry.name}`);
  return {
    min: output.contents.byteLength,
    gzip: gzipSync(output.contents, { level: 9 }).byteLength,
    zod: zodBytes(result.metafile),
  };
}

function zodBytes(metafile: Metafile): number {
  let bytes = 0;
  for (const output of Object.values(metafile.outputs)) {
    for (const [path, input] of Object.entries(output.inputs)) {
      if (path.includes("node_modules/zod/")) bytes += input.bytesInOutput;
    }
  }
  return bytes;
}

const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;

async function main(): Promise<void> {
  const head = ["entry", "min", "min+gz", "min (zod bundled)", "min+gz (zod bundled)", "zod in it (min)"];
  const rows: string[][] = [];
  const skipped: string[] = [];
  for (const entry of ENTRIES) {
    const missing = entry.needs.filter((file) => !existsSync(`${ROOT}/${file}`));
    if (missing.length > 0) {
      skipped.push(`${entry.name}: ${missing.join(", ")} not present`);
      continue;
    }
    try {
      const external = await measure(entry, false);
      const bundled = await measure(entry, true);
      rows.push([entry.name, kb(external.min), kb(external.gzip), kb(bundled.min), kb(bundled.gzip), kb(bundled.zod)]);
    } catch (error) {
      skipped.push(`${entry.name}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
    }
  }
  console.log(textTable(head, rows));
  for (const s of skipped) console.log(`skipped ${s}`);

  const m = machine();
  const md = [
    "## Bundle size",
    "",
    `esbuild ${esbuildVersion}, \`platform: "browser"\`, ESM, ES2022, minified and tree-shaken, gzip level 9 ` +
      `(${m.date}). Command: \`npx tsx bench/size.ts\`. The peer dependencies (\`redis\`, \`@upstash/redis\`, ` +
      "`ioredis`, `bullmq`, `react`) are external, except `@upstash/redis` in " +
      'the "all bundled" row; the first two columns keep zod external too (it is a dependency of the package, ' +
      "shared with the application), the next two bundle it. KB = 1,024 bytes.",
    "",
    markdownTable(head, rows),
    "",
    ...ENTRIES.map((e) => `- ${e.name}: ${e.what}.`),
    ...(skipped.length > 0 ? ["", "Not measured:", "", ...skipped.map((s) => `- ${s}`)] : []),
  ].join("\n");
  if (!flags["dry-run"]) {
    writeSection("size", md);
    console.log("\nwrote the size section of bench/RESULTS.md");
  }
}

await main();
