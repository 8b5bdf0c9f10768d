/**
 * The Deno and Cloudflare Worker examples in their own runtimes: `deno check`
 * and `deno run` on examples/deno, and examples/cloudflare-worker bundled with
 * esbuild (the workerd conditions) and run in workerd through miniflare, on
 * Upstash's REST protocol (a local server in front of a real Redis).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { follow } from "../../src/client/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";
import { run } from "../runtimes/run.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";
import { startExample } from "./support.ts";

const DENO = "node_modules/.bin/deno";
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

let redis: RedisServer;
let progress: Progress;

beforeAll(async () => {
  redis = await startRedis();
  progress = createProgress({ port: nodeRedis({ url: redis.url }), throttle: false, logger: {} });
});
afterAll(async () => {
  await progress?.close();
  await redis?.close();
});

/** `progresscast/...` -> the sources, as deno.json maps them. */
const sources: Plugin = {
  name: "progresscast-sources",
  setup(b) {
    const { exports } = JSON.parse(readFileSync(`${ROOT}deno.json`, "utf8")) as { exports: Record<string, string> };
    b.onResolve({ filter: /^progresscast(\/|$)/ }, (args) => {
      const subpath = args.path === "progresscast" ? "." : `./${args.path.slice("progresscast/".length)}`;
      const file = exports[subpath];
      return file ? { path: `${ROOT}${file.slice(2)}` } : { errors: [{ text: `no ${args.path}` }] };
    });
  },
};

async function sseText(response: Response): Promise<string> {
  return await response.text();
}

describe("examples in their runtimes", () => {
  it("deno/main.ts type-checks, answers 400 without ?op= and streams an operation", async () => {
    const checked = await run(DENO, ["check", "--config", "examples/deno/deno.json", "examples/deno/main.ts"], {
      env: { DENO_NO_UPDATE_CHECK: "1" },
      timeoutMs: 90_000,
    });
    expect(checked.code, checked.output).toBe(0);
    const app = await startExample(
      "examples/deno/main.ts",
      { REDIS_URL: redis.url, DENO_NO_UPDATE_CHECK: "1" },
      [DENO, "run", "--config", "examples/deno/deno.json", "--allow-net", "--allow-env", "--allow-read"],
      /Listening on (http:\/\/\S+?)\/?(\s|$)/i,
    );
    try {
      expect((await fetch(`${app.url}/`)).status).toBe(400);
      await progress.publish("deno-1", { status: "running", progress: 40 });
      const client = follow(`${app.url}/?op=deno-1`);
      await progress.publish("deno-1", { status: "completed", progress: 100 });
      await Promise.race([client.done, new Promise((r) => setTimeout(r, 60_000))]);
      client.close();
      expect(client.state?.status, app.output()).toBe("completed");
    } finally {
      await app.stop();
    }
  }, 240_000);

  describe("cloudflare-worker", () => {
    let rest: UpstashServer;
    let mf: Miniflare;

    beforeAll(async () => {
      rest = await startUpstashServer({ redisUrl: redis.url });
      const bundled = await build({
        entryPoints: ["examples/cloudflare-worker/src/index.ts"],
        bundle: true,
        write: false,
        format: "esm",
        platform: "browser",
        conditions: ["workerd", "worker", "browser"],
        target: "es2022",
        plugins: [sources],
        logLevel: "silent",
      });
      mf = new Miniflare({
        modules: true,
        script: bundled.outputFiles[0]?.text ?? "",
        compatibilityDate: "2025-09-01",
        bindings: { UPSTASH_REDIS_REST_URL: rest.url, UPSTASH_REDIS_REST_TOKEN: rest.token },
      });
      await mf.ready;
    }, 180_000);
    afterAll(async () => {
      await mf?.dispose();
      await rest?.close();
    });

    it("has a wrangler.toml naming its entry, answers 400 without ?op= and streams an operation", async () => {
      const toml = readFileSync("examples/cloudflare-worker/wrangler.toml", "utf8");
      expect(toml).toMatch(/^main = "src\/index.ts"$/m);
      const missing = await mf.dispatchFetch("http://worker.test/");
      expect(missing.status).toBe(400);
      await missing.text();
      await progress.publish("cf-1", { status: "running", progress: 20 });
      await progress.publish("cf-1", { status: "completed", progress: 100 });
      const response = await mf.dispatchFetch("http://worker.test/?op=cf-1");
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      const text = await sseText(response as unknown as Response);
      expect(text).toContain("event: snapshot");
      expect(text).toMatch(/"status":"completed"/);
    });
  });
});
