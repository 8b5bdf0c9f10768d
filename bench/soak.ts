/**
 * Soak: many operations reporting for a long time to many SSE clients over
 * real HTTP. This process is the server only (one manager on node-redis and a
 * `node:http` SSE endpoint through `progresscast/node`); the SSE clients run in
 * child processes (`support/sse-clients.ts`) and the publisher in another
 * (`support/publisher.ts`), so their CPU is not taken from the server.
 *
 * Checks, and prints as PASS/FAIL:
 * - every client's last state equals its operation's final state as
 *   `progress.get` reads it after every operation ended;
 * - the server's heap after `gc()` (the least of 3 readings 1 s apart) and
 *   Redis `used_memory`, sampled every 10 s, are flat after warm-up: the least-squares slope over the samples
 *   after warm-up is below a bound (1 MB/min by default);
 * - the publisher kept its rate (at least 95 % of it) and no publish failed.
 *
 * Run: `npm run soak` (10 minutes) or `npm run soak -- --minutes 2`.
 * Options: --minutes (10), --clients (2000), --ops (200), --rate (updates/s per
 * operation, 10), --procs (client processes, 2), --max-len (200),
 * --sample-s (10), --heap-bound (MB/min, 1), --redis-bound (MB/min, 1),
 * --dry-run (do not write bench/RESULTS.md). Uses REDIS_URL when set, else
 * starts its own redis-server on loopback. Stops everything it started and
 * exits 1 when a check fails (or 2 when it had to give up).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createClient } from "redis";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { Progress } from "../src/core/progress.ts";
import { toRequest, writeResponse } from "../src/node/index.ts";
import { type RedisServer, startRedis } from "../test/support/redis-server.ts";
import {
  type Child,
  type ClientResult,
  type FromClients,
  type FromPublisher,
  forkChild,
  type Seen,
  supervise,
  type ToClients,
  type ToPublisher,
} from "./support/children.ts";
import { histogramMax, histogramQuantile, merge, newHistogram } from "./support/histogram.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, redisVersion, textTable, writeJson, writeSection } from "./support/results.ts";
import { fmtMs, fmtRate } from "./support/stats.ts";

/** A histogram bound, at the 3 digits it is good for (so 999.97 ms reads 1.00 s). */
const fmtLatency = (ms: number): string => fmtMs(Number(ms.toPrecision(3)));

const { values: flags } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    clients: { type: "string", default: "2000" },
    ops: { type: "string", default: "200" },
    rate: { type: "string", default: "10" },
    procs: { type: "string", default: "2" },
    "max-len": { type: "string", default: "200" },
    "sample-s": { type: "string", default: "10" },
    "heap-bound": { type: "string", default: "1" },
    "redis-bound": { type: "string", default: "1" },
    "dry-run": { type: "boolean", default: false },
  },
});
const MINUTES = Number(flags.minutes);
const DURATION_S = Math.round(MINUTES * 60);
const CLIENTS = Number(flags.clients);
const OPS = Number(flags.ops);
const RATE = Number(flags.rate);
const PROCS = Math.max(1, Math.min(Number(flags.procs), CLIENTS));
const MAX_LEN = Number(flags["max-len"]);
const SAMPLE_S = Number(flags["sample-s"]);
const HEAP_BOUND = Number(flags["heap-bound"]);
const REDIS_BOUND = Number(flags["redis-bound"]);
/** Warm-up: the first 20 % of the run, and at least the time every stream takes to reach its cap (trimming is approximate: up to 100 more). */
const WARMUP_S = Math.max(0.2 * DURATION_S, (MAX_LEN + 100) / RATE);
const MIN_RATE_SHARE = 0.95;
for (const [name, value] of Object.entries({ MINUTES, CLIENTS, OPS, RATE, MAX_LEN, SAMPLE_S })) {
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`soak: bad option ${name.toLowerCase()}: ${value}`);
    process.exit(2);
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("Run with --expose-gc: node --expose-gc --import tsx bench/soak.ts (npm run soak does)");
  process.exit(2);
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;

