/**
 * The publish path's promises that need no Redis restart, on the memory
 * backend: report() never throws whatever it is given, flush() and close()
 * say what they could not write, and the outbox is bounded. A backend that
 * is away is the memory backend behind a switch that refuses every append.
 */
import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { ConnectionClosedError, type ProgressError } from "../../src/core/errors.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import type { ProgressUpdate } from "../../src/core/wire/index.ts";

/** The memory backend, with a switch that makes every append fail as an unreachable Redis does. */
function switchable(): { port: StreamPort; down: (v: boolean) => void } {
  const inner = memory();
  let isDown = false;
  const port: StreamPort = {
    ...inner,
    name: inner.name,
    capabilities: inner.capabilities,
    append: async (items, options) => {
      if (isDown) throw new ConnectionClosedError("backend unreachable");
      return await inner.append(items, options);
    },
  };
  return { port, down: (v) => (isDown = v) };
}

function make(options: Partial<ProgressOptions> = {}) {
  const errors: ProgressError[] = [];
  const progress = new Progress({
    port: memory(),
    logger: {},
    onError: (e) => errors.push(e),
    retry: { minDelayMs: 5, maxDelayMs: 20 },
    ...options,
  });
  return { progress, errors };
}

describe("report() never throws", () => {
  const garbage: unknown[] = [
    null,
    undefined,
    42,
    "progress",
    { progress: "half" },
    { progress: Number.NaN },
    { progress: 1, eta: Number.MAX_VALUE * 10 },
    {
      get progress(): number {
        throw new Error("getter");
      },
    },
  ];
  for (const throttle of [false, { intervalMs: 0 }, { intervalMs: 50 }] as const) {
    it(`with throttle ${JSON.stringify(throttle)}: any update, op or options goes to onError as a ProgressValidationError`, async () => {
      const { progress, errors } = make({ throttle });
      for (const update of garbage) {
        expect(() => progress.report("job", update as ProgressUpdate)).not.toThrow();
      }
      expect(() => progress.report(null as unknown as string, { progress: 1 })).not.toThrow();
      expect(() => progress.report("bad op", { progress: 1 })).not.toThrow();
      expect(() => progress.report("job", { progress: 1 }, null as never)).not.toThrow();
      expect(() => progress.report("job", { progress: 2 }, { scope: "a b" })).not.toThrow();
      expect((await progress.flush()).unwritten).toEqual([]);
      // Every bad call was reported, named; the good one (null options) was written.
      expect(errors.length).toBe(garbage.length + 3);
      expect(new Set(errors.map((e) => e.name))).toEqual(new Set(["ProgressValidationError"]));
      expect(await progress.get("job")).toMatchObject({ progress: 1 });
      await progress.close();
    });
  }

  it("a throwing logger or onError does not make report() throw either", async () => {
    const progress = new Progress({
      port: memory(),
      throttle: false,
      logger: {
        error: () => {
          throw new Error("logger down");
        },
      },
      onError: () => {
        throw new Error("handler down");
      },
    });
    expect(() => progress.report("job", null as unknown as ProgressUpdate)).not.toThrow();
    await progress.close();
  });
});

describe("report() coalescing", () => {
  it("never merges valid reports into an invalid one: a new total below the held current writes the held report first", async () => {
    const { progress, errors } = make({ throttle: { intervalMs: 60_000 } });
    progress.report("job", { current: 5, total: 200 }); // written at once
    progress.report("job", { current: 150 }); // held
    progress.report("job", { total: 7 }); // merged, 150 of 7: the held report goes first
    progress.report("job", { current: 6 }); // merged with the total 7
    await progress.flush();
    expect(errors).toEqual([]);
    const history = await progress.history("job");
    expect(history.map((e) => [e.current, e.total])).toEqual([
      [5, 200],
      [150, undefined],
      [6, 7],
    ]);
    expect(await progress.get("job")).toMatchObject({ current: 6, total: 7 });
    await progress.close();
  });
});

describe("flush() and close() on the memory backend", () => {
  it("resolve with nothing unwritten; a terminal publish resolves published", async () => {
    const { progress } = make({ throttle: { intervalMs: 10_000 } });
    progress.report("m", { progress: 10 });
    progress.report("m", { progress: 20 });
    expect(await progress.flush()).toEqual({ unwritten: [] });
    expect(await progress.publish("m", { status: "completed" })).toMatchObject({ ok: true, outcome: "published" });
    expect(await progress.close()).toEqual({ unwritten: [] });
    expect(await progress.publish("m", { progress: 1 })).toMatchObject({ ok: false, outcome: "failed", queued: false });
  });
});

