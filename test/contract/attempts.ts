/**
 * Attempts part of the contract suite: re-running an ended operation,
 * deleting one, the snapshot a terminal event leaves, TTLs refreshed when due,
 * and bad data written into a snapshot by someone else, on every adapter.
 */
import { describe, expect, it } from "vitest";
import type { ProgressOptions } from "../../src/core/options.ts";
import type { Progress } from "../../src/core/progress.ts";
import type { Harness } from "./harness.ts";

type Make = (options?: Partial<ProgressOptions>) => { progress: Progress; prefix: string };

export function attemptsTests(harness: () => Harness, make: Make): void {
  describe("attempts, delete, terminal snapshot", () => {
    it("a restart starts a new attempt: seq goes on, the snapshot is replaced, the history starts over", async () => {
      const { progress } = make({ estimate: false });
      await progress.publish("rerun", { current: 4, total: 10, message: "Rows", data: { file: "a.csv" } });
      const end = await progress.publish("rerun", { status: "failed", message: "disk full" });
      expect(end).toMatchObject({ ok: true, seq: 2, attempt: 1 });
      expect(await progress.publish("rerun", { progress: 5 })).toMatchObject({ ok: false, reason: "terminal" });

      const again = await progress.publish("rerun", { progress: 5 }, { restart: true });
      expect(again).toMatchObject({ ok: true, outcome: "published", seq: 3, attempt: 2 });
      const snap = await progress.get("rerun");
      expect(snap).toMatchObject({ op: "rerun", seq: 3, attempt: 2, status: "running", progress: 5 });
      // Replaced, not merged: nothing of the failed attempt is left.
      expect(snap?.message).toBeUndefined();
      expect(snap?.data).toBeUndefined();
      expect(snap?.total).toBeUndefined();
      expect((await progress.history("rerun")).map((e) => [e.seq, e.attempt, e.status])).toEqual([[3, 2, "running"]]);

      // Within the new attempt the ordering rules hold again.
      expect(await progress.publish("rerun", { progress: 2 })).toMatchObject({ ok: false, reason: "backwards" });
      expect(await progress.publish("rerun", { progress: 50 })).toMatchObject({ ok: true, seq: 4, attempt: 2 });
      // A job whose worker died while running can be restarted too; an unknown operation starts at attempt 1.
      expect(await progress.publish("rerun", { progress: 0 }, { restart: true })).toMatchObject({ seq: 5, attempt: 3 });
      expect(await progress.publish("fresh", { progress: 0 }, { restart: true })).toMatchObject({ seq: 1, attempt: 1 });
    });

    it("within an attempt a status never goes back: queued after running is refused, a restart goes back to queued", async () => {
      const { progress } = make({ estimate: false });
      expect(await progress.publish("order", { status: "queued" })).toMatchObject({ ok: true, seq: 1 });
      expect(await progress.publish("order", { status: "queued", message: "still waiting" })).toMatchObject({
        ok: true,
      });
      expect(await progress.publish("order", { status: "running" })).toMatchObject({ ok: true, seq: 3 });
      // A queued event that arrives late (another process's) changes nothing.
      expect(await progress.publish("order", { status: "queued" })).toMatchObject({
        ok: false,
        reason: "backwards",
        seq: 3,
      });
      expect(await progress.get("order")).toMatchObject({ status: "running", seq: 3 });
      expect(await progress.publish("order", { status: "queued" }, { allowBackwards: true })).toMatchObject({
        ok: true,
      });
      await progress.publish("order", { status: "running" });
      // A retried job waits again in its next attempt.
      const retry = await progress.publish("order", { type: "retry", status: "queued" }, { restart: true });
      expect(retry).toMatchObject({ ok: true, attempt: 2 });
      expect(await progress.publish("order", { status: "running" })).toMatchObject({ ok: true, attempt: 2 });
      expect(await progress.publish("order", { status: "queued" })).toMatchObject({ ok: false, reason: "backwards" });
      expect((await progress.history("order")).map((e) => [e.attempt, e.status])).toEqual([
        [2, "queued"],
        [2, "running"],
      ]);
    });

    it("a watcher resuming from the previous attempt gets a reset with the new attempt's snapshot", async () => {
      const { progress } = make({ estimate: false });
      const first = await progress.publish("again", { progress: 30 });
      await progress.publish("again", { status: "completed" });
      await progress.publish("again", { progress: 1, message: "second try" }, { restart: true });
      const items = [];
      const signal = AbortSignal.timeout(10_000);
      for await (const item of progress.watch("again", { after: first.ok ? first.id : "0", signal })) {
        items.push(item);
        if (items.length === 2) break;
      }
      expect(items[0]).toMatchObject({ kind: "reset", snapshot: { attempt: 2, seq: 3, progress: 1 } });
      expect(items[1]).toMatchObject({ kind: "event", event: { attempt: 2, seq: 3, message: "second try" } });
    });

    it("a live watcher of a job restarted while running gets a reset with the new attempt's snapshot, then its events", async () => {
      const { progress } = make({ estimate: false });
      await progress.publish("crashed", { current: 4, total: 10, message: "Rows" });
      type Seen = { kind: string; attempt: number | undefined; seq: number | undefined; progress: number | undefined };
      const items: Seen[] = [];
      const signal = AbortSignal.timeout(10_000);
      const seen = (async () => {
        for await (const item of progress.watch("crashed", { signal })) {
          const at = item.kind === "event" ? item.event : item.snapshot;
          items.push({ kind: item.kind, attempt: at?.attempt, seq: at?.seq, progress: at?.progress });
          if (item.kind === "event" && item.event.status === "completed") break;
        }
      })();
      while (items.length < 2) await new Promise((r) => setTimeout(r, 10));
      await progress.publish("crashed", { current: 5, total: 10 });
      // The worker died; the job runs again from the start.
      while (items.length < 3) await new Promise((r) => setTimeout(r, 10));
      await progress.publish("crashed", { progress: 1, message: "second try" }, { restart: true });
      await progress.publish("crashed", { progress: 60 });
      await progress.publish("crashed", { status: "completed" });
      await seen;
      expect(items).toEqual([
        { kind: "snapshot", attempt: 1, seq: 1, progress: 40 },
        { kind: "event", attempt: 1, seq: 1, progress: 40 },
        { kind: "event", attempt: 1, seq: 2, progress: 50 },
        { kind: "reset", attempt: 2, seq: expect.any(Number), progress: expect.any(Number) },
        { kind: "event", attempt: 2, seq: 3, progress: 1 },
        { kind: "event", attempt: 2, seq: 4, progress: 60 },
        { kind: "event", attempt: 2, seq: 5, progress: 100 },
      ]);
    });

    it("a cancellation of an attempt that did not end carries over a restart; one of an ended attempt does not", async () => {
      const { progress } = make({ estimate: false });
      await progress.publish("c1", { progress: 10 });
      await progress.cancel("c1", "stop it");
      expect(await progress.publish("c1", { progress: 0 }, { restart: true })).toMatchObject({
        attempt: 2,
        cancelled: "stop it",
      });
      await progress.publish("c1", { status: "cancelled" });
      const next = await progress.publish("c1", { progress: 0 }, { restart: true });
      expect(next).toMatchObject({ ok: true, attempt: 3, cancelled: null });
      expect((await progress.get("c1"))?.cancel).toBeUndefined();
    });

    it("delete removes an operation's keys; the id starts over afterwards", async () => {
      const { progress, prefix } = make();
      await progress.publish("gone", { progress: 10 });
      expect(await progress.delete("gone")).toBe(true);
      expect(await progress.get("gone")).toBeNull();
      expect(await progress.history("gone")).toEqual([]);
      expect(await harness().inspect.keys(prefix)).toEqual([]);
      expect(await progress.delete("gone")).toBe(false);
      expect(await progress.publish("gone", { progress: 1 })).toMatchObject({ ok: true, seq: 1, attempt: 1 });
      await expect(progress.delete("bad op")).rejects.toMatchObject({ name: "ProgressValidationError" });
    });

    it("a completed event leaves a coherent snapshot: current = total, 100 %, no eta, no stale message", async () => {
      const { progress } = make({ estimate: false });
      await progress.publish("done", { current: 40, total: 50, message: "Chunk 40 of 50", eta: 12, data: { a: 1 } });
      await progress.publish("done", { status: "completed" });
      const snap = await progress.get("done");
      expect(snap).toMatchObject({
        status: "completed",
        progress: 100,
        current: 50,
        total: 50,
        eta: 0,
        data: { a: 1 },
      });
      expect(snap?.message).toBeUndefined();
      // The event carries the same, so a client merging events agrees with the snapshot.
      const last = (await progress.history("done")).at(-1);
      expect(last).toMatchObject({ status: "completed", progress: 100, current: 50, total: 50, eta: 0 });

      // A terminal event's own message is kept; failed keeps where it stopped.
      await progress.publish("broke", { current: 2, total: 10, message: "Chunk 2 of 10", eta: 40 });
      await progress.publish("broke", { status: "failed", message: "disk full" });
      expect(await progress.get("broke")).toMatchObject({
        status: "failed",
        progress: 20,
        current: 2,
        total: 10,
        eta: 0,
        message: "disk full",
      });
    });

    it("keeps keys alive while written: past half the TTL a write refreshes it", async () => {
      const { progress, prefix } = make({ ttlSeconds: 2, estimate: false });
      await progress.publish("ttl2", { progress: 1 });
      await new Promise((r) => setTimeout(r, 1200));
      await progress.publish("ttl2", { progress: 2 });
      expect(await harness().inspect.pttl(`${prefix}:{ttl2}:state`)).toBeGreaterThan(1200);
      expect(await harness().inspect.pttl(`${prefix}:{ttl2}:events`)).toBeGreaterThan(1200);
    });

    it("bad numbers written into a snapshot by someone else fail nothing: they count as absent", async (ctx) => {
      const h = harness();
      if (!h.write) return ctx.skip();
      const { progress, prefix } = make({ estimate: false });
      await h.write.hset(`${prefix}:{junk}:state`, {
        status: "running",
        progress: "abc",
        seq: "x",
        attempt: "-3",
        exp: "nan",
        total: "1e999",
      });
      // One batch: the first publish goes alone, the next three share one call.
      const [warm, ...batch] = await Promise.all([
        progress.publish("ok-0", { progress: 1 }),
        progress.publish("ok-1", { progress: 1 }),
        progress.publish("junk", { progress: 10 }),
        progress.publish("ok-2", { progress: 1 }),
      ]);
      expect(warm).toMatchObject({ ok: true });
      expect(batch).toMatchObject([
        { ok: true, seq: 1 },
        { ok: true, seq: 1, attempt: 1 },
        { ok: true, seq: 1 },
      ]);
      expect(await progress.get("junk")).toMatchObject({ seq: 1, attempt: 1, progress: 10 });
      expect(await h.inspect.pttl(`${prefix}:{junk}:state`)).toBeGreaterThan(60_000);
      // A completed event with an unusable stored total completes without inventing a count.
      expect(await progress.publish("junk", { status: "completed" })).toMatchObject({ ok: true, seq: 2 });
      const done = await progress.get("junk");
      expect(done).toMatchObject({ status: "completed", progress: 100 });
      expect(done?.current).toBeUndefined();
    });
  });
}
