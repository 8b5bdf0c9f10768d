import assert from "node:assert/strict";
import { createProgress } from "@progresscast/progresscast";
import { nodeRedis } from "@progresscast/progresscast/node-redis";
import { upstash } from "@progresscast/progresscast/upstash";
import { readSse } from "../sse.ts";
import { assertWireFormat, defineScenarios, defineSse, env, redisStreamIds, uniquePrefix } from "./_helpers.ts";

const url = env.upstashUrl ?? "";
const token = env.upstashToken ?? "";
const ignore = env.upstashUrl === undefined || env.upstashToken === undefined || env.redisUrl === undefined;

// No retries: a fault should fail the test at once, not after backoff.
const port = () => upstash({ url, token, retry: false, pollMinMs: 20, pollMaxMs: 200 });

defineScenarios("upstash", (prefix) => createProgress({ port: port(), prefix, logger: {} }), ignore);

Deno.test({
  name: "upstash: writes the documented keys and fields (read back from Redis)",
  ignore,
  async fn() {
    const prefix = uniquePrefix();
    const progress = createProgress({ port: port(), prefix, logger: {} });
    try {
      await assertWireFormat(progress, prefix, env.redisUrl ?? "");
    } finally {
      await progress.close();
    }
  },
});

// Served over REST (live events over the streaming subscribe), published over REST by another manager, read back from Redis.
defineSse(
  "upstash",
  (prefix) => ({
    server: createProgress({ port: port(), prefix, logger: {} }),
    publisher: createProgress({ port: port(), prefix, logger: {} }),
    streamIds: redisStreamIds(env.redisUrl ?? "", prefix),
  }),
  ignore,
);

/** The REST server's counters, served by the Node side (deno.test.ts) next to it. */
async function restStats(): Promise<{ requests: number; openStreams: number; openRequests: number }> {
  const response = await fetch(env.upstashStatsUrl ?? "");
  return (await response.json()) as { requests: number; openStreams: number; openRequests: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// The default Upstash adapter streams: live events come over the streaming subscribe, and nothing polls.
Deno.test({
  name: "upstash: an SSE viewer gets live events over the streaming subscribe, no request while idle or per event",
  ignore: ignore || env.upstashStatsUrl === undefined,
  async fn() {
    const prefix = uniquePrefix();
    const server = createProgress({ port: upstash({ url, token, retry: false }), prefix, logger: {} });
    // A worker on TCP: its publishes do not go through the REST server.
    const writer = createProgress({
      port: nodeRedis({ url: env.redisUrl ?? "" }),
      prefix,
      logger: {},
      throttle: false,
    });
    const leave = new AbortController();
    try {
      assert.ok((await writer.publish("live-1", { status: "running", progress: 5 })).ok);
      const response = await server.sse(
        new Request("http://127.0.0.1/sse?op=live-1", { signal: leave.signal }),
        "live-1",
      );
      assert.equal(response.status, 200);
      assert.ok(response.body, "an SSE body");
      const read = readSse(response.body);
      await read.waitFor(1, 10_000);
      assert.equal(read.messages[0]?.event, "snapshot");
      await sleep(500); // the stream confirms and the catch-up read settles
      const settled = await restStats();
      assert.equal(settled.openStreams, 1, "one upstream subscribe stream open");
      await sleep(3_000);
      const idle = await restStats();
      assert.equal(idle.requests - settled.requests, 0, "REST requests while idle");
      for (let i = 1; i <= 3; i++) assert.ok((await writer.publish("live-1", { progress: 5 + i })).ok);
      // After the snapshot: the event that started the operation (its history), then the three live ones.
      await read.waitFor(5, 10_000);
      const events = read.messages
        .slice(1)
        .map((m) => [m.event, (JSON.parse(m.data) as { progress: number }).progress]);
      assert.deepEqual(events, [
        ["progress", 5],
        ["progress", 6],
        ["progress", 7],
        ["progress", 8],
      ]);
      const delivered = await restStats();
      assert.equal(delivered.requests - idle.requests, 0, "REST requests for 3 delivered events");
      leave.abort();
      await read.closed;
      let open = (await restStats()).openStreams;
      for (let i = 0; i < 100 && open > 0; i++) {
        await sleep(50);
        open = (await restStats()).openStreams;
      }
      assert.equal(open, 0, "upstream subscribe streams left open after the viewer left");
    } finally {
      leave.abort();
      await Promise.all([server.close(), writer.close()]);
    }
  },
});