// Everything started here is stopped on the way out, whatever happens.
const supervisor = supervise("soak", DURATION_S + 600);
const { children, giveUp } = supervisor;
const redis = process.env.REDIS_URL ? undefined : await startRedis();
supervisor.redis = redis;
const redisUrl = process.env.REDIS_URL ?? (redis as RedisServer).url;
const inspector = createClient({ url: redisUrl, RESP: 2 });
await inspector.connect();
const redisMemory = async (): Promise<number> => {
  const info = String(await inspector.sendCommand(["INFO", "memory"]));
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
};
const heapAfterGc = async (): Promise<number> => {
  for (let i = 0; i < 2; i++) {
    gc();
    await sleep(10);
  }
  return process.memoryUsage().heapUsed;
};
/**
 * The heap's floor at one sample: the least of 3 readings after gc, 1 s apart.
 * What is in flight at a reading (events on their way to 2,000 sockets) comes
 * and goes; what is retained stays in the floor, so a leak shows there.
 */
const heapFloor = async (): Promise<number> => {
  let least = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1000);
    least = Math.min(least, await heapAfterGc());
  }
  return least;
};

// ------------------------------------------------------------------ server
const prefix = `soak${Date.now().toString(36)}`;
const progress = new Progress({ port: nodeRedis({ url: redisUrl }), prefix, maxLen: MAX_LEN, logger: {} });
const http = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== "/progress") {
    res.writeHead(404).end();
    return;
  }
  const op = url.searchParams.get("op") ?? "";
  progress
    .sse(toRequest(req, res), op)
    .then((response) => writeResponse(res, response))
    .catch(() => res.destroy());
});
http.maxConnections = CLIENTS + 1000;
await new Promise<void>((resolve) => http.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, resolve));
const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
const ops = Array.from({ length: OPS }, (_, i) => `soak-${i}`);

console.log(
  `soak: ${OPS} operations x ${RATE} updates/s, ${CLIENTS} SSE clients in ${PROCS} processes, ${DURATION_S} s (warm-up ${WARMUP_S} s), redis ${redisUrl}`,
);

// ------------------------------------------------------------------ publisher and clients
const publisher = forkChild<ToPublisher, FromPublisher>("publisher.ts", "soak publisher");
children.push(publisher as Child<unknown, { type: string }>);
const publisherError = publisher.next("error", 2 ** 31 - 1).then((e) => giveUp(`publisher: ${e.message}`));
void publisherError.catch(() => {});
publisher.send({ type: "init", redisUrl, prefix, maxLen: MAX_LEN, ops });
await publisher.next("initialized", 60_000);

const clientProcs: Child<ToClients, FromClients>[] = [];
for (let k = 0; k < PROCS; k++) {
  const child = forkChild<ToClients, FromClients>("sse-clients.ts", `soak clients ${k + 1}`);
  children.push(child as Child<unknown, { type: string }>);
  clientProcs.push(child);
  const mine: string[] = [];
  for (let i = k; i < CLIENTS; i += PROCS) mine.push(ops[i % OPS] as string);
  child.send({ type: "start", base, ops: mine });
}
const readies = await Promise.all(clientProcs.map((c) => c.next("ready", 180_000)));
const ready = readies.reduce((n, r) => n + r.ready, 0);
console.log(`  ${ready} / ${CLIENTS} clients connected in ${Math.max(...readies.map((r) => r.ms))} ms`);

// ------------------------------------------------------------------ the run
interface Sample {
  readonly atS: number;
  readonly heap: number;
  readonly rss: number;
  readonly redis: number;
}
const samples: Sample[] = [];
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
const cpu0 = process.cpuUsage();
const t0 = performance.now();
publisher.send({ type: "run", rate: RATE * OPS, seconds: DURATION_S });
const done = publisher.next("done", (DURATION_S + 300) * 1000);
let finished = false;
void done.then(
  () => {
    finished = true;
  },
  () => {
    finished = true;
  },
);
loopDelay.enable();
// Samples while the publisher runs (the operations end after DURATION_S, and their watches with them).
for (let next = SAMPLE_S; next < DURATION_S && !finished; next += SAMPLE_S) {
  while ((performance.now() - t0) / 1000 < next && !finished) await sleep(100);
  if (finished) break;
  const heap = await heapFloor();
  const sample: Sample = {
    atS: Math.round((performance.now() - t0) / 100) / 10,
    heap,
    rss: process.memoryUsage().rss,
    redis: await redisMemory(),
  };
  samples.push(sample);
  publisher.send({ type: "stats" });
  const [pub, ...stats] = await Promise.all([
    publisher.next("stats", 10_000).catch(() => undefined),
    ...clientProcs.map((c) => {
      c.send({ type: "stats" });
      return c.next("stats", 10_000).catch(() => undefined);
    }),
  ]);
  const received = stats.reduce((n, s) => n + (s?.events ?? 0), 0);
  const open = stats.reduce((n, s) => n + (s?.open ?? 0), 0);
  console.log(
    `  ${sample.atS} s: heap ${mb(sample.heap)}, rss ${mb(sample.rss)}, redis ${mb(sample.redis)}, published ${pub?.published ?? "?"} (behind ${pub?.behind ?? "?"}), received ${received}, open ${open}`,
  );
}
loopDelay.disable();
const pub = await done.catch((e: unknown) => giveUp(`publisher: ${e instanceof Error ? e.message : String(e)}`));
const serverCpu = process.cpuUsage(cpu0);

