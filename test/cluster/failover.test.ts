/**
 * Redis Cluster topology changes while jobs publish and clients watch: a
 * replica promoted with CLUSTER FAILOVER, a master killed, a slot with live
 * keys moved by `redis-cli --cluster reshard`. No terminal event is lost,
 * watchers carry on after the change, nothing hangs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { WatchItem } from "../../src/core/deliver/watch.ts";
import { Progress } from "../../src/core/progress.ts";
import { slotOf } from "../../src/redis/slot.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.ts";

/** Operation ids whose keys live in `slot`. */
function opsInSlot(slot: number, count: number, label: string): string[] {
  const out: string[] = [];
  for (let n = 0; out.length < count; n++) if (slotOf(`${label}-${n}`) === slot) out.push(`${label}-${n}`);
  return out;
}

interface Watched {
  readonly seqs: number[];
  readonly done: Promise<string>;
}

/** Watch an operation until its terminal event; resolves with the terminal status. */
function follow(progress: Progress, op: string): Watched {
  const seqs: number[] = [];
  const done = (async () => {
    for await (const item of progress.watch(op) as AsyncIterable<WatchItem>) {
      if (item.kind !== "event") continue;
      seqs.push(item.event.seq);
      if (item.event.status === "completed" || item.event.status === "failed") return item.event.status;
    }
    return "ended without a terminal event";
  })();
  return { seqs, done };
}

/** Publish progress on every op every `everyMs` until `stop` resolves, then complete each. */
async function jobs(progress: Progress, ops: readonly string[], stop: Promise<unknown>, everyMs = 40) {
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  let step = 0;
  const failures: string[] = [];
  while (!stopped) {
    step++;
    const results = await Promise.all(ops.map((op) => progress.publish(op, { progress: Math.min(99, step) })));
    for (const r of results) if (!r.ok && r.outcome === "failed") failures.push(r.error.name);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const terminal = await Promise.all(ops.map((op) => progress.publish(op, { status: "completed" })));
  return { steps: step, failures, terminal };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("node-redis on a changing cluster", { timeout: 120_000 }, () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const manager = (prefix = uniquePrefix()) =>
    new Progress({
      port: nodeRedis({ cluster: { rootNodes: cluster.rootNodes }, pollMs: 500 }),
      prefix,
      logger: {},
      estimate: false,
      retry: { attempts: 20, minDelayMs: 100, maxDelayMs: 500 },
    });

  const scenario = async (change: (slot: number) => Promise<unknown>, label: string) => {
    const prefix = uniquePrefix();
    const publisher = manager(prefix);
    const watcher = manager(prefix);
    const ops = Array.from({ length: 12 }, (_, i) => `${label}-${i}`);
    const watched = ops.map((op) => follow(watcher, op));
    await new Promise((r) => setTimeout(r, 200));
    const changed = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      return await change(slotOf(ops[0] as string));
    })();
    const run = await within(jobs(publisher, ops, changed), 60_000, "the jobs");
    expect(run.terminal.map((r) => r.ok)).toEqual(ops.map(() => true));
    const statuses = await within(Promise.all(watched.map((w) => w.done)), 30_000, "the watchers");
    expect(statuses).toEqual(ops.map(() => "completed"));
    for (const w of watched) {
      // In order, never twice: each seq above the previous one.
      expect(w.seqs.every((s, i) => i === 0 || s > (w.seqs[i - 1] ?? 0))).toBe(true);
    }
    for (const op of ops) expect((await publisher.get(op))?.status).toBe("completed");
    await publisher.close();
    await watcher.close();
    return run;
  };

  it("a replica promoted with CLUSTER FAILOVER while jobs publish and clients watch", async () => {
    const run = await scenario((slot) => cluster.failover(slot), "fo");
    expect(run.steps).toBeGreaterThan(3);
  });

  it("a master killed (SIGKILL) while jobs publish and clients watch", async () => {
    let killed = 0;
    await scenario(async (slot) => {
      const r = await cluster.killMaster(slot);
      killed = r.killed;
      return r;
    }, "kill");
    await cluster.restart(killed);
  });

  it("a slot with live keys moved by redis-cli --cluster reshard while jobs publish and clients watch", async () => {
    const masters = (await cluster.topology()).filter((n) => n.role === "master" && !n.failed && n.slots.length > 0);
    const [source, target] = masters;
    if (!source || !target) throw new Error("two masters needed");
    const lowest = Math.min(...source.slots.map(([a]) => a));
    const prefix = uniquePrefix();
    const publisher = manager(prefix);
    const watcher = manager(prefix);
    const ops = opsInSlot(lowest, 4, "moving");
    const watched = ops.map((op) => follow(watcher, op));
    const scoped = ops.map((op) => publisher.publish(op, { progress: 0 }, { scope: "mover" }));
    await Promise.all(scoped);
    await new Promise((r) => setTimeout(r, 200));
    let moved: number[] = [];
    const resharded = (async () => {
      await new Promise((r) => setTimeout(r, 200));
      moved = await cluster.reshard({ from: source.port, to: target.port, count: 1 });
    })();
    const run = await within(jobs(publisher, ops, resharded, 20), 60_000, "the jobs");
    expect(moved).toEqual([lowest]);
    expect(run.terminal.map((r) => r.ok)).toEqual(ops.map(() => true));
    expect(await within(Promise.all(watched.map((w) => w.done)), 30_000, "the watchers")).toEqual(
      ops.map(() => "completed"),
    );
    expect((await cluster.masterOf(lowest)).port).toBe(target.port);
    const count = Number(await cluster.cli(target.port, "CLUSTER", "COUNTKEYSINSLOT", String(lowest)));
    expect(count).toBeGreaterThanOrEqual(ops.length * 2);
    for (const op of ops) expect((await publisher.get(op))?.status).toBe("completed");
    await publisher.close();
    await watcher.close();
  });
});
