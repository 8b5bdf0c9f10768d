// @vitest-environment jsdom
/**
 * The browser's state of an operation equals the server's snapshot after any
 * sequence of events: random publishes (statuses, terminal events, restarts,
 * refused updates, messages, counts, data) through a real manager on the
 * memory backend and on node-redis, followed with `follow`, `useProgress` and
 * `useProgressList` over the manager's own SSE responses.
 */
import { renderHook, waitFor } from "@testing-library/react";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { follow, type ProgressState } from "../../src/client/index.ts";
import type { ProgressUpdate, PublishOptions } from "../../src/index.ts";
import { createProgress, type Progress, type ProgressSnapshot } from "../../src/index.ts";
import { useProgress, useProgressList } from "../../src/react/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

interface Step {
  readonly op: "a" | "b";
  readonly update: ProgressUpdate;
  readonly options: PublishOptions;
}

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"] as const;
const step: fc.Arbitrary<Step> = fc.record({
  op: fc.constantFrom("a" as const, "b" as const),
  update: fc.record(
    {
      type: fc.constantFrom("progress", "retry", "file_done"),
      status: fc.constantFrom(...STATUSES),
      progress: fc.integer({ min: 0, max: 100 }),
      current: fc.integer({ min: 0, max: 20 }),
      total: fc.constant(20),
      message: fc.constantFrom("Step 20 of 20", "Reading", "disk full", ""),
      data: fc.dictionary(fc.constantFrom("file", "rows"), fc.integer({ min: 0, max: 9 }), { maxKeys: 2 }),
    },
    { requiredKeys: [] },
  ),
  options: fc.record(
    { restart: fc.boolean(), allowBackwards: fc.boolean(), allowAfterTerminal: fc.boolean() },
    { requiredKeys: [] },
  ),
});
/** Mostly running updates, with terminal events and restarts among them. */
const sequence = fc.array(step, { minLength: 1, maxLength: 14 });

/** The fields a browser shows, as the snapshot has them. */
function shown(s: ProgressState | ProgressSnapshot | null | undefined, withId = true): Record<string, unknown> | null {
  if (!s) return null;
  const { op, seq, type, status, progress, current, total, message, cid, ts, data, eta, attempt, cancel, id } =
    s as ProgressSnapshot;
  const all: Record<string, unknown> = { op, seq, type, status, progress, current, total, message, cid, ts };
  // Followed through a scope, `id` is the scope stream's (what the client resumes from), not the operation's.
  Object.assign(all, { data, eta, attempt: attempt ?? 1, cancel, id: withId ? id : undefined });
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

/** A `fetch` answered by the manager's own SSE responses: `/progress/<op>` or `/scope/<scope>`. */
const serve =
  (progress: Progress) =>
  (url: string, init: RequestInit): Promise<Response> => {
    const [, kind, id = ""] = new URL(url).pathname.split("/");
    return progress.sse(new Request(url, init), kind === "scope" ? { scope: id } : id, { heartbeatMs: 1000 });
  };

let run = 0;
/** Publish `steps` under fresh ids; returns the ids, the scope, and the snapshot at the first terminal event of each. */
async function publishAll(progress: Progress, steps: readonly Step[]) {
  run++;
  const scope = `s${run}`;
  const ids = { a: `r${run}-a`, b: `r${run}-b` };
  const firstEnd = new Map<string, ProgressSnapshot | null>();
  for (const s of steps) {
    const op = ids[s.op];
    const r = await progress.publish(op, s.update, { ...s.options, scope });
    if (r.ok && ["completed", "failed", "cancelled"].includes(s.update.status ?? "") && !firstEnd.has(op)) {
      firstEnd.set(op, await progress.get(op));
    }
  }
  return { scope, ops: [...new Set(steps.map((s) => ids[s.op]))], firstEnd };
}

/** Wait until `states()` shows every op at the snapshot's seq (bounded), then compare. */
async function settle(
  progress: Progress,
  ops: readonly string[],
  state: (op: string) => ProgressState | undefined,
  withId = false,
): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const snaps = await Promise.all(ops.map((op) => progress.get(op)));
    if (ops.every((op, j) => (state(op)?.seq ?? 0) === (snaps[j]?.seq ?? 0))) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  for (const op of ops) expect(shown(state(op), withId), op).toEqual(shown(await progress.get(op), withId));
}

