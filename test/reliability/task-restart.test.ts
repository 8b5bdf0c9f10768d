/**
 * `task(op, { restart: true })`: a retried job under the same id runs as a new
 * attempt of the operation, against a real Redis (and the memory backend).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { ProgressError } from "../../src/core/errors.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

let redis: RedisServer;
const open: Progress[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const p of open.splice(0)) await p.close();
  await redis?.close();
});

const backends: Array<[string, () => StreamPort]> = [
  ["node-redis", () => nodeRedis({ url: redis.url })],
  ["memory", () => memory()],
];

describe.each(backends)("task(op, { restart: true }) on %s", (_name, port) => {
  const make = (options: Partial<ProgressOptions> = {}): Progress => {
    const progress = new Progress({ port: port(), prefix: uniquePrefix(), logger: {}, estimate: false, ...options });
    open.push(progress);
    return progress;
  };

  it("runs an ended operation again as a new attempt: seq goes on, snapshot and history start over", async () => {
    const progress = make({ throttle: false });
    const first = progress.task("job", { total: 10, data: { file: "a.csv" } });
    const firstStart = await first.start("Importing");
    first.advance(4, "Rows");
    await first.fail(new Error("disk full"));
    await progress.flush();
    expect(await progress.get("job")).toMatchObject({ status: "failed", attempt: 1, seq: 3 });

    // Without restart, a task of an ended operation is refused.
    const stale = progress.task("job");
    expect(await stale.start()).toMatchObject({ ok: false, outcome: "refused", reason: "terminal" });
    await stale.complete();

    const again = progress.task("job", { restart: true, total: 5 });
    expect(await again.start("Second try")).toMatchObject({ ok: true, seq: 4, attempt: 2 });
    const snap = await progress.get("job");
    expect(snap).toMatchObject({ status: "running", attempt: 2, seq: 4, current: 0, total: 5, message: "Second try" });
    expect(snap?.data).toBeUndefined(); // nothing of the failed attempt is merged in
    again.advance(5);
    expect(await again.complete()).toMatchObject({ ok: true, seq: 6, attempt: 2 });
    expect(again.ended).toBe(true);
    await progress.flush();
    // Only the first event of the task restarted: the rest belongs to attempt 2.
    expect((await progress.history("job")).map((e) => [e.seq, e.attempt, e.status, e.current])).toEqual([
      [4, 2, "running", 0],
      [5, 2, "running", 5],
      [6, 2, "completed", 5],
    ]);

    // A watcher resuming from an id of the first attempt is told the history started over.
    const items = [];
    const after = firstStart.ok ? firstStart.id : "0";
    for await (const item of progress.watch("job", { after, signal: AbortSignal.timeout(10_000) })) {
      items.push(item);
      if (items.length === 2) break;
    }
    expect(items[0]).toMatchObject({ kind: "reset", snapshot: { attempt: 2, status: "completed", seq: 6 } });
  });

  it("starts the attempt with whichever event comes first, a coalesced progress report included", async () => {
    const progress = make({ throttle: { intervalMs: 60_000 } });
    await progress.publish("rep", { progress: 80, message: "old" });
    await progress.publish("rep", { status: "completed" });
    const task = progress.task("rep", { restart: true });
    task.progress(10);
    task.progress(20); // coalesced, in attempt 2
    await progress.flush();
    expect(await progress.get("rep")).toMatchObject({ attempt: 2, status: "running", progress: 20 });
    await task.complete();
    expect((await progress.history("rep")).map((e) => [e.attempt, e.progress])).toEqual([
      [2, 10],
      [2, 20],
      [2, 100],
    ]);
  });

  it("bad input in the first event leaves the restart to the next one", async () => {
    const errors: ProgressError[] = [];
    const progress = make({ throttle: false, onError: (e) => errors.push(e) });
    await progress.publish("bad", { status: "failed" });
    const task = progress.task("bad", { restart: true });
    task.progress(150);
    expect(errors.map((e) => e.name)).toEqual(["ProgressValidationError"]);
    await expect(task.event("bad type!")).rejects.toMatchObject({ name: "ProgressValidationError" });
    await expect(task.event("note", { progress: -1 })).rejects.toMatchObject({ field: "progress" });
    expect(await task.start()).toMatchObject({ ok: true, attempt: 2 });
    await task.complete();
  });

  it("a cancellation of the ended attempt does not stop the new one; one asked of the new attempt does", async () => {
    const progress = make({ throttle: false, cancelCheckMs: 50 });
    await progress.publish("c", { progress: 10 });
    await progress.cancel("c", "user pressed cancel");
    await progress.publish("c", { status: "cancelled", message: "user pressed cancel" });

    const task = progress.task("c", { restart: true });
    // Quiet for several check intervals before its first event: the old mark is not this attempt's.
    await new Promise((r) => setTimeout(r, 300));
    expect(task.signal.aborted).toBe(false);
    expect(await task.start()).toMatchObject({ ok: true, attempt: 2, cancelled: null });
    expect(task.signal.aborted).toBe(false);

    await progress.cancel("c", "stop the retry");
    const result = await task.event("file_completed");
    expect(result).toMatchObject({ cancelled: "stop the retry" });
    expect(task.signal.aborted).toBe(true);
    expect(await progress.get("c")).toMatchObject({ status: "cancelled", attempt: 2, message: "stop the retry" });
  });
});
