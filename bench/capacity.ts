/**
 * Fan-out capacity: 10,000 SSE connections over real HTTP on one server
 * process (one manager on node-redis, `node:http`, `progresscast/node`),
 * following 1,000 operations (10 connections each), while a publisher in
 * another process publishes 2,000 events/s round robin and then ends every
 * operation. The SSE clients run in 2-4 child processes
 * (`support/sse-clients.ts`), the publisher in another (`support/publisher.ts`).
 *
 * Reports: connections that received their operation's terminal event, Redis
 * connections the server process holds (its sockets to the Redis port, checked
 * against `CLIENT LIST`), publish-to-client delivery latency (the publish time
 * travels in the event; one clock, one machine), and server memory per idle
 * connection (RSS and heap after `gc()` with every connection open and idle,
 * minus before any, divided by the number of connections).
 *
 * Run: `npx tsx bench/capacity.ts` (run by `npm run bench`). Options:
 * --clients (10000), --ops (1000), --rate (events/s, 2000), --seconds (30),
 * --procs (client processes, 4), --dry-run (do not write bench/RESULTS.md).
 * Needs an open-file limit (`ulimit -n`) above the number of connections.
 * Loopback only; stops everything it started; exits 1 when a check fails, 2
 * when it cannot run or gives up.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createClient } from "redis";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { Progress } from "../src/core/progress.ts";
import { toRequest, writeResponse } from "../src/node/index.ts";
import { startRedis } from "../test/support/redis-server.ts";
import {
  type Child,
  type ClientResult,
  type FromClients,
  type FromPublisher,
  forkChild,
  openFileLimit,
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
    clients: { type: "string", default: "10000" },
    ops: { type: "string", default: "1000" },
    rate: { type: "string", default: "2000" },
    seconds: { type: "string", default: "30" },
    procs: { type: "string", default: "4" },
    "dry-run": { type: "boolean", default: false },
  },
});
const CLIENTS = Number(flags.clients);
const OPS = Number(flags.ops);
const RATE = Number(flags.rate);
const SECONDS = Number(flags.seconds);
const PROCS = Math.max(1, Math.min(Number(flags.procs), CLIENTS));
const MAX_REDIS_CONNECTIONS = 3;
const GOAL_BYTES_PER_CONNECTION = 16 * 1024;
const MIN_RATE_SHARE = 0.95;
for (const [name, value] of Object.entries({ CLIENTS, OPS, RATE, SECONDS, PROCS })) {
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`capacity: bad option ${name.toLowerCase()}: ${value}`);
    process.exit(2);
  }
}

// Each connection is a socket in this process and one in a client process.
const limit = openFileLimit();
const needed = CLIENTS + 1024;
if (!(limit >= needed)) {
  console.error(
    `capacity: the open-file limit (ulimit -n) is ${limit}; ${CLIENTS} connections need at least ${needed}. ` +
      `Raise it in this shell (\`ulimit -n ${Math.max(needed, 20_000)}\`, up to the hard limit \`ulimit -Hn\`) or pass --clients.`,
  );
  process.exit(2);
}

let gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  setFlagsFromString("--expose-gc");
  gc = runInNewContext("gc") as () => void;
}
const collect = gc;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const memoryAfterGc = async (): Promise<{ heap: number; rss: number }> => {
  for (let i = 0; i < 4; i++) {
    collect();
    await sleep(20);
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
};

// Everything started here is stopped on the way out, whatever happens.
const supervisor = supervise("capacity", SECONDS + 540);
const { children, giveUp } = supervisor;
const redis = await startRedis();
supervisor.redis = redis;
const redisUrl = redis.url;
const inspector = createClient({ url: redisUrl, RESP: 2, name: "bench-inspector" });
await inspector.connect();

/**
 * This process's established TCP connections to the Redis port, read from
 * /proc (its socket inodes matched against the kernel's TCP table); the
 * inspector's own connection is left out. Null where /proc is not available.
 */
