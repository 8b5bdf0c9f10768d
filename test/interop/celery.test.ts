/**
 * A real Celery worker (`celery -A celery_app worker --pool=solo`) runs tasks
 * written as python/README.md shows, with its broker on the test's own
 * redis-server; a Node manager watches what a browser would see: a Celery
 * retry is a `retry` event then a new attempt, never `failed` until the last
 * attempt; a cancel stops the README's loop, which ends `cancelled`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { createProgress, type Progress, type ProgressEvent, silentLogger } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { PYTHONPATH, root, run } from "./support.ts";

/** The first of `$PROGRESSCAST_CELERY_PYTHON`, `/usr/bin/python3`, `python3` that imports Celery and redis-py. */
function findCeleryPython(): string | "absent" | "no-celery" {
  let found = false;
  for (const candidate of [process.env.PROGRESSCAST_CELERY_PYTHON, "/usr/bin/python3", "python3"]) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      found = true;
      execFileSync(candidate, ["-c", "import celery, redis"], { stdio: "ignore" });
      return candidate;
    } catch {}
  }
  return found ? "no-celery" : "absent";
}

const python = findCeleryPython();
if (python === "absent") console.warn("test/interop/celery.test.ts skipped: no python3 on this machine.");
if (python === "no-celery") {
  throw new Error(
    "python3 is installed but cannot import Celery and redis-py: install them (`sudo apt-get install -y " +
      "python3-celery python3-redis`), or point PROGRESSCAST_CELERY_PYTHON at a Python that has both.",
  );
}

const APP_DIR = join(root, "test", "interop", "py");

/** What a watcher saw, one line per item: `reset`, or `type status attempt`. */
type Seen = { kind: "reset" } | { kind: "event"; event: ProgressEvent };

