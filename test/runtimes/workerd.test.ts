/**
 * workerd (Cloudflare Workers) through miniflare: a Worker bundled from the
 * BUILT package (dist/, by `npm run build`) publishes through the Upstash
 * adapter to a local Upstash-compatible REST server in front of a real Redis.
 * Node then reads Redis directly: the events are under the documented keys,
 * with the documented fields. The Worker also serves `progress.sse` while Node
 * publishes to the same Redis (node-redis adapter, same default prefix).
 */
import { existsSync, readFileSync } from "node:fs";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";
import { scenarios } from "./scenarios.ts";
import { readSse, type SseHarness, sseLive, sseResume } from "./sse.ts";

const ENTRY = "test/runtimes/workerd/entry.js";
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The dist files entry.js needs, from package.json `exports`. */
function requiredDist(): string[] {
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as {
    exports: Record<string, { import?: { default?: string } }>;
  };
  return [".", "./memory", "./upstash"].map(
    (subpath) => pkg.exports[subpath]?.import?.default ?? `<no exports["${subpath}"].import>`,
  );
}

/** Bundle the Worker for workerd; fails if any library code came from src/ rather than dist/. */
async function bundleWorker(): Promise<string> {
  const missing = requiredDist().filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(
      `The workerd test runs the built package, but ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing: ` +
        "run `npm run build` (and check that tsup.config.ts builds every package.json subpath: `npm run check:exports`).",
    );
  }
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    target: "es2022",
    metafile: true,
    logLevel: "silent",
  });
  const fromSrc = Object.keys(result.metafile.inputs).filter((input) => input.startsWith("src/"));
  expect(fromSrc, "the Worker must import the built package, not the sources").toEqual([]);
  const commonJs = Object.keys(result.metafile.inputs).filter((input) => /^dist\/.*\.cjs$/.test(input));
  expect(commonJs, "the Worker must get the ES module build").toEqual([]);
  const output = result.outputFiles[0];
  if (!output) throw new Error("esbuild produced no output");
  return output.text;
}

interface RedisEntry {
  readonly id: string;
  readonly fields: Record<string, string>;
}

