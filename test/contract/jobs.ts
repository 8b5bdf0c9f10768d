/**
 * Jobs part of the contract suite: the task lifecycle, cancellation, and
 * consumer groups, on every adapter.
 */
import { describe, expect, it } from "vitest";
import type { ProgressOptions } from "../../src/core/options.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import type { Progress } from "../../src/core/progress.ts";

type Make = (options?: Partial<ProgressOptions>) => { progress: Progress; prefix: string; port: StreamPort };

export function jobsTests(make: Make): void {
  describe("jobs", () => {
    it("a task publishes start, progress, its own events and completion", async () => {
      const { progress } = make({ throttle: false, estimate: false });
      const task = progress.task("t1", { total: 4, cid: "req-1", data: { source: "csv" } });
      await task.start("importing");
      task.advance();
      task.advance(2, "three done");
      await task.event("file_completed", { data: { file: "a.csv" } });
      await task.complete({ rows: 4 });
      await progress.flush();
      const events = await progress.history("t1");
      expect(events.map((e) => [e.type, e.status, e.current, e.progress])).toEqual([
        ["progress", "running", 0, 0],
        ["progress", "running", 1, 25],
        ["progress", "running", 3, 75],
        ["file_completed", "running", undefined, undefined],
        ["progress", "completed", 4, 100],
      ]);
      expect(events.every((e) => e.cid === "req-1")).toBe(true);
      expect(events[3]?.data).toEqual({ source: "csv", file: "a.csv" });
      expect(events[4]?.data).toEqual({ source: "csv", rows: 4 });
      expect(task.ended).toBe(true);
    });

    it("fail() carries the error's name and message, the stack only when asked", async () => {
      const { progress } = make();
      const task = progress.task("t2");
      await task.start();
      await task.fail(new TypeError("bad row 7"));
      const snap = await progress.get("t2");
      expect(snap).toMatchObject({ status: "failed", message: "bad row 7" });
      expect(snap?.data).toEqual({ error: { name: "TypeError", message: "bad row 7" } });
      const withStack = progress.task("t3", { includeStack: true });
      await withStack.fail(new Error("boom"));
      expect(
        String((await progress.get("t3"))?.data?.error && JSON.stringify((await progress.get("t3"))?.data)),
      ).toContain("stack");
    });

    it("a task disposed without complete or fail ends failed", async () => {
      const { progress } = make();
      {
        await using task = progress.task("t4");
        await task.start();
        task.progress(30);
      }
      await progress.flush();
      expect(await progress.get("t4")).toMatchObject({
        status: "failed",
        message: "The task ended without complete() or fail()",
      });
    });

    it("cancel reaches a busy task within one publish, and it ends cancelled", async () => {
      const { progress } = make({ throttle: false, cancelCheckMs: 60_000 });
      const task = progress.task("busy");
      await task.start();
      expect(task.signal.aborted).toBe(false);
      expect(await progress.cancel("busy", "user pressed cancel")).toBe(true);
      const r = await task.event("file_completed", { message: "one more" });
      expect(r).toMatchObject({ ok: true, cancelled: "user pressed cancel" });
      expect(task.signal.aborted).toBe(true);
      expect(task.signal.reason).toBe("user pressed cancel");
      expect(await progress.get("busy")).toMatchObject({ status: "cancelled", message: "user pressed cancel" });
      // Whatever the job does next is refused: cancellation wins.
      task.progress(90);
      await task.complete();
      expect((await progress.get("busy"))?.status).toBe("cancelled");
    });

    it("cancel reaches an idle task within the check interval", async () => {
      const { progress } = make({ cancelCheckMs: 100 });
      const task = progress.task("idle");
      await task.start();
      const aborted = new Promise<string>((resolve) =>
        task.signal.addEventListener("abort", () => resolve(String(task.signal.reason))),
      );
      const started = Date.now();
      await progress.cancel("idle", "stop now");
      expect(await aborted).toBe("stop now");
      expect(Date.now() - started).toBeLessThan(1500);
      for (let i = 0; i < 50 && (await progress.get("idle"))?.status !== "cancelled"; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect((await progress.get("idle"))?.status).toBe("cancelled");
    });

    it("events carry an estimate of time remaining from the progress rate", async () => {
      const { progress } = make({ throttle: false });
      for (let i = 1; i <= 6; i++) {
        await progress.publish("eta", { progress: i * 10 });
        await new Promise((r) => setTimeout(r, 120));
      }
      const snap = await progress.get("eta");
      // 10% per ~120 ms => the remaining 40% takes about half a second.
      expect(snap?.eta).toBeGreaterThan(0.2);
      expect(snap?.eta).toBeLessThan(2);
      await progress.publish("eta", { status: "completed" });
      expect((await progress.get("eta"))?.eta).toBe(0);
    });

    it("consumer groups: deliveries with ack, types filter, claim of what a dead consumer left", async (ctx) => {
      const { progress, port } = make();
      if (!port.capabilities.groups) return ctx.skip();
      await progress.publish("c1", { progress: 10 }, { scope: "all" });
      await progress.publish("c1", { type: "file_completed", data: { f: 1 } }, { scope: "all" });
      await progress.publish("c2", { status: "completed" }, { scope: "all" });
      const dead = new AbortController();
      const taken: string[] = [];
      for await (const d of progress.consume({
        group: "db",
        consumer: "dies",
        scope: "all",
        types: ["progress"],
        claimIdleMs: 200,
        signal: dead.signal,
      })) {
        taken.push(`${d.event.op}:${d.event.status}`);
        if (taken.length === 2) break; // dies without acknowledging
      }
      expect(taken).toEqual(["c1:running", "c2:completed"]);
      await new Promise((r) => setTimeout(r, 250));
      const controller = new AbortController();
      const got: string[] = [];
      const firstIds: string[] = [];
      for await (const d of progress.consume({
        group: "db",
        consumer: "survivor",
        scope: "all",
        claimIdleMs: 200,
        blockMs: 100,
        signal: controller.signal,
      })) {
        got.push(`${d.event.op}:${d.event.status}:${d.claimed}`);
        firstIds.push(d.event.id);
        await d.ack();
        if (got.length === 2) {
          await progress.publish("c3", { progress: 5 }, { scope: "all" });
        }
        if (got.length === 3) controller.abort();
      }
      expect(got).toEqual(["c1:running:true", "c2:completed:true", "c3:running:false"]);
      const history = await progress.history("c1");
      expect(firstIds[0]).toBe(history[0]?.id);
      expect(await port.pending?.(`${progress.streamKey({ scope: "all" })}`, "db")).toBe(0);
    });

    it("consume refuses bad options with a typed error naming the field", () => {
      const { progress } = make();
      expect(() => progress.consume({ group: "a b", consumer: "c", scope: "s" })).toThrow(/group/);
      expect(() => progress.consume({ group: "g", consumer: "c", scope: "{x}" })).toThrow(/scope/);
      expect(() => progress.consume({ group: "g", consumer: "c", scope: "s", batch: 0 })).toThrow(/batch/);
    });
  });
}
