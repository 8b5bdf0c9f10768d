import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { collect, seqs, until } from "./helpers.ts";

describe("node-redis: a socket that dies silently", () => {
  let server: RedisServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startTcpProxy(server.port);
  });
  afterAll(async () => {
    await proxy.close();
    await server.close();
  });

  it("a watcher keeps receiving events and a new watcher gets its snapshot after the route goes silent", async () => {
    const prefix = uniquePrefix();
    const publisher = new Progress({ port: nodeRedis({ url: server.url }), prefix, logger: {}, throttle: false });
    const watching = new Progress({
      port: nodeRedis({ url: proxy.url, blockMarginMs: 500, healthCheckMs: 1000, connectTimeoutMs: 2000 }),
      prefix,
      logger: {},
      blockMs: 500,
    });
    try {
      await publisher.publish("job-1", { status: "running", progress: 10 });
      const first = collect(watching.watch("job-1"));
      await until(() => first.items.length >= 1, "the first snapshot");
      await publisher.publish("job-1", { progress: 20 });
      await until(() => seqs(first.items).includes(2), "a live event before the fault");

      proxy.silence();
      const silencedAt = Date.now();
      await publisher.publish("job-1", { progress: 30 });
      await until(() => seqs(first.items).includes(3), "a live event after the route went silent");
      const recoveryMs = Date.now() - silencedAt;
      console.info(`[silent-socket] watcher recovered ${recoveryMs} ms after the socket went silent`);

      await publisher.publish("job-2", { status: "running", progress: 5 });
      const second = collect(watching.watch("job-2"));
      await until(() => second.items.length >= 1 || second.error !== undefined, "a new watcher's snapshot");
      expect(second.error).toBeUndefined();
      expect(second.items[0]).toMatchObject({ kind: "snapshot", snapshot: { op: "job-2", progress: 5 } });

      await publisher.publish("job-1", { status: "completed", progress: 100 });
      await first.done;
      expect(first.error).toBeUndefined();
      expect(seqs(first.items)).toEqual([1, 2, 3, 4]);
    } finally {
      await watching.close();
      await publisher.close();
    }
  });
});
