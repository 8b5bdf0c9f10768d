/**
 * What one browser tab costs on Upstash, polling against the streaming
 * subscribe. A manager on the Upstash adapter serves one SSE viewer
 * (`progress.sse()`, its body read in this process) of a running operation
 * through the project's Upstash-compatible REST server
 * (`test/support/upstash-server.ts`) in front of a real redis-server, with
 * 20 ms added before every request (a database in another region). Requests
 * are counted by the REST server: each is a billed command on Upstash.
 *
 * Side by side, one after the other on fresh operations:
 * - `upstash({ url, token, live: false })`: the watch polls a non-blocking
 *   XREAD (50 ms to 1 s apart, doubling while idle);
 * - `upstash({ url, token })`: the default, live events over the database's
 *   streaming subscribe, the stream read only to catch up.
 *
 * For each: requests per idle viewer-minute (nothing published for a window,
 * scaled to a minute); requests per delivered event (E events published by a
 * node-redis manager straight to Redis, bypassing the REST server, one every
 * `--interval-ms`; REST requests from the first publish until the viewer has
 * the last event, divided by E); publish-to-viewer latency p50 and p99 (the
 * publish time travels in the event's data and is compared at the viewer).
 *
 * Run: `npx tsx bench/edge-live.ts` (run by `npm run bench`; about a minute).
 * Options: --seconds (idle window, 20), --events (E, 60), --interval-ms (250),
 * --delay-ms (added per request, 20), --quick (5 s idle, 20 events),
 * --dry-run (do not write bench/RESULTS.md). Loopback only; exits 1 when a
 * viewer missed or duplicated an event, 2 when it cannot run.
 */
import { parseArgs } from "node:util";
import { createParser } from "eventsource-parser";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { upstash } from "../src/adapters/upstash/index.ts";
import { Progress } from "../src/core/progress.ts";
import { startRedis } from "../test/support/redis-server.ts";
import { startUpstashServer } from "../test/support/upstash-server.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, redisVersion, textTable, writeJson, writeSection } from "./support/results.ts";
import { fmtMs, fmtRatio, quantile } from "./support/stats.ts";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string" },
    events: { type: "string" },
    "interval-ms": { type: "string", default: "250" },
    "delay-ms": { type: "string", default: "20" },
    quick: { type: "boolean", default: false },
    "dry-run": { type: "boolean", default: false },
  },
});
const IDLE_S = Number(flags.seconds ?? (flags.quick ? 5 : 20));
const EVENTS = Number(flags.events ?? (flags.quick ? 20 : 60));
const INTERVAL_MS = Number(flags["interval-ms"]);
const DELAY_MS = Number(flags["delay-ms"]);
if (
  ![IDLE_S, EVENTS, INTERVAL_MS].every((n) => Number.isFinite(n) && n > 0) ||
  !Number.isInteger(EVENTS) ||
  !(DELAY_MS >= 0)
) {
  console.error(`edge-live: bad options (positive numbers; --delay-ms 0 or more): ${JSON.stringify(flags)}`);
  process.exit(2);
}
/** USD per command on Upstash pay-as-you-go ($0.20 per 100,000). */
const PRICE_PER_COMMAND = 0.2 / 100_000;

type Mode = "polling" | "streaming";
const LABEL: Record<Mode, string> = {
  polling: "polling (live: false)",
  streaming: "streaming subscribe (default)",
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const started = performance.now();

const redis = await startRedis();
const rest = await startUpstashServer({ redisUrl: redis.url });
rest.setDelay(DELAY_MS);
const prefix = `bench-edge-${Date.now().toString(36)}`;
const writer = new Progress({ port: nodeRedis({ url: redis.url }), prefix, logger: {}, throttle: false });

interface Viewer {
  /** Progress events received (not the snapshot), with their publish-to-viewer latency when they carry `data.t`. */
  readonly events: { readonly seq: number; readonly latencyMs: number }[];
  snapshot: boolean;
  readonly done: Promise<void>;
}

/** Open an SSE viewer of `op` and read its body here, as a browser would. */
async function view(progress: Progress, op: string, signal: AbortSignal): Promise<Viewer> {
  const response = await progress.sse(new Request(`http://127.0.0.1/progress/${op}`, { signal }), op);
  const reader = response.body?.getReader();
  if (!reader) throw new Error(`progress.sse answered ${response.status} without a body`);
  const viewer: { events: Viewer["events"]; snapshot: boolean } = { events: [], snapshot: false };
  const parser = createParser({
    onEvent(message) {
      if (message.event === "snapshot") {
        viewer.snapshot = true;
        return;
      }
      if (message.event !== "progress") return;
      const at = performance.now();
      const data = JSON.parse(message.data) as { seq: number; data?: { t?: number } };
      const t = data.data?.t;
      // Only the benchmark's events (the one that started the operation may come as an event too).
      if (typeof t !== "number") return;
      viewer.events.push({ seq: data.seq, latencyMs: at - t });
    },
  });
  const decoder = new TextDecoder();
  const done = (async () => {
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) return;
        parser.feed(decoder.decode(chunk.value, { stream: true }));
      }
    } catch {
      // The viewer left (aborted).
    }
  })();
  const deadline = Date.now() + 15_000;
  while (!viewer.snapshot && Date.now() < deadline) await sleep(10);
  if (!viewer.snapshot) throw new Error(`no snapshot for ${op} within 15 s`);
  return Object.assign(viewer, { done });
}

