/**
 * node-redis on Redis Cluster under `deno test`: `nodeRedis({ cluster })`
 * from the TypeScript sources, against a real cluster whose root nodes come
 * in `PROGRESSCAST_REDIS_CLUSTER` (comma-separated `redis://host:port`).
 * Batched publishes to operations in different slots, watchers of each,
 * get / history, cancel learned on publish, scope copies, and every event
 * arriving in order.
 *
 * Not named `*.test.ts` on purpose: test/runtimes/deno-cluster.test.ts
 * starts the cluster and runs this file alone. By hand:
 * `PROGRESSCAST_REDIS_CLUSTER=redis://127.0.0.1:7000 deno test --allow-net --allow-env --allow-read test/runtimes/deno/cluster.ts`
 *
 * @module
 */
import assert from "node:assert/strict";
import { createProgress, type Progress, type ProgressEvent } from "@progresscast/progresscast";
import { nodeRedis } from "@progresscast/progresscast/node-redis";
import { slotOf } from "../../../src/redis/slot.ts";
import { scenarios, uniquePrefix } from "../scenarios.ts";

const seeds = Deno.env.get("PROGRESSCAST_REDIS_CLUSTER");
const rootNodes = (seeds ?? "").split(",").flatMap((url) => (url ? [{ url }] : []));
const ignore = rootNodes.length === 0;

const manager = (prefix: string): Progress =>
  createProgress({
    port: nodeRedis({ cluster: { rootNodes }, pollMs: 500 }),
    prefix,
    logger: {},
    estimate: false,
  });

/** `count` operation ids, each in a slot of its own. */
function opsInDistinctSlots(label: string, count: number): string[] {
  const slots = new Set<number>();
  const ops: string[] = [];
  for (let n = 0; ops.length < count; n++) {
    const op = `${label}-${n}`;
    if (slots.has(slotOf(op))) continue;
    slots.add(slotOf(op));
    ops.push(op);
  }
  return ops;
}

/** Collect an operation's events until its terminal one. */
async function follow(progress: Progress, op: string, signal: AbortSignal): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  for await (const item of progress.watch(op, { signal })) {
    if (item.kind !== "event") continue;
    events.push(item.event);
    if (["completed", "failed", "cancelled"].includes(item.event.status)) break;
  }
  return events;
}

Deno.test({
  name: "node-redis cluster: batched publishes to many slots reach every watcher, in order; get, history, cancel",
  ignore,
  async fn() {
    const prefix = uniquePrefix();
    const publisher = manager(prefix);
    const watcher = manager(prefix);
    const stop = new AbortController();
    const deadline = setTimeout(() => stop.abort(), 25_000);
    try {
      const ops = opsInDistinctSlots("deno-cl", 12);
      const watched = ops.map((op) => follow(watcher, op, stop.signal));
      // Watchers subscribe to their slots' wake-up channels before the first event.
      await new Promise((r) => setTimeout(r, 300));

      const steps = 5;
      for (let step = 1; step <= steps; step++) {
        // Issued in one tick: the batcher sends them together, split into one script call per slot.
        const results = await Promise.all(
          ops.map((op) => publisher.publish(op, { current: step, total: steps + 1, message: `step ${step}` })),
        );
        for (const [i, r] of results.entries()) assert.ok(r.ok, `${ops[i]} step ${step}: ${JSON.stringify(r)}`);
        assert.deepEqual(
          results.map((r) => (r.ok ? r.seq : -1)),
          ops.map(() => step),
        );
      }

      // Cancel one operation: its job learns it on its next publish, then ends it.
      const [cancelled, ...rest] = ops;
      assert.ok(cancelled);
      assert.equal(await publisher.cancel(cancelled, "stop please"), true);
      const learned = await publisher.publish(cancelled, { message: "noticed" });
      assert.ok(learned.ok);
      assert.equal(learned.cancelled, "stop please");
      const ends = await Promise.all([
        publisher.publish(cancelled, { status: "cancelled", message: "stopped" }),
        ...rest.map((op) => publisher.publish(op, { status: "completed" })),
      ]);
      for (const r of ends) assert.ok(r.ok, JSON.stringify(r));

      const seen = await Promise.all(watched);
      for (const [i, events] of seen.entries()) {
        const op = ops[i] ?? "";
        const last: number = op === cancelled ? steps + 2 : steps + 1;
        // Every event, once, in order.
        assert.deepEqual(
          events.map((e) => e.seq),
          Array.from({ length: last }, (_, k) => k + 1),
          `${op}: seqs`,
        );
        assert.equal(events.at(-1)?.status, op === cancelled ? "cancelled" : "completed", `${op}: last status`);
        assert.ok(events.every((e) => e.op === op));
      }

      for (const op of rest) {
        const snapshot = await watcher.get(op);
        assert.equal(snapshot?.status, "completed", `${op}: snapshot`);
        assert.equal(snapshot?.progress, 100);
        const history = await watcher.history(op);
        assert.deepEqual(
          history.map((e) => `${e.seq}:${e.status}`),
          [...Array.from({ length: steps }, (_, k) => `${k + 1}:running`), `${steps + 1}:completed`],
          `${op}: history`,
        );
      }
      assert.equal((await watcher.get(cancelled))?.status, "cancelled");
      assert.equal(await watcher.get("deno-cl-never-published"), null);
    } finally {
      clearTimeout(deadline);
      stop.abort();
      await Promise.all([publisher.close(), watcher.close()]);
    }
  },
});

Deno.test({
  name: "node-redis cluster: a scope watcher gets the events of operations in other slots",
  ignore,
  async fn() {
    const prefix = uniquePrefix();
    const progress = manager(prefix);
    const stop = new AbortController();
    const deadline = setTimeout(() => stop.abort(), 15_000);
    try {
      const ops = opsInDistinctSlots("deno-scope", 4);
      const seen: string[] = [];
      const watching = (async () => {
        for await (const item of progress.watch({ scope: "deno-team" }, { signal: stop.signal })) {
          if (item.kind !== "event") continue;
          seen.push(`${item.event.op}:${item.event.status}`);
          if (seen.filter((s) => s.endsWith(":completed")).length === ops.length) return;
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      for (const r of await Promise.all(
        ops.map((op) => progress.publish(op, { progress: 50 }, { scope: "deno-team" })),
      ))
        assert.ok(r.ok);
      for (const r of await Promise.all(
        ops.map((op) => progress.publish(op, { status: "completed" }, { scope: "deno-team" })),
      ))
        assert.ok(r.ok);
      await watching;
      for (const op of ops) {
        const mine = seen.filter((s) => s.startsWith(`${op}:`));
        assert.deepEqual(mine, [`${op}:running`, `${op}:completed`], `${op} in the scope stream`);
      }
    } finally {
      clearTimeout(deadline);
      stop.abort();
      await progress.close();
    }
  },
});

// The runtime scenarios, on the cluster too.
for (const scenario of scenarios) {
  Deno.test({
    name: `node-redis cluster: ${scenario.name}`,
    ignore,
    async fn() {
      const progress = manager(uniquePrefix());
      try {
        await scenario.run(progress);
      } finally {
        await progress.close();
      }
    },
  });
}
