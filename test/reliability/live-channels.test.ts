/**
 * The live reader against a real redis-server: SIGKILL and restart (with and
 * without an append-only file) looped, the subscriber connection killed
 * (`CLIENT KILL TYPE pubsub`) and silent (`CLIENT PAUSE`): every watcher gets
 * every event after recovery, in order and once, or a reset when Redis lost
 * data; none is left waiting.
 */
import { createClient } from "redis";
import { afterEach, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { type Collected, collect, seqs, until } from "./helpers.ts";

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

function managers(server: RedisServer, extra: Partial<ProgressOptions> = {}) {
  const prefix = uniquePrefix();
  const options = { prefix, logger: {}, throttle: false as const, maxReadFailures: 1000, ...extra };
  const port = () => nodeRedis({ url: server.url, connectTimeoutMs: 1000, healthCheckMs: 1000 });
  const publisher = new Progress({ port: port(), ...options });
  const watching = new Progress({ port: port(), ...options });
  open.push(publisher, watching);
  return { publisher, watching };
}

/** Publish, holding it through a reconnect: resolves once it is written. */
async function publishSurely(p: Progress, op: string, update: Parameters<Progress["publish"]>[1]): Promise<void> {
  await p.publish(op, update);
  expect((await p.flush({ timeoutMs: 20_000 })).unwritten).toEqual([]);
}

/** The watcher's events since its last reset (or from the start), as seqs. */
function sinceReset(w: Collected): number[] {
  const at = w.items.map((i) => i.kind).lastIndexOf("reset");
  return seqs(w.items.slice(Math.max(0, at)));
}

describe("live channels", () => {
  it.each([
    ["without persistence", "none"],
    ["with an append-only file", "aof"],
  ] as const)(
    "no watcher hangs across 25 SIGKILL restarts of Redis %s",
    async (_, persistence) => {
      const server = await startRedis([], { persistence });
      open.push(server);
      const { publisher, watching } = managers(server);
      for (let round = 1; round <= 25; round++) {
        const op = `restart-${round}`;
        await publisher.publish(op, { status: "running", progress: 1 });
        const watchers = [collect(watching.watch(op)), collect(watching.watch(op))];
        await until(() => watchers.every((w) => seqs(w.items).includes(1)), `round ${round}: both watchers live`);
        await publisher.publish(op, { progress: 2 });
        await server.stop({ crash: true });
        await server.start();
        await publishSurely(publisher, op, { progress: 3 });
        await publishSurely(publisher, op, { status: "completed", progress: 100 });
        const ends = watchers.map((w) => Promise.race([w.done, new Promise((r) => setTimeout(r, 15_000))]));
        await Promise.all(ends);
        for (const w of watchers) {
          const last = w.items.at(-1);
          expect(
            last?.kind === "event" ? last.event.status : last?.kind,
            `round ${round}: ${JSON.stringify(w.items)}`,
          ).toBe("completed");
          expect(w.error).toBeUndefined();
          // In order and once since the last reset (a reset only when Redis lost data).
          const after = sinceReset(w);
          expect(after).toEqual([...after].sort((a, b) => a - b));
          expect(new Set(after).size).toBe(after.length);
          if (persistence === "aof") expect(w.items.some((i) => i.kind === "reset")).toBe(false);
        }
      }
    },
    240_000,
  );

  it("a killed subscriber connection is replaced and every event arrives in order, once", async () => {
    const server = await startRedis();
    open.push(server);
    const { publisher, watching } = managers(server);
    const admin = createClient({ url: server.url });
    await admin.connect();
    open.push({ close: () => admin.quit() });
    await publisher.publish("kill-1", { status: "running", progress: 0 });
    const w = collect(watching.watch("kill-1"));
    await until(() => seqs(w.items).includes(1), "live");
    for (let i = 1; i <= 60; i++) {
      await publisher.publish("kill-1", { progress: i });
      if (i % 20 === 0)
        expect(Number(await admin.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"]))).toBeGreaterThan(0);
    }
    await publisher.publish("kill-1", { status: "completed", progress: 100 });
    await w.done;
    expect(w.error).toBeUndefined();
    expect(seqs(w.items)).toEqual(Array.from({ length: 62 }, (_, i) => i + 1));
  });

  it("a subscriber connection gone silent (CLIENT PAUSE) misses nothing once Redis answers again", async () => {
    const server = await startRedis();
    open.push(server);
    const { publisher, watching } = managers(server);
    const admin = createClient({ url: server.url });
    await admin.connect();
    open.push({ close: () => admin.quit() });
    await publisher.publish("pause-1", { status: "running", progress: 0 });
    const w = collect(watching.watch("pause-1"));
    await until(() => seqs(w.items).includes(1), "live");
    // Writes wait meanwhile too: the events are published when the pause ends, through a reconnect.
    await admin.sendCommand(["CLIENT", "PAUSE", "2500", "ALL"]);
    const pending = (async () => {
      for (let i = 1; i <= 10; i++) await publishSurely(publisher, "pause-1", { progress: i });
      await publishSurely(publisher, "pause-1", { status: "completed", progress: 100 });
    })();
    await pending;
    await Promise.race([w.done, new Promise((r) => setTimeout(r, 20_000))]);
    expect(w.error).toBeUndefined();
    expect(seqs(w.items)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it("a process watching 2,000 operations holds one subscriber connection and no blocking read", async () => {
    const server = await startRedis();
    open.push(server);
    const { publisher, watching } = managers(server);
    const admin = createClient({ url: server.url });
    await admin.connect();
    open.push({ close: () => admin.quit() });
    const ops = Array.from({ length: 2000 }, (_, i) => `many-${i}`);
    await Promise.all(ops.map((op) => publisher.publish(op, { status: "running", progress: 1 })));
    const watches = ops.map((op) => collect(watching.watch(op)));
    await until(() => watches.every((w) => w.items.length >= 2), "every snapshot and first event", 60_000);
    // The subscriptions go out in batches while the watches catch up: wait until every channel is confirmed.
    const subscribed = async () =>
      String(await admin.sendCommand(["CLIENT", "LIST"]))
        .split("\n")
        .some((l) => / sub=2000 /.test(l));
    await until(subscribed, "2,000 channels on one subscriber connection", 30_000);
    const clients = String(await admin.sendCommand(["CLIENT", "LIST"]));
    const subscribers = clients.split("\n").filter((l) => / sub=(\d+) /.test(l) && !/ sub=0 /.test(l));
    expect(subscribers).toHaveLength(1);
    expect(subscribers[0]).toContain("sub=2000");
    expect(clients).not.toMatch(/cmd=xread/);
    await Promise.all(ops.map((op) => publisher.publish(op, { status: "completed", progress: 100 })));
    await Promise.all(watches.map((w) => w.done));
    for (const w of watches) expect(seqs(w.items)).toEqual([1, 2]);
  }, 120_000);
});