interface Row {
  readonly mode: Mode;
  readonly idleSeconds: number;
  readonly idleRequests: number;
  readonly requestsPerIdleMinute: number;
  readonly openStreams: number;
  readonly events: number;
  readonly delivered: number;
  readonly duplicates: number;
  /** Sequence numbers arrived in increasing order. */
  readonly inOrder: boolean;
  readonly eventRequests: number;
  readonly requestsPerEvent: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
}

async function measure(mode: Mode): Promise<Row> {
  const op = `tab-${mode}`;
  const edge = new Progress({
    port: upstash({ url: rest.url, token: rest.token, ...(mode === "polling" ? { live: false } : {}) }),
    prefix,
    logger: {},
  });
  const leave = new AbortController();
  try {
    await writer.publish(op, { status: "running", progress: 0 });
    const viewer = await view(edge, op, leave.signal);
    // The stream (or the poll's backoff) and the first catch-up read settle.
    await sleep(2_000);

    const idleFrom = rest.requests;
    const idleStart = performance.now();
    await sleep(IDLE_S * 1000);
    const idleSeconds = (performance.now() - idleStart) / 1000;
    const idleRequests = rest.requests - idleFrom;
    const openStreams = rest.openStreams;

    const eventFrom = rest.requests;
    const nextTick = performance.now();
    for (let i = 1; i <= EVENTS; i++) {
      const due = nextTick + (i - 1) * INTERVAL_MS;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const r = await writer.publish(op, { progress: Math.min(99, i), data: { t: performance.now() } });
      if (!r.ok) throw new Error(`publish ${i} on ${op}: ${JSON.stringify(r)}`);
    }
    const deadline = Date.now() + 15_000;
    while (viewer.events.length < EVENTS && Date.now() < deadline) await sleep(5);
    const eventRequests = rest.requests - eventFrom;
    // Anything late (a duplicate) shows up here.
    await sleep(300);
    const seqs = viewer.events.map((e) => e.seq);
    const latencies = viewer.events.map((e) => e.latencyMs).filter(Number.isFinite);
    leave.abort();
    await viewer.done;
    return {
      mode,
      idleSeconds,
      idleRequests,
      requestsPerIdleMinute: (idleRequests / idleSeconds) * 60,
      openStreams,
      events: EVENTS,
      delivered: new Set(seqs).size,
      duplicates: seqs.length - new Set(seqs).size,
      inOrder: seqs.every((seq, i) => i === 0 || seq > (seqs[i - 1] ?? 0)),
      eventRequests,
      requestsPerEvent: eventRequests / EVENTS,
      latencyP50Ms: quantile(latencies, 0.5),
      latencyP99Ms: quantile(latencies, 0.99),
    };
  } finally {
    leave.abort();
    await edge.close();
  }
}

const rows: Row[] = [];
try {
  for (const mode of ["polling", "streaming"] as const) {
    console.log(`edge-live: ${LABEL[mode]}: ${IDLE_S} s idle, then ${EVENTS} events ${INTERVAL_MS} ms apart`);
    rows.push(await measure(mode));
  }
} catch (error) {
  console.error(`edge-live: ${error instanceof Error ? error.message : String(error)}`);
  await writer.close();
  await rest.close();
  await redis.close();
  process.exit(2);
}
await writer.close();
await rest.close();
await redis.close();