const redisSockets = (inspectorPort: number): number[] | null => {
  try {
    const inodes = new Set<string>();
    for (const fd of readdirSync("/proc/self/fd")) {
      try {
        const link = readlinkSync(`/proc/self/fd/${fd}`);
        if (link.startsWith("socket:[")) inodes.add(link.slice(8, -1));
      } catch {
        // closed meanwhile
      }
    }
    const ports: number[] = [];
    for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
      let text = "";
      try {
        text = readFileSync(table, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10) continue;
        const localPort = Number.parseInt(f[1]?.split(":")[1] ?? "", 16);
        const remotePort = Number.parseInt(f[2]?.split(":")[1] ?? "", 16);
        if (remotePort === redis?.port && f[3] === "01" && inodes.has(f[9] ?? "") && localPort !== inspectorPort) {
          ports.push(localPort);
        }
      }
    }
    return ports;
  } catch {
    return null;
  }
};
const inspectorPort = Number(/addr=[^ ]*:(\d+)/.exec(String(await inspector.sendCommand(["CLIENT", "INFO"])))?.[1]);
/** Connections to Redis from this process: from /proc, and the `CLIENT LIST` entries whose ports match. */
const countRedisConnections = async (): Promise<{ sockets: number; clientList: number; commands: string[] }> => {
  const ports = redisSockets(inspectorPort) ?? [];
  const list = String(await inspector.sendCommand(["CLIENT", "LIST"]))
    .trim()
    .split("\n");
  const mine = list.filter((l) => ports.includes(Number(/addr=[^ ]*:(\d+)/.exec(l)?.[1])));
  return {
    sockets: ports.length,
    clientList: mine.length,
    commands: mine.map((l) => /cmd=(\S+)/.exec(l)?.[1] ?? "?"),
  };
};

// ------------------------------------------------------------------ server
const prefix = `cap${Date.now().toString(36)}`;
const progress = new Progress({ port: nodeRedis({ url: redisUrl }), prefix, logger: {} });
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
const ops = Array.from({ length: OPS }, (_, i) => `cap-${i}`);
console.log(
  `capacity: ${CLIENTS} SSE connections in ${PROCS} processes over ${OPS} operations, ${RATE} events/s for ${SECONDS} s, redis ${redisUrl}`,
);

// ------------------------------------------------------------------ operations, then connections
const publisher = forkChild<ToPublisher, FromPublisher>("publisher.ts", "capacity publisher");
children.push(publisher as Child<unknown, { type: string }>);
void publisher
  .next("error", 2 ** 31 - 1)
  .then((e) => giveUp(`publisher: ${e.message}`))
  .catch(() => {});
publisher.send({ type: "init", redisUrl, prefix, maxLen: 1000, ops });
await publisher.next("initialized", 120_000);
// The manager's command connection is open before "before".
await progress.get(ops[0] as string);
const before = await memoryAfterGc();

const clientProcs: Child<ToClients, FromClients>[] = [];
for (let k = 0; k < PROCS; k++) {
  const child = forkChild<ToClients, FromClients>("sse-clients.ts", `capacity clients ${k + 1}`);
  children.push(child as Child<unknown, { type: string }>);
  clientProcs.push(child);
  const mine: string[] = [];
  for (let i = k; i < CLIENTS; i += PROCS) mine.push(ops[i % OPS] as string);
  child.send({ type: "start", base, ops: mine, window: 250 });
}
const readies = await Promise.all(clientProcs.map((c) => c.next("ready", 300_000)));
const ready = readies.reduce((n, r) => n + r.ready, 0);
const connectMs = Math.max(...readies.map((r) => r.ms));
console.log(`  ${ready} / ${CLIENTS} connections ready (snapshot received) in ${connectMs} ms`);
await sleep(2000);
const idle = await memoryAfterGc();
const perConnection = { heap: (idle.heap - before.heap) / CLIENTS, rss: (idle.rss - before.rss) / CLIENTS };
const redisIdle = await countRedisConnections();
console.log(
  `  idle: heap ${mb(before.heap)} -> ${mb(idle.heap)}, rss ${mb(before.rss)} -> ${mb(idle.rss)}: ${kb(perConnection.heap)} heap, ${kb(perConnection.rss)} RSS per connection; Redis connections ${redisIdle.sockets} (CLIENT LIST ${redisIdle.clientList}: ${redisIdle.commands.join(", ")})`,
);

