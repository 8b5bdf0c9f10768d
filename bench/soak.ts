/**
 * Soak: many operations reporting for a long time to many SSE clients over
 * real HTTP, against a redis-server this script starts on a free loopback
 * port. Asserts that the process heap (after `gc()`) and Redis memory stay
 * flat after warm-up, and that every client's last event equals the final
 * state of its operation. Not part of CI.
 *
 * Run: `npm run soak` (10 minutes), or
 * `node --expose-gc --import tsx bench/soak.ts --duration-s 120`.
 * Options: --duration-s, --warmup-s, --ops, --rate (updates/s per operation),
 * --clients, --max-len, --dry-run (print, do not write bench/RESULTS.md).
 * Prints a table and rewrites the `soak` section of `bench/RESULTS.md`; exits 1
 * when an assertion fails.
 */
import { createServer, get, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { createParser } from "eventsource-parser";
import { createClient } from "redis";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { Progress } from "../src/core/progress.ts";
import { toRequest, writeResponse } from "../src/node/index.ts";
import { startRedis } from "../test/support/redis-server.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, textTable, writeSection } from "./support/results.ts";
import { quantile } from "./support/stats.ts";

const { values: flags } = parseArgs({
  options: {
    "duration-s": { type: "string", default: "600" },
    "warmup-s": { type: "string" },
    ops: { type: "string", default: "200" },
    rate: { type: "string", default: "10" },
    clients: { type: "string", default: "2000" },
    "max-len": { type: "string", default: "200" },
    "dry-run": { type: "boolean", default: false },
  },
});
const durationS = Number(flags["duration-s"]);
const warmupS = Number(flags["warmup-s"] ?? Math.max(20, Math.round(durationS / 4)));
const OPS = Number(flags.ops);
const RATE = Number(flags.rate);
const CLIENTS = Number(flags.clients);
const MAX_LEN = Number(flags["max-len"]);
/** Growth after warm-up still called flat: a quarter, and never less than 8 MB (GC noise). */
const FLAT_RATIO = 0.25;
const FLAT_SLACK_BYTES = 8 * 2 ** 20;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("Run with --expose-gc: node --expose-gc --import tsx bench/soak.ts (npm run soak does)");
  process.exit(2);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const heapAfterGc = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(10);
  }
  return process.memoryUsage().heapUsed;
};
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

const redis = await startRedis();
const inspector = createClient({ url: redis.url, RESP: 2 });
await inspector.connect();
const redisMemory = async (): Promise<number> => {
  const info = String(await inspector.sendCommand(["INFO", "memory"]));
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
};

const prefix = `soak${Date.now().toString(36)}`;
const server = new Progress({ port: nodeRedis({ url: redis.url }), prefix, maxLen: MAX_LEN, logger: {} });
const publisher = new Progress({
  port: nodeRedis({ url: redis.url }),
  prefix,
  maxLen: MAX_LEN,
  throttle: false,
  estimate: false,
  logger: {},
});
const http = createServer((req, res) => {
  const op = new URL(req.url ?? "/", "http://x").searchParams.get("op") ?? "";
  void (async () => writeResponse(res, await server.sse(toRequest(req, res), op, { heartbeatMs: 5000 })))();
});
http.maxConnections = CLIENTS + 100;
await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
const ops = Array.from({ length: OPS }, (_, i) => `soak-${i}`);

// Operations start before clients connect, so every client has a snapshot.
await Promise.all(ops.map((op) => publisher.publish(op, { status: "running", progress: 0 })));

interface Client {
  readonly op: string;
  last: { id: string; seq: number; status: string; progress: number } | undefined;
  events: number;
  reconnects: number;
  ended: boolean;
}
const latencies: number[] = [];
const clients: Client[] = [];
const follow = (client: Client, lastId?: string): void => {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (lastId) headers["last-event-id"] = lastId;
  const req = get(`${base}/progress?op=${client.op}`, { headers, agent: false }, (res: IncomingMessage) => {
    const parser = createParser({
      onEvent(message) {
        if (message.event === "snapshot" || message.event === "reset" || message.event === "error") return;
        const event = JSON.parse(message.data) as {
          id: string;
          seq: number;
          status: string;
          progress: number;
          ts: string;
        };
        client.last = { id: event.id, seq: event.seq, status: event.status, progress: event.progress };
        client.events++;
        if (latencies.length < 200_000 && client.events % 10 === 0) latencies.push(Date.now() - Date.parse(event.ts));
      },
    });
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => parser.feed(chunk));
    res.on("end", () => {
      if (client.last && ["completed", "failed", "cancelled"].includes(client.last.status)) client.ended = true;
      else reconnect(client);
    });
    res.on("error", () => {});
  });
  req.on("error", () => reconnect(client));
};
const reconnect = (client: Client): void => {
  if (client.ended || stopping) return;
  client.reconnects++;
  setTimeout(() => follow(client, client.last?.id), 500 + Math.random() * 1000);
};
let stopping = false;

console.log(
  `soak: ${OPS} operations x ${RATE} updates/s, ${CLIENTS} SSE clients, ${durationS} s (warm-up ${warmupS} s), redis ${redis.url}`,
);
for (let i = 0; i < CLIENTS; i++) {
  const client: Client = { op: ops[i % OPS] as string, last: undefined, events: 0, reconnects: 0, ended: false };
  clients.push(client);
  follow(client);
  if (i % 100 === 99) await sleep(50);
}