function pairs(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

describe("runtime: workerd (miniflare)", () => {
  let redis: RedisServer | undefined;
  let rest: UpstashServer | undefined;
  let mf: Miniflare | undefined;
  let inspector: ReturnType<typeof createClient> | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    rest = await startUpstashServer({ redisUrl: redis.url });
    inspector = createClient({ url: redis.url, RESP: 2 });
    await inspector.connect();
    mf = new Miniflare({
      modules: true,
      script: await bundleWorker(),
      // No nodejs_compat: the package must run on plain workerd.
      compatibilityDate: "2025-09-01",
      bindings: { UPSTASH_URL: rest.url, UPSTASH_TOKEN: rest.token },
    });
    await mf.ready;
  });
  afterAll(async () => {
    await mf?.dispose();
    await inspector?.close();
    await rest?.close();
    await redis?.close();
  });

  const fetchJson = async (path: string, init?: { method?: string }): Promise<Record<string, unknown>> => {
    if (!mf) throw new Error("miniflare did not start");
    const response = await mf.dispatchFetch(`http://worker.test${path}`, init);
    const text = await response.text();
    expect(response.status, `${init?.method ?? "GET"} ${path} answered ${response.status}: ${text}`).toBe(200);
    return JSON.parse(text) as Record<string, unknown>;
  };

  it("publishes through the upstash adapter and reads back with get and history", async () => {
    if (!rest || !inspector) throw new Error("backends did not start");
    const op = `wk-${Date.now().toString(36)}`;
    rest.reset();
    const body = await fetchJson(`/publish?op=${op}`, { method: "POST" });

    expect(body.backend).toBe("upstash");
    expect(body.results).toMatchObject([
      { ok: true, outcome: "published", seq: 1, cancelled: null },
      { ok: true, outcome: "published", seq: 2 },
      { ok: true, outcome: "published", seq: 3 },
      { ok: false, outcome: "refused", reason: "terminal", seq: 3 },
    ]);
    const ids = (body.results as { id?: string }[]).slice(0, 3).map((r) => r.id);
    expect(body.snapshot).toMatchObject({
      op,
      seq: 3,
      id: ids[2],
      status: "completed",
      progress: 100,
      current: 4,
      total: 4,
      message: "Done",
      cid: "worker-1",
      data: { runtime: "workerd" },
    });
    const history = body.history as { id: string; seq: number; status: string; progress: number }[];
    expect(history.map((e) => [e.id, e.seq, e.status, e.progress])).toEqual([
      [ids[0], 1, "running", 25],
      [ids[1], 2, "running", 50],
      [ids[2], 3, "completed", 100],
    ]);
    // It went over REST: the publishes are script calls on the REST server.
    expect(rest.requests).toBeGreaterThan(0);
    expect(rest.commands.some((c) => /^eval(sha)?$/i.test(c[0] ?? ""))).toBe(true);

    // Node reads Redis directly: the documented keys and fields.
    const raw = (await inspector.sendCommand(["XRANGE", `pc:{${op}}:events`, "-", "+"])) as [string, string[]][];
    const entries: RedisEntry[] = raw.map(([id, flat]) => ({ id, fields: pairs(flat) }));
    expect(entries.map((e) => e.id)).toEqual(ids);
    const [first, , last] = entries;
    expect(Object.keys(first?.fields ?? {}).slice(0, 5)).toEqual(["v", "op", "seq", "type", "status"]);
    expect(first?.fields).toMatchObject({
      v: "1",
      op,
      seq: "1",
      type: "progress",
      status: "running",
      progress: "25",
      current: "1",
      total: "4",
      message: "Chunked 1 of 4",
      cid: "worker-1",
      data: '{"runtime":"workerd"}',
    });
    expect(first?.fields.ts).toMatch(TS);
    expect(last?.fields).toMatchObject({ v: "1", op, seq: "3", status: "completed", progress: "100", message: "Done" });
    const state = pairs((await inspector.sendCommand(["HGETALL", `pc:{${op}}:state`])) as string[]);
    expect(state).toMatchObject({
      v: "1",
      op,
      seq: "3",
      id: ids[2],
      type: "progress",
      status: "completed",
      progress: "100",
      current: "4",
      total: "4",
      message: "Done",
      cid: "worker-1",
      ts: last?.fields.ts,
    });
    // Both keys carry a TTL; nothing else was written for this operation.
    for (const key of [`pc:{${op}}:events`, `pc:{${op}}:state`]) {
      expect(Number(await inspector.sendCommand(["PTTL", key])), `PTTL ${key}`).toBeGreaterThan(0);
    }
    expect(((await inspector.sendCommand(["KEYS", `pc:{${op}}:*`])) as string[]).sort()).toEqual([
      `pc:{${op}}:events`,
      `pc:{${op}}:state`,
    ]);
  });

  for (const backend of ["upstash", "memory"]) {
    it(`runs the shared runtime scenarios on ${backend}`, async () => {
      const body = await fetchJson(`/scenarios?backend=${backend}`);
      const results = body.results as { name: string; ok: boolean; error?: string }[];
      expect(results.map((r) => r.name)).toEqual(scenarios.map((s) => s.name));
      const failed = results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.error}`);
      expect(failed, failed.join("\n")).toEqual([]);
    });
  }

  /**
   * The Worker serves `GET /sse`; Node publishes with node-redis on the same
   * Redis and default prefix (`pc`) and reads the stream with XRANGE.
   */
  const harness = (publisher: Progress): SseHarness => ({
    async open(path, headers = {}) {
      if (!mf) throw new Error("miniflare did not start");
      return await mf.dispatchFetch(`http://worker.test${path}`, { headers });
    },
    async publish(op, update) {
      const r = await publisher.publish(op, update);
      if (!r.ok) throw new Error(`publish ${JSON.stringify(update)} on ${op}: ${JSON.stringify(r)}`);
      return r.id;
    },
    async streamIds(op) {
      if (!inspector) throw new Error("redis did not start");
      const raw = (await inspector.sendCommand(["XRANGE", `pc:{${op}}:events`, "-", "+"])) as [string, string[]][];
      return raw.map(([id]) => id);
    },
  });

  const withNodePublisher = async (run: (h: SseHarness) => Promise<void>): Promise<void> => {
    if (!redis) throw new Error("redis did not start");
    const publisher = createProgress({ port: nodeRedis({ url: redis.url }), logger: {} });
    try {
      await run(harness(publisher));
    } finally {
      await publisher.close();
    }
  };

  it("streams SSE: snapshot, history, live events published from Node, then closes after the terminal event", async () => {
    if (!rest) throw new Error("backends did not start");
    const server = rest;
    await withNodePublisher(async (h) => {
      await sseLive(h, `sse-${Date.now().toString(36)}`);
      // Closed means freed: the Worker's watch no longer polls the REST server.
      await new Promise((r) => setTimeout(r, 300));
      const requests = server.requests;
      await new Promise((r) => setTimeout(r, 600));
      expect(server.requests, "REST requests after the stream closed").toBe(requests);
    });
  }, 30_000);

  it("resumes SSE from Last-Event-ID (and ?after=): only the later events, then live ones", async () => {
    await withNodePublisher((h) => sseResume(h, `sse-resume-${Date.now().toString(36)}`));
  }, 30_000);

  it("holds the upstream subscribe stream while a client reads SSE, and ends it when the client aborts", async () => {
    if (!mf || !rest) throw new Error("backends did not start");
    const worker = mf;
    const server = rest;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const settle = async (done: () => boolean, ms: number): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!done() && Date.now() < deadline) await sleep(20);
    };
    await settle(() => server.openStreams === 0 && server.openRequests === 0, 5_000);
    expect(server.openStreams, "upstream streams open before the test").toBe(0);
    const op = `sse-live-${Date.now().toString(36)}`;
    await withNodePublisher(async (h) => {
      await h.publish(op, { status: "running", progress: 5 });
      const leave = new AbortController();
      // workerd notices a client that left when it next writes: a heartbeat every 500 ms bounds that.
      const response = await worker.dispatchFetch(`http://worker.test/sse?op=${op}&heartbeatMs=500`, {
        signal: leave.signal,
      });
      expect(response.status).toBe(200);
      if (!response.body) throw new Error("no SSE body");
      const read = readSse(response.body as AsyncIterable<Uint8Array>);
      await read.waitFor(1, 10_000);
      expect(read.messages[0]?.event).toBe("snapshot");
      await settle(() => server.openStreams === 1, 5_000);
      expect(server.openStreams, "the Worker holds one upstream subscribe stream").toBe(1);
      // Published from Node with node-redis: they reach the Worker over its upstream stream.
      for (let i = 1; i <= 3; i++) await h.publish(op, { progress: 5 + i });
      // After the snapshot: the event that started the operation, then the three published now.
      await read.waitFor(5, 10_000);
      expect(
        read.messages.slice(1).map((m) => [m.event, (JSON.parse(m.data) as { progress: number }).progress]),
      ).toEqual([
        ["progress", 5],
        ["progress", 6],
        ["progress", 7],
        ["progress", 8],
      ]);
      leave.abort();
      await read.closed.catch(() => undefined);
      await settle(() => server.openStreams === 0 && server.openRequests === 0, 10_000);
      expect(server.openStreams, "upstream subscribe streams left open after the client left").toBe(0);
      expect(server.openRequests, "upstream requests left open after the client left").toBe(0);
    });
  }, 30_000);

  it("answers 404 for an unknown route", async () => {
    if (!mf) throw new Error("miniflare did not start");
    const response = await mf.dispatchFetch("http://worker.test/nope");
    expect(response.status).toBe(404);
    await response.arrayBuffer();
  });
});
