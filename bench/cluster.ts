/**
 * Single Redis node vs Redis Cluster (3 masters), same run, same machine:
 * publish throughput of concurrent jobs, and delivery latency (publish call to
 * a watcher in another manager receiving the event) p50/p99.
 *
 * Run: `npx tsx bench/cluster.ts` (about 30 s). Writes the `cluster` section of bench/RESULTS.md.
 */
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import type { StreamPort } from "../src/core/port.ts";
import { Progress } from "../src/core/progress.ts";
import { type RedisCluster, startRedisCluster } from "../test/support/redis-cluster.ts";
import { type RedisServer, startRedis } from "../test/support/redis-server.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, textTable, writeSection } from "./support/results.ts";
import { fmtMs, fmtRate, fmtRatio, quantile } from "./support/stats.ts";

const OPS = 200;
const THROUGHPUT_MS = 3000;
const WATCHED = 50;
const SAMPLES = 1000;

interface Row {
  readonly name: string;
  readonly publishesPerSec: number;
  readonly p50: number;
  readonly p99: number;
}

const manager = (port: StreamPort, prefix: string): Progress =>
  new Progress({ port, prefix, logger: {}, estimate: false, throttle: false });

async function throughput(progress: Progress): Promise<number> {
  const ops = Array.from({ length: OPS }, (_, i) => `tp-${i}`);
  // Warm up: scripts loaded on every node, connections open.
  await Promise.all(ops.map((op) => progress.publish(op, { progress: 0, message: "warm" })));
  let done = 0;
  const started = performance.now();
  let step = 0;
  while (performance.now() - started < THROUGHPUT_MS) {
    step++;
    const results = await Promise.all(ops.map((op) => progress.publish(op, { current: step, total: 1_000_000 })));
    done += results.filter((r) => r.ok).length;
  }
  return (done / (performance.now() - started)) * 1000;
}

async function delivery(publisher: Progress, watcher: Progress): Promise<number[]> {
  const ops = Array.from({ length: WATCHED }, (_, i) => `lat-${i}`);
  const sent = new Map<string, number>();
  const latencies: number[] = [];
  for (const op of ops) await publisher.publish(op, { progress: 0 });
  const controller = new AbortController();
  const watching = ops.map(async (op) => {
    for await (const item of watcher.watch(op, { signal: controller.signal })) {
      if (item.kind !== "event") continue;
      const at = sent.get(`${op}:${item.event.current ?? -1}`);
      if (at !== undefined) latencies.push(performance.now() - at);
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 1; i <= SAMPLES; i++) {
    const op = ops[i % ops.length] as string;
    sent.set(`${op}:${i}`, performance.now());
    await publisher.publish(op, { current: i, total: SAMPLES * 10 });
    await new Promise((r) => setTimeout(r, 2));
  }
  const deadline = Date.now() + 10_000;
  while (latencies.length < SAMPLES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  await Promise.allSettled(watching);
  return latencies;
}

async function measure(name: string, port: () => StreamPort): Promise<Row> {
  const prefix = `bench${Date.now().toString(36)}`;
  const publisher = manager(port(), prefix);
  const watcher = manager(port(), prefix);
  const publishesPerSec = await throughput(publisher);
  const latencies = await delivery(publisher, watcher);
  await publisher.close();
  await watcher.close();
  return { name, publishesPerSec, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

let server: RedisServer | undefined;
let cluster: RedisCluster | undefined;
try {
  server = await startRedis();
  cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  const single = server.url;
  const rootNodes = cluster.rootNodes;
  const rows = [
    await measure("single node (nodeRedis({ url }))", () => nodeRedis({ url: single })),
    await measure("cluster, 3 masters (nodeRedis({ cluster }))", () => nodeRedis({ cluster: { rootNodes } })),
  ];
  const base = rows[0] as Row;
  const head = ["backend", "publishes/s", "delivery p50", "delivery p99", "p99 vs single node"];
  const cells = rows.map((r) => [
    r.name,
    fmtRate(r.publishesPerSec),
    fmtMs(r.p50),
    fmtMs(r.p99),
    fmtRatio(r.p99 / base.p99),
  ]);
  console.log(textTable(head, cells));
  const m = machine();
  writeSection(
    "cluster",
    `## Redis Cluster vs a single node

Measured by \`npx tsx bench/cluster.ts\` on ${m.cpu} (${m.cores} cores, ${m.memoryGb} GB), Node ${m.node}, ${m.date}.
Every Redis process runs on the same machine as the benchmark. Publish throughput: ${OPS} jobs publishing
concurrently for ${THROUGHPUT_MS / 1000} s (batched by the manager, one script call per slot on the cluster). Delivery:
${SAMPLES} events published one at a time over ${WATCHED} operations, timed from the publish call to the event
reaching a watcher of another manager (on the cluster: a sharded pub/sub wake-up, then a non-blocking read).

${markdownTable(head, cells)}
`,
  );
} finally {
  await cluster?.close();
  await server?.close();
}