// ------------------------------------------------------------------ the load
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const cpu0 = process.cpuUsage();
const loadAtStart = loadavg()[0] ?? Number.NaN;
publisher.send({ type: "run", rate: RATE, seconds: SECONDS });
const done = publisher.next("done", (SECONDS + 240) * 1000);
let finished = false;
void done.finally(() => {
  finished = true;
});
let redisLoad = redisIdle;
for (let atS = 5; !finished; atS += 5) {
  const t = Date.now() + 5000;
  while (Date.now() < t && !finished) await sleep(100);
  if (finished) break;
  const count = await countRedisConnections();
  if (count.sockets >= redisLoad.sockets) redisLoad = count;
  publisher.send({ type: "stats" });
  const pubStats = await publisher.next("stats", 10_000).catch(() => undefined);
  console.log(
    `  ${atS} s: published ${pubStats?.published ?? "?"} (behind ${pubStats?.behind ?? "?"}), Redis connections ${count.sockets}, loop delay p99 ${fmtMs(loopDelay.percentile(99) / 1e6)}`,
  );
}
const pub = await done.catch((e: unknown) => giveUp(`publisher: ${e instanceof Error ? e.message : String(e)}`));
const results: ClientResult[] = await Promise.all(
  clientProcs.map((c) => {
    c.send({ type: "finish", finals: null, timeoutMs: 60_000 });
    return c.next("result", 120_000);
  }),
);
const serverCpu = process.cpuUsage(cpu0);
loopDelay.disable();
const latency = newHistogram();
for (const r of results) merge(latency, r.latency);
const sum = (f: (r: ClientResult) => number): number => results.reduce((n, r) => n + f(r), 0);
const terminalEvents = sum((r) => r.terminalEvents);
const redisMax = Math.max(redisIdle.sockets, redisLoad.sockets);

// ------------------------------------------------------------------ verdict
const allTerminal = terminalEvents === CLIENTS && ready === CLIENTS;
const redisOk = redisMax <= MAX_REDIS_CONNECTIONS && redisMax > 0;
const rateKept = pub.rate >= MIN_RATE_SHARE * RATE && pub.failed === 0 && pub.terminalFailures === 0;
const memoryMet = perConnection.heap <= GOAL_BYTES_PER_CONNECTION && perConnection.rss <= GOAL_BYTES_PER_CONNECTION;
const ok = allTerminal && redisOk && rateKept;
const p50 = histogramQuantile(latency, 0.5);
const p99 = histogramQuantile(latency, 0.99);
const max = histogramMax(latency);
const cpuS = (serverCpu.user + serverCpu.system) / 1e6;

