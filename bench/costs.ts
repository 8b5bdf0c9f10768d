/**
 * What progresscast costs, measured against one fresh redis-server:
 *
 * - script: Redis CPU per publish of the append script (`INFO commandstats`),
 *   one-item calls and 20-item batches;
 * - coalescing: 1,000,000 `report()` calls on 10 operations: CPU, writes
 *   issued, last value delivered;
 * - adapters: one awaited publish over TCP (node-redis, ioredis) and over REST
 *   (the Upstash adapter against the local REST server) with 0, 1 and 20 ms
 *   added per request;
 * - memory: Redis memory per live operation (20 events) and per finished
 *   operation (after the stream's grace TTL), beside BullMQ's per job.
 *
 * Run: `npx tsx bench/costs.ts` (run by `npm run bench`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { createClient } from "redis";
import { ioredis } from "../src/adapters/ioredis/index.ts";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { upstash } from "../src/adapters/upstash/index.ts";
import type { Metrics } from "../src/core/observe.ts";
import type { StreamPort } from "../src/core/port/port.ts";
import { Progress } from "../src/core/progress.ts";
import { startRedis } from "../test/support/redis-server.ts";
import { measureScriptCost } from "./script-cost.ts";
import { machine } from "./support/machine.ts";
import type { FromServer, ToServer } from "./support/rest-server.ts";
import { markdownTable, redisVersion, textTable, writeJson, writeSection } from "./support/results.ts";
import { fmtMs, fmtRate, quantile } from "./support/stats.ts";
import { step } from "./support/workload.ts";

interface Client {
  sendCommand(args: string[]): Promise<unknown>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- coalescing

interface Coalescing {
  readonly calls: number;
  readonly ops: number;
  readonly cpuMs: number;
  readonly wallMs: number;
  readonly writes: number;
  readonly lastDelivered: boolean;
}

async function coalescing(url: string): Promise<Coalescing> {
  let writes = 0;
  const metrics: Metrics = {
    increment(name, value = 1) {
      if (name === "events_published") writes += value;
    },
    observe() {},
    gauge() {},
  };
  const progress = new Progress({ port: nodeRedis({ url }), metrics, logger: {}, estimate: false });
  const CALLS = 1_000_000;
  const OPS = 10;
  const ops = Array.from({ length: OPS }, (_, i) => `co-${i}`);
  const total = CALLS / OPS;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) {
    const n = Math.floor(i / OPS) + 1;
    progress.report(ops[i % OPS] as string, { current: n, total });
  }
  await progress.flush();
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  let lastDelivered = true;
  for (const op of ops) if ((await progress.get(op))?.current !== total) lastDelivered = false;
  await progress.close();
  return { calls: CALLS, ops: OPS, cpuMs: (used.user + used.system) / 1000, wallMs, writes, lastDelivered };
}

// ---------------------------------------------------------------- adapters

/** The REST server in a child process, as bench/publish.ts runs it. */
async function restServer(
  redisUrl: string,
): Promise<{ url: string; token: string; delay(ms: number): Promise<void>; close(): void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(new URL("./support/rest-server.ts", import.meta.url))],
    { stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, REDIS_URL: redisUrl } },
  );
  const next = (): Promise<FromServer> =>
    new Promise((resolve) => child.once("message", (m) => resolve(m as FromServer)));
  const ready = await next();
  if (ready.type !== "ready") throw new Error("the REST server did not start");
  return {
    url: ready.url,
    token: ready.token,
    async delay(ms) {
      const done = next();
      child.send?.({ type: "setDelay", ms } satisfies ToServer);
      await done;
    },
    close() {
      child.send?.({ type: "close" } satisfies ToServer);
    },
  };
}

interface AdapterLatency {
  readonly adapter: string;
  readonly delayMs: number;
  readonly p50: number;
  readonly p99: number;
  readonly rate: number;
}

