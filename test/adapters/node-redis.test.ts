import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { testAdapter } from "../contract/suite.ts";
import { commandCount, redisInspector } from "../support/redis-inspector.ts";
import { startRedis } from "../support/redis-server.ts";

testAdapter("node-redis", async () => {
  const server = await startRedis();
  let inspector = await redisInspector(server.url);
  return {
    port: () => nodeRedis({ url: server.url, connectTimeoutMs: 1000 }),
    inspect: {
      hgetall: (k) => inspector.hgetall(k),
      xrange: (k) => inspector.xrange(k),
      pttl: (k) => inspector.pttl(k),
      keys: (p) => inspector.keys(p),
    },
    // Scripts run inside Redis count their inner calls too: count EVALSHA/EVAL calls, i.e. round trips.
    roundTrips: async () => {
      const info = String(await inspector.client.sendCommand(["INFO", "commandstats"]));
      let n = 0;
      for (const m of info.matchAll(/cmdstat_(evalsha|eval|hgetall|xrange|xread):calls=(\d+)/g)) n += Number(m[2]);
      return n;
    },
    down: async () => {
      await inspector.close();
      await server.stop();
    },
    up: async () => {
      await server.start();
      inspector = await redisInspector(server.url);
    },
    close: async () => {
      await inspector.close();
      await server.close();
    },
  };
});

void commandCount;
