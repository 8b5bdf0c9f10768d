import { spawn } from "node:child_process";
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

  it("deliveries of a consumer process killed with SIGKILL are claimed by another", async () => {
    const prefix = uniquePrefix();
    const progress = new Progress({ port: nodeRedis({ url: server.url }), prefix, logger: {} });
    for (let i = 1; i <= 3; i++) await progress.publish(`k${i}`, { status: "completed" }, { scope: "all" });
    const child = spawn("node_modules/.bin/tsx", ["test/support/consumer-child.ts", server.url, prefix], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so the kill takes tsx's helpers with it
    });
    let out = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        out += String(d);
        if (out.split("\n").filter(Boolean).length >= 3) resolve();
      });
      child.once("exit", () => reject(new Error(`consumer exited early: ${out}`)));
    });
    const exited = new Promise((r) => child.once("exit", r));
    process.kill(-(child.pid ?? 0), "SIGKILL");
    await exited;
    expect(out.trim().split("\n")).toEqual(["got k1", "got k2", "got k3"]);
    const controller = new AbortController();
    const claimed: string[] = [];
    for await (const d of progress.consume({
      group: "db",
      consumer: "survivor",
      scope: "all",
      claimIdleMs: 300,
      blockMs: 100,
      signal: controller.signal,
    })) {
      expect(d.claimed).toBe(true);
      claimed.push(d.event.op);
      await d.ack();
      if (claimed.length === 3) controller.abort();
    }
    expect(claimed).toEqual(["k1", "k2", "k3"]);
    await progress.close();
  });
});
