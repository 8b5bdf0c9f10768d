import { createServer, type Server, Socket } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ioredis } from "../../src/adapters/ioredis/index.ts";
import { APPEND_SCRIPT, APPEND_SHA, CANCEL_SCRIPT, CANCEL_SHA } from "../../src/core/lua.ts";
import { Progress } from "../../src/core/progress.ts";
import { testAdapter, uniquePrefix } from "../contract/suite.ts";
import { redisInspector } from "../support/redis-inspector.ts";
import { freePort, type RedisServer, startRedis } from "../support/redis-server.ts";

testAdapter("ioredis", async () => {
  const server = await startRedis();
  let inspector = await redisInspector(server.url);
  return {
    port: () => ioredis({ url: server.url, connectTimeoutMs: 1000 }),
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

/**
 * A TCP relay to a Redis server whose open connections can go silent: their
 * sockets stay open but no byte passes, like a peer behind a dead network
 * path. Connections opened afterwards work.
 */
async function silentRelay(target: number): Promise<{ port: number; silence(): void; close(): Promise<void> }> {
  const pairs = new Set<{ alive: boolean; inbound: Socket; outbound: Socket }>();
  const server: Server = createServer((inbound) => {
    const outbound = new Socket();
    const pair = { alive: true, inbound, outbound };
    pairs.add(pair);
    outbound.connect(target, "127.0.0.1");
    inbound.on("data", (d) => pair.alive && outbound.write(d));
    outbound.on("data", (d) => pair.alive && inbound.write(d));
    const end = (): void => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("close", end).on("error", end);
    outbound.on("close", end).on("error", end);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port,
    silence() {
      for (const p of pairs) p.alive = false;
    },
    async close() {
      for (const p of pairs) {
        p.inbound.destroy();
        p.outbound.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

describe("ioredis: connections", () => {
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

  it("asks for a URL or a client", () => {
    expect(() => ioredis({} as never)).toThrow(expect.objectContaining({ name: "ProgressValidationError" }));
  });

  it("1,000 concurrent watchers on 100 operations hold at most 3 connections, and all get every event", async () => {
    const progress = new Progress({
      port: ioredis({ url: server.url }),
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

  it("a client passed in (ioredis defaults: RESP3, lazy) is connected if needed and never closed", async () => {
    const client = new Redis(server.url, { lazyConnect: true });
    const progress = new Progress({ port: ioredis({ client }), prefix: uniquePrefix(), logger: {} });
    expect(await progress.publish("own", { progress: 1, data: { n: 1 } })).toMatchObject({ ok: true });
    const watching = (async () => {
      for await (const item of progress.watch("own"))
        if (item.kind === "event" && item.event.status === "completed") return item.event;
    })();
    await new Promise((r) => setTimeout(r, 100));
    await progress.publish("own", { status: "completed" });
    expect(await watching).toMatchObject({ op: "own", status: "completed" });
    expect(await progress.get("own")).toMatchObject({ status: "completed", progress: 100, data: { n: 1 } });
    expect((await progress.history("own")).map((e) => e.seq)).toEqual([1, 2]);
    await progress.close();
    expect(client.status).toBe("ready");
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
  });

  it("scripts are loaded by SHA; the constants match SCRIPT LOAD; EVAL is the fallback after SCRIPT FLUSH", async () => {
    expect(await inspector.client.sendCommand(["SCRIPT", "LOAD", APPEND_SCRIPT])).toBe(APPEND_SHA);
    expect(await inspector.client.sendCommand(["SCRIPT", "LOAD", CANCEL_SCRIPT])).toBe(CANCEL_SHA);
    await inspector.client.sendCommand(["SCRIPT", "FLUSH"]);
    const progress = new Progress({ port: ioredis({ url: server.url }), prefix: uniquePrefix(), logger: {} });
    expect(await progress.publish("flushed", { progress: 1 })).toMatchObject({ ok: true, seq: 1 });
    expect(await progress.cancel("flushed", "x")).toBe(true);
    expect(await progress.get("flushed")).toMatchObject({ seq: 1, cancel: "x" });
    await inspector.client.sendCommand(["SCRIPT", "FLUSH"]);
    expect((await progress.history("flushed")).map((e) => e.progress)).toEqual([1]);
    await progress.close();
  });

  it("an unreachable server fails with a TimeoutError after connectTimeoutMs, never hangs", async () => {
    const closedPort = await freePort();
    const port = ioredis({ url: `redis://127.0.0.1:${closedPort}`, connectTimeoutMs: 300 });
    const started = Date.now();
    await expect(port.getState("x")).rejects.toMatchObject({ name: "TimeoutError" });
    expect(Date.now() - started).toBeLessThan(5000);
    await port.close();
    await port.close();
  });

  it("during an outage a publish on a client passed in (offline queue on, retries unlimited) fails at once", async () => {
    const own = await startRedis();
    const client = new Redis(own.url, { maxRetriesPerRequest: null });
    client.on("error", () => {});
    const port = ioredis({ client });
    const progress = new Progress({
      port,
      prefix: uniquePrefix(),
      logger: {},
      retry: { attempts: 1, minDelayMs: 10, maxDelayMs: 10 },
    });
    expect(await progress.publish("o", { progress: 1 })).toMatchObject({ ok: true });
    await own.stop();
    const deadline = Date.now() + 10_000;
    while (client.status === "ready" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    const r = await progress.publish("o", { progress: 2 });
    expect(r).toMatchObject({ ok: false, outcome: "failed" });
    await expect(port.getState("x")).rejects.toMatchObject({ name: "ConnectionClosedError" });
    expect(Date.now() - started).toBeLessThan(3000);
    await own.start();
    let after = await progress.publish("o2", { progress: 5 });
    for (let i = 0; i < 100 && !after.ok; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await progress.publish("o2", { progress: 5 });
    }
    // The publishes refused during the outage were held and written first, so seq may be past 1.
    expect(after).toMatchObject({ ok: true });
    expect((await progress.flush()).unwritten).toEqual([]);
    expect(await progress.history("o")).toHaveLength(1); // the held progress 2, once
    await progress.close();
    expect(client.status).toBe("ready");
    client.disconnect();
    await own.close();
  });

  it("a blocking read on a connection gone silent fails by its deadline, and the next read uses a new connection", async () => {
    const relay = await silentRelay(server.port);
    const port = ioredis({ url: `redis://127.0.0.1:${relay.port}`, blockMarginMs: 300 });
    const prefix = uniquePrefix();
    const writer = new Progress({ port: ioredis({ url: server.url }), prefix, logger: {} });
    const key = `${prefix}:{s}:events`;
    expect(await port.wait([{ key, after: "0" }], { blockMs: 50, count: 10 })).toEqual([]);
    relay.silence();
    const started = Date.now();
    await expect(port.wait([{ key, after: "0" }], { blockMs: 100, count: 10 })).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(Date.now() - started).toBeLessThan(5000);
    await writer.publish("s", { progress: 7 });
    let got = await port.wait([{ key, after: "0" }], { blockMs: 1000, count: 10 }).catch(() => []);
    for (let i = 0; i < 20 && got.length === 0; i++)
      got = await port.wait([{ key, after: "0" }], { blockMs: 1000, count: 10 }).catch(() => []);
    expect(got.map((k) => k.entries.map((e) => e.fields.progress))).toEqual([["7"]]);
    await port.close();
    await writer.close();
    await relay.close();
  });
});
