import { upstash } from "../../src/adapters/upstash/index.ts";
import type { Harness } from "../contract/harness.ts";
import { testAdapter } from "../contract/suite.ts";
import { redisInspector } from "../support/redis-inspector.ts";
import { startRedis } from "../support/redis-server.ts";
import { startUpstashServer } from "../support/upstash-server.ts";

/** The Upstash adapter against the test server in front of a real redis-server; `live: false` polls. */
async function harness(live: boolean): Promise<Harness> {
  const redis = await startRedis();
  const rest = await startUpstashServer({ redisUrl: redis.url });
  let inspector = await redisInspector(redis.url);
  return {
    port: () => upstash({ url: rest.url, token: rest.token, ...(live ? {} : { live: false as const }) }),
    inspect: {
      hgetall: (k) => inspector.hgetall(k),
      xrange: (k) => inspector.xrange(k),
      pttl: (k) => inspector.pttl(k),
      keys: (p) => inspector.keys(p),
    },
    write: {
      hset: async (key, fields) => {
        await inspector.client.sendCommand(["HSET", key, ...Object.entries(fields).flat()]);
      },
      xadd: async (key, fields) => {
        await inspector.client.sendCommand(["XADD", key, "*", ...Object.entries(fields).flat()]);
      },
    },
    // Over REST a round trip is one HTTP request, counted by the server.
    roundTrips: async () => rest.requests,
    down: async () => {
      await inspector.close();
      await redis.stop();
    },
    up: async () => {
      await redis.start();
      inspector = await redisInspector(redis.url);
    },
    close: async () => {
      await inspector.close();
      await rest.close();
      await redis.close();
    },
  };
}

testAdapter("upstash (live channels over streaming subscribe)", () => harness(true));
testAdapter("upstash (polling)", () => harness(false));
