/**
 * The package as npm publishes it: `npm pack` of this repository (the `dist/`
 * the suite built), installed into two empty projects made with `npm init -y`
 * the way npm lays them out, its dependencies beside it: an ES module app
 * (`"type": "module"`) and a CommonJS one (npm's default). Plain `node` (no
 * tsx, no aliases) imports, or requires, every entry point from it and
 * publishes and watches on the memory backend and on a real redis-server;
 * both run the README's quick start; its `progresscast` command runs; the
 * README's snippets (taken from examples/) typecheck against its types, from
 * ESM and from CommonJS; every link of the README it ships can be followed.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { transformSync } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packWithoutScripts } from "../../scripts/check-package.ts";
import { root, run } from "../interop/support.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { deadLinks } from "./links.ts";

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
  "prom-client",
  "@types/node",
  "@types/react",
  "@types/ws",
];

const REPOSITORY = "https://github.com/progresscast/progresscast/";

let redis: RedisServer;
let dir: string;
/** The ES module app and the CommonJS app. */
let esm: string;
let cjs: string;
let files: string[];
/** `progresscast`, `progresscast/memory`, ...: every code entry of the packed package.json. */
let specifiers: string[];

/** An empty app as `npm init -y` makes it, with the tarball installed as npm would lay it out. */
function makeApp(name: string, tarball: string): string {
  const project = join(dir, name);
  mkdirSync(project);
  execFileSync("npm", ["init", "-y"], { cwd: project, stdio: "ignore" });
  const installed = join(project, "node_modules", "progresscast");
  mkdirSync(installed, { recursive: true });
  execFileSync("tar", ["-xzf", tarball, "-C", installed, "--strip-components=1"]);
  for (const dependency of LINKED) {
    const at = join(project, "node_modules", dependency);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(join(root, "node_modules", dependency), at, "dir");
  }
  // As npm links a package's `bin` on install.
  const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { bin: Record<string, string> };
  mkdirSync(join(project, "node_modules", ".bin"));
  for (const [command, file] of Object.entries(pkg.bin)) {
    chmodSync(join(installed, file), 0o755);
    symlinkSync(join("..", "progresscast", file), join(project, "node_modules", ".bin", command));
  }
  return project;
}

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "progresscast-packed-"));
  const tarball = packWithoutScripts(root, dir);
  files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n");
  esm = makeApp("esm-app", tarball);
  execFileSync("npm", ["pkg", "set", "type=module"], { cwd: esm, stdio: "ignore" });
  cjs = makeApp("cjs-app", tarball);
  const pkg = JSON.parse(readFileSync(join(esm, "node_modules", "progresscast", "package.json"), "utf8")) as {
    exports: Record<string, unknown>;
  };
  specifiers = Object.keys(pkg.exports)
    .filter((subpath) => !subpath.endsWith(".json"))
    .map((subpath) => (subpath === "." ? "progresscast" : `progresscast/${subpath.slice(2)}`));
}, 90_000);

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await redis?.close();
});

const node = async (file: string, env: Record<string, string> = {}) => {
  const r = await run(process.execPath, [file], { env: { ...env, NODE_PATH: "" }, timeoutMs: 30_000 });
  expect(r.stderr, r.stdout).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
};

const tsc = (project: string) =>
  run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], { timeoutMs: 90_000 });

/** Publishes three events and watches them, on the memory backend and on Redis: the body of both apps' round trip. */
const ROUND_TRIP = `
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
`;

/** Each app's own Redis database, so both can publish the same operations. */
const DATABASE = { esm: 1, cjs: 2 } as const;

