/**
 * Every server example runs as its own process against a real redis-server;
 * this test publishes with the default prefix (as a worker would) and follows
 * over HTTP with the browser client, to the end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { follow, followWebSocket, type ProgressEvent, type WebSocketClass } from "../../src/client/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { runExample, startExample } from "./support.ts";

let redis: RedisServer;
let progress: Progress;

beforeAll(async () => {
  redis = await startRedis();
  progress = createProgress({ port: nodeRedis({ url: redis.url }), throttle: false, logger: {} });
});
afterAll(async () => {
  await progress?.close();
  await redis?.close();
});

/** Publishes a short job on `op` while the client follows `url`; resolves with what the client saw. */
async function followJob(url: string, op: string, headers: Record<string, string> = {}): Promise<ProgressEvent[]> {
  await progress.publish(op, { status: "running", progress: 10, message: "Starting" });
  const seen: ProgressEvent[] = [];
  const client = follow(url, { headers, onEvent: (e) => seen.push(e), minDelayMs: 50 });
  const deadline = Date.now() + 60_000;
  while (!seen.some((e) => e.kind === "snapshot") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await progress.publish(op, { progress: 60, message: "Halfway" });
  await progress.publish(op, { status: "completed", progress: 100 });
  await Promise.race([client.done, new Promise((r) => setTimeout(r, 60_000))]);
  client.close();
  return seen;
}

const progressOf = (seen: ProgressEvent[]): Array<number | undefined> =>
  seen.filter((e) => e.kind === "event").map((e) => e.progress);

describe("examples", () => {
  it.each([
    ["express/server.ts", { authorization: "Bearer x" }],
    ["fastify/server.ts", {}],
    ["hono/server.ts", {}],
  ])(
    "%s serves /progress/:op as SSE",
    async (file, headers) => {
      const app = await startExample(`examples/${file}`, { REDIS_URL: redis.url });
      try {
        const op = `ex-${file.split("/")[0]}`;
        const seen = await followJob(`${app.url}/progress/${op}`, op, headers);
        expect(progressOf(seen), app.output()).toEqual([10, 60, 100]);
        expect(seen.at(-1)?.status).toBe("completed");
      } finally {
        await app.stop();
      }
    },
    180_000,
  );

  it("websocket/server.ts serves SSE and WebSockets behind one token check", async () => {
    const app = await startExample("examples/websocket/server.ts", { REDIS_URL: redis.url, TOKEN: "t0k" });
    try {
      expect((await fetch(`${app.url}/?`)).status).toBe(400);
      expect((await fetch(`${app.url}/?op=ws-1`, { headers: { authorization: "Bearer nope" } })).status).toBe(403);
      const seen = await followJob(`${app.url}/?op=ws-1`, "ws-1", { authorization: "Bearer t0k" });
      expect(progressOf(seen)).toEqual([10, 60, 100]);
      const overSocket = followWebSocket(
        `${app.url.replace("http", "ws")}/?token=t0k`,
        { op: "ws-1" },
        { WebSocket: WebSocket as unknown as WebSocketClass },
      );
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (overSocket.state?.status === "completed") {
            clearInterval(check);
            resolve();
          }
        }, 20);
      });
      overSocket.close();
      const refused = followWebSocket(
        `${app.url.replace("http", "ws")}/?token=bad`,
        { op: "ws-1" },
        { WebSocket: WebSocket as unknown as WebSocketClass },
      );
      await expect(refused.done).rejects.toMatchObject({ status: 403 });
    } finally {
      await app.stop();
    }
  }, 180_000);

  it("task/import-job.ts runs a task to completed and exits", async () => {
    const { code, output } = await runExample("examples/task/import-job.ts", { REDIS_URL: redis.url });
    expect(code, output).toBe(0);
    const snapshot = await progress.get("import-42");
    expect(snapshot).toMatchObject({ status: "completed", current: 50, total: 50 });
    const types = (await progress.history("import-42")).map((e) => e.type);
    expect(types).toContain("file_completed");
  }, 180_000);

  it("nextjs/app/progress/[op]/route.ts answers web Requests", async () => {
    process.env.REDIS_URL = redis.url;
    const route = await import("../../examples/nextjs/app/progress/[op]/route.ts");
    expect(route.dynamic).toBe("force-dynamic");
    const refused = await route.GET(new Request("http://localhost/progress/next-1"), {
      params: Promise.resolve({ op: "next-1" }),
    });
    expect(refused.status).toBe(403);
    await progress.publish("next-1", { status: "running", progress: 30 });
    await progress.publish("next-1", { status: "completed", progress: 100 });
    const response = await route.GET(
      new Request("http://localhost/progress/next-1", { headers: { authorization: "Bearer x" } }),
      { params: Promise.resolve({ op: "next-1" }) },
    );
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const text = await response.text(); // ends after the terminal event
    expect(text).toContain("event: snapshot");
    expect(text).toMatch(/"status":"completed"/);
  }, 180_000);

  it("bullmq/server.ts and bullmq/worker.ts: a retried job is followed to completed", async () => {
    const app = await startExample("examples/bullmq/server.ts", { REDIS_URL: redis.url });
    const worker = await startExample(
      "examples/bullmq/worker.ts",
      { REDIS_URL: redis.url, JOB_ID: "bull-1" },
      undefined,
      /added (\S+)/,
    );
    try {
      const seen: ProgressEvent[] = [];
      const client = follow(`${app.url}/progress/bull-1`, { onEvent: (e) => seen.push(e), minDelayMs: 50 });
      await Promise.race([client.done, new Promise((r) => setTimeout(r, 90_000))]);
      client.close();
      expect(
        seen.some((e) => e.type === "retry"),
        app.output(),
      ).toBe(true);
      expect(client.state).toMatchObject({ status: "completed", current: 5, total: 5 });
    } finally {
      await Promise.all([app.stop(), worker.stop()]);
    }
  }, 240_000);
});
