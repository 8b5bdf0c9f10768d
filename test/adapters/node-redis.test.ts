import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { APPEND_SCRIPT, APPEND_SHA, CANCEL_SCRIPT, CANCEL_SHA } from "../../src/core/lua.ts";
import { Progress } from "../../src/core/progress.ts";
import { testAdapter, uniquePrefix } from "../contract/suite.ts";
import { redisInspector } from "../support/redis-inspector.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

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

describe("node-redis: connections", () => {
  let server: RedisServer;
  let inspector: Awaited<ReturnType<typeof redisInspector>>;
  beforeAll(async () => {
    server = await startRedis();
    inspector = await redisInspector(server.url);
  });
  afterAll(async () => {
    await inspector.close();
    await server.close();
  });

  const clients = async (): Promise<number> =>
    String(await inspector.client.sendCommand(["CLIENT", "LIST"]))
      .trim()
      .split("\n").length - 1; // less the inspector's own connection

  it("1,000 concurrent watchers on 100 operations hold at most 3 connections, and all get every event", async () => {
    const progress = new Progress({
      port: nodeRedis({ url: server.url }),
      prefix: uniquePrefix(),
      logger: {},
      estimate: false,
    });
    const seen = new Array<number>(1000).fill(0);
    const watchers = Array.from({ length: 1000 }, async (_, i) => {
      for await (const item of progress.watch(`op-${i % 100}`)) if (item.kind === "event") seen[i] = (seen[i] ?? 0) + 1;
    });
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish(`op-${i}`, { progress: 50 })));
    await new Promise((r) => setTimeout(r, 100));
    expect(await clients()).toBeLessThanOrEqual(3);
    await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish(`op-${i}`, { status: "completed" })));
    await Promise.all(watchers);
    expect(seen.every((n) => n === 2)).toBe(true);
    await progress.close();
  });

  it("a client passed in is connected if needed and never closed by the adapter", async () => {
    const client = createClient({ url: server.url });
    await client.connect();
    const progress = new Progress({ port: nodeRedis({ client }), prefix: uniquePrefix(), logger: {} });
    expect(await progress.publish("own", { progress: 1 })).toMatchObject({ ok: true });
    const watching = (async () => {
      for await (const item of progress.watch("own"))
        if (item.kind === "event" && item.event.status === "completed") return;
    })();
    await new Promise((r) => setTimeout(r, 100));
    await progress.publish("own", { status: "completed" });
    await watching;
    await progress.close();
    expect(client.isOpen).toBe(true);
    expect(await client.ping()).toBe("PONG");
    client.destroy();
  });

  it("scripts are loaded by SHA; the constants match SCRIPT LOAD; EVAL is the fallback after SCRIPT FLUSH", async () => {
    expect(await inspector.client.sendCommand(["SCRIPT", "LOAD", APPEND_SCRIPT])).toBe(APPEND_SHA);
    expect(await inspector.client.sendCommand(["SCRIPT", "LOAD", CANCEL_SCRIPT])).toBe(CANCEL_SHA);
    await inspector.client.sendCommand(["SCRIPT", "FLUSH"]);
    const progress = new Progress({ port: nodeRedis({ url: server.url }), prefix: uniquePrefix(), logger: {} });
    expect(await progress.publish("flushed", { progress: 1 })).toMatchObject({ ok: true, seq: 1 });
    expect(await progress.cancel("flushed", "x")).toBe(true);
    expect(await progress.get("flushed")).toMatchObject({ seq: 1, cancel: "x" });
    await progress.close();
  });
});