const opened = (f: { status: string }): Promise<void> =>
  waitFor(() => expect(f.status).toBe("open"), { timeout: 5000, interval: 2 });

function properties(name: string, make: () => Progress, numRuns: number): void {
  describe(`client state equals the server's snapshot (${name})`, () => {
    let progress: Progress;
    beforeAll(() => {
      progress = make();
    });
    afterAll(async () => {
      await progress?.close();
    });

    it("follow: one operation followed live, and a scope followed live and after the fact", async () => {
      await fc.assert(
        fc.asyncProperty(sequence, async (steps) => {
          const next = run + 1;
          const fetch = serve(progress);
          const one = follow(`http://127.0.0.1/progress/r${next}-a`, {
            fetch,
            untilTerminal: false,
            minDelayMs: 1,
            maxDelayMs: 20,
          });
          const live = follow(`http://127.0.0.1/scope/s${next}`, {
            fetch,
            untilTerminal: false,
            minDelayMs: 1,
            maxDelayMs: 20,
          });
          try {
            await Promise.all([opened(one), opened(live)]);
            const { scope, ops } = await publishAll(progress, steps);
            if (ops.includes(`r${next}-a`)) await settle(progress, [`r${next}-a`], () => one.state, true);
            await settle(progress, ops, (op) => live.states.get(op));
            // A page opened later (or reloaded) rebuilds the list from the scope's history.
            const later = follow(`http://127.0.0.1/scope/${scope}`, {
              fetch,
              untilTerminal: false,
              minDelayMs: 1,
              maxDelayMs: 20,
            });
            try {
              await settle(progress, ops, (op) => later.states.get(op));
            } finally {
              later.close();
            }
          } finally {
            one.close();
            live.close();
          }
        }),
        { numRuns },
      );
    }, 120_000);

    it("useProgress (until the first terminal event) and useProgressList", async () => {
      await fc.assert(
        fc.asyncProperty(sequence, async (steps) => {
          const next = run + 1;
          const fetch = serve(progress);
          const single = renderHook(() =>
            useProgress({ url: `http://127.0.0.1/progress/r${next}-a`, fetch, minDelayMs: 1, maxDelayMs: 20 }),
          );
          const list = renderHook(() =>
            useProgressList({ url: `http://127.0.0.1/scope/s${next}`, fetch, minDelayMs: 1, maxDelayMs: 20 }),
          );
          try {
            await waitFor(
              () => expect([single.result.current.status, list.result.current.status]).toEqual(["open", "open"]),
              {
                timeout: 5000,
                interval: 2,
              },
            );
            const { scope, ops, firstEnd } = await publishAll(progress, steps);
            await settle(progress, ops, (op) => list.result.current.states.get(op));
            expect(list.result.current.list.map((s) => s.op).sort()).toEqual([...ops].sort());
            const a = `r${next}-a`;
            if (ops.includes(a)) {
              // useProgress stops at the first terminal event: its state is the snapshot as it was then.
              const expected = firstEnd.has(a) ? shown(firstEnd.get(a)) : shown(await progress.get(a));
              await waitFor(() => expect(shown(single.result.current.state)).toEqual(expected), {
                timeout: 5000,
                interval: 5,
              });
            }
            const reload = renderHook(() =>
              useProgressList({ url: `http://127.0.0.1/scope/${scope}`, fetch, minDelayMs: 1, maxDelayMs: 20 }),
            );
            try {
              await settle(progress, ops, (op) => reload.result.current.states.get(op));
            } finally {
              reload.unmount();
            }
          } finally {
            single.unmount();
            list.unmount();
          }
        }),
        { numRuns },
      );
    }, 120_000);
  });
}

properties("memory", () => createProgress({ port: memory(), throttle: false, logger: {} }), 40);

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});
properties(
  "node-redis",
  () =>
    createProgress({
      port: nodeRedis({ url: redis.url }),
      prefix: `t${Math.random().toString(36).slice(2, 8)}`,
      throttle: false,
      logger: {},
    }),
  25,
);