const head = ["measure", "value", "target"];
const rows: string[][] = [
  [
    "SSE connections ready (snapshot received)",
    `${fmtRate(ready)} / ${fmtRate(CLIENTS)} in ${fmtMs(connectMs)}`,
    fmtRate(CLIENTS),
  ],
  [
    "events published (round robin) / failed",
    `${fmtRate(pub.published)} / ${pub.failed} at ${fmtRate(pub.rate)} events/s, then ${fmtRate(pub.terminals)} terminal`,
    `${fmtRate(RATE)} events/s`,
  ],
  [
    "connections that received their operation's terminal event",
    `${fmtRate(terminalEvents)} / ${fmtRate(CLIENTS)}`,
    `all: ${allTerminal ? "met" : "MISSED"}`,
  ],
  ["events received by clients", fmtRate(sum((r) => r.events)), ""],
  ["client reconnects / connection errors", `${sum((r) => r.reconnects)} / ${sum((r) => r.errors)}`, ""],
  [
    "Redis connections held by the server process (idle / under load)",
    `${redisIdle.sockets} / ${redisLoad.sockets} (CLIENT LIST: ${redisLoad.clientList}, last commands ${redisLoad.commands.join(", ")})`,
    `<= ${MAX_REDIS_CONNECTIONS}: ${redisOk ? "met" : "MISSED"}`,
  ],
  [
    "delivery latency p50 / p99 / max (publish to client)",
    `${fmtLatency(p50)} / ${fmtLatency(p99)} / ${fmtLatency(max)}`,
    "reported",
  ],
  [
    "server memory per idle connection: heap after gc / RSS",
    `${kb(perConnection.heap)} / ${kb(perConnection.rss)}`,
    `<= 16 KB: ${memoryMet ? "met" : "missed"}`,
  ],
  [
    "server heap after gc / RSS: before -> all connected and idle",
    `${mb(before.heap)} -> ${mb(idle.heap)} / ${mb(before.rss)} -> ${mb(idle.rss)}`,
    "",
  ],
  [
    "server CPU over the load (user + system)",
    `${cpuS.toFixed(1)} s in ${pub.seconds} s (${Math.round((cpuS / (pub.seconds || 1)) * 100)} % of one core)`,
    "",
  ],
  [
    "CPU of the client processes (connect and load) / the publisher (load)",
    `${(sum((r) => r.cpuMs) / 1000).toFixed(1)} s / ${(pub.cpuMs / 1000).toFixed(1)} s`,
    "",
  ],
  [
    "server event-loop delay p99 / max under load",
    `${fmtMs(loopDelay.percentile(99) / 1e6)} / ${fmtMs(loopDelay.max / 1e6)}`,
    "",
  ],
];
console.log(textTable(head, rows));
const m = machine();
const failures = [
  allTerminal ? "" : `${CLIENTS - terminalEvents} connections missed their terminal event`,
  redisOk ? "" : `the server held ${redisMax} Redis connections`,
  rateKept ? "" : "the publisher did not keep its rate (or a publish failed)",
].filter(Boolean);
const outcome = `Result: **${ok ? "PASS" : "FAIL"}**${ok ? "" : ` (${failures.join("; ")})`}; memory per idle connection ${memoryMet ? "within" : "above"} the 16 KB goal. 1-minute load average when the load started: ${loadAtStart.toFixed(1)}, at the end: ${loadavg()[0]?.toFixed(1)}, on ${m.cores} cores (latency and event-loop delay grow when other processes take the cores).`;
const markdown = `## Fan-out capacity: ${fmtRate(CLIENTS)} SSE connections on one process

Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB; Node ${m.node}; Redis ${redisVersion()} on loopback; ${m.date}.

Command: \`node --expose-gc --import tsx bench/capacity.ts\` (run by \`npm run bench\`). One server process: a manager on node-redis and a \`node:http\` SSE endpoint (\`progresscast/node\`). ${fmtRate(CLIENTS)} SSE connections over real HTTP from ${PROCS} client processes, ${CLIENTS / OPS} per operation over ${fmtRate(OPS)} operations; a publisher process publishes ${fmtRate(RATE)} events/s round robin for ${SECONDS} s, each event carrying its publish time, then ends every operation (\`completed\`).

${markdownTable(head, rows)}

${outcome}

Delivery latency is publish call to client parse, across processes on one clock. Redis connections are this process's established sockets to the Redis port (from /proc), matched against \`CLIENT LIST\`, without the benchmark's own inspector connection. Memory per idle connection is (heap after \`gc()\`, and RSS, with every connection open and idle 2 s after the last snapshot) minus (the same before the first connection), divided by ${fmtRate(CLIENTS)}.
`;
if (!flags["dry-run"]) {
  writeSection("capacity", markdown);
  writeJson("capacity", {
    clients: CLIENTS,
    ops: OPS,
    rate: RATE,
    seconds: SECONDS,
    procs: PROCS,
    ready,
    connectMs,
    publisher: pub,
    terminalEvents,
    redisConnections: { idle: redisIdle, load: redisLoad },
    latencyMs: { p50, p99, max },
    memory: { before, idle, perConnection },
    serverCpuS: cpuS,
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
await redis.close();
console.log(outcome);
console.log(ok ? "capacity: PASS" : "capacity: FAIL");
process.exit(ok ? 0 : 1);