// Every operation ended; every client must end on exactly the state `get` reads.
const finals: Record<string, Seen> = {};
for (const op of ops) {
  const s = await progress.get(op);
  if (s) finals[op] = { id: s.id, seq: s.seq, status: s.status };
}
const results: ClientResult[] = await Promise.all(
  clientProcs.map((c) => {
    c.send({ type: "finish", finals, timeoutMs: 60_000 });
    return c.next("result", 120_000);
  }),
);
const latency = newHistogram();
for (const r of results) merge(latency, r.latency);
const sum = (f: (r: ClientResult) => number): number => results.reduce((n, r) => n + f(r), 0);
const correct = sum((r) => r.correct);
const terminalEvents = sum((r) => r.terminalEvents);
const mismatches = results.flatMap((r) => r.mismatches).slice(0, 5);

// ------------------------------------------------------------------ verdict
/** Least-squares slope of y over x (per second), in bytes per minute. */
const slopePerMinute = (points: readonly Sample[], key: "heap" | "redis" | "rss"): number => {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, p) => s + p.atS, 0) / n;
  const my = points.reduce((s, p) => s + p[key], 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.atS - mx) * (p[key] - my);
    den += (p.atS - mx) ** 2;
  }
  return (num / den) * 60;
};
const after = samples.filter((s) => s.atS > WARMUP_S);
const heapSlope = slopePerMinute(after, "heap");
const redisSlope = slopePerMinute(after, "redis");
const rssSlope = slopePerMinute(after, "rss");
const heapFlat = after.length >= 3 && heapSlope < HEAP_BOUND * 2 ** 20;
const redisFlat = after.length >= 3 && redisSlope < REDIS_BOUND * 2 ** 20;
const allCorrect = correct === CLIENTS;
const target = RATE * OPS;
const rateKept = pub.rate >= MIN_RATE_SHARE * target && pub.failed === 0 && pub.terminalFailures === 0;
const ok = heapFlat && redisFlat && allCorrect && rateKept;
const slope = (bytes: number): string => `${bytes >= 0 ? "+" : ""}${(bytes / 2 ** 20).toFixed(2)} MB/min`;
const first = after[0];
const last = after[after.length - 1];

