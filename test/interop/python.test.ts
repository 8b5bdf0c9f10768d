/**
 * The Python publisher (python/progresscast), run as real Python processes
 * against a real redis-server: progresscast's `get`, `history`, `watch` and
 * SSE deliver its events exactly as they deliver a TypeScript worker's.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import {
  createProgress,
  isProgressValidationError,
  type Progress,
  type ProgressUpdate,
  silentLogger,
} from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { DRIVER, delivered, findPython, normalize, PYTHONPATH, run } from "./support.ts";

const python = findPython();
if (python === "absent") {
  console.warn("test/interop/python.test.ts skipped: no python3 on this machine (install Python 3.9+ and redis-py).");
}
if (python === "no-redis") {
  throw new Error(
    "python3 is installed but cannot import redis-py: install it (`sudo apt-get install -y python3-redis` or " +
      "`pip install redis`), or point PROGRESSCAST_PYTHON at a Python that has it.",
  );
}

const TS = new Date("2026-11-22T14:30:00.123Z");
/** The calls driver.py's `same` scenario makes, in TypeScript. */
const SAME: ProgressUpdate[] = [
  { status: "queued", ts: TS, cid: "req-1" },
  { current: 1, total: 3, message: "Chunked 1 of 3", ts: TS, cid: "req-1" },
  { type: "file_completed", data: { file: "a.csv", rows: 10, ok: true }, ts: TS, cid: "req-1" },
  { progress: 66.666, current: 2, total: 3, ts: TS, eta: 1.5, cid: "req-1" },
  { progress: 10, ts: TS },
  { status: "completed", message: "done", ts: TS, cid: "req-1" },
  { progress: 100, ts: TS },
];

/** The events whose `ts` is before the previous event's. */
function backwards(history: readonly { ts: string; seq: number }[]): string[] {
  return history.flatMap((e, i) => {
    const before = history[i - 1];
    return before !== undefined && e.ts < before.ts ? [`seq ${e.seq}: ${e.ts} < ${before.ts}`] : [];
  });
}

