/**
 * Single Redis node vs Redis Cluster (3 masters), same run, same machine:
 * publish throughput of concurrent jobs, and delivery latency (publish call to
 * a watcher in another manager receiving the event) p50/p99.
 *
 * Run: `npx tsx bench/cluster.ts` (about 40 s). Writes the `cluster` section of bench/RESULTS.md.
 */
import { setMaxListeners } from "node:events";
import { loadavg } from "node:os";
import { createClient } from "redis";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import type { StreamPort } from "../src/core/port/port.ts";
import { Progress } from "../src/core/progress.ts";
import { type RedisCluster, startRedisCluster } from "../test/support/redis-cluster.ts";
import { type RedisServer, startRedis } from "../test/support/redis-server.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, textTable, writeSection } from "./support/results.ts";
import { fmtMs, fmtRate, fmtRatio, quantile } from "./support/stats.ts";

const OPS = 200;
const THROUGHPUT_MS = 3000;
const WATCHED = 50;
const SAMPLES = 2000;
/** Delivery is sampled in this many rounds per backend, alternating between them. */
const ROUNDS = 4;

interface Row {
  readonly name: string;
  readonly publishesPerSec: number;
  /** Redis CPU per published event, summed over every master. */
  readonly cpuUs: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  /** p99 of the awaited publish call itself (one script round trip). */
  readonly publishP99: number;
  readonly samples: number;
}

const manager = (port: StreamPort, prefix: string): Progress =>
  new Progress({ port, prefix, logger: {}, estimate: false, throttle: false });

/** Seconds of CPU (user + sys) a Redis process has used, from `INFO cpu`. */
async function redisCpu(port: number): Promise<number> {
  const client = createClient({ url: `redis://127.0.0.1:${port}` });
  await client.connect();
  try {
    const info = String(await client.sendCommand(["INFO", "cpu"]));
    const num = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    return num("used_cpu_sys") + num("used_cpu_user");
  } finally {
    client.destroy();
  }
}

/** CPU seconds used so far by every given Redis process, summed. */
async function cpuOf(ports: readonly number[]): Promise<number> {
  let sum = 0;
  for (const port of ports) sum += await redisCpu(port);
  return sum;
}

async function throughput(progress: Progress, ports: readonly number[]): Promise<{ rate: number; cpuUs: number }> {
  const ops = Array.from({ length: OPS }, (_, i) => `tp-${i}`);
  // Warm up: scripts loaded on every node, connections open.
  await Promise.all(ops.map((op) => progress.publish(op, { progress: 0, message: "warm" })));
  let done = 0;
  const cpuBefore = await cpuOf(ports);
  const started = performance.now();
  let step = 0;
  while (performance.now() - started < THROUGHPUT_MS) {
    step++;
    const results = await Promise.all(ops.map((op) => progress.publish(op, { current: step, total: 1_000_000 })));
    done += results.filter((r) => r.ok).length;
  }
  const rate = (done / (performance.now() - started)) * 1000;
  const cpuUs = (((await cpuOf(ports)) - cpuBefore) * 1e6) / Math.max(1, done);
  return { rate, cpuUs };
}

/** Latencies of one round: publish call to the watcher's receipt, and the publish call's own round trip. */
interface Sampled {
  readonly delivery: number[];
  readonly publish: number[];
}