const head = ["measure", "value"];
const rows: string[][] = [
  ["duration (warm-up)", `${DURATION_S} s (${Math.round(WARMUP_S)} s)`],
  ["operations x updates/s", `${OPS} x ${RATE} (${fmtRate(target)} events/s)`],
  ["SSE clients (real HTTP, separate processes)", `${CLIENTS} in ${PROCS} processes (${ready} connected)`],
  [
    "events published / refused / failed",
    `${fmtRate(pub.published)} / ${pub.refused} / ${pub.failed}, then ${pub.terminals} terminal (${pub.terminalFailures} failed)`,
  ],
  [
    "publisher rate achieved",
    `${fmtRate(pub.rate)} events/s (${((pub.rate / target) * 100).toFixed(1)} % of target; at most ${fmtRate(pub.maxBehind)} events behind)`,
  ],
  ["events received by clients", fmtRate(sum((r) => r.events))],
  ["client reconnects / connection errors", `${sum((r) => r.reconnects)} / ${sum((r) => r.errors)}`],
  [
    "delivery latency p50 / p99 / max (publish to client)",
    `${fmtLatency(histogramQuantile(latency, 0.5))} / ${fmtLatency(histogramQuantile(latency, 0.99))} / ${fmtLatency(histogramMax(latency))}`,
  ],
  [
    "server CPU (user + system) over the run",
    `${((serverCpu.user + serverCpu.system) / 1e6).toFixed(1)} s (${((serverCpu.user + serverCpu.system) / 1e4 / (pub.seconds || 1)) | 0} % of one core)`,
  ],
  [
    "CPU of the client processes (connect and load) / the publisher (load)",
    `${(sum((r) => r.cpuMs) / 1000).toFixed(1)} s / ${(pub.cpuMs / 1000).toFixed(1)} s`,
  ],
  ["server event-loop delay p99 / max", `${fmtMs(loopDelay.percentile(99) / 1e6)} / ${fmtMs(loopDelay.max / 1e6)}`],
  [
    "server heap after gc: after warm-up -> end (slope)",
    `${mb(first?.heap ?? 0)} -> ${mb(last?.heap ?? 0)} (${slope(heapSlope)}: ${heapFlat ? "flat" : "GROWING"})`,
  ],
  ["server RSS: after warm-up -> end (slope)", `${mb(first?.rss ?? 0)} -> ${mb(last?.rss ?? 0)} (${slope(rssSlope)})`],
  [
    "Redis used_memory: after warm-up -> end (slope)",
    `${mb(first?.redis ?? 0)} -> ${mb(last?.redis ?? 0)} (${slope(redisSlope)}: ${redisFlat ? "flat" : "GROWING"})`,
  ],
  ["clients that received the terminal event", `${terminalEvents} / ${CLIENTS}`],
  ["clients whose last state equals the final state (`get`)", `${correct} / ${CLIENTS}`],
];
console.log(textTable(head, rows));
if (mismatches.length > 0) console.log("mismatches:", JSON.stringify(mismatches, null, 1));
const failures = [
  allCorrect ? "" : `${CLIENTS - correct} clients did not end on the final state`,
  after.length >= 3 ? "" : "the run is too short to judge memory (fewer than 3 samples after warm-up)",
  heapFlat || after.length < 3 ? "" : "server heap not flat",
  redisFlat || after.length < 3 ? "" : "Redis memory not flat",
  rateKept ? "" : "the publisher did not keep its rate (or a publish failed)",
].filter(Boolean);
const m = machine();
const load = loadavg()[0]?.toFixed(1);
const outcome = `Result: **${ok ? "PASS" : "FAIL"}**${ok ? "" : ` (${failures.join("; ")})`}. 1-minute load average at the end: ${load} on ${m.cores} cores.`;
const command = `npm run soak${MINUTES === 10 ? "" : ` -- --minutes ${MINUTES}`}`;
const markdown = `## Soak: ${OPS} operations x ${RATE} updates/s to ${CLIENTS} SSE clients

Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB; Node ${m.node}; Redis ${redisVersion()} on loopback; ${m.date}.

Command: \`${command}\` (\`node --expose-gc --import tsx bench/soak.ts\`). The server process holds one manager on node-redis and a \`node:http\` SSE endpoint (\`progresscast/node\`); the ${CLIENTS} SSE clients run in ${PROCS} child processes and the publisher (awaited \`publish\`, round robin, each event carrying its publish time) in another, so they do not take the server's CPU. Streams are capped at ${MAX_LEN} entries.

Rules: every client's last state (event id, seq, status) equals its operation's final state read with \`progress.get\` after the publisher ended every operation; the server's heap after \`gc()\` (the least of 3 readings 1 s apart, so events in flight do not count) and Redis \`used_memory\` are sampled every ${SAMPLE_S} s, and after warm-up (the first 20 % of the run, at least the time every stream takes to reach its cap: ${Math.round(WARMUP_S)} s here) the least-squares slope of each is below ${HEAP_BOUND} MB/min (heap) and ${REDIS_BOUND} MB/min (Redis); the publisher achieves at least ${MIN_RATE_SHARE * 100} % of its rate and no publish fails.

${markdownTable(head, rows, [false, true])}

${outcome}

Samples (s: heap after gc / RSS / Redis used_memory): ${samples.map((s) => `${s.atS}: ${mb(s.heap)} / ${mb(s.rss)} / ${mb(s.redis)}`).join("; ")}.
`;
if (!flags["dry-run"]) {
  writeSection("soak", markdown);
  writeJson("soak", {
    minutes: MINUTES,
    ops: OPS,
    rate: RATE,
    clients: CLIENTS,
    procs: PROCS,
    warmupS: WARMUP_S,
    publisher: pub,
    correct,
    terminalEvents,
    latencyMs: { p50: histogramQuantile(latency, 0.5), p99: histogramQuantile(latency, 0.99) },
    slopes: { heap: heapSlope, redis: redisSlope, rss: rssSlope },
    samples,
    pass: ok,
  });
}

// ------------------------------------------------------------------ stop everything
supervisor.done();
for (const c of children) c.kill();
http.closeAllConnections();
http.close();
await progress.close();
await inspector.close();
await redis?.close();
console.log(outcome);
console.log(ok ? "soak: PASS" : "soak: FAIL");
process.exit(ok ? 0 : 1);