const [polling, streaming] = rows as [Row, Row];
const fmtReq = (n: number): string =>
  !Number.isFinite(n) ? "n/a" : n === 0 ? "0" : n < 10 ? n.toFixed(2) : n.toFixed(1);
const perDay = (row: Row): number => row.requestsPerIdleMinute * 60 * 24;
const usd = (n: number): string =>
  n === 0 ? "$0" : n < 0.01 ? `$${n.toPrecision(2)}` : `$${n.toFixed(n < 1 ? 3 : 2)}`;
const ratio = (a: number, b: number): string => (b === 0 ? (a === 0 ? "1.00x" : "n/a") : fmtRatio(a / b));

const head = [
  "mode",
  "requests per idle viewer-minute",
  "requests per delivered event",
  "publish-to-viewer p50",
  "p99",
  "delivered / published",
  "idle tab per day: requests (cost)",
];
const table = rows.map((r) => [
  LABEL[r.mode],
  fmtReq(r.requestsPerIdleMinute),
  fmtReq(r.requestsPerEvent),
  fmtMs(r.latencyP50Ms),
  fmtMs(r.latencyP99Ms),
  `${r.delivered}/${r.events}${r.duplicates > 0 ? ` (${r.duplicates} duplicates)` : ""}`,
  `${Math.round(perDay(r)).toLocaleString("en-US")} (${usd(perDay(r) * PRICE_PER_COMMAND)})`,
]);
const ratioRow = [
  "streaming vs polling",
  ratio(streaming.requestsPerIdleMinute, polling.requestsPerIdleMinute),
  ratio(streaming.requestsPerEvent, polling.requestsPerEvent),
  fmtRatio(streaming.latencyP50Ms / polling.latencyP50Ms),
  fmtRatio(streaming.latencyP99Ms / polling.latencyP99Ms),
  "",
  "",
];
console.log(`\n${textTable(head, [...table, ratioRow])}`);

const complete = rows.every((r) => r.delivered === r.events && r.duplicates === 0 && r.inOrder);
const seconds = ((performance.now() - started) / 1000).toFixed(0);
const m = machine();
const command = `npx tsx bench/edge-live.ts${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;
const markdown = `## Edge: what an SSE viewer costs on Upstash, polling vs streaming subscribe

Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB; Node ${m.node}; Redis ${redisVersion()} (a fresh \`redis-server\` on loopback, no persistence); ${m.date}.

Command: \`${command}\`${command === "npx tsx bench/edge-live.ts" ? " (run by `npm run bench`)" : ""}, ${seconds} s in all. One SSE viewer (\`progress.sse()\` of a running operation, its body read in the benchmark process) served by a manager on the Upstash adapter, through the project's Upstash-compatible REST server (\`test/support/upstash-server.ts\`, in the same process) in front of the redis-server, with ${DELAY_MS} ms added before every request. Requests are counted by the REST server; on Upstash each is a billed command.

${markdownTable(head, [...table, ratioRow])}

- **Idle**: nothing published for ${IDLE_S} s (after 2 s to settle), requests scaled to a minute; upstream streams open meanwhile: ${rows.map((r) => `${r.openStreams} (${r.mode})`).join(", ")}.
- **Per event**: ${EVENTS} events, one every ${INTERVAL_MS} ms, published by a node-redis manager straight to Redis (a worker on TCP, not through the REST server); the REST requests from the first publish until the viewer had the last event, divided by ${EVENTS}. Polling's count includes the polls between events.
- **Latency**: from just before \`publish()\` (the time travels in the event's \`data.t\`) to the event parsed at the viewer, every event.
- **Cost**: an idle tab left open for a day, at Upstash's pay-as-you-go price of $0.20 per 100,000 commands.

Result: ${complete ? "every viewer received every event once, in order" : "a viewer missed, duplicated or reordered events"}.
`;
if (!flags["dry-run"]) {
  writeSection("edge", markdown);
  writeJson("edge", {
    machine: m,
    delayMs: DELAY_MS,
    idleSeconds: IDLE_S,
    events: EVENTS,
    intervalMs: INTERVAL_MS,
    pricePerCommandUsd: PRICE_PER_COMMAND,
    rows,
  });
}
process.exit(complete ? 0 : 1);
