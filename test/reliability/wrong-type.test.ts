import { Redis } from "@upstash/redis";
import { createClient } from "redis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ioredis } from "../../src/adapters/ioredis/index.ts";
import { memory } from "../../src/adapters/memory/index.ts";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { UpstashClient } from "../../src/adapters/upstash/client.ts";
import { upstash } from "../../src/adapters/upstash/index.ts";
import { createUpstashPort } from "../../src/adapters/upstash/port.ts";
import { isBackendError } from "../../src/core/errors.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import { slotOf } from "../../src/redis/slot.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { clusterInspector } from "../support/cluster-inspector.ts";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer } from "../support/upstash-server.ts";
import { collect, seqs, until } from "./helpers.ts";

type Closable = { close(): Promise<unknown> };

/** How each backend under test is built over a fresh redis-server; `upstash` polls through a local REST server. */
const backends: ReadonlyArray<{
  name: string;
  port(server: RedisServer, open: Closable[]): Promise<() => StreamPort>;
}> = [
  { name: "node-redis", port: async (server) => () => nodeRedis({ url: server.url }) },
  { name: "ioredis", port: async (server) => () => ioredis({ url: server.url }) },
  {
    name: "upstash (polling)",
    port: async (server, open) => {
      const rest = await startUpstashServer({ redisUrl: server.url });
      open.push(rest);
      return () => upstash({ url: rest.url, token: rest.token, pollMinMs: 20, pollMaxMs: 100 });
    },
  },
];

/** Calls per command (lower case) the server has processed, from INFO commandstats. */
async function commandCalls(raw: { sendCommand(args: string[]): Promise<unknown> }): Promise<Map<string, number>> {
  const info = String(await raw.sendCommand(["INFO", "commandstats"]));
  const out = new Map<string, number>();
  for (const line of info.split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m?.[1] && m[2]) out.set(m[1], Number(m[2]));
  }
  return out;
}