describe.skipIf(python === "absent")("Celery worker", { timeout: 60_000 }, () => {
  const py = typeof python === "string" && python !== "no-celery" ? python : "python3";
  const prefix = `cel${Math.random().toString(36).slice(2, 8)}`;
  let redis: RedisServer;
  let progress: Progress;
  let worker: ChildProcess | undefined;
  let workerLog = "";
  let env: Record<string, string>;

  beforeAll(async () => {
    redis = await startRedis();
    progress = createProgress({ port: nodeRedis({ url: redis.url }), prefix, throttle: false, logger: silentLogger });
    env = { PYTHONPATH: `${PYTHONPATH}:${APP_DIR}`, REDIS_URL: redis.url, PREFIX: prefix };
    worker = spawn(
      py,
      [
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-l",
        "warning",
        "-n",
        `${prefix}@localhost`,
      ],
      { cwd: APP_DIR, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    worker.stdout?.on("data", (d: Buffer) => {
      workerLog += d.toString();
    });
    worker.stderr?.on("data", (d: Buffer) => {
      workerLog += d.toString();
    });
  });

  afterAll(async () => {
    const child = worker;
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      process.kill(child.pid, "SIGTERM");
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await progress?.close();
    await redis?.close();
  });

  /** Queue `task` with the operation id as its task id. */
  const send = async (task: string, op: string, args: unknown[]): Promise<void> => {
    const code = `import celery_app, json, sys; celery_app.${task}.apply_async(args=json.loads(sys.argv[1]), task_id=sys.argv[2])`;
    const r = await run(py, ["-c", code, JSON.stringify(args), op], { env });
    if (r.code !== 0) throw new Error(`sending ${task} failed (${r.code})\n${r.stderr}`);
  };

  /** Everything a watcher of `op` sees until its operation ends (a terminal event). */
  const watch = async (op: string, started?: () => Promise<void>): Promise<Seen[]> => {
    const seen: Seen[] = [];
    const signal = AbortSignal.timeout(45_000);
    let sentStart = false;
    for await (const item of progress.watch(op, { signal })) {
      if (item.kind === "snapshot") {
        if (!sentStart && started) {
          sentStart = true;
          void started();
        }
        continue;
      }
      seen.push(item.kind === "reset" ? { kind: "reset" } : { kind: "event", event: item.event });
    }
    if (signal.aborted) throw new Error(`the watch of ${op} did not end; worker log:\n${workerLog}`);
    return seen;
  };

  const line = (s: Seen): string =>
    s.kind === "reset" ? "reset" : `${s.event.type} ${s.event.status} ${s.event.attempt ?? 1}`;

  it("self.retry() shows a retrying state with the reason and when the next try is due, then attempt 2, then completed", async () => {
    const op = "celery-flaky-1";
    const seen = await watch(op, () => send("flaky_import", op, [5]));
    const lines = seen.map(line);
    expect(lines.filter((l) => l.includes("failed"))).toEqual([]);
    const retryAt = lines.indexOf("retry queued 1");
    const reset = lines.indexOf("reset");
    expect(lines[0]).toBe("progress running 1");
    expect(retryAt).toBeGreaterThan(0);
    expect(reset).toBeGreaterThan(retryAt);
    expect(lines.slice(reset + 1, reset + 2)).toEqual(["retry running 2"]);
    expect(lines.at(-1)).toBe("progress completed 2");

    const events = seen.flatMap((s) => (s.kind === "event" ? [s.event] : []));
    const first = events[0];
    expect(first).toMatchObject({ message: "Importing 5 rows", current: 0, total: 5 });
    const retry = events.find((e) => e.type === "retry" && e.status === "queued");
    expect(retry).toMatchObject({
      message: "KeyError: 'sku'",
      data: { attemptsMade: 1, attempts: 4 },
    });
    const due = Date.parse(String(retry?.data?.retryAt));
    const at = Date.parse(retry?.ts ?? "");
    // countdown=1: due one second after the attempt failed (a little less after the event was stamped).
    expect(due - at).toBeGreaterThan(0);
    expect(due - at).toBeLessThanOrEqual(1000);
    const again = events.find((e) => e.type === "retry" && e.status === "running");
    expect(again).toMatchObject({
      attempt: 2,
      progress: 0,
      current: 0,
      total: 5,
      data: { attemptsMade: 1, attempts: 4 },
    });
    expect(Date.parse(again?.ts ?? "")).toBeGreaterThanOrEqual(due - 100);

    // What a browser joining now sees: attempt 2's history only, ended completed.
    const history = await progress.history(op);
    expect(history.map((e) => `${e.type} ${e.status} ${e.attempt}`)).toEqual([
      "retry running 2",
      ...Array(history.length - 2).fill("progress running 2"),
      "progress completed 2",
    ]);
    expect(await progress.get(op)).toMatchObject({ status: "completed", attempt: 2, current: 5, total: 5 });
  });

  it("autoretry_for: a retry event in attempt 1, then the failure after max_retries ends failed", async () => {
    const op = "celery-down-1";
    const seen = await watch(op, () => send("always_down", op, []));
    const lines = seen.map(line);
    expect(lines[0]).toBe("progress running 1");
    expect(lines).toContain("retry queued 1");
    expect(lines.filter((l) => l.includes("failed"))).toEqual(["progress failed 2"]);
    expect(lines.indexOf("retry queued 1")).toBeLessThan(lines.indexOf("reset"));
    expect(lines.at(-1)).toBe("progress failed 2");
    const events = seen.flatMap((s) => (s.kind === "event" ? [s.event] : []));
    const retry = events.find((e) => e.type === "retry" && e.status === "queued");
    expect(retry).toMatchObject({ message: "ConnectionError: db down", data: { attemptsMade: 1, attempts: 2 } });
    expect(typeof retry?.data?.retryAt).toBe("string");
    expect(await progress.get(op)).toMatchObject({
      status: "failed",
      attempt: 2,
      message: "ConnectionError: db down",
      data: { error: { name: "ConnectionError", message: "db down" } },
    });
  });

  it("the README's loop in a Celery task stops on a cancel and ends cancelled", async () => {
    const op = "celery-cancel-1";
    await send("import_rows", op, [3000]);
    let running = false;
    for (let i = 0; i < 400 && !running; i++) {
      running = ((await progress.get(op))?.current ?? 0) > 0;
      if (!running) await new Promise((r) => setTimeout(r, 50));
    }
    expect(running, workerLog).toBe(true);
    expect(await progress.cancel(op, "user pressed cancel")).toBe(true);
    const seen = await watch(op);
    expect(seen.map(line).at(-1)).toBe("progress cancelled 1");
    const state = await progress.get(op);
    expect(state).toMatchObject({ status: "cancelled", message: "user pressed cancel" });
    expect(state?.current).toBeLessThan(3000);
  });
});
