/**
 * What a browser tab costs on Upstash: an SSE viewer of a running operation,
 * served by a manager on the Upstash adapter, against the project's
 * Upstash-compatible server in front of a real redis-server. Requests are
 * counted by the server (each is a billed command on Upstash).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { upstash } from "../../src/adapters/upstash/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";

let redis: RedisServer;
let rest: UpstashServer;
beforeAll(async () => {
  redis = await startRedis();
  rest = await startUpstashServer({ redisUrl: redis.url });
});
afterAll(async () => {
  await rest?.close();
  await redis?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Open an SSE viewer of `op`; resolves once the snapshot arrived, with the frames seen so far (growing). */
async function view(progress: Progress, op: string, signal: AbortSignal) {
  const response = await progress.sse(new Request(`http://x/progress/${op}`, { signal }), op);
  const reader = response.body?.getReader();
  const decoder = new TextDecoder();
  const seen = { text: "" };
  const done = (async () => {
    try {
      for (;;) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) return;
        seen.text += decoder.decode(chunk.value, { stream: true });
      }
    } catch {
      // aborted
    }
  })();
  const deadline = Date.now() + 10_000;
  while (!seen.text.includes("event: snapshot") && Date.now() < deadline) await sleep(20);
  return { seen, done };
}

describe("an SSE viewer on the Upstash adapter", () => {
  it("costs no request while idle and none per event; leaving aborts its upstream stream", async () => {
    const prefix = uniquePrefix();
    const writer = new Progress({ port: nodeRedis({ url: redis.url }), prefix, logger: {}, throttle: false });
    const edge = new Progress({ port: upstash({ url: rest.url, token: rest.token }), prefix, logger: {} });
    try {
      await writer.publish("tab-1", { status: "running", progress: 5 });
      const leave = new AbortController();
      const viewer = await view(edge, "tab-1", leave.signal);
      await sleep(300); // the subscription and its catch-up read settle
      expect(rest.openStreams).toBe(1);
      const before = rest.requests;
      await sleep(3_000);
      expect(rest.requests - before, "requests while idle").toBe(0);
      // Ten events written past the REST server (a worker on TCP): delivered over the stream, no request.
      for (let i = 1; i <= 10; i++) await writer.publish("tab-1", { progress: 5 + i });
      const deadline = Date.now() + 10_000;
      while (!viewer.seen.text.includes('"progress":15') && Date.now() < deadline) await sleep(20);
      expect(viewer.seen.text).toContain('"progress":15');
      expect(rest.requests - before, "requests for 10 delivered events").toBe(0);
      leave.abort();
      await viewer.done;
      const gone = Date.now() + 5_000;
      while (rest.openStreams > 0 && Date.now() < gone) await sleep(20);
      expect(rest.openStreams, "upstream streams left open after the viewer left").toBe(0);
    } finally {
      await edge.close();
      await writer.close();
    }
  });

  it("polls while idle when live channels are off (the fallback)", async () => {
    const prefix = uniquePrefix();
    const writer = new Progress({ port: nodeRedis({ url: redis.url }), prefix, logger: {}, throttle: false });
    const edge = new Progress({
      port: upstash({ url: rest.url, token: rest.token, live: false, pollMaxMs: 500 }),
      prefix,
      logger: {},
    });
    try {
      await writer.publish("tab-2", { status: "running", progress: 5 });
      const leave = new AbortController();
      const viewer = await view(edge, "tab-2", leave.signal);
      const before = rest.requests;
      await sleep(3_000);
      expect(rest.requests - before).toBeGreaterThanOrEqual(4);
      expect(rest.openStreams).toBe(0);
      await writer.publish("tab-2", { status: "completed", progress: 100 });
      await viewer.done;
      expect(viewer.seen.text).toContain("completed");
    } finally {
      await edge.close();
      await writer.close();
    }
  });

  it("falls back to polling when the endpoint refuses streaming subscribe, and still delivers", async () => {
    const refusing = await startUpstashServer({ redisUrl: redis.url, subscribe: false });
    const prefix = uniquePrefix();
    const writer = new Progress({ port: nodeRedis({ url: redis.url }), prefix, logger: {}, throttle: false });
    const edge = new Progress({ port: upstash({ url: refusing.url, token: refusing.token }), prefix, logger: {} });
    try {
      await writer.publish("tab-3", { status: "running", progress: 5 });
      const viewer = await view(edge, "tab-3", new AbortController().signal);
      await writer.publish("tab-3", { progress: 50 });
      await writer.publish("tab-3", { status: "completed", progress: 100 });
      await Promise.race([viewer.done, sleep(15_000)]);
      expect(viewer.seen.text).toContain('"progress":50');
      expect(viewer.seen.text).toContain("completed");
    } finally {
      await edge.close();
      await writer.close();
      await refusing.close();
    }
  });
});
