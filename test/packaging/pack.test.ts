/**
 * The package as npm publishes it: `npm pack` of this repository (the `dist/`
 * the suite built), installed into an empty project the way npm lays it out,
 * its dependencies beside it. Plain `node` (no tsx, no aliases) imports every
 * entry point from it and publishes and watches on the memory backend and on a
 * real redis-server; its `progresscast` command runs; the README's snippets
 * (taken from examples/) typecheck against its types, and the task worker runs.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { transformSync } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packWithoutScripts } from "../../scripts/check-package.ts";
import { root, run } from "../interop/support.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

/** What the installed package needs at run time, and what the README snippets import. */
const LINKED = [
  "zod",
  "redis",
  "ioredis",
  "bullmq",
  "react",
  "react-dom",
  "ws",
  "hono",
  "@hono/node-server",
  "@upstash/redis",
  "@types/node",
  "@types/react",
  "@types/ws",
];

let redis: RedisServer;
let dir: string;
let project: string;
let files: string[];

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "progresscast-packed-"));
  const tarball = packWithoutScripts(root, dir);
  files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n");
  project = join(dir, "app");
  const installed = join(project, "node_modules", "progresscast");
  mkdirSync(installed, { recursive: true });
  execFileSync("tar", ["-xzf", tarball, "-C", installed, "--strip-components=1"]);
  for (const name of LINKED) {
    const at = join(project, "node_modules", name);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(join(root, "node_modules", name), at, "dir");
  }
  // As npm links a package's `bin` on install.
  const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { bin: Record<string, string> };
  mkdirSync(join(project, "node_modules", ".bin"));
  for (const [name, file] of Object.entries(pkg.bin)) {
    chmodSync(join(installed, file), 0o755);
    symlinkSync(join("..", "progresscast", file), join(project, "node_modules", ".bin", name));
  }
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
}, 60_000);

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await redis?.close();
});

const node = async (file: string, env: Record<string, string> = {}) => {
  const r = await run(process.execPath, [file], { env: { ...env, NODE_PATH: "" }, timeoutMs: 20_000 });
  expect(r.stderr, r.stdout).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
};

describe("npm pack", () => {
  it("ships the built code, the Lua scripts, the JSON Schema and the docs; no sources or tests", () => {
    for (const file of [
      "package/package.json",
      "package/dist/index.js",
      "package/dist/index.d.ts",
      "package/dist/cli/index.js",
      "package/lua/append.lua",
      "package/lua/scripts.json",
      "package/schema/wire-v1.json",
      "package/README.md",
      "package/CHANGELOG.md",
      "package/LICENSE",
    ]) {
      expect(files).toContain(file);
    }
    expect(files.filter((f) => /^package\/(src|test|bench|demo|examples|python)\//.test(f))).toEqual([]);
  });

  it("installs into an empty project: plain node imports every entry point and publishes and watches", async () => {
    const script = join(project, "round-trip.mjs");
    writeFileSync(
      script,
      `import { createProgress, isProgressValidationError } from "progresscast";
import { memory } from "progresscast/memory";
import { nodeRedis } from "progresscast/node-redis";
import { ioredis } from "progresscast/ioredis";
import { follow, followWebSocket } from "progresscast/client";
import { useProgress, useProgressList } from "progresscast/react";
import { bridgeQueue, withProgress } from "progresscast/bullmq";

for (const f of [isProgressValidationError, ioredis, follow, followWebSocket, useProgress, useProgressList, bridgeQueue, withProgress]) {
  if (typeof f !== "function") throw new Error("not a function: " + String(f));
}

async function roundTrip(name, port) {
  const progress = createProgress({ port, throttle: false });
  const seen = [];
  const watching = (async () => {
    for await (const item of progress.watch("job-1", { signal: AbortSignal.timeout(10000) })) {
      if (item.kind === "event") seen.push(item.event.status + ":" + item.event.progress);
    }
  })();
  await progress.publish("job-1", { status: "running", progress: 0 });
  await progress.publish("job-1", { current: 1, total: 2 });
  await progress.publish("job-1", { status: "completed" });
  await watching;
  const snapshot = await progress.get("job-1");
  await progress.close();
  console.log(JSON.stringify({ name, seen, status: snapshot.status, seq: snapshot.seq }));
}

await roundTrip("memory", memory());
await roundTrip("node-redis", nodeRedis({ url: process.env.REDIS_URL }));
`,
    );
    const lines = (await node(script, { REDIS_URL: redis.url }))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const expected = { seen: ["running:0", "running:50", "completed:100"], status: "completed", seq: 3 };
    expect(lines).toEqual([
      { name: "memory", ...expected },
      { name: "node-redis", ...expected },
    ]);
  });

  it("the progresscast command runs from the installed package: --help, publish, inspect", async () => {
    const bin = join(project, "node_modules", ".bin", "progresscast");
    const help = await run(bin, ["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: progresscast <command>");
    const published = await run(bin, ["publish", "cli-1", "--progress", "40", "--redis", redis.url, "--json"]);
    expect(published.stderr).toBe("");
    expect(published.code).toBe(0);
    expect(JSON.parse(published.stdout)).toMatchObject({ outcome: "published", seq: 1 });
    const inspected = await run(bin, ["inspect", "cli-1", "--redis", redis.url]);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).toContain("40");
  });

  it("the README's snippets typecheck against the installed package, and the task worker runs", async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const snippets = [...readme.matchAll(/<!-- from (examples\/\S+) -->\n```/g)].map((m) => m[1] ?? "");
    expect(snippets.length).toBeGreaterThanOrEqual(7);
    for (const file of snippets) {
      mkdirSync(dirname(join(project, file)), { recursive: true });
      cpSync(join(root, file), join(project, file));
    }
    // Deno's globals, for the Deno snippet (Deno itself runs it in test/examples).
    writeFileSync(
      join(project, "deno.d.ts"),
      `declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(options: { port: number; hostname: string }, handler: (request: Request) => Response | Promise<Response>): unknown;
};
`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2023", "DOM", "DOM.Iterable", "DOM.AsyncIterable"],
          module: "ESNext",
          moduleResolution: "Bundler",
          strict: true,
          jsx: "react-jsx",
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
        },
        include: ["examples", "deno.d.ts"],
      }),
    );
    const tsc = await run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], {
      timeoutMs: 60_000,
    });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.code).toBe(0);

    const source = readFileSync(join(project, "examples/task/import-job.ts"), "utf8");
    const worker = join(project, "import-job.mjs");
    writeFileSync(worker, transformSync(source, { loader: "ts", format: "esm", target: "node20" }).code);
    await node(worker, { REDIS_URL: redis.url });
    const check = join(project, "check.mjs");
    writeFileSync(
      check,
      `import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";
const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL }) });
const s = await progress.get("import-42");
await progress.close();
console.log(JSON.stringify({ status: s.status, current: s.current, total: s.total }));
`,
    );
    expect(JSON.parse(await node(check, { REDIS_URL: redis.url }))).toEqual({
      status: "completed",
      current: 50,
      total: 50,
    });
  });
});