async function delivery(publisher: Progress, watcher: Progress, round: number, samples: number): Promise<Sampled> {
  const ops = Array.from({ length: WATCHED }, (_, i) => `lat-${round}-${i}`);
  const sent = new Map<string, number>();
  const latencies: number[] = [];
  const publishes: number[] = [];
  for (const op of ops) await publisher.publish(op, { progress: 0 });
  const controller = new AbortController();
  // One signal for every watcher of the round.
  setMaxListeners(WATCHED * 2, controller.signal);
  const watching = ops.map(async (op) => {
    for await (const item of watcher.watch(op, { signal: controller.signal })) {
      if (item.kind !== "event") continue;
      const at = sent.get(`${op}:${item.event.current ?? -1}`);
      if (at !== undefined) latencies.push(performance.now() - at);
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 1; i <= samples; i++) {
    const op = ops[i % ops.length] as string;
    const at = performance.now();
    sent.set(`${op}:${i}`, at);
    await publisher.publish(op, { current: i, total: samples * 10 });
    publishes.push(performance.now() - at);
    await new Promise((r) => setTimeout(r, 2));
  }
  const deadline = Date.now() + 10_000;
  while (latencies.length < samples && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  await Promise.allSettled(watching);
  return { delivery: latencies, publish: publishes };
}

interface Contender {
  readonly name: string;
  readonly publisher: Progress;
  readonly watcher: Progress;
  readonly delivery: number[];
  readonly publish: number[];
  readonly ports: readonly number[];
  publishesPerSec: number;
  cpuUs: number;
}

/**
 * Both backends measured in alternating rounds, so a change in the machine's
 * load (other processes) weighs on both alike rather than on whichever ran
 * second.
 */
async function measure(
  backends: ReadonlyArray<{ name: string; port: () => StreamPort; ports: readonly number[] }>,
): Promise<Row[]> {
  const contenders: Contender[] = backends.map(({ name, port, ports }) => {
    const prefix = `bench${Date.now().toString(36)}${name.length}`;
    return {
      name,
      publisher: manager(port(), prefix),
      watcher: manager(port(), prefix),
      delivery: [],
      publish: [],
      ports,
      publishesPerSec: 0,
      cpuUs: 0,
    };
  });
  for (const c of contenders) {
    const measured = await throughput(c.publisher, c.ports);
    c.publishesPerSec = measured.rate;
    c.cpuUs = measured.cpuUs;
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of contenders) {
      const sampled = await delivery(c.publisher, c.watcher, round, SAMPLES / ROUNDS);
      c.delivery.push(...sampled.delivery);
      c.publish.push(...sampled.publish);
    }
  }
  for (const c of contenders) await Promise.all([c.publisher.close(), c.watcher.close()]);
  return contenders.map((c) => ({
    name: c.name,
    publishesPerSec: c.publishesPerSec,
    cpuUs: c.cpuUs,
    p50: quantile(c.delivery, 0.5),
    p90: quantile(c.delivery, 0.9),
    p99: quantile(c.delivery, 0.99),
    publishP99: quantile(c.publish, 0.99),
    samples: c.delivery.length,
  }));
}

let server: RedisServer | undefined;
let cluster: RedisCluster | undefined;
try {
  server = await startRedis();
  cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  const single = server.url;
  const rootNodes = cluster.rootNodes;
  const load = loadavg()[0] ?? Number.NaN;
  const rows = await measure([
    { name: "single node (nodeRedis({ url }))", port: () => nodeRedis({ url: single }), ports: [server.port] },
    {
      name: "cluster, 3 masters (nodeRedis({ cluster }))",
      port: () => nodeRedis({ cluster: { rootNodes } }),
      ports: cluster.nodes.map((n) => n.port),
    },
  ]);
  const base = rows[0] as Row;
  const head = [
    "backend",
    "publishes/s",
    "vs single node",
    "Redis CPU per publish (all masters)",
    "vs single node",
    "delivery p50",
    "delivery p90",
    "delivery p99",
    "p99 vs single node",
    "publish call p99",
  ];
  const cells = rows.map((r) => [
    r.name,
    fmtRate(r.publishesPerSec),
    fmtRatio(r.publishesPerSec / base.publishesPerSec),
    `${r.cpuUs.toFixed(0)} µs`,
    fmtRatio(r.cpuUs / base.cpuUs),
    fmtMs(r.p50),
    fmtMs(r.p90),
    fmtMs(r.p99),
    fmtRatio(r.p99 / base.p99),
    fmtMs(r.publishP99),
  ]);
  console.log(textTable(head, cells));
  const m = machine();
  writeSection(
    "cluster",
    `## Redis Cluster vs a single node

Measured by \`npx tsx bench/cluster.ts\` on ${m.cpu} (${m.cores} cores, ${m.memoryGb} GB), Node ${m.node}, ${m.date},
load average ${load.toFixed(1)} when it started. Every Redis process runs on the same machine as the benchmark. Publish throughput: ${OPS} jobs publishing
concurrently for ${THROUGHPUT_MS / 1000} s (batched by the manager: on the cluster one script call per master for
the slots it serves, \`append-node.lua\`), with the Redis CPU it cost (\`INFO cpu\`, summed over the masters). Delivery:
${SAMPLES} events per backend published one at a time over ${WATCHED} operations, in ${ROUNDS} rounds alternating
between the backends, timed from the publish call to the event reaching a watcher of another manager (on the
cluster: a sharded pub/sub wake-up, then a non-blocking read). *Publish call p99* is the awaited publish alone
(one script round trip): a delivery tail no larger than it comes from the machine, not from the wake-up path.

${markdownTable(head, cells)}
`,
  );
} finally {
  await cluster?.close();
  await server?.close();
}
