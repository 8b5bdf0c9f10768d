import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ioredis } from "../../src/adapters/ioredis/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { APPEND_NODE_SCRIPT, APPEND_SCRIPT, SCOPE_SCRIPT } from "../../src/redis/scripts.ts";
import { slotOf, slotTag } from "../../src/redis/slot.ts";
import { testAdapter, uniquePrefix } from "../contract/suite.ts";
import { type ClusterInspector, clusterInspector } from "../support/cluster-inspector.ts";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.ts";

// One cluster (3 masters, 3 replicas) for the whole file.
let cluster: RedisCluster | undefined;
let starting: Promise<RedisCluster> | undefined;
const shared = (): Promise<RedisCluster> => {
  starting ??= startRedisCluster().then((c) => {
    cluster = c;
    return c;
  });
  return starting;
};
afterAll(async () => {
  await cluster?.close();
});

const seeds = (c: RedisCluster) => c.nodes.slice(0, 3).map((n) => ({ host: "127.0.0.1", port: n.port }));

testAdapter("ioredis cluster", async () => {
  const c = await shared();
  const inspector = await clusterInspector(c.rootNodes);
  return {
    port: () => ioredis({ cluster: { nodes: seeds(c) }, connectTimeoutMs: 3000 }),
    inspect: inspector,
    close: async () => {
      await inspector.close();
    },
  };
});

