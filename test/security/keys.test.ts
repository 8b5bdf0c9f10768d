/**
 * Key isolation against a real Redis: under every shipped key strategy, the
 * same crafted ids published side by side each keep their own stream and
 * snapshot.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { defaultKeys, type KeyStrategy, keyPresets } from "../../src/core/port/keys.ts";
import { Progress } from "../../src/core/progress.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const CRAFTED = ["k", "k:state", "k:events", "state", "scope", "state:k", "progress:k", "hash:k", "channel:k"];

const strategies: ReadonlyArray<readonly [string, KeyStrategy]> = [
  ["default", defaultKeys("pc")],
  ["chunking", keyPresets.chunking],
  ["importProgress", keyPresets.importProgress],
  ["operations", keyPresets.operations],
];

describe("key presets keep operations apart in Redis", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.close();
  });

  it.each(strategies)("%s: every crafted id has its own snapshot and history", async (_name, keys) => {
    await using progress = new Progress({ port: nodeRedis({ url: server.url }), keys, throttle: false, logger: {} });
    for (const [i, op] of CRAFTED.entries()) {
      const r = await progress.publish(op, { current: i + 1, total: 100, message: op }, { scope: op });
      expect(r).toMatchObject({ ok: true, seq: 1 });
    }
    for (const [i, op] of CRAFTED.entries()) {
      expect(await progress.get(op)).toMatchObject({ op, seq: 1, current: i + 1, message: op });
      expect((await progress.history(op)).map((e) => e.op)).toEqual([op]);
      expect((await progress.history({ scope: op })).map((e) => e.op)).toEqual([op]);
    }
  });
});