describe("npm pack", () => {
  it("ships the built code in both formats, the Lua scripts, the JSON Schema and the docs; no sources or tests", () => {
    for (const file of [
      "package/package.json",
      "package/dist/index.js",
      "package/dist/index.d.ts",
      "package/dist/index.cjs",
      "package/dist/index.d.cts",
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
    expect(files.filter((f) => /^package\/(src|test|bench|demo|examples|python|docs)\//.test(f))).toEqual([]);
    expect(specifiers).toHaveLength(11);
  });

  it.each([
    ["ES module app: import", "esm"],
    ["CommonJS app: require", "cjs"],
  ] as const)("%s of every entry point works from plain node; memory and node-redis round trips", async (_, kind) => {
    const project = kind === "esm" ? esm : cjs;
    const script = join(project, "round-trip.js");
    const entries = JSON.stringify(specifiers);
    writeFileSync(
      script,
      kind === "esm"
        ? `import { createProgress, isProgressValidationError } from "progresscast";
import { memory } from "progresscast/memory";
import { nodeRedis } from "progresscast/node-redis";
import { ioredis } from "progresscast/ioredis";
import { follow, followWebSocket } from "progresscast/client";
import { useProgress, useProgressList } from "progresscast/react";
import { bridgeQueue, withProgress } from "progresscast/bullmq";
${ROUND_TRIP}
const names = {};
for (const entry of ${entries}) names[entry] = Object.keys(await import(entry)).sort();
console.log(JSON.stringify(names));
await roundTrip("memory", memory());
await roundTrip("node-redis", nodeRedis({ url: process.env.REDIS_URL }));
`
        : `const { createProgress, isProgressValidationError } = require("progresscast");
const { memory } = require("progresscast/memory");
const { nodeRedis } = require("progresscast/node-redis");
const { ioredis } = require("progresscast/ioredis");
const { follow, followWebSocket } = require("progresscast/client");
const { useProgress, useProgressList } = require("progresscast/react");
const { bridgeQueue, withProgress } = require("progresscast/bullmq");
${ROUND_TRIP}
const names = {};
for (const entry of ${entries}) names[entry] = Object.keys(require(entry)).sort();
console.log(JSON.stringify(names));
(async () => {
  await roundTrip("memory", memory());
  await roundTrip("node-redis", nodeRedis({ url: process.env.REDIS_URL }));
})().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`,
    );
    const [first = "{}", ...rest] = (await node(script, { REDIS_URL: `${redis.url}/${DATABASE[kind]}` }))
      .trim()
      .split("\n");
    const names = JSON.parse(first) as Record<string, string[]>;
    const lines = rest.map((l) => JSON.parse(l) as unknown);
    const expected = { seen: ["running:0", "running:50", "completed:100"], status: "completed", seq: 3 };
    expect(lines).toEqual([
      { name: "memory", ...expected },
      { name: "node-redis", ...expected },
    ]);
    // Every entry point has exports, and the same ones in both formats.
    expect(Object.keys(names)).toEqual(specifiers);
    for (const entry of specifiers) expect(names[entry]?.length, entry).toBeGreaterThan(0);
    writeFileSync(join(project, "names.json"), JSON.stringify(names));
    const other = join(kind === "esm" ? cjs : esm, "names.json");
    if (existsSync(other)) expect(names).toEqual(JSON.parse(readFileSync(other, "utf8")));
  });

  it.each([
    ["ES module app", "esm"],
    ["CommonJS app", "cjs"],
  ] as const)("%s runs the README's quick start against Redis", async (_, kind) => {
    const project = kind === "esm" ? esm : cjs;
    const readme = readFileSync(join(project, "node_modules", "progresscast", "README.md"), "utf8");
    const example = kind === "esm" ? "examples/quick-start/worker.ts" : "examples/quick-start/worker.cjs";
    const source = readFileSync(join(root, example), "utf8");
    expect(readme).toContain(`<!-- from ${example} -->\n\`\`\`${kind === "esm" ? "ts" : "js"}\n${source}\`\`\``);
    const worker = join(project, "quick-start.js");
    writeFileSync(
      worker,
      kind === "esm" ? transformSync(source, { loader: "ts", format: "esm", target: "node20" }).code : source,
    );
    const url = `${redis.url}/${DATABASE[kind]}`;
    expect(await node(worker, { REDIS_URL: url })).toMatch(/status: 'completed'/);
    const check = join(project, "check.js");
    writeFileSync(
      check,
      kind === "esm"
        ? `import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";
const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL }) });
const s = await progress.get("import-42");
await progress.close();
console.log(JSON.stringify({ status: s.status, progress: s.progress, current: s.current, total: s.total }));
`
        : `const { createProgress } = require("progresscast");
const { nodeRedis } = require("progresscast/node-redis");
const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL }) });
progress.get("import-42").then(async (s) => {
  await progress.close();
  console.log(JSON.stringify({ status: s.status, progress: s.progress, current: s.current, total: s.total }));
});
`,
    );
    expect(JSON.parse(await node(check, { REDIS_URL: url }))).toEqual({
      status: "completed",
      progress: 100,
      current: 1000,
      total: 1000,
    });
  });

  it("the CommonJS app typechecks its requires against the CommonJS types (node16 resolution, checkJs)", async () => {
    cpSync(join(root, "examples/quick-start/worker.cjs"), join(cjs, "quick-start.js"));
    writeFileSync(
      join(cjs, "typed.js"),
      `${specifiers.map((s, i) => `const entry${i} = require(${JSON.stringify(s)});`).join("\n")}
const { createProgress } = require("progresscast");
const { memory } = require("progresscast/memory");
// @ts-expect-error prefix is a string: an untyped require would let this through
createProgress({ port: memory(), prefix: 1 });
module.exports = [${specifiers.map((_, i) => `entry${i}`).join(", ")}];
`,
    );
    writeFileSync(
      join(cjs, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2023", "DOM"],
          module: "Node16",
          moduleResolution: "Node16",
          allowJs: true,
          checkJs: true,
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
        },
        include: ["quick-start.js", "typed.js"],
      }),
    );
    const checked = await tsc(cjs);
    expect(checked.stdout + checked.stderr).toBe("");
    expect(checked.code).toBe(0);
  });

  it("the progresscast command runs from the installed package, in both apps: --help, publish, inspect", async () => {
    for (const [project, op] of [
      [esm, "cli-1"],
      [cjs, "cli-2"],
    ] as const) {
      const bin = join(project, "node_modules", ".bin", "progresscast");
      const help = await run(bin, ["--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Usage: progresscast <command>");
      const published = await run(bin, ["publish", op, "--progress", "40", "--redis", redis.url, "--json"]);
      expect(published.stderr).toBe("");
      expect(published.code).toBe(0);
      expect(JSON.parse(published.stdout)).toMatchObject({ outcome: "published", seq: 1 });
      const inspected = await run(bin, ["inspect", op, "--redis", redis.url]);
      expect(inspected.code).toBe(0);
      expect(inspected.stdout).toContain("40");
    }
  });

  it("the README's snippets typecheck against the installed package, and the task worker runs", async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const snippets = [...readme.matchAll(/<!-- from (examples\/\S+\.tsx?) -->\n```/g)].map((m) => m[1] ?? "");
    expect(snippets.length).toBeGreaterThanOrEqual(10);
    for (const file of snippets) {
      mkdirSync(dirname(join(esm, file)), { recursive: true });
      cpSync(join(root, file), join(esm, file));
    }
    // Deno's globals, for the Deno snippet (Deno itself runs it in test/examples).
    writeFileSync(
      join(esm, "deno.d.ts"),
      `declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(options: { port: number; hostname: string }, handler: (request: Request) => Response | Promise<Response>): unknown;
};
`,
    );
    writeFileSync(
      join(esm, "tsconfig.json"),
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
    const checked = await tsc(esm);
    expect(checked.stdout + checked.stderr).toBe("");
    expect(checked.code).toBe(0);

    const source = readFileSync(join(esm, "examples/task/import-job.ts"), "utf8");
    const worker = join(esm, "import-job.js");
    writeFileSync(worker, transformSync(source, { loader: "ts", format: "esm", target: "node20" }).code);
    await node(worker, { REDIS_URL: redis.url });
    const check = join(esm, "check-task.js");
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

  it("every link of the packed README can be followed from the npm page", () => {
    const packed = join(esm, "node_modules", "progresscast");
    const readme = readFileSync(join(packed, "README.md"), "utf8");
    const shipped = new Set(files.map((f) => f.replace(/^package\//, "")));
    const tracked = new Set(execFileSync("git", ["ls-files"], { cwd: root, encoding: "utf8" }).trim().split("\n"));
    const problems = deadLinks(readme, {
      repository: REPOSITORY,
      shipped,
      tracked,
      markdown: (path) => {
        const at = shipped.has(path) ? join(packed, path) : join(root, path);
        return existsSync(at) ? readFileSync(at, "utf8") : undefined;
      },
    });
    expect(problems).toEqual([]);
    // The check reaches both kinds of link.
    expect(readme).toMatch(/\]\(https:\/\/github\.com\/progresscast\/progresscast\/blob\/main\/docs\//);
    expect(readme).toMatch(/\]\((?!https?:|#)[^)]+\)/);
  });
});

describe("README links", () => {
  const context = {
    repository: REPOSITORY,
    shipped: new Set(["README.md", "LICENSE", "lua/append.lua"]),
    tracked: new Set(["README.md", "LICENSE", "lua/append.lua", "docs/guide.md", "python/pyproject.toml"]),
    markdown: (path: string) => (path === "docs/guide.md" ? "# Guide\n\n## Snapshot merge rules\n" : undefined),
  };

  it("accepts shipped relative links, repository links to files and folders it holds, and anchors that exist", () => {
    const readme = `# Title

## Re-running an operation

See [the license](LICENSE), [the script](./lua/append.lua), [rules](${REPOSITORY}blob/main/docs/guide.md#snapshot-merge-rules),
[python](${REPOSITORY}tree/main/python), [issues](${REPOSITORY}issues), [above](#re-running-an-operation), [npm](https://npmjs.com).

\`\`\`ts
const a = b[0](c); // not a link: [x](nowhere.md)
\`\`\`
`;
    expect(deadLinks(readme, context)).toEqual([]);
  });

  it("names a relative link to what is not shipped, a repository link to nothing, and a missing anchor", () => {
    const readme = `# Title

[security](SECURITY.md), [guide](docs/guide.md), [gone](${REPOSITORY}blob/main/docs/gone.md),
[anchor](${REPOSITORY}blob/main/docs/guide.md#no-such-heading), [here](#nowhere), [up](../x.md)
`;
    expect(deadLinks(readme, context)).toEqual([
      expect.stringMatching(/^SECURITY\.md: the package does not ship SECURITY\.md/),
      expect.stringMatching(/^docs\/guide\.md: the package does not ship/),
      expect.stringMatching(/gone\.md: the repository has no file docs\/gone\.md/),
      expect.stringMatching(/#no-such-heading: docs\/guide\.md has no heading/),
      expect.stringMatching(/^#nowhere: no heading/),
      expect.stringMatching(/^\.\.\/x\.md: leads out of the package/),
    ]);
  });
});
