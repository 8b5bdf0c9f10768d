import { afterEach, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { collect, seqs, until } from "./helpers.ts";

describe("a Redis restart", () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  const managers = (server: RedisServer) => {
    const prefix = uniquePrefix();
    const options = { prefix, logger: {}, throttle: false as const, blockMs: 200, maxReadFailures: 1000 };
    const publisher = new Progress({ port: nodeRedis({ url: server.url, connectTimeoutMs: 1000 }), ...options });
    const watching = new Progress({ port: nodeRedis({ url: server.url, connectTimeoutMs: 1000 }), ...options });
    open.push(publisher, watching);
    return { publisher, watching };
  };
  // Published while the client may still be reconnecting: held by the outbox if refused, and written once Redis answers.
  const publishAfterRestart = async (p: Progress, op: string, update: Parameters<Progress["publish"]>[1]) => {
    const result = await p.publish(op, update);
    if (!result.ok) expect(result).toMatchObject({ outcome: "failed", queued: true });
    expect((await p.flush({ timeoutMs: 20_000 })).unwritten).toEqual([]);
  };

  it("that lost every key gives a watcher an explicit reset with the new snapshot, never a silent rewind", async () => {
    const server = await startRedis();
    open.push(server);
    const { publisher, watching } = managers(server);
    await publisher.publish("job-1", { status: "running", progress: 10 });
    const watch = collect(watching.watch("job-1"));
    for (const progress of [20, 30]) await publisher.publish("job-1", { progress });
    await until(() => seqs(watch.items).includes(3), "events before the restart");

    await server.stop({ crash: true });
    await server.start(); // empty: it kept nothing
    await publishAfterRestart(publisher, "job-1", { status: "running", progress: 5 });
    await until(() => watch.items.some((i) => i.kind === "reset"), "a reset after seq went backwards");
    const at = watch.items.findIndex((i) => i.kind === "reset");
    expect(watch.items[at]).toMatchObject({ kind: "reset", snapshot: { op: "job-1", seq: 1, progress: 5 } });
    await publisher.publish("job-1", { status: "completed", progress: 100 });
    await watch.done;
    expect(watch.error).toBeUndefined();
    expect(seqs(watch.items.slice(0, at))).toEqual([1, 2, 3]);
    expect(seqs(watch.items.slice(at))).toEqual([1, 2]);
  });

  it("that lost every key gives a scope watcher a reset with the operation's new snapshot; other operations go on", async () => {
    const server = await startRedis();
    open.push(server);
    const { publisher, watching } = managers(server);
    const scope = { scope: "team-1" };
    await publisher.publish("job-a", { status: "running", progress: 10 }, scope);
    await publisher.publish("job-b", { status: "running", progress: 10 }, scope);
    const stop = new AbortController();
    const watch = collect(watching.watch({ scope: "team-1" }, { signal: stop.signal }));
    await publisher.publish("job-a", { progress: 20 }, scope);
    await until(() => seqs(watch.items).length === 3, "events before the restart");

    await server.stop({ crash: true });
    await server.start(); // empty: it kept nothing
    await publishAfterRestart(publisher, "job-a", { status: "running", progress: 5 });
    await publisher.publish("job-a", { progress: 6 }, scope);
    await until(() => watch.items.some((i) => i.kind === "reset"), "a reset after job-a's seq went backwards").catch(
      async (e: Error) => {
        const history = await publisher.history({ scope: "team-1" }).catch(String);
        throw new Error(
          `${e.message}; the watch saw ${JSON.stringify(watch.items)}, error ${String(watch.error)}; the scope holds ${JSON.stringify(history)}`,
        );
      },
    );
    const at = watch.items.findIndex((i) => i.kind === "reset");
    // job-a's first event after the restart went only to its own stream; the scope copy starts at seq 2.
    expect(watch.items[at]).toMatchObject({ kind: "reset", snapshot: { op: "job-a", seq: 2, progress: 6 } });
    expect(watch.items[at + 1]).toMatchObject({ kind: "event", event: { op: "job-a", seq: 2, progress: 6 } });
    // A later event of job-a, and the first of an operation never seen before: no further reset.
    await publisher.publish("job-a", { progress: 7 }, scope);
    await publisher.publish("job-c", { status: "running", progress: 1 }, scope);
    await until(() => seqs(watch.items.slice(at)).length === 3, "the next events");
    stop.abort();
    await watch.done;
    expect(watch.error).toBeUndefined();
    expect(watch.items.filter((i) => i.kind === "reset")).toHaveLength(1);
    expect(watch.items.slice(at + 1).map((i) => (i.kind === "event" ? [i.event.op, i.event.seq] : i.kind))).toEqual([
      ["job-a", 2],
      ["job-a", 3],
      ["job-c", 1],
    ]);
  });

  it("with an append-only file keeps every publish that resolved ok; watchers resume with no gap and no duplicate", async () => {
    const server = await startRedis([], { persistence: "aof" });
    open.push(server);
    const { publisher, watching } = managers(server);
    const first = await publisher.publish("job-2", { status: "running", progress: 1 });
    expect(first.ok).toBe(true);
    const watch = collect(watching.watch("job-2"));
    for (let p = 2; p <= 10; p++) expect((await publisher.publish("job-2", { progress: p })).ok).toBe(true);

    await server.stop({ crash: true });
    await server.start();
    await publishAfterRestart(publisher, "job-2", { progress: 11 });
    for (let p = 12; p <= 15; p++) await publisher.publish("job-2", { progress: p });
    await publisher.publish("job-2", { status: "completed", progress: 100 });
    await watch.done;
    expect(watch.error).toBeUndefined();
    expect(watch.items.some((i) => i.kind === "reset")).toBe(false);
    expect(seqs(watch.items)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    const late = await publisher.get("job-2");
    expect(late).toMatchObject({ status: "completed", seq: 16 });
  });
});
