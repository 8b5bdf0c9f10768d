import { Queue, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { bridgeQueue, toProgressUpdate, withProgress } from "../../src/bullmq/index.ts";
import { follow, type ProgressEvent } from "../../src/client/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { type SseServer, startSseServer } from "../support/sse-server.ts";

/** The attempt an event or a state belongs to (every event carries it on the wire). */
const attemptOf = (e: object | undefined): unknown => (e as { attempt?: unknown } | undefined)?.attempt;

let redis: RedisServer;
let progress: Progress;
let server: SseServer;
const connection = (): { host: string; port: number; maxRetriesPerRequest: null } => ({
  host: "127.0.0.1",
  port: redis.port,
  maxRetriesPerRequest: null,
});

beforeAll(async () => {
  redis = await startRedis();
  progress = createProgress({
    port: nodeRedis({ url: redis.url }),
    prefix: `t${Math.random().toString(36).slice(2, 8)}`,
    throttle: false,
    logger: {},
  });
  server = await startSseServer(progress);
});

afterAll(async () => {
  await server?.close();
  await progress?.close();
  await redis?.close();
});

describe("bridgeQueue", () => {
  it("shows a job that fails twice then succeeds as three attempts ending completed", async () => {
    const name = `q${Math.random().toString(36).slice(2, 8)}`;
    const bridge = await bridgeQueue(name, { connection: connection(), progress });
    const queue = new Queue(name, { connection: connection() });
    const seen: ProgressEvent[] = [];
    // Connected before the job is added: a client joining later sees only the latest attempt's history.
    let opened: () => void = () => {};
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const client = follow(`${server.url}/progress/job-1`, {
      onEvent: (e) => seen.push(e),
      onStatus: (s) => s === "open" && opened(),
      minDelayMs: 50,
    });
    const worker = new Worker(
      name,
      async (job) => {
        const message = `attempt ${job.attemptsMade + 1}`;
        await job.updateProgress({ progress: 40, message });
        // The client sees each attempt's progress before the attempt fails: the
        // retry's new attempt drops the previous one's history from the stream.
        for (let i = 0; i < 400 && !seen.some((e) => e.message === message); i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        if (job.attemptsMade < 2) throw new Error(`flaky ${job.attemptsMade + 1}`);
        await job.updateProgress(90);
        return "ok";
      },
      { connection: connection() },
    );
    try {
      await open;
      await queue.add("import", { rows: 3 }, { jobId: "job-1", attempts: 3 });
      await client.done;
      const events = seen.filter((e) => e.kind === "event");
      const starts = events.filter((e) => e.status === "running" && e.type === "progress" && e.progress === 0);
      const retries = events.filter((e) => e.type === "retry");
      expect(retries.map((e) => e.message)).toEqual(["flaky 1", "flaky 2"]);
      expect(retries.map((e) => e.data?.attemptsMade)).toEqual([1, 2]);
      expect(starts.length).toBeGreaterThanOrEqual(2);
      expect(events.filter((e) => e.message?.startsWith("attempt ")).map((e) => e.message)).toEqual([
        "attempt 1",
        "attempt 2",
        "attempt 3",
      ]);
      // Each retry starts a new attempt of the operation: attempt 1, 2, 3, with seq still increasing.
      // A retry event starts the next attempt, saying why the previous one failed.
      expect(retries.map(attemptOf)).toEqual([2, 3]);
      expect(starts.map(attemptOf)).toEqual(expect.arrayContaining([2, 3]));
      expect(events.filter((e) => e.message?.startsWith("attempt ")).map(attemptOf)).toEqual([1, 2, 3]);
      const seqs = events.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(client.state?.status).toBe("completed");
      expect(client.state?.progress).toBe(100);
      const snapshot = await progress.get("job-1");
      expect(snapshot).toMatchObject({ status: "completed", attempt: 3, progress: 100 });
      // The snapshot and the history hold the last attempt alone, nothing merged from the failed ones.
      expect(snapshot?.message).toBeUndefined();
      const history = await progress.history("job-1");
      expect(new Set(history.map((e) => e.attempt))).toEqual(new Set([3]));
      expect(history.map((e) => [e.type, e.status])).toEqual(
        expect.arrayContaining([
          ["retry", "queued"],
          ["progress", "running"],
          ["progress", "completed"],
        ]),
      );
      expect(history[0]).toMatchObject({ type: "retry", message: "flaky 2", data: { attemptsMade: 2, attempts: 3 } });
    } finally {
      client.close();
      await worker.close();
      await queue.close();
      await bridge.close();
    }
  });

  it("publishes progress from the worker itself with withProgress, and a final failure", async () => {
    const name = `q${Math.random().toString(36).slice(2, 8)}`;
    const bridge = await bridgeQueue(name, { connection: connection(), progress, forwardProgress: false });
    const queue = new Queue(name, { connection: connection() });
    const seen: ProgressEvent[] = [];
    const client = follow(`${server.url}/progress/job-2`, { onEvent: (e) => seen.push(e), minDelayMs: 50 });
    const worker = new Worker(
      name,
      withProgress(progress, async (job) => {
        await job.updateProgress({ current: 3, total: 10, file: "a.csv" });
        throw new Error("disk full");
      }),
      { connection: connection() },
    );
    try {
      await queue.add("import", {}, { jobId: "job-2" });
      await client.done;
      const withCounts = seen.filter((e) => e.current === 3);
      // Published once, by the worker: the bridge leaves the queue's progress events alone.
      expect(withCounts.filter((e) => e.kind === "event")).toHaveLength(1);
      expect(withCounts[0]?.data).toEqual({ file: "a.csv" });
      expect(client.state?.status).toBe("failed");
      expect(client.state?.message).toBe("disk full");
      expect(bridge.lastEventId).toMatch(/^\d+-\d+$/);
    } finally {
      client.close();
      await worker.close();
      await queue.close();
      await bridge.close();
    }
  });
});

describe("withProgress on retried jobs", () => {
  it("a job failing twice then succeeding: each attempt's progress is seen in that attempt, ending completed with attempt 3", async () => {
    const name = `q${Math.random().toString(36).slice(2, 8)}`;
    const bridge = await bridgeQueue(name, { connection: connection(), progress, forwardProgress: false });
    const queue = new Queue(name, { connection: connection() });
    // Several jobs at once, each reporting the moment its attempt starts: the worker's progress and
    // the queue's retry events race, and no attempt may lose its progress to the next one's start.
    const ids = ["wp-1", "wp-2", "wp-3"];
    const seen = new Map<string, ProgressEvent[]>(ids.map((id) => [id, []]));
    const opened = ids.map(() => {
      let resolve: () => void = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      return { promise, resolve };
    });
    const clients = ids.map((id, i) =>
      follow(`${server.url}/progress/${id}`, {
        onEvent: (e) => seen.get(id)?.push(e),
        onStatus: (s) => s === "open" && opened[i]?.resolve(),
        minDelayMs: 50,
      }),
    );
    const worker = new Worker(
      name,
      withProgress(progress, async (job) => {
        const attempt = job.attemptsMade + 1;
        const message = `attempt ${attempt}`;
        await job.updateProgress({ progress: 40, message });
        // The client sees each attempt's progress before the attempt fails (the next attempt's
        // start drops the previous one's history from the stream).
        const events = seen.get(job.id ?? "") ?? [];
        for (let i = 0; i < 400 && !events.some((e) => e.message === message); i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        if (attempt < 3) throw new Error(`flaky ${attempt}`);
        await job.updateProgress({ progress: 90, message: "almost" });
        return "ok";
      }),
      { connection: connection(), concurrency: ids.length },
    );
    try {
      await Promise.all(opened.map((o) => o.promise));
      await queue.addBulk(ids.map((jobId) => ({ name: "import", data: {}, opts: { jobId, attempts: 3 } })));
      await Promise.all(clients.map((c) => c.done));
      for (const [i, id] of ids.entries()) {
        const events = (seen.get(id) ?? []).filter((e) => e.kind === "event");
        const own = events.filter((e) => e.message?.startsWith("attempt "));
        // Every attempt's progress reached the client, labelled with its own attempt.
        expect(own.map((e) => [e.message, attemptOf(e), e.progress])).toEqual([
          ["attempt 1", 1, 40],
          ["attempt 2", 2, 40],
          ["attempt 3", 3, 40],
        ]);
        expect(events.find((e) => e.message === "almost")).toMatchObject({ attempt: 3, progress: 90 });
        // Attempts 2 and 3 each start once, by the worker whose run failed, saying why, while the job waits.
        const starts = events.filter((e) => e.type === "retry");
        expect(starts.map((e) => [attemptOf(e), e.status, e.message])).toEqual([
          [2, "queued", "flaky 1"],
          [3, "queued", "flaky 2"],
        ]);
        // Within an attempt the status never goes back: no queued after running.
        for (const attempt of [1, 2, 3]) {
          const statuses = events.filter((e) => attemptOf(e) === attempt).map((e) => e.status);
          const firstRunning = statuses.indexOf("running");
          if (firstRunning >= 0) expect(statuses.slice(firstRunning)).not.toContain("queued");
        }
        const seqs = events.map((e) => e.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        expect(clients[i]?.state).toMatchObject({ status: "completed", progress: 100 });
        expect(attemptOf(clients[i]?.state)).toBe(3);
        // The operation holds the last attempt, its progress included.
        expect(await progress.get(id)).toMatchObject({ status: "completed", attempt: 3 });
        const history = await progress.history(id);
        expect(new Set(history.map((e) => e.attempt))).toEqual(new Set([3]));
        expect(history[0]).toMatchObject({
          type: "retry",
          status: "queued",
          message: "flaky 2",
          data: { attemptsMade: 2, attempts: 3 },
        });
        expect(history.map((e) => e.message)).toEqual(expect.arrayContaining(["attempt 3", "almost"]));
        expect(history.at(-1)).toMatchObject({ status: "completed" });
      }
    } finally {
      for (const c of clients) c.close();
      await worker.close();
      await queue.close();
      await bridge.close();
    }
  });
});

describe("withProgress and job.retry()", () => {
  it("each job.retry() of a failed job runs as a new attempt, also with BullMQ's counts reset", async () => {
    const name = `q${Math.random().toString(36).slice(2, 8)}`;
    const bridge = await bridgeQueue(name, { connection: connection(), progress, forwardProgress: false });
    const queue = new Queue(name, { connection: connection() });
    let runs = 0;
    const worker = new Worker(
      name,
      withProgress(progress, async (job) => {
        runs++;
        await job.updateProgress({ current: runs, total: 3, message: `run ${runs}` });
        if (runs < 3) throw new Error(`bad input ${runs}`);
        return "ok";
      }),
      { connection: connection() },
    );
    const ended = async (attempt: number) => {
      for (let i = 0; i < 400; i++) {
        const s = await progress.get("wp-retry");
        if (s && attemptOf(s) === attempt && (s.status === "failed" || s.status === "completed")) return s;
        await new Promise((r) => setTimeout(r, 10));
      }
      return await progress.get("wp-retry");
    };
    try {
      const job = await queue.add("import", {}, { jobId: "wp-retry" });
      expect(await ended(1)).toMatchObject({ status: "failed", message: "bad input 1", attempt: 1 });
      await job.retry("failed");
      expect(await ended(2)).toMatchObject({ status: "failed", message: "bad input 2", attempt: 2 });
      expect((await progress.history("wp-retry")).map((e) => e.message)).toEqual(
        expect.arrayContaining(["run 2", "bad input 2"]),
      );
      // BullMQ's counts reset: the worker finds the operation ended and starts a new attempt all the same.
      await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
      expect(await ended(3)).toMatchObject({ status: "completed", current: 3, total: 3, attempt: 3 });
      const history = await progress.history("wp-retry");
      expect(history.every((e) => e.attempt === 3)).toBe(true);
      expect(history.map((e) => e.message)).toContain("run 3");
    } finally {
      await worker.close();
      await queue.close();
      await bridge.close();
    }
  });
});

describe("job.retry()", () => {
  it("of a failed job runs the operation again as a new attempt, seen by a client ending completed", async () => {
    const name = `q${Math.random().toString(36).slice(2, 8)}`;
    const bridge = await bridgeQueue(name, { connection: connection(), progress });
    const queue = new Queue(name, { connection: connection() });
    let runs = 0;
    const worker = new Worker(
      name,
      async (job) => {
        runs++;
        await job.updateProgress({ current: 2, total: 4, message: `run ${runs}` });
        if (runs === 1) throw new Error("bad input file");
        return "ok";
      },
      { connection: connection() },
    );
    const seen: ProgressEvent[] = [];
    try {
      const job = await queue.add("import", {}, { jobId: "job-3" });
      const first = follow(`${server.url}/progress/job-3`, { onEvent: (e) => seen.push(e), minDelayMs: 50 });
      await first.done;
      expect(first.state).toMatchObject({ status: "failed", message: "bad input file" });
      expect(attemptOf(first.state)).toBe(1);

      await job.retry("failed");
      for (let i = 0; i < 200 && attemptOf((await progress.get("job-3")) ?? undefined) !== 2; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const again = follow(`${server.url}/progress/job-3`, { onEvent: (e) => seen.push(e), minDelayMs: 50 });
      await again.done;
      expect(again.state).toMatchObject({ status: "completed", progress: 100, current: 4, total: 4 });
      expect(attemptOf(again.state)).toBe(2);
      const history = await progress.history("job-3");
      expect(history.map((e) => [e.attempt, e.status])).toEqual(
        expect.arrayContaining([
          [2, "queued"],
          [2, "completed"],
        ]),
      );
      expect(history.every((e) => e.attempt === 2)).toBe(true);
      again.close();
    } finally {
      await worker.close();
      await queue.close();
      await bridge.close();
    }
  });
});

describe("toProgressUpdate", () => {
  it("maps numbers, objects and strings, and never throws", () => {
    expect(toProgressUpdate(42.123)).toEqual({ progress: 42.12 });
    expect(toProgressUpdate(140)).toEqual({ progress: 100 });
    expect(toProgressUpdate({ current: 3, total: 10, message: "m", x: 1 })).toEqual({
      current: 3,
      total: 10,
      message: "m",
      data: { x: 1 },
    });
    expect(toProgressUpdate("halfway")).toEqual({ message: "halfway" });
    expect(toProgressUpdate(true)).toEqual({});
    expect(toProgressUpdate(Number.NaN)).toEqual({});
  });
});