describe.each(backends)("a watched key overwritten with another type ($name)", ({ port }) => {
  const open: Closable[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  it("ends only the watches of that key, at once, with the reason, in one extra round trip; the others go on", async () => {
    const server = await startRedis();
    open.push(server);
    const makePort = await port(server, open);
    const prefix = uniquePrefix();
    // The blocking reader: a shared read over every watched key, which one bad key would fail.
    const options = { prefix, logger: {}, throttle: false as const, blockMs: 200, liveChannels: false };
    const publisher = new Progress({ port: makePort(), ...options });
    const watching = new Progress({ port: makePort(), ...options });
    open.push(publisher, watching);
    const raw = createClient({ url: server.url, RESP: 2 });
    await raw.connect();
    open.push({ close: () => raw.quit() });

    // 200 watched keys: job-1, job-2 and 198 others.
    const ops = Array.from({ length: 200 }, (_, i) => `job-${i + 1}`);
    for (const op of ops) await publisher.publish(op, { status: "running", progress: 1 });
    const watches = new Map(ops.map((op) => [op, collect(watching.watch(op))]));
    const one = watches.get("job-1");
    const two = watches.get("job-2");
    if (!one || !two) throw new Error("unreachable");
    const twoAgain = collect(watching.watch("job-2"));
    await until(() => [...watches.values(), twoAgain].every((w) => w.items.length > 0), "every snapshot", 30_000);
    const before = await commandCalls(raw);

    // Someone replaces job-2's stream with a string while the reader waits on every key.
    const key = watching.streamKey("job-2");
    await raw.del(key);
    await raw.set(key, "not a stream");
    const started = Date.now();
    await Promise.all([two.done, twoAgain.done]);
    const ended = Date.now() - started;
    for (const w of [two, twoAgain]) {
      expect(isBackendError(w.error)).toBe(true);
      expect(String((w.error as Error).message)).toContain(key);
    }
    // Ended at the first failed read, not after maxReadFailures retries with backoff (10 by default, seconds).
    expect(ended).toBeLessThan(5000);

    // The key was found by one TYPE per key of the failed read, not by reading every watched key again.
    const after = await commandCalls(raw);
    const grew = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(grew("type")).toBe(ops.length);
    expect(grew("evalsha") + grew("eval")).toBeLessThan(5);
    expect(grew("xrange")).toBeLessThan(5);

    // The other watchers never noticed.
    for (let p = 2; p <= 5; p++) await publisher.publish("job-1", { progress: p });
    await publisher.publish("job-1", { status: "completed" });
    await one.done;
    expect(one.error).toBeUndefined();
    expect(seqs(one.items)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const [op, w] of watches) if (op !== "job-2") expect(w.error).toBeUndefined();
  }, 60_000);
});

describe("a watched key overwritten with another type, where the backend names the key or cannot", () => {
  const open: Closable[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  const options = { logger: {}, throttle: false as const, blockMs: 200, liveChannels: false };

  it("memory: the wait names the key holding a hash; only its watches end", async () => {
    const port = memory();
    const progress = new Progress({ port, prefix: uniquePrefix(), ...options });
    open.push(progress);
    await progress.publish("job-1", { status: "running", progress: 1 });
    await progress.publish("job-2", { status: "running", progress: 1 });
    const one = collect(progress.watch("job-1"));
    const two = collect(progress.watch("job-2"));
    await until(() => one.items.length > 0 && two.items.length > 0, "both snapshots");

    // A write whose snapshot key is job-2's stream turns that key into a hash.
    const key = progress.streamKey("job-2");
    await port.append(
      [
        {
          eventsKey: `${key}:other`,
          stateKey: key,
          fields: { status: "running" },
          terminal: false,
          allowBackwards: false,
          allowAfterTerminal: false,
        },
      ],
      { ttlSeconds: 60, maxLen: 100, terminalTtlSeconds: 60 },
    );
    expect(port.inspect(key)?.type).toBe("hash");
    await two.done;
    expect(isBackendError(two.error)).toBe(true);
    expect(String((two.error as Error).message)).toContain(key);

    await progress.publish("job-1", { status: "completed" });
    await one.done;
    expect(one.error).toBeUndefined();
    expect(seqs(one.items)).toEqual([1, 2]);
  });

  it("a client that cannot ask a key's type: the reader finds the key by reading each, and ends only its watches", async () => {
    const server = await startRedis();
    open.push(server);
    const rest = await startUpstashServer({ redisUrl: server.url });
    open.push(rest);
    // An @upstash/redis client whose pipelines lack type(): the port cannot name the key.
    const full = new Redis({ url: rest.url, token: rest.token, automaticDeserialization: false });
    const client: UpstashClient = {
      evalsha: (sha, keys, args) => full.evalsha(sha, keys, args),
      eval: (script, keys, args) => full.eval(script, keys, args),
      pipeline: () => {
        const p = full.pipeline();
        return {
          hgetall: (key) => p.hgetall(key),
          xrange: (key: string, start: string, end: string, count?: number) => p.xrange(key, start, end, count),
          xrevrange: (key, end, start, count) => p.xrevrange(key, end, start, count),
          exec: () => p.exec(),
        };
      },
      xread: (keys, ids, o) => full.xread(keys, ids, o),
      xreadgroup: (group, consumer, key, id, o) => full.xreadgroup(group, consumer, key, id, o),
      xack: (key, group, ids) => full.xack(key, group, ids),
      xautoclaim: (key, group, consumer, minIdle, start, o) => full.xautoclaim(key, group, consumer, minIdle, start, o),
      xgroup: (key, o) => full.xgroup(key, o),
      xinfo: (key, o) => full.xinfo(key, o),
    };
    const progress = new Progress({
      port: createUpstashPort(client, { pollMinMs: 20, pollMaxMs: 100 }),
      prefix: uniquePrefix(),
      ...options,
    });
    open.push(progress);
    const raw = createClient({ url: server.url, RESP: 2 });
    await raw.connect();
    open.push({ close: () => raw.quit() });

    await progress.publish("job-1", { status: "running", progress: 1 });
    await progress.publish("job-2", { status: "running", progress: 1 });
    const one = collect(progress.watch("job-1"));
    const two = collect(progress.watch("job-2"));
    await until(() => one.items.length > 0 && two.items.length > 0, "both snapshots");

    const key = progress.streamKey("job-2");
    await raw.del(key);
    await raw.set(key, "not a stream");
    await two.done;
    expect(isBackendError(two.error)).toBe(true);
    expect(String((two.error as Error).message)).toContain(key);
    expect(rest.commands.some((c) => c[0]?.toUpperCase() === "TYPE")).toBe(false);

    await progress.publish("job-1", { status: "completed" });
    await one.done;
    expect(one.error).toBeUndefined();
    expect(seqs(one.items)).toEqual([1, 2]);
  }, 30_000);
});

describe("a watched key overwritten with another type, on Redis Cluster", () => {
  let cluster: Promise<RedisCluster> | undefined;
  const shared = (): Promise<RedisCluster> => {
    cluster ??= startRedisCluster({ masters: 3, replicas: 0 });
    return cluster;
  };
  const open: Closable[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  afterAll(async () => {
    await (await cluster)?.close();
  });

  it.each([
    { name: "node-redis", port: (c: RedisCluster): StreamPort => nodeRedis({ cluster: { rootNodes: c.rootNodes } }) },
    {
      name: "ioredis",
      port: (c: RedisCluster): StreamPort =>
        ioredis({ cluster: { nodes: c.nodes.slice(0, 3).map((n) => ({ host: "127.0.0.1", port: n.port })) } }),
    },
  ])(
    "$name: asks the type of the failed slot's keys only, and ends only that key's watches",
    async ({ port }) => {
      const c = await shared();
      const inspector = await clusterInspector(c.rootNodes);
      open.push(inspector);
      const options = {
        prefix: uniquePrefix(),
        logger: {},
        throttle: false as const,
        blockMs: 200,
        liveChannels: false,
      };
      const publisher = new Progress({ port: port(c), ...options });
      const watching = new Progress({ port: port(c), ...options });
      open.push(publisher, watching);

      const ops = Array.from({ length: 50 }, (_, i) => `job-${i + 1}`);
      for (const op of ops) await publisher.publish(op, { status: "running", progress: 1 });
      const watches = new Map(ops.map((op) => [op, collect(watching.watch(op))]));
      const one = watches.get("job-1");
      const two = watches.get("job-2");
      if (!one || !two) throw new Error("unreachable");
      await until(() => [...watches.values()].every((w) => w.items.length > 0), "every snapshot", 30_000);
      const key = watching.streamKey("job-2");
      const sameSlot = ops.filter((op) => slotOf(watching.streamKey(op)) === slotOf(key)).length;
      const before = await inspector.calls(["type", "evalsha", "eval", "xrange"]);
      const typesBefore = await inspector.calls(["type"]);

      await inspector.send(key, ["DEL", key]);
      await inspector.send(key, ["SET", key, "not a stream"]);
      await two.done;
      expect(isBackendError(two.error)).toBe(true);
      expect(String((two.error as Error).message)).toContain(key);

      const types = (await inspector.calls(["type"])) - typesBefore;
      const reads = (await inspector.calls(["type", "evalsha", "eval", "xrange"])) - before - types;
      expect(types).toBe(sameSlot);
      expect(reads).toBeLessThan(5);

      await publisher.publish("job-1", { status: "completed" });
      await one.done;
      expect(one.error).toBeUndefined();
      expect(seqs(one.items)).toEqual([1, 2]);
      for (const [op, w] of watches) if (op !== "job-2") expect(w.error).toBeUndefined();
    },
    60_000,
  );
});
