/**
 * Shared by the Deno tests: registers the runtime scenarios as `Deno.test`s
 * and checks the wire format in Redis with a plain node-redis client.
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

/** Addresses of the backends, from the environment. */
export const env = {
  redisUrl: Deno.env.get("PROGRESSCAST_REDIS_URL"),
  upstashUrl: Deno.env.get("PROGRESSCAST_UPSTASH_URL"),
  upstashToken: Deno.env.get("PROGRESSCAST_UPSTASH_TOKEN"),
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
      },
    );
    assert.match(String(fields.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const state = (await redis.sendCommand(["HGETALL", `${prefix}:{${op}}:state`])) as string[];
    const snapshot = Object.fromEntries(
      Array.from({ length: state.length / 2 }, (_, i) => [state[2 * i], state[2 * i + 1]]),
    );
    assert.deepEqual(snapshot, { ...fields, id });
  } finally {
    await redis.close();
  }
}