async function latencyOf(name: string, delayMs: number, port: StreamPort, count: number): Promise<AdapterLatency> {
  const progress = new Progress({ port, throttle: false, estimate: false, logger: {} });
  const op = `lat-${name.replace(/\W/g, "")}-${delayMs}-${Date.now().toString(36)}`;
  for (let i = 0; i < 20; i++) await progress.publish(op, step(i, 10_000));
  const times = new Float64Array(count);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const s = performance.now();
    await progress.publish(op, step(20 + i, 10_000));
    times[i] = performance.now() - s;
  }
  const wall = performance.now() - t0;
  await progress.close();
  return { adapter: name, delayMs, p50: quantile(times, 0.5), p99: quantile(times, 0.99), rate: (count / wall) * 1000 };
}

// ---------------------------------------------------------------- memory

interface MemoryCost {
  readonly live: number;
  readonly finished: number;
  readonly bullmqJob: number;
  readonly bullmqFinished: number;
}

async function usedMemory(client: Client): Promise<number> {
  const info = String(await client.sendCommand(["INFO", "memory"]));
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

async function memoryCost(url: string, client: Client): Promise<MemoryCost> {
  const N = 1000;
  await client.sendCommand(["FLUSHALL"]);
  const before = await usedMemory(client);
  const progress = new Progress({
    port: nodeRedis({ url }),
    prefix: "mem",
    throttle: false,
    estimate: false,
    terminalTtlSeconds: 1,
    logger: {},
  });
  const ops = Array.from({ length: N }, (_, i) => `job-${i}`);
  for (let k = 1; k <= 20; k++) await Promise.all(ops.map((op) => progress.publish(op, step(k, 20))));
  const live = ((await usedMemory(client)) - before) / N;
  await Promise.all(ops.map((op) => progress.publish(op, { status: "completed" })));
  // Past the grace period the stream is gone; the snapshot stays for late joiners.
  await sleep(1500);
  await client.sendCommand(["SCAN", "0", "COUNT", "100000"]); // lets lazy expiry catch up on sampled keys
  let remaining = 1;
  for (let i = 0; i < 50 && remaining > 0; i++) {
    remaining = ((await client.sendCommand(["KEYS", "mem:*:events"])) as unknown[]).length;
    if (remaining > 0) await sleep(200);
  }
  const finished = ((await usedMemory(client)) - before) / N;
  await progress.close();

  await client.sendCommand(["FLUSHALL"]);
  const b0 = await usedMemory(client);
  const { hostname, port } = new URL(url);
  const queue = new Queue("mem", { connection: { host: hostname, port: Number(port) } });
  const jobs = await queue.addBulk(ops.map((op) => ({ name: "job", data: { file: "a.csv" }, opts: { jobId: op } })));
  for (let k = 1; k <= 20; k++) await Promise.all(jobs.map((j) => j.updateProgress(step(k, 20))));
  const bullmqJob = ((await usedMemory(client)) - b0) / N;
  // A finished job as BullMQ keeps it by default: moved to the completed set with its return value.
  await Promise.all(jobs.map((j) => j.moveToCompleted("done", "0", false).catch(() => undefined)));
  const bullmqFinished = ((await usedMemory(client)) - b0) / N;
  await queue.close();
  return { live, finished, bullmqJob, bullmqFinished };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const server = await startRedis();
  const client = createClient({ url: server.url, RESP: 2 });
  await client.connect();
  const began = performance.now();
  try {
    const script = await measureScriptCost(server.url, 3000);
    console.log(`script: ${script.single.toFixed(1)} µs/call, ${script.batched.toFixed(1)} µs/item in batches of 20`);
    await client.sendCommand(["FLUSHALL"]);

    const co = await coalescing(server.url);
    console.log(co);

    const latencies: AdapterLatency[] = [];
    latencies.push(await latencyOf("node-redis (TCP)", 0, nodeRedis({ url: server.url }), 1000));
    latencies.push(await latencyOf("ioredis (TCP)", 0, ioredis({ url: server.url }), 1000));
    const rest = await restServer(server.url).catch(() => undefined);
    if (rest) {
      for (const d of [0, 1, 20]) {
        await rest.delay(d);
        latencies.push(
          await latencyOf("upstash (REST)", d, upstash({ url: rest.url, token: rest.token }), d >= 20 ? 60 : 300),
        );
      }
      rest.close();
    }
    for (const l of latencies) console.log(l);

    const mem = await memoryCost(server.url, client);
    console.log(mem);

    const m = machine();
    const seconds = Math.round((performance.now() - began) / 1000);
    const header = `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB; Node ${m.node}; Redis ${redisVersion()} (a fresh \`redis-server\` on loopback, no persistence); ${m.date}.

Command: \`npx tsx bench/costs.ts\` (run by \`npm run bench\`), ${seconds} s in all.`;

    writeSection(
      "script",
      `## Redis CPU per publish (the append script)

${header}

| calls | Redis CPU per publish |
| --- | ---: |
| one item per call (sequential publishes to one op) | ${script.single.toFixed(1)} µs |
| 20 items per call (concurrent publishes, batched) | ${script.batched.toFixed(1)} µs |

From \`INFO commandstats\` (\`usec\` of \`cmdstat_evalsha\` over the calls), on the same KEYS/ARGV the core sends. The script refreshes TTLs only when less than half is left (the snapshot keeps \`exp\`), reads the snapshot with one \`HMGET\`, and does not rewrite \`v\`/\`op\` between refreshes; it also writes \`attempt\` and checks every stored number.`,
    );

    const coRows = [
      [
        `${co.calls.toLocaleString("en-US")} on ${co.ops} ops`,
        fmtMs(co.cpuMs),
        fmtMs(co.wallMs),
        fmtRate(co.writes),
        co.lastDelivered ? "yes" : "NO",
        co.cpuMs < 1000 ? "met" : `missed by ${(co.cpuMs / 1000).toFixed(2)}x`,
      ],
    ];
    writeSection(
      "coalescing",
      `## Coalescing: 1,000,000 report() calls

${header}

${markdownTable(["report() calls", "CPU", "wall", "writes issued", "last value delivered", "target < 1 s CPU"], coRows)}

\`progress.report(op, { current, total })\` in a tight loop, 10 operations interleaved, default throttle (250 ms), node-redis; then \`flush()\`. CPU is the process's (user + system) over the loop and the flush; writes are \`events_published\` from the metrics sink; the last value is checked with \`get()\` on every operation.`,
    );

    const latRows = latencies.map((l) => [
      l.adapter,
      l.delayMs === 0 && l.adapter.includes("TCP") ? "" : `${l.delayMs} ms`,
      fmtMs(l.p50),
      fmtMs(l.p99),
      fmtRate(l.rate),
    ]);
    writeSection(
      "adapters",
      `## Adapter latency: TCP vs REST

${header}

${markdownTable(["adapter", "added delay per request", "publish p50", "p99", "sequential publishes/s"], latRows)}

One awaited \`publish\` after another on one operation (throttle off). The REST rows go through the Upstash adapter to the local Upstash-compatible REST server (\`bench/support/rest-server.ts\`, a child process in front of the same redis-server), which adds the stated delay before each answer: 1 ms is a same-region edge function, 20 ms a cross-region one.`,
    );

    const memRows = [
      ["progresscast, live operation (20 events)", `${fmtRate(mem.live)} B`],
      ["progresscast, finished operation (after the stream's grace TTL)", `${fmtRate(mem.finished)} B`],
      ["BullMQ job (20 progress updates)", `${fmtRate(mem.bullmqJob)} B`],
      ["BullMQ job after moveToCompleted (kept by default)", `${fmtRate(mem.bullmqFinished)} B`],
    ];
    writeSection(
      "memory",
      `## Redis memory per operation

${header}

${markdownTable(["what", "Redis memory each"], memRows)}

\`used_memory\` before and after 1,000 operations, divided by 1,000. A live operation has its stream (Redis preallocates about 4 KB for a stream's first node) and its snapshot; a finished one keeps only its snapshot once \`terminalTtlSeconds\` has passed (1 s here; 3,600 s by default). Target: a finished operation <= 1 KB: ${mem.finished <= 1024 ? "met" : "missed"}. BullMQ's rows include its share of the queue's event stream (capped at 10,000 entries by default).`,
    );

    writeJson("script", script);
    writeJson("coalescing", co);
    writeJson("adapters", latencies);
    writeJson("memory", mem);
    console.log(
      textTable(
        ["adapter", "delay", "p50", "p99", "rate"],
        latRows.map((r) => r.map(String)),
      ),
    );
  } finally {
    await client.quit();
    await server.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
  process.exit(0);
}
