/**
 * A watcher that joins while an operation is being written receives every
 * event after its snapshot exactly once, in order, to the end: over random
 * interleavings of publishes, pauses and joins, on the memory backend and on
 * a real redis-server (live channels and the blocking reader).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { WatchItem } from "../../src/core/deliver/watch.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

/** One step of a run: publish a batch of events at once, or let time pass. */
type Step = { readonly publish: number } | { readonly pause: number };

const steps = fc.array(
  fc.oneof(
    fc.integer({ min: 1, max: 6 }).map((publish): Step => ({ publish })),
    fc.integer({ min: 0, max: 3 }).map((pause): Step => ({ pause })),
  ),
  { minLength: 2, maxLength: 12 },
);

async function drain(it: AsyncIterable<WatchItem>): Promise<WatchItem[]> {
  const out: WatchItem[] = [];
  for await (const item of it) out.push(item);
  return out;
}

async function run(
  ports: () => [StreamPort, StreamPort],
  plan: readonly Step[],
  joins: readonly number[],
  live: boolean,
) {
  const [a, b] = ports();
  const prefix = uniquePrefix();
  const writer = new Progress({ port: a, prefix, logger: {}, throttle: false, estimate: false });
  const reader = new Progress({ port: b, prefix, logger: {}, throttle: false, liveChannels: live });
  try {
    const op = "job";
    await writer.publish(op, { status: "running", progress: 0 });
    const watches: Promise<WatchItem[]>[] = [];
    let progress = 0;
    for (let i = 0; i < plan.length; i++) {
      for (const at of joins)
        if (at === i) watches.push(drain(reader.watch(op, { signal: AbortSignal.timeout(20_000) })));
      const step = plan[i] as Step;
      if ("pause" in step) await new Promise((r) => setTimeout(r, step.pause));
      else {
        const batch = Array.from({ length: step.publish }, () => {
          progress = Math.min(99, progress + 1);
          return writer.publish(op, { progress });
        });
        await Promise.all(batch);
      }
    }
    const last = await writer.publish(op, { status: "completed", progress: 100 });
    const total = last.ok ? last.seq : Number.NaN;
    for (const items of await Promise.all(watches)) {
      const first = items[0];
      expect(first?.kind).toBe("snapshot");
      const from = first?.kind === "snapshot" ? (first.snapshot?.seq ?? 0) : 0;
      const got = items.slice(1).map((i) => (i.kind === "event" ? i.event.seq : -1));
      // Every event, once, in order: the history up to the snapshot, then what followed, to the end.
      expect(got).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      expect(from).toBeLessThanOrEqual(total);
    }
  } finally {
    await reader.close();
    await writer.close();
  }
}

const joinsFor = (plan: readonly Step[]) =>
  fc.array(fc.integer({ min: 0, max: plan.length - 1 }), { minLength: 1, maxLength: 3 });

describe("a watcher joining while an operation is written", () => {
  it("on the memory backend gets every event exactly once, in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        steps.chain((plan) => fc.tuple(fc.constant(plan), joinsFor(plan))),
        async ([plan, joins]) =>
          run(
            () => {
              const shared = memory();
              return [shared, shared];
            },
            plan,
            joins,
            true,
          ),
      ),
      { numRuns: 40 },
    );
  });

  it.each([
    ["live channels", true],
    ["the blocking reader", false],
  ])(
    "on Redis with %s gets every event exactly once, in order",
    async (_, live) => {
      await fc.assert(
        fc.asyncProperty(
          steps.chain((plan) => fc.tuple(fc.constant(plan), joinsFor(plan))),
          async ([plan, joins]) =>
            run(() => [nodeRedis({ url: redis.url }), nodeRedis({ url: redis.url })], plan, joins, live),
        ),
        { numRuns: 15 },
      );
    },
    120_000,
  );
});
