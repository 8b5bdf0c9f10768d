/**
 * Publishing across a Redis outage: a real redis-server is killed (SIGKILL)
 * and started again, empty, on the same port. Terminal events wait for it and
 * are written; held reports are written coalesced; close() reports what it
 * could not write; order per operation holds.
 *
 * Prints the recovery time (Redis back -> terminal event written):
 * `npx vitest run test/reliability/publish-outage.test.ts`
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { ProgressError } from "../../src/core/errors.ts";
import type { LogFields } from "../../src/core/observe.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const OUTAGE_MS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("publishing across a Redis restart (node-redis)", () => {
  let server: RedisServer;
  let down = false;
  const open: Progress[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    if (down) await start(); // a test that failed half-way may leave it down
    await Promise.all(open.splice(0).map((p) => p.close()));
  });
  afterAll(async () => {
    await server.close();
  });

  const crash = async (): Promise<void> => {
    down = true;
    await server.stop({ crash: true });
  };
  const start = async (): Promise<void> => {
    await server.start();
    down = false;
  };
  const make = (options: Partial<ProgressOptions> = {}) => {
    const errors: Array<{ error: ProgressError; op: string }> = [];
    const logged: Array<{ level: string; message: string; fields: LogFields }> = [];
    const prefix = uniquePrefix();
    const progress = new Progress({
      port: nodeRedis({ url: server.url, connectTimeoutMs: 500 }),
      prefix,
      logger: {
        error: (message, fields) => logged.push({ level: "error", message, fields }),
        warn: (message, fields) => logged.push({ level: "warn", message, fields }),
      },
      onError: (error, context) => errors.push({ error, op: context.op }),
      // Short backoff so the suite stays fast; the default deadline (60 s) covers the outage.
      retry: { minDelayMs: 50, maxDelayMs: 250 },
      estimate: false,
      ...options,
    });
    open.push(progress);
    return { progress, prefix, errors, logged };
  };
  const reader = (prefix: string): Progress => {
    const p = new Progress({ port: nodeRedis({ url: server.url }), prefix, logger: {} });
    open.push(p);
    return p;
  };
  /** Crash Redis, run `during`, bring Redis back (empty) after the outage; returns when it is back. */
  const outage = async (during: () => void): Promise<number> => {
    await crash();
    during();
    await sleep(OUTAGE_MS);
    await start();
    return Date.now();
  };

  it("task.complete() during a 2 s outage resolves published once Redis is back; the operation ends completed", async () => {
    const { progress, prefix } = make();
    const task = progress.task("job-1", { total: 3 });
    expect(await task.start()).toMatchObject({ ok: true });
    let completing: ReturnType<typeof task.complete> | undefined;
    let settledAt = 0;
    const back = await outage(() => {
      completing = task.complete({ rows: 3 }, "done");
      void completing.then(() => {
        settledAt = Date.now();
      });
    });
    const result = await completing;
    expect(result).toMatchObject({ ok: true, outcome: "published" });
    const recoveryMs = settledAt - back;
    console.log(`recovery after restart: terminal event written ${recoveryMs} ms after Redis was back`);

    // Redis came back empty: the terminal event is what it holds now, and readers see the end.
    const other = reader(prefix);
    expect(await other.get("job-1")).toMatchObject({ status: "completed", progress: 100, message: "done" });
    const items = [];
    for await (const item of other.watch("job-1", { signal: AbortSignal.timeout(10_000) })) items.push(item);
    expect(items[0]).toMatchObject({ kind: "snapshot", snapshot: { status: "completed" } });
    expect(items.at(-1)).toMatchObject({ kind: "event", event: { status: "completed", seq: 1 } });
  });

  it("a terminal publish past retry.deadlineMs resolves failed with queued: true and is still written later", async () => {
    const { progress, errors } = make({ retry: { deadlineMs: 300, minDelayMs: 50, maxDelayMs: 250 } });
    let failing: ReturnType<typeof progress.publish> | undefined;
    await outage(() => {
      failing = progress.publish("late", { status: "failed", message: "disk full" });
    });
    // It gave up waiting long before Redis returned, but kept the event.
    expect(await failing).toMatchObject({ ok: false, outcome: "failed", queued: true });
    expect(errors.some((e) => e.op === "late")).toBe(true);
    expect((await progress.flush()).unwritten).toEqual([]);
    expect(await progress.get("late")).toMatchObject({ status: "failed", message: "disk full" });
  });

  it("report() during an outage: the newest update is written once after Redis returns, and flush() waits for it", async () => {
    const { progress, errors } = make({ throttle: { intervalMs: 50 } });
    expect(await progress.publish("rep", { progress: 10 })).toMatchObject({ ok: true });
    let flushed: ReturnType<typeof progress.flush> | undefined;
    let flushedEarly = false;
    await outage(() => {
      progress.report("rep", { progress: 20, message: "first" });
      progress.report("rep", { progress: 30 });
      progress.report("rep", { progress: 40, current: 40, total: 100 });
      flushed = progress.flush({ timeoutMs: 20_000 });
      void flushed.then(() => {
        flushedEarly = true;
      });
    });
    expect(flushedEarly).toBe(false); // it waited for Redis
    expect((await flushed)?.unwritten).toEqual([]);
    expect(errors.length).toBeGreaterThan(0); // the failure was reported, not hidden
    // Redis restarted empty: one event, the coalesced newest, not a replay of each report.
    const events = await progress.history("rep");
    expect(events.map((e) => [e.progress, e.current, e.message])).toEqual([[40, 40, "first"]]);
    expect(await progress.get("rep")).toMatchObject({ status: "running", progress: 40 });
  });

  it("close() with Redis still down resolves within closeTimeoutMs and reports what it could not write", async () => {
    const { progress, errors, logged } = make({ closeTimeoutMs: 400 });
    expect(await progress.publish("c1", { progress: 5 })).toMatchObject({ ok: true });
    await crash();
    progress.report("c1", { progress: 50, cid: "req-7" });
    const terminal = progress.publish("c2", { status: "completed" });
    await sleep(100);
    const started = Date.now();
    const closed = await progress.close();
    const tookMs = Date.now() - started;
    expect(tookMs).toBeLessThan(5000);
    expect([...closed.unwritten].sort((a, b) => a.op.localeCompare(b.op))).toMatchObject([
      { op: "c1", status: "running", progress: 50, cid: "req-7", type: "progress" },
      { op: "c2", status: "completed", type: "progress" },
    ]);
    expect(await terminal).toMatchObject({ ok: false, outcome: "failed", queued: false });
    expect(await progress.close()).toBe(closed); // idempotent, same report
    const lost = logged.filter((l) => l.level === "error" && l.message === "event not written before close");
    expect(lost.map((l) => l.fields.op).sort()).toEqual(["c1", "c2"]);
    expect(errors.filter((e) => e.error.name === "ConnectionClosedError").map((e) => e.op)).toEqual(
      expect.arrayContaining(["c1", "c2"]),
    );
  });

  it("order per operation holds: held events are written oldest first, later ones queue behind", async () => {
    const { progress } = make({ throttle: false });
    expect(await progress.publish("ord", { progress: 1 })).toMatchObject({ ok: true });
    const results: Array<Promise<unknown>> = [];
    await outage(() => {
      results.push(progress.publish("ord", { progress: 10 }));
      results.push(progress.publish("ord", { type: "file_completed", message: "a.csv" }));
      progress.report("ord", { progress: 60 });
      results.push(progress.publish("ord", { status: "completed", message: "all done" }));
      results.push(progress.publish("other", { status: "completed" }));
    });
    // Redis is back but the held events may not be written yet: a rerun of the job must queue behind them.
    const rerun = progress.publish(
      "ord",
      { status: "running", progress: 0 },
      { allowAfterTerminal: true, allowBackwards: true },
    );
    const settled = (await Promise.all(results)) as Array<{ outcome: string }>;
    expect(settled[2]).toMatchObject({ ok: true, outcome: "published" });
    expect(settled[3]).toMatchObject({ ok: true, outcome: "published" });
    await rerun;
    expect((await progress.flush()).unwritten).toEqual([]);
    const events = await progress.history("ord");
    expect(events.map((e) => [e.type, e.status, e.progress])).toEqual([
      ["progress", "running", 10],
      ["file_completed", "running", undefined],
      ["progress", "running", 60],
      ["progress", "completed", 100],
      ["progress", "running", 0],
    ]);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await progress.get("other")).toMatchObject({ status: "completed" });
  });
});
