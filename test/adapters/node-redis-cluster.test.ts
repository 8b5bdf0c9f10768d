import { createCluster } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { createProgress, isProgressValidationError, type ProgressValidationError } from "../../src/index.ts";
import { APPEND_NODE_SCRIPT, SCOPE_SCRIPT, SCOPE_SHA } from "../../src/redis/scripts.ts";
import { slotOf } from "../../src/redis/slot.ts";
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

testAdapter("node-redis cluster", async () => {
  const c = await shared();
  const inspector = await clusterInspector(c.rootNodes);
  return {
    port: () => nodeRedis({ cluster: { rootNodes: c.rootNodes }, connectTimeoutMs: 2000 }),
    inspect: inspector,
    close: async () => {
      await inspector.close();
    },
  };
});

describe("node-redis cluster: round trips and connections", () => {
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
      port: nodeRedis({ cluster: { rootNodes: c.rootNodes } }),
      prefix: uniquePrefix(),
      logger: {},
    });
    await progress.publish("rt", { progress: 1 });
    const scripts = () => inspector.calls(["evalsha", "eval"]);
    let before = await scripts();
    await progress.publish("rt", { progress: 2 });
    expect((await scripts()) - before).toBe(1);
    const ops = Array.from({ length: 60 }, (_, i) => `rt-${i}`);
    const slots = new Set(ops.map((op) => slotOf(op))).size;
    // A first batch loads the script on every master (concurrent calls may each meet NOSCRIPT once).
    await Promise.all(ops.map((op) => progress.publish(op, { progress: 3 })));
    before = await scripts();
    await Promise.all(ops.map((op) => progress.publish(op, { progress: 4 })));
    // The first publish goes alone (nothing in flight), the rest in one batch: one call per master (3), not per slot.
    expect(slots).toBeGreaterThan(30);
    expect((await scripts()) - before).toBeLessThanOrEqual(3 + 1);
    // Once the scope script is loaded on the scope's master (the first call may need EVAL after NOSCRIPT):
    await progress.publish("scoped", { progress: 5 }, { scope: "tenant-1" });
    before = await scripts();
    await progress.publish("scoped", { progress: 6 }, { scope: "tenant-1" });
    expect((await scripts()) - before).toBe(2);
    await progress.close();
  });

  it("a per-master call that meets a key of another master writes nothing and answers moved (the batch then goes per slot)", async () => {
    // Slots 0-5460 and 10923-16383 are on different masters (redis-cli --cluster create with 3 masters).
    const low = Array.from({ length: 500 }, (_, i) => `mv-${i}`).find((op) => slotOf(op) < 5000) ?? "";
    const high = Array.from({ length: 500 }, (_, i) => `mv-${i}`).find((op) => slotOf(op) > 11_000) ?? "";
    const prefix = uniquePrefix();
    const keysOf = (op: string) => [`${prefix}:{${op}}:events`, `${prefix}:{${op}}:state`, `${prefix}:{${op}}:events`];
    const keys = [...keysOf(low), ...keysOf(high)];
    const item = (op: string) => ["0", "", "8", "v", "1", "op", op, "seq", "0", "status", "running"];
    const args = [String(keys.length), ...keys, "0", "60", "100", "60", "2", ...item(low), ...item(high)];
    const reply = await inspector.send(keys[0] ?? "", ["EVAL", APPEND_NODE_SCRIPT, "1", keys[0] ?? "", ...args]);
    expect(reply).toBe("moved");
    expect(await inspector.send(keys[0] ?? "", ["EXISTS", keys[0] ?? ""])).toBe(0);
    expect(await inspector.send(keys[3] ?? "", ["EXISTS", keys[3] ?? ""])).toBe(0);
  });

  it("the scope script's SHA matches SCRIPT LOAD", async () => {
    expect(await inspector.send("x", ["SCRIPT", "LOAD", SCOPE_SCRIPT])).toBe(SCOPE_SHA);
  });

  it("300 watchers on 100 operations in ~100 slots hold O(masters) connections, and all get every event", async () => {
    const base = await connections();
    const progress = new Progress({
      port: nodeRedis({ cluster: { rootNodes: c.rootNodes } }),
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
    // One command connection and one sharded subscriber per master (3 masters).
    expect((await connections()) - base).toBeLessThanOrEqual(6);
    await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish(`op-${i}`, { status: "completed" })));
    await Promise.all(watchers);
    expect(seen.every((n) => n === 2)).toBe(true);
    await progress.close();
  });

  it("a cluster client passed in is used as is and never closed", async () => {
    const client = createCluster({ rootNodes: c.rootNodes });
    await client.connect();
    const progress = new Progress({ port: nodeRedis({ client }), prefix: uniquePrefix(), logger: {} });
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
    expect(client.isOpen).toBe(true);
    expect(await client.sendCommand("k", false, ["PING"])).toBe("PONG");
    client.destroy();
  });
});

describe("node-redis cluster: legacy mode", () => {
  it("refuses old-format writes (their keys are not in the operation's slot) with an error naming `legacy`; reading old entries is accepted", async () => {
    const c = await shared();
    const port = nodeRedis({ cluster: { rootNodes: c.rootNodes } });
    try {
      let caught: unknown;
      try {
        createProgress({ port, legacy: { layout: "chunking" } });
      } catch (error) {
        caught = error;
      }
      expect(isProgressValidationError(caught)).toBe(true);
      expect((caught as ProgressValidationError).field).toBe("legacy");
      expect(() => createProgress({ port, legacy: "operations" })).toThrow(/Redis Cluster/);
      const reader = createProgress({ port, prefix: uniquePrefix(), legacy: { layout: "chunking", write: false } });
      await reader.publish("lg", { progress: 5 });
      expect((await reader.get("lg"))?.progress).toBe(5);
    } finally {
      await port.close();
    }
  });
});