describe.skipIf(typeof python !== "object")("Python publisher", () => {
  const py = typeof python === "object" ? python.path : "python3";
  let redis: RedisServer;
  let progress: Progress;
  const prefix = `py${Math.random().toString(36).slice(2, 8)}`;

  const driver = async (scenario: string, op: string, input?: string): Promise<unknown> => {
    const r = await run(py, [DRIVER, redis.url, prefix, scenario, op], {
      env: { PYTHONPATH },
      ...(input === undefined ? {} : { input }),
    });
    if (r.code !== 0) throw new Error(`driver.py ${scenario} exited ${r.code}\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "null");
  };

  beforeAll(async () => {
    redis = await startRedis();
    progress = createProgress({
      port: nodeRedis({ url: redis.url }),
      prefix,
      throttle: false,
      estimate: false,
      logger: silentLogger,
    });
  });
  afterAll(async () => {
    await progress?.close();
    await redis?.close();
  });

  it("delivers its events exactly like a TypeScript worker's (get, history, watch, SSE; sync and asyncio)", async () => {
    const outcomes = [];
    for (const update of SAME) {
      const r = await progress.publish("ts-same", update);
      outcomes.push([
        r.outcome,
        r.ok || r.outcome === "refused" ? r.seq : null,
        r.ok ? null : ((r as { reason?: string }).reason ?? null),
      ]);
    }
    const expected = await delivered(progress, "ts-same");
    expect((expected.history as unknown[]).length).toBe(5);

    expect(await driver("same", "py-same")).toEqual(outcomes);
    expect(await delivered(progress, "py-same")).toEqual(expected);

    expect(await driver("same-async", "py-async")).toEqual(outcomes);
    expect(await delivered(progress, "py-async")).toEqual(expected);
  });

  it("two threads publishing 300 events each to one operation get seq 1..600, no duplicate, in order", async () => {
    expect(await driver("threads", "py-threads")).toEqual({ failures: [] });
    const history = await progress.history("py-threads", { limit: 1000 });
    expect(history).toHaveLength(600);
    expect(history.map((e) => e.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    for (const thread of ["a", "b"]) {
      const mine = history.filter((e) => e.data?.thread === thread).map((e) => e.data?.i);
      expect(mine).toEqual(Array.from({ length: 300 }, (_, i) => i));
    }
    expect((await progress.get("py-threads"))?.seq).toBe(600);
    // Stamped as written, so two threads racing never write a ts before the previous one's.
    expect(backwards(history)).toEqual([]);
  });

  it("refuses every invalid input naming the same field as the TypeScript core", async () => {
    const cases: Record<string, unknown>[] = [
      { op: "bad op" },
      { op: "a{b}:events" },
      { op: "" },
      { op: "x".repeat(129) },
      { progress: 101 },
      { progress: -1 },
      { progress: "50" },
      { current: -1 },
      { current: 1.5 },
      { total: -3 },
      { current: 5, total: 3 },
      { message: "x".repeat(2049) },
      { message: 42 },
      { status: "done" },
      { status: "SUCCESS" },
      { type: "1bad" },
      { type: "has space" },
      { cid: "has space" },
      { cid: "" },
      { data: [1, 2] },
      { data: "text" },
      { data: { big: "x".repeat(17_000) } },
      { data: "__set__" },
      { eta: -1 },
      { ts: "2026-11-22T14:30:00" },
      { ts: 1_795_000_000 },
      { scope: "bad scope" },
      { progress: 50, message: "ok" },
    ];
    const typescript = await Promise.all(
      cases.map(async (c) => {
        const { op = "ts-valid", scope, ...rest } = c;
        const update = { ...rest } as Record<string, unknown>;
        if (update.data === "__set__") update.data = { s: 10n };
        try {
          await progress.publish(
            op as string,
            update as ProgressUpdate,
            scope === undefined ? {} : { scope: scope as string },
          );
          return null;
        } catch (error) {
          if (!isProgressValidationError(error)) throw error;
          return error.field;
        }
      }),
    );
    expect(typescript.slice(0, -1).every((f) => f !== null)).toBe(true);
    expect(await driver("validation", "py-valid", JSON.stringify(cases))).toEqual(typescript);
  });

  it("task context: running, coalesced progress, an application event, completed; a live watcher sees it end", async () => {
    const watched: string[] = [];
    const watching = (async () => {
      for await (const item of progress.watch("py-task")) {
        if (item.kind === "event") watched.push(`${item.event.type}:${item.event.status}`);
      }
    })();
    expect(await driver("task-ok", "py-task")).toEqual({ cancelled: null });
    await watching;
    expect(watched.at(-1)).toBe("progress:completed");
    expect(watched).toContain("file_completed:running");
    const history = await progress.history("py-task");
    // The task's message and data are on its first event; its data on every event.
    expect(history[0]).toMatchObject({
      status: "running",
      progress: 0,
      cid: "celery-1",
      message: "Importing b.csv",
      data: { source: "upload" },
    });
    expect(history.every((e) => e.data?.source === "upload")).toBe(true);
    expect(history.length).toBeLessThan(50);
    const fileEvent = history.findIndex((e) => e.type === "file_completed");
    expect(history[fileEvent - 1]).toMatchObject({ current: 50, total: 50, message: "row 50" });
    expect(history.at(-1)).toMatchObject({ status: "completed", current: 50, total: 50, progress: 100, eta: 0 });
    expect(await progress.get("py-task")).toMatchObject({ status: "completed", seq: history.at(-1)?.seq });
  });

  it("task context ends failed with the exception's type and text as Python prints it, and the exception propagates", async () => {
    expect(await driver("task-fail", "py-fail")).toEqual({ raised: "KeyError('sku')" });
    expect(await progress.get("py-fail")).toMatchObject({
      status: "failed",
      message: "KeyError: 'sku'",
      current: 4,
      data: { error: { name: "KeyError", message: "'sku'" } },
    });

    expect(await driver("task-fail-async", "py-afail")).toEqual({ raised: "ValueError('bad row 301')" });
    const history = await progress.history("py-afail", { limit: 1000 });
    expect(history.at(-1)).toMatchObject({ status: "failed", message: "ValueError: bad row 301" });
    // The held progress is written before the failure, and stamped no later than it.
    expect(history.at(-2)).toMatchObject({ status: "running", current: 300 });
    expect(backwards(history)).toEqual([]);
  });

  for (const [scenario, op] of [
    ["cancel-loop", "py-cancel-loop"],
    ["cancel-loop-async", "py-cancel-aloop"],
  ] as const) {
    it(`the README's reporting loop sees a cancel, raises Cancelled and ends cancelled (${scenario})`, async () => {
      const running = driver(scenario, op);
      let started = false;
      for (let i = 0; i < 200 && !started; i++) {
        started = (await progress.get(op))?.status === "running";
        if (!started) await new Promise((r) => setTimeout(r, 50));
      }
      expect(started).toBe(true);
      expect(await progress.cancel(op, "user pressed cancel")).toBe(true);
      // Its reports are held by a 600 s throttle: only the task's own check can have seen it.
      const result = (await running) as { cancelled: string; ended: boolean; rows: number };
      expect(result).toMatchObject({ cancelled: "user pressed cancel", ended: true });
      expect(result.rows).toBeLessThan(3000);
      expect(await progress.get(op)).toMatchObject({ status: "cancelled", message: "user pressed cancel" });
      const history = await progress.history(op);
      // The start, the first report, then (held until the end) the last report and the cancellation;
      // on a loaded machine the cancel can be seen before a second report was held.
      const statuses = history.map((e) => e.status);
      expect(statuses.at(-1)).toBe("cancelled");
      expect(statuses.slice(0, -1).every((s) => s === "running")).toBe(true);
      expect(statuses.length).toBeGreaterThanOrEqual(3);
      expect(statuses.length).toBeLessThanOrEqual(4);
      if (statuses.length === 4) expect(history[2]).toMatchObject({ current: result.rows, total: 3000 });
    });
  }

  it("asyncio task context and coalescing report", async () => {
    expect(await driver("task-async", "py-atask")).toEqual({ ok: true });
    const history = await progress.history("py-atask");
    expect(history.map((e) => e.type)).toContain("file_completed");
    expect(history.at(-1)).toMatchObject({ status: "completed", current: 20, total: 20 });

    expect(await driver("report", "py-report")).toEqual({ ok: true });
    const reports = await progress.history("py-report", { limit: 1000 });
    expect(reports.length).toBeLessThan(1000);
    expect(reports.at(-1)).toMatchObject({ current: 2000, total: 2000, progress: 100 });
  });

  it("the Celery example imports without Celery and runs its task", async () => {
    const dir = mkdtempSync(join(tmpdir(), "progresscast-celery-"));
    const csv = join(dir, "rows.csv");
    writeFileSync(csv, `id,name\n${Array.from({ length: 30 }, (_, i) => `${i},row${i}`).join("\n")}\n`);
    try {
      const r = await run(
        py,
        ["-c", `import celery_task, sys; print(celery_task.import_csv("py-celery", sys.argv[1], "req-9"))`, csv],
        { env: { PYTHONPATH: `${PYTHONPATH}:${join(PYTHONPATH, "examples")}`, REDIS_URL: redis.url } },
      );
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe("30");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const reader = createProgress({ port: nodeRedis({ url: redis.url }), logger: silentLogger });
    try {
      expect(await reader.get("py-celery")).toMatchObject({
        status: "completed",
        current: 30,
        total: 30,
        cid: "req-9",
      });
      const history = await reader.history("py-celery");
      expect(history.map((e) => e.type)).toContain("file_completed");
      expect(history[0]).toMatchObject({
        status: "running",
        message: "Importing rows.csv",
        data: { file: "rows.csv" },
      });
    } finally {
      await reader.close();
    }
  });

  it("restart=True starts a new attempt exactly as the TypeScript publisher's restart does", async () => {
    const calls: Array<[ProgressUpdate, { restart?: boolean }]> = [
      [{ current: 4, total: 10, message: "Rows", data: { file: "a.csv" }, ts: TS }, {}],
      [{ status: "failed", message: "disk full", ts: TS }, {}],
      [{ progress: 5, ts: TS }, {}],
      [{ progress: 5, ts: TS }, { restart: true }],
      [{ progress: 2, ts: TS }, {}],
      [{ progress: 50, ts: TS }, {}],
      [{ progress: 0, ts: TS }, { restart: true }],
      [{ status: "completed", ts: TS }, {}],
    ];
    const outcomes = [];
    for (const [update, options] of calls) {
      const r = await progress.publish("ts-restart", update, options);
      outcomes.push([
        r.outcome,
        r.ok || r.outcome === "refused" ? r.seq : null,
        r.ok ? null : ((r as { reason?: string }).reason ?? null),
        r.ok ? r.attempt : null,
      ]);
    }
    expect(outcomes.map((o) => o[3])).toEqual([1, 1, null, 2, null, 2, 3, 3]);
    expect(await driver("restart", "py-restart")).toEqual(outcomes);
    const expected = await delivered(progress, "ts-restart");
    expect(await delivered(progress, "py-restart")).toEqual(expected);
    expect((expected.get as { attempt: number }).attempt).toBe(3);
  });

  it("a task with restart=True runs an ended operation again as a new attempt (sync and asyncio)", async () => {
    await progress.publish("py-task-restart", { status: "failed", message: "first try" });
    expect(await driver("task-restart", "py-task-restart")).toEqual({
      refused: ["refused", "terminal"],
      last: ["published", 3],
    });
    const history = await progress.history("py-task-restart");
    // The asyncio task's attempt replaced the sync one's; seq went on throughout.
    expect(history.map((e) => [e.attempt, e.status, e.current])).toEqual([
      [3, "running", 1],
      [3, "completed", 2],
    ]);
    expect(history.map((e) => e.seq)).toEqual([7, 8]);
    expect(await progress.get("py-task-restart")).toMatchObject({ status: "completed", attempt: 3, seq: 8 });
  });

  it("adds the same eta as the TypeScript core, from the progress rate at the events' times", async () => {
    const estimating = createProgress({
      port: nodeRedis({ url: redis.url }),
      prefix,
      throttle: false,
      logger: silentLogger,
    });
    try {
      const at = (s: number): Date => new Date(TS.getTime() + s * 1000);
      const calls: Array<[ProgressUpdate, { allowBackwards?: boolean }]> = [
        [{ progress: 10, ts: at(0) }, {}],
        [{ progress: 12, ts: at(0.3) }, {}],
        [{ current: 1, total: 3, ts: at(1.2) }, {}],
        [{ progress: 5, ts: at(2) }, { allowBackwards: true }],
        [{ progress: 50, ts: at(3.5) }, {}],
        [{ progress: 60, eta: 9, ts: at(3.6) }, {}],
        [{ progress: 70, ts: at(40) }, {}],
        [{ status: "completed", ts: at(41) }, {}],
      ];
      for (const [update, options] of calls)
        expect((await estimating.publish("ts-eta", update, options)).ok).toBe(true);
      const expected = await delivered(estimating, "ts-eta");
      expect((expected.history as { eta?: number }[]).map((e) => e.eta)).toEqual([
        undefined,
        undefined,
        3.4,
        undefined,
        1.7,
        9,
        54.8,
        0,
      ]);
      expect(await driver("eta", "py-eta")).toEqual(Array(8).fill("published"));
      expect(await delivered(estimating, "py-eta")).toEqual(expected);
    } finally {
      await estimating.close();
    }
  });

  it("builds a wheel offline, and the installed wheel publishes (its scripts and py.typed included)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "progresscast-wheel-"));
    try {
      // From a copy, so the build leaves nothing in the checkout.
      const source = join(dir, "src");
      cpSync(PYTHONPATH, source, {
        recursive: true,
        filter: (path) => !/(^|\/)(build|dist|__pycache__|[^/]*\.egg-info)$/.test(path),
      });
      const pip = async (args: string[]): Promise<void> => {
        const r = await run(py, ["-m", "pip", ...args], { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`pip ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      };
      await pip(["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", join(dir, "dist"), source]);
      const wheels = readdirSync(join(dir, "dist")).filter((f) => f.endsWith(".whl"));
      expect(wheels).toEqual([expect.stringMatching(/^progresscast-0\.1\.0-py3-none-any\.whl$/)]);
      const site = join(dir, "site");
      await pip(["install", "--no-deps", "--no-index", "--target", site, join(dir, "dist", wheels[0] ?? "")]);
      const code = [
        "import json, sys, progresscast, redis",
        "from importlib import resources",
        "p = progresscast.ProgressPublisher(redis.Redis.from_url(sys.argv[1]), prefix=sys.argv[2])",
        "r = p.publish('py-wheel', progress=7, message='from the wheel')",
        "typed = resources.files('progresscast').joinpath('py.typed').is_file()",
        "print(json.dumps([r.outcome, progresscast.__file__.startswith(sys.argv[3]), typed]))",
      ].join("\n");
      const r = await run(py, ["-c", code, redis.url, prefix, site], { env: { PYTHONPATH: site } });
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout)).toEqual(["published", true, true]);
      expect(await progress.get("py-wheel")).toMatchObject({ progress: 7, message: "from the wheel" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("learns a cancellation from the publish's answer", async () => {
    await progress.publish("py-cancel", { progress: 1 });
    expect(await progress.cancel("py-cancel", "user pressed cancel")).toBe(true);
    expect(await driver("cancel", "py-cancel")).toEqual({ cancelled: "user pressed cancel" });
    expect(normalize(await progress.get("py-cancel"), "py-cancel")).toMatchObject({ progress: 5 });
  });
});
