/**
 * The README's BullMQ deployment with each side in its own process: the bridge
 * (in the API server) and a worker using withProgress, both publishing to the
 * same Redis, BullMQ on it too. A job's history, read whole from its scope's
 * stream (which keeps every attempt), never goes backwards.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

let redis: RedisServer;
let progress: Progress;
const prefix = `t${Math.random().toString(36).slice(2, 8)}`;
const children: ChildProcessByStdio<null, Readable, Readable>[] = [];

/** Start a side, resolving once it says it is ready. */
async function side(role: "bridge" | "worker", queueName: string, scope: string): Promise<void> {
  const child = spawn(
    "node_modules/.bin/tsx",
    ["test/bullmq/child.ts", role, String(redis.port), prefix, queueName, scope],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} not ready: ${output}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes("ready\n")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code) => reject(new Error(`${role} exited ${code}: ${output}`)));
  });
}

beforeAll(async () => {
  redis = await startRedis();
  progress = createProgress({ port: nodeRedis({ url: redis.url }), prefix, logger: {} });
});

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }
  await progress?.close();
  await redis?.close();
});

describe("bridgeQueue and withProgress in separate processes", () => {
  it("a job failing once then succeeding: statuses and time only go forward within each attempt", async () => {
    const queueName = `q${Math.random().toString(36).slice(2, 8)}`;
    const scope = "team-1";
    await Promise.all([side("bridge", queueName, scope), side("worker", queueName, scope)]);
    const queue = new Queue(queueName, { connection: { host: "127.0.0.1", port: redis.port } });
    const ids = ["job-a", "job-b", "job-c", "job-d"];
    try {
      // Several jobs at once, taken by the worker as soon as they are added: its events race the bridge's.
      await queue.addBulk(ids.map((jobId) => ({ name: "import", data: {}, opts: { jobId, attempts: 2 } })));
      for (const id of ids) {
        for (let i = 0; i < 400 && (await progress.get(id))?.status !== "completed"; i++) {
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      // Give the bridge time to handle the queue's events of the end (its `completed` repeats the worker's).
      for (let i = 0; i < 100 && (await queue.getCompletedCount()) < ids.length; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 500));

      const history = await progress.history({ scope });
      for (const id of ids) {
        const events = history.filter((e) => e.op === id);
        const steps = (attempt: number): [number, string, string, string | undefined][] =>
          [1, 2, 3].map((step) => [attempt, "progress", "running", `Step ${step} of 3`]);
        const expected: [number, string, string, string | undefined][] = [
          [1, "progress", "running", undefined],
          ...steps(1),
          [2, "retry", "queued", `flaky ${id}`],
          [2, "progress", "running", undefined],
          ...steps(2),
          [2, "progress", "completed", undefined],
        ];
        const seen = events.map((e) => [e.attempt, e.type, e.status, e.message]);
        // The bridge's `queued` is there when it was written before the worker took the job, never after.
        const head = seen[0]?.[2] === "queued" ? [[1, "progress", "queued", undefined]] : [];
        expect(seen, JSON.stringify(events)).toEqual([...head, ...expected]);
        expect(events.find((e) => e.type === "retry")?.data).toEqual({ attemptsMade: 1, attempts: 2 });
        // seq always increases; within an attempt, time never goes back.
        for (const [i, e] of events.entries()) {
          const before = events[i - 1];
          if (!before) continue;
          expect(e.seq).toBeGreaterThan(before.seq);
          if (before.attempt === e.attempt) expect(Date.parse(e.ts)).toBeGreaterThanOrEqual(Date.parse(before.ts));
        }
        const snapshot = await progress.get(id);
        expect(snapshot).toMatchObject({ status: "completed", attempt: 2, progress: 100, current: 3, total: 3 });
        expect(snapshot?.message).toBeUndefined();
      }
    } finally {
      await queue.close();
    }
  });
});