let published = 0;
let failed = 0;
let step = 0;
const started = Date.now();
const tick = setInterval(() => {
  step++;
  const progress = Math.min(99, (step / (durationS * RATE)) * 99);
  for (const op of ops) {
    void publisher.publish(op, { progress, message: `step ${step}` }).then((r) => {
      if (r.ok) published++;
      else failed++;
    });
  }
}, 1000 / RATE);

interface Sample {
  readonly atS: number;
  readonly heap: number;
  readonly redis: number;
}
const samples: Sample[] = [];
const sampleEveryS = Math.max(5, Math.round(durationS / 24));
while (Date.now() - started < durationS * 1000) {
  await sleep(sampleEveryS * 1000);
  const sample = {
    atS: Math.round((Date.now() - started) / 1000),
    heap: await heapAfterGc(),
    redis: await redisMemory(),
  };
  samples.push(sample);
  console.log(`  ${sample.atS} s: heap ${mb(sample.heap)}, redis ${mb(sample.redis)}, published ${published}`);
}
clearInterval(tick);

// Every operation completes; every client must end on exactly that event.
await Promise.all(ops.map((op) => publisher.publish(op, { status: "completed", progress: 100 })));
const finals = new Map<string, { id: string; seq: number }>();
for (const op of ops) {
  const s = await publisher.get(op);
  if (s?.id !== undefined) finals.set(op, { id: s.id, seq: s.seq });
}
const endBy = Date.now() + 60_000;
while (clients.some((c) => !c.ended) && Date.now() < endBy) await sleep(200);
stopping = true;
const correct = clients.filter((c) => {
  const f = finals.get(c.op);
  return c.ended && f !== undefined && c.last?.id === f.id && c.last.seq === f.seq && c.last.status === "completed";
}).length;

const after = samples.filter((s) => s.atS >= warmupS);
const first = after[0] ?? samples[samples.length - 1];
const last = samples[samples.length - 1];
const flat = (key: "heap" | "redis"): boolean =>
  first !== undefined &&
  last !== undefined &&
  last[key] - first[key] <= Math.max(first[key] * FLAT_RATIO, FLAT_SLACK_BYTES);
const heapFlat = flat("heap");
const redisFlat = flat("redis");
const allCorrect = correct === CLIENTS;
const delivered = clients.reduce((n, c) => n + c.events, 0);
const reconnects = clients.reduce((n, c) => n + c.reconnects, 0);

const head = ["measure", "value"];
const rows: string[][] = [
  ["duration (warm-up)", `${durationS} s (${warmupS} s)`],
  ["operations x updates/s", `${OPS} x ${RATE}`],
  ["SSE clients (real HTTP)", String(CLIENTS)],
  ["events published (failed)", `${published} (${failed})`],
  ["events received by clients", String(delivered)],
  ["client reconnects", String(reconnects)],
  [
    "delivery latency p50 / p99 (publish ts to client)",
    `${quantile(latencies, 0.5)} ms / ${quantile(latencies, 0.99)} ms`,
  ],
  [
    "heap after gc: after warm-up -> end",
    `${mb(first?.heap ?? 0)} -> ${mb(last?.heap ?? 0)} (${heapFlat ? "flat" : "GROWING"})`,
  ],
  [
    "Redis used_memory: after warm-up -> end",
    `${mb(first?.redis ?? 0)} -> ${mb(last?.redis ?? 0)} (${redisFlat ? "flat" : "GROWING"})`,
  ],
  ["clients whose last event is the final state", `${correct} / ${CLIENTS}`],
];
console.log(textTable(head, rows));
const m = machine();
const ok = heapFlat && redisFlat && allCorrect;
const outcome = `Result: **${ok ? "passed" : "FAILED"}** (1-minute load average at the end: ${loadavg()[0]?.toFixed(1)} on ${m.cores} cores; the clients run in the same process as the server).`;
const markdown = `## Soak: ${OPS} operations x ${RATE} updates/s to ${CLIENTS} SSE clients

Measured ${m.date} on ${m.cpu} (${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}), a redis-server on loopback,
\`node --expose-gc --import tsx bench/soak.ts --duration-s ${durationS}\` (\`npm run soak\` runs 10 minutes).
Flat means growth after warm-up of at most ${FLAT_RATIO * 100} % (and at least ${mb(FLAT_SLACK_BYTES)} of slack for GC noise).
Streams are capped at ${MAX_LEN} entries, so Redis memory settles once every stream is full.

${markdownTable(head, rows, [false, true])}

${outcome}

Samples (heap after gc / Redis used_memory): ${samples.map((s) => `${s.atS} s ${mb(s.heap)} / ${mb(s.redis)}`).join("; ")}.
`;
if (!flags["dry-run"]) writeSection("soak", markdown);

http.closeAllConnections();
http.close();
await server.close();
await publisher.close();
await inspector.close();
await redis.close();
console.log(outcome);
console.log(ok ? "soak: OK" : "soak: FAILED");
process.exit(ok ? 0 : 1);
