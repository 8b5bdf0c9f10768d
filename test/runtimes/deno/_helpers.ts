/**
 * Shared by the Deno tests: registers the runtime scenarios as `Deno.test`s,
 * checks the wire format in Redis with a plain node-redis client, and serves
 * `progress.sse` with `Deno.serve` for the SSE checks (../sse.ts).
 *
 * Run by test/runtimes/deno.test.ts, which starts Redis and the Upstash REST
 * server and passes their addresses in the environment. Run by hand:
 * `PROGRESSCAST_REDIS_URL=redis://127.0.0.1:6379 deno test --allow-net --allow-env --allow-read test/runtimes/deno/`
 * (tests whose backend has no address are ignored).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Progress } from "@progresscast/progresscast";
import { createClient } from "redis";
import { scenarios, uniquePrefix } from "../scenarios.ts";
import { type SseHarness, sseLive, sseResume } from "../sse.ts";

/** Addresses of the backends, from the environment. */
export const env = {
  redisUrl: Deno.env.get("PROGRESSCAST_REDIS_URL"),
  upstashUrl: Deno.env.get("PROGRESSCAST_UPSTASH_URL"),
  upstashToken: Deno.env.get("PROGRESSCAST_UPSTASH_TOKEN"),
  /** GET answers the REST server's counters as JSON (`requests`, `openStreams`, `openRequests`). */
  upstashStatsUrl: Deno.env.get("PROGRESSCAST_UPSTASH_STATS_URL"),
};

export { uniquePrefix };

/** Register every runtime scenario for one backend; `make` builds a manager on a fresh prefix. */
export function defineScenarios(backend: string, make: (prefix: string) => Progress, ignore = false): void {
  for (const scenario of scenarios) {
    Deno.test({
      name: `${backend}: ${scenario.name}`,
      ignore,
      async fn() {
        const progress = make(uniquePrefix());
        try {
          await scenario.run(progress);
        } finally {
          await progress.close();
        }
      },
    });
  }
}

/**
 * Publish through `progress` (whose prefix is `prefix`), then read Redis
 * directly: the documented keys hold the documented fields.
 */
export async function assertWireFormat(progress: Progress, prefix: string, redisUrl: string): Promise<void> {
  const op = "wire-1";
  const published = await progress.publish(op, { current: 1, total: 4, message: "One of four", cid: "c-1" });
  assert.ok(published.ok, `publish failed: ${JSON.stringify(published)}`);
  const redis = createClient({ url: redisUrl, RESP: 2 });
  await redis.connect();
  try {
    const entries = (await redis.sendCommand(["XRANGE", `${prefix}:{${op}}:events`, "-", "+"])) as [string, string[]][];
    assert.equal(entries.length, 1, `one entry in ${prefix}:{${op}}:events`);
    const [id, flat] = entries[0] as [string, string[]];
    assert.equal(id, published.id);
    const fields = Object.fromEntries(
      Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]),
    );
    assert.deepEqual(Object.keys(fields), [
      "v",
      "op",
      "seq",
      "type",
      "status",
      "progress",
      "current",
      "total",
      "message",
      "cid",
      "ts",
      "attempt",
    ]);
    assert.deepEqual(
      { ...fields, ts: "<ts>" },
      {
        v: "1",
        op,
        seq: "1",
        type: "progress",
        status: "running",
        progress: "25",
        current: "1",
        total: "4",
        message: "One of four",
        cid: "c-1",
        ts: "<ts>",
        attempt: "1",
      },
    );
    assert.match(String(fields.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const state = (await redis.sendCommand(["HGETALL", `${prefix}:{${op}}:state`])) as string[];
    const snapshot = Object.fromEntries(
      Array.from({ length: state.length / 2 }, (_, i) => [state[2 * i], state[2 * i + 1]]),
    );
    // `exp` (snapshot only) is when the keys expire, in Unix ms: the TTL is refreshed when it is due.
    const { exp, ...merged } = snapshot;
    assert.match(String(exp), /^\d{13}$/);
    assert.deepEqual(merged, { ...fields, id });
  } finally {
    await redis.close();
  }
}

/** The managers of one SSE test: `server` answers `GET /sse`, `publisher` publishes (maybe the same manager). */
export interface SseSetup {
  readonly server: Progress;
  readonly publisher: Progress;
  /** The operation's stream entry ids, oldest first, as the backend holds them. */
  readonly streamIds: (op: string) => Promise<string[]>;
}

/** Stream entry ids read from Redis directly (XRANGE), for a prefix. */
export function redisStreamIds(redisUrl: string, prefix: string): (op: string) => Promise<string[]> {
  return async (op) => {
    const redis = createClient({ url: redisUrl, RESP: 2 });
    await redis.connect();
    try {
      const raw = (await redis.sendCommand(["XRANGE", `${prefix}:{${op}}:events`, "-", "+"])) as [string, string[]][];
      return raw.map(([id]) => id);
    } finally {
      await redis.close();
    }
  };
}

/**
 * Register the SSE test of one backend: `progress.sse(request, op)` served by
 * `Deno.serve({ port: 0 })`, read with Deno's fetch while `publisher`
 * publishes; the live and resume checks of ../sse.ts.
 */
export function defineSse(backend: string, setup: (prefix: string) => SseSetup, ignore = false): void {
  Deno.test({
    name: `${backend}: serves SSE with Deno.serve: snapshot, history, live events, resume`,
    ignore,
    async fn() {
      const { server, publisher, streamIds } = setup(uniquePrefix());
      const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
        const url = new URL(request.url);
        if (url.pathname !== "/sse") return new Response("not found", { status: 404 });
        return await server.sse(request, url.searchParams.get("op") ?? "");
      });
      const harness: SseHarness = {
        open: (path, headers = {}) => fetch(`http://127.0.0.1:${http.addr.port}${path}`, { headers }),
        async publish(op, update) {
          const r = await publisher.publish(op, update);
          assert.ok(r.ok, `publish ${JSON.stringify(update)} on ${op}: ${JSON.stringify(r)}`);
          return r.id;
        },
        streamIds,
      };
      try {
        await sseLive(harness, "sse-live");
        await sseResume(harness, "sse-resume");
      } finally {
        // Closing the managers ends any stream still open, so the server can shut down.
        await Promise.all([server.close(), publisher.close()]);
        await http.shutdown();
      }
    },
  });
}