describe("the outbox, with a backend that is away", () => {
  it("keeps order per operation and writes everything once the backend is back", async () => {
    const { port, down } = switchable();
    const { progress } = make({ port, throttle: false, estimate: false });
    down(true);
    const first = progress.publish("o", { progress: 10 });
    progress.report("o", { progress: 20 });
    progress.report("o", { progress: 30, message: "newest" });
    const done = progress.publish("o", { status: "completed" });
    expect(await first).toMatchObject({ ok: false, outcome: "failed", queued: true });
    const flushed = await progress.flush({ timeoutMs: 100 });
    expect(flushed.unwritten.map((e) => [e.op, e.status, e.progress])).toEqual([
      ["o", "running", 30],
      ["o", "completed", 100],
    ]);
    down(false);
    expect(await done).toMatchObject({ ok: true, outcome: "published", seq: 2 });
    expect((await progress.history("o")).map((e) => [e.status, e.progress, e.message])).toEqual([
      ["running", 30, "newest"],
      ["completed", 100, undefined],
    ]);
    await progress.close();
  });

  it("never lets a later event of an operation overtake an earlier one whose call failed", async () => {
    const inner = memory();
    let release: (() => void) | undefined;
    let failNext = true;
    // The first call hangs, then fails as a dropped connection; every later call succeeds.
    const port: StreamPort = {
      ...inner,
      name: inner.name,
      capabilities: inner.capabilities,
      append: async (items, options) => {
        if (failNext) {
          failNext = false;
          await new Promise<void>((resolve) => {
            release = resolve;
          });
          throw new ConnectionClosedError("connection lost");
        }
        return await inner.append(items, options);
      },
    };
    const errors: ProgressError[] = [];
    const progress = new Progress({
      port,
      logger: {},
      throttle: false,
      onError: (e) => errors.push(e),
      retry: { minDelayMs: 5, maxDelayMs: 20 },
    });
    const first = progress.publish("job", { type: "chunk", data: { i: 1 } });
    const second = progress.publish("job", { type: "chunk", data: { i: 2 } });
    const other = progress.publish("other-job", { type: "chunk", data: { i: 1 } });
    // Another operation is not held up by the call in flight.
    expect(await other).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 20));
    release?.();
    expect(await first).toMatchObject({ ok: false, queued: true });
    expect(await second).toMatchObject({ ok: false, queued: true });
    expect((await progress.flush()).unwritten).toEqual([]);
    expect((await progress.history("job")).map((e) => [e.seq, e.data?.i])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    await progress.close();
  });

  it("is bounded by outboxMaxEvents: a progress update makes room for a terminal event; what finds no room is reported", async () => {
    const { port, down } = switchable();
    const dropped: string[] = [];
    const progress = new Progress({
      port,
      logger: { error: (message, fields) => dropped.push(`${message}:${String(fields.op)}`) },
      throttle: false,
      outboxMaxEvents: 2,
      closeTimeoutMs: 50,
      retry: { minDelayMs: 5, maxDelayMs: 20 },
    });
    down(true);
    progress.report("a", { progress: 1 });
    progress.report("b", { progress: 1 });
    progress.report("c", { progress: 1 }); // no room: dropped
    const terminal = progress.publish("d", { status: "completed" }); // pushes out a's update
    await progress.flush({ timeoutMs: 50 });
    expect(dropped).toContain("event dropped:c");
    expect(dropped).toContain("event dropped:a");
    down(false);
    expect(await terminal).toMatchObject({ ok: true });
    expect((await progress.flush()).unwritten).toEqual([]);
    expect(await progress.get("a")).toBeNull();
    expect(await progress.get("b")).toMatchObject({ progress: 1 });
    expect(await progress.get("c")).toBeNull();
    expect(await progress.get("d")).toMatchObject({ status: "completed" });
    expect(await progress.close()).toEqual({ unwritten: [] });
  });

  it("with retry.attempts, a terminal publish stops waiting after that many retries but stays queued", async () => {
    const { port, down } = switchable();
    const { progress } = make({ port, retry: { attempts: 2, minDelayMs: 5, maxDelayMs: 10 } });
    down(true);
    expect(await progress.publish("t", { status: "failed" })).toMatchObject({
      ok: false,
      outcome: "failed",
      queued: true,
    });
    down(false);
    expect((await progress.flush()).unwritten).toEqual([]);
    expect(await progress.get("t")).toMatchObject({ status: "failed" });
    await progress.close();
  });
});