describe("ioredis cluster: round trips, connections, failover", () => {
  let c: RedisCluster;
  let inspector: ClusterInspector;
  beforeAll(async () => {
    c = await shared();
    inspector = await clusterInspector(c.rootNodes);
  });
  afterAll(async () => {
    await inspector?.close();
  });

  const connections = async (): Promise<number> => {
    let n = 0;
    for (const list of await inspector.each(["CLIENT", "LIST"])) n += String(list).trim().split("\n").length;
    return n;
  };

  it("a publish is one script call; a batch is one script call per master, whatever the slots it touches; the scope copy is one more per scope slot", async () => {
    const progress = new Progress({
      port: ioredis({ cluster: { nodes: seeds(c) } }),
      prefix: uniquePrefix(),
      logger: {},
    });
    // Every master knows the scripts (otherwise a first call is EVALSHA, NOSCRIPT, then EVAL).
    await inspector.each(["SCRIPT", "LOAD", APPEND_SCRIPT]);
    await inspector.each(["SCRIPT", "LOAD", APPEND_NODE_SCRIPT]);
    await inspector.each(["SCRIPT", "LOAD", SCOPE_SCRIPT]);
    await progress.publish("rt", { progress: 1 });
    const scripts = () => inspector.calls(["evalsha", "eval"]);
    let before = await scripts();
    await progress.publish("rt", { progress: 2 });
    expect((await scripts()) - before).toBe(1);
    const ops = Array.from({ length: 60 }, (_, i) => `rt-${i}`);
    const slots = new Set(ops.map((op) => slotOf(op))).size;
    before = await scripts();
    await Promise.all(ops.map((op) => progress.publish(op, { progress: 3 })));
    // The first publish goes alone (nothing in flight), the rest in one batch: one call per master (3), not per slot.
    expect(slots).toBeGreaterThan(30);
    expect((await scripts()) - before).toBeLessThanOrEqual(3 + 1);
    before = await scripts();
    await progress.publish("scoped", { progress: 4 }, { scope: "tenant-1" });
    expect((await scripts()) - before).toBe(2);
    await progress.close();
  });

  it("300 watchers on 100 operations in ~100 slots hold O(masters) connections, and all get every event", async () => {
    const base = await connections();
    const progress = new Progress({
      port: ioredis({ cluster: { nodes: seeds(c) } }),
      prefix: uniquePrefix(),
      logger: {},
      estimate: false,
    });
    const seen = new Array<number>(300).fill(0);
    const watchers = Array.from({ length: 300 }, async (_, i) => {
      for await (const item of progress.watch(`op-${i % 100}`)) if (item.kind === "event") seen[i] = (seen[i] ?? 0) + 1;
    });
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish(`op-${i}`, { progress: 50 })));
    await new Promise((r) => setTimeout(r, 200));
    // Per master: one command connection and one sharded subscriber (3 masters); the slots refresh may add one.
    expect((await connections()) - base).toBeLessThanOrEqual(7);
    await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish(`op-${i}`, { status: "completed" })));
    await Promise.all(watchers);
    expect(seen.every((n) => n === 2)).toBe(true);
    await progress.close();
  });

  it("a Cluster passed in (without sharded subscribers, RESP3) is used as is and never closed", async () => {
    const client = new Cluster(seeds(c));
    const progress = new Progress({ port: ioredis({ client }), prefix: uniquePrefix(), logger: {} });
    expect(await progress.publish("own", { progress: 1 }, { scope: "s" })).toMatchObject({ ok: true });
    const watching = (async () => {
      for await (const item of progress.watch("own"))
        if (item.kind === "event" && item.event.status === "completed") return item.event.seq;
    })();
    await new Promise((r) => setTimeout(r, 100));
    await progress.publish("own", { status: "completed" }, { scope: "s" });
    expect(await watching).toBe(2);
    expect((await progress.history({ scope: "s" })).map((e) => e.op)).toEqual(["own", "own"]);
    await progress.close();
    expect(client.status).toBe("ready");
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
  });

  it("resharding slots with live keys (MOVED, ASK) while jobs publish and a client watches: nothing lost", async () => {
    const masters = (await c.topology()).filter((n) => n.role === "master" && !n.failed && n.slots.length > 0);
    const [from, to] = masters;
    if (!from || !to) throw new Error("the cluster has fewer than two masters");
    const lowest = from.slots[0]?.[0] ?? 0;
    // Operations whose keys live in the slots the reshard moves first (the source's lowest).
    const ops = [0, 1, 2].map((i) => slotTag(lowest + i));
    const prefix = uniquePrefix();
    const publisher = new Progress({
      port: ioredis({ cluster: { nodes: seeds(c) } }),
      prefix,
      logger: {},
      throttle: false,
      retry: { attempts: 20, minDelayMs: 50, maxDelayMs: 300 },
    });
    const server = new Progress({ port: ioredis({ cluster: { nodes: seeds(c) } }), prefix, logger: {} });
    const done = ops.map(async (op) => {
      const seqs: number[] = [];
      for await (const item of server.watch(op)) if (item.kind === "event") seqs.push(item.event.seq);
      return seqs;
    });
    await new Promise((r) => setTimeout(r, 300));
    let stop = false;
    const jobs = ops.map(async (op) => {
      let written = 0;
      for (let p = 1; !stop && p < 99; p++) {
        if ((await publisher.publish(op, { progress: p })).ok) written++;
        await new Promise((r) => setTimeout(r, 10));
      }
      return written;
    });
    const moved = await c.reshard({ from: from.port, to: to.port, count: 3 });
    expect(moved).toEqual([lowest, lowest + 1, lowest + 2]);
    stop = true;
    await Promise.all(jobs);
    const finished = await Promise.all(ops.map((op) => publisher.publish(op, { status: "completed" })));
    expect(finished.every((r) => r.ok)).toBe(true);
    const seen = await Promise.all(done);
    for (const [i, seqs] of seen.entries()) {
      const last = finished[i];
      // In order, no gap: every seq from the first seen to the terminal one.
      expect(seqs.at(-1)).toBe(last?.ok ? last.seq : -1);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => (seqs[0] ?? 0) + k));
    }
    await publisher.close();
    await server.close();
  }, 90_000);

  it("a master failover while jobs publish and clients watch: no terminal event lost, watchers go on", async () => {
    const prefix = uniquePrefix();
    const publisher = new Progress({
      port: ioredis({ cluster: { nodes: seeds(c) } }),
      prefix,
      logger: {},
      throttle: false,
      retry: { attempts: 20, minDelayMs: 50, maxDelayMs: 300 },
    });
    const server = new Progress({ port: ioredis({ cluster: { nodes: seeds(c) } }), prefix, logger: {} });
    const ops = Array.from({ length: 12 }, (_, i) => `fo-${i}`);
    const target = slotOf(ops[0] as string);
    const done = ops.map(async (op) => {
      const statuses: string[] = [];
      for await (const item of server.watch(op)) if (item.kind === "event") statuses.push(item.event.status);
      return statuses;
    });
    await new Promise((r) => setTimeout(r, 300));
    let stop = false;
    const jobs = ops.map(async (op) => {
      for (let p = 1; !stop && p < 99; p++) {
        await publisher.publish(op, { progress: p });
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    await c.failover(target);
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(jobs);
    const finished = await Promise.all(ops.map((op) => publisher.publish(op, { status: "completed" })));
    expect(finished.every((r) => r.ok)).toBe(true);
    const seen = await Promise.all(done);
    for (const statuses of seen) expect(statuses[statuses.length - 1]).toBe("completed");
    for (const op of ops) expect(await server.get(op)).toMatchObject({ status: "completed" });
    await publisher.close();
    await server.close();
  }, 60_000);
});
