/**
 * A batch split per slot where one slot's script call fails: the items of the
 * other slots are written once and answered ok at once; only the failed
 * slot's items fail, are held, and are written (once, in order) when its
 * master answers again. On a real cluster, with both cluster adapters: a
 * master that refuses writes (out of memory), and a master that is down with
 * no replica to take over.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ioredis } from "../../src/adapters/ioredis/index.ts";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { PublishResult } from "../../src/core/progress.ts";
import { Progress } from "../../src/core/progress.ts";
import { slotOf } from "../../src/redis/slot.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisCluster, startRedisCluster, until } from "../support/redis-cluster.ts";

describe("a batch on a cluster where one slot fails", { timeout: 90_000 }, () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    // No replicas: a killed master stays down until restarted. The other masters keep serving their slots.
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    for (const node of cluster.nodes)
      await cluster.cli(node.port, "CONFIG", "SET", "cluster-require-full-coverage", "no");
  });
  afterAll(async () => {
    await cluster?.close();
  });

  /** Two operation ids per master, in the order of the masters. */
  const opsPerMaster = async (label: string): Promise<Array<{ op: string; port: number }>> => {
    const masters = (await cluster.topology()).filter((n) => n.role === "master" && n.slots.length > 0);
    const out: Array<{ op: string; port: number }> = [];
    for (const master of masters) {
      let found = 0;
      for (let n = 0; found < 2; n++) {
        const op = `${label}-${n}`;
        const slot = slotOf(op);
        if (!master.slots.some(([a, b]) => slot >= a && slot <= b)) continue;
        out.push({ op, port: master.port });
        found++;
      }
    }
    return out;
  };

  /** The status of each entry of an operation's stream, oldest first, read from its master. */
  const stream = async (port: number, prefix: string, op: string): Promise<string[]> => {
    const raw = await cluster.cli(port, "XRANGE", `${prefix}:{${op}}:events`, "-", "+");
    const lines = raw.split("\n");
    const out: string[] = [];
    lines.forEach((line, i) => {
      if (line === "status") out.push(lines[i + 1] ?? "");
    });
    return out;
  };

  const adapters = {
    "node-redis": () => nodeRedis({ cluster: { rootNodes: cluster.rootNodes }, connectTimeoutMs: 2000 }),
    ioredis: () =>
      ioredis({
        cluster: { nodes: cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })) },
        connectTimeoutMs: 2000,
      }),
  } as const;

  const failures = {
    "refuses writes (maxmemory reached)": {
      keepsData: true,
      async break(port: number) {
        await cluster.cli(port, "CONFIG", "SET", "maxmemory-policy", "noeviction");
        await cluster.cli(port, "CONFIG", "SET", "maxmemory", "1");
      },
      async mend(port: number) {
        await cluster.cli(port, "CONFIG", "SET", "maxmemory", "0");
      },
    },
    "is down (no replica takes over)": {
      // Started without persistence: it comes back empty.
      keepsData: false,
      async break(port: number) {
        const pid = Number(/process_id:(\d+)/.exec(await cluster.cli(port, "INFO", "server"))?.[1]);
        process.kill(pid, "SIGKILL");
        await until(
          async () => {
            try {
              await cluster.cli(port, "PING");
              return false;
            } catch {
              return true;
            }
          },
          "the master to stop",
          5000,
        );
      },
      async mend(port: number) {
        await cluster.restart(port);
        await cluster.cli(port, "CONFIG", "SET", "cluster-require-full-coverage", "no");
      },
    },
  } as const;

  for (const [adapter, makePort] of Object.entries(adapters)) {
    for (const [failure, how] of Object.entries(failures)) {
      it(`${adapter}: a master that ${failure} fails only its slot's items; the others are written once`, async () => {
        const prefix = uniquePrefix();
        const progress = new Progress({
          port: makePort(),
          prefix,
          logger: {},
          estimate: false,
          retry: { deadlineMs: 30_000, minDelayMs: 100, maxDelayMs: 500 },
        });
        let mend: (() => Promise<void>) | undefined;
        try {
          const ops = await opsPerMaster(`${adapter}-${failure.length}`);
          // Warm up: the client knows the topology and every master has the scripts.
          for (const r of await Promise.all(ops.map(({ op }) => progress.publish(op, { progress: 10 }))))
            expect(r.ok).toBe(true);
          // The last master: the first publish of a tick is sent alone, the rest form one batch.
          const broken = ops[ops.length - 1]?.port ?? 0;
          await how.break(broken);
          mend = () => how.mend(broken);

          // One batch: every publish issued in the same tick.
          const results: PublishResult[] = await Promise.all(
            ops.map(({ op }) => progress.publish(op, { progress: 50 })),
          );
          ops.forEach(({ op, port }, i) => {
            const r = results[i];
            if (port === broken) expect(r, op).toMatchObject({ ok: false, outcome: "failed", queued: true });
            else expect(r, op).toMatchObject({ ok: true });
          });
          for (const { op, port } of ops) {
            if (port !== broken) expect(await stream(port, prefix, op), op).toEqual(["running", "running"]);
          }

          // The master comes back: the held updates are written, then the terminal events.
          const mended = mend();
          mend = undefined;
          const terminal = await Promise.all(ops.map(({ op }) => progress.publish(op, { status: "completed" })));
          await mended;
          expect(terminal.map((r) => r.ok)).toEqual(ops.map(() => true));
          await progress.flush();
          for (const { op, port } of ops) {
            // Written once each, in order: no event of a slot that answered is written again.
            const expected =
              port === broken && !how.keepsData ? ["running", "completed"] : ["running", "running", "completed"];
            expect(await stream(port, prefix, op), op).toEqual(expected);
            expect((await progress.get(op))?.progress, op).toBe(100);
          }
        } finally {
          await mend?.();
          await progress.close();
        }
      });
    }
  }
  for (const [adapter, makePort] of Object.entries(adapters)) {
    it(`${adapter}: held events of two slots retried together: the slot that answers is written, the other stays held`, async () => {
      const prefix = uniquePrefix();
      const progress = new Progress({
        port: makePort(),
        prefix,
        logger: {},
        estimate: false,
        retry: { deadlineMs: 30_000, minDelayMs: 50, maxDelayMs: 200 },
      });
      const oom = failures["refuses writes (maxmemory reached)"];
      const [a, b] = [...new Set((await opsPerMaster(`${adapter}-held`)).map((o) => o.port))];
      if (a === undefined || b === undefined) throw new Error("two masters needed");
      const broken = new Set([a, b]);
      try {
        const ops = (await opsPerMaster(`${adapter}-held`)).filter((o) => broken.has(o.port));
        for (const r of await Promise.all(ops.map(({ op }) => progress.publish(op, { progress: 10 }))))
          expect(r.ok).toBe(true);
        await oom.break(a);
        await oom.break(b);
        const held = await Promise.all(ops.map(({ op }) => progress.publish(op, { progress: 50 })));
        expect(held.map((r) => !r.ok && r.outcome === "failed" && r.queued)).toEqual(ops.map(() => true));
        // One master answers again: the next retry round carries both slots' events in one batch.
        await oom.mend(a);
        broken.delete(a);
        await until(
          async () => {
            for (const { op, port } of ops) if (port === a && (await stream(a, prefix, op)).length !== 2) return false;
            return true;
          },
          "the held events of the mended master to be written",
          10_000,
        );
        // Several retry rounds later, the other slot's events are still held, the mended slot's written once.
        await new Promise((r) => setTimeout(r, 600));
        for (const { op, port } of ops) expect(await stream(port, prefix, op), op).toHaveLength(port === a ? 2 : 1);
        await oom.mend(b);
        broken.delete(b);
        await progress.flush();
        for (const { op, port } of ops) expect(await stream(port, prefix, op), op).toEqual(["running", "running"]);
      } finally {
        for (const port of broken) await oom.mend(port);
        await progress.close();
      }
    });
  }
});
