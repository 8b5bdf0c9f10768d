/**
 * Delivery latency: the time from a publish call to each watcher seeing the
 * event, at 1, 100 and 1,000 watchers of one operation and 1,000 watchers
 * over 100 operations, side by side in one run against one fresh redis-server:
 *
 * - progresscast `watch()` (one manager, one reader, shared by every watcher);
 * - progresscast SSE over real HTTP (`progress.sse` behind `node:http`, one
 *   HTTP client per watcher, in the same process);
 * - raw baseline: one `XREAD BLOCK` reader that decodes each entry and builds
 *   one SSE frame string per watcher per entry;
 * - BullMQ `QueueEvents`: one reader, one `progress` listener per watcher
 *   (a job per operation, `job.updateProgress` on ioredis).
 *
 * Every contender gets the same publisher rate; publisher and watchers share
 * the process, so the clock is one. Also draws the chart of p99 against the
 * number of watchers (`bench/delivery.svg`).
 *
 * Run: `npx tsx bench/delivery.ts [--seconds 3] [--rate 300]` (run by `npm run bench`);
 * `--only "1,000 watchers, 1 op progresscast watch"` runs the matching rows alone and writes nothing.
 */
import { setMaxListeners } from "node:events";
import { writeFileSync } from "node:fs";
import { createServer, get, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Job, Queue, QueueEvents } from "bullmq";
import { createClient } from "redis";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { Progress } from "../src/core/progress.ts";
import { decodeEvent } from "../src/core/wire/index.ts";
import { toRequest, writeResponse } from "../src/node/index.ts";
import { startRedis } from "../test/support/redis-server.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, redisVersion, textTable, writeJson, writeSection } from "./support/results.ts";
import { fmtMs, fmtRatio, quantile } from "./support/stats.ts";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rate: { type: "string", default: "300" },
    /** Only the shapes and contenders whose names contain this text (for profiling one row); results are not written. */
    only: { type: "string" },
  },
});
const SECONDS = Number(flags.seconds);
const RATE = Number(flags.rate);
const ONLY = flags.only;

interface Shape {
  readonly name: string;
  readonly watchers: number;
  readonly ops: number;
}
const SHAPES: readonly Shape[] = [
  { name: "1 watcher, 1 op", watchers: 1, ops: 1 },
  { name: "100 watchers, 1 op", watchers: 100, ops: 1 },
  { name: "1,000 watchers, 1 op", watchers: 1000, ops: 1 },
  { name: "1,000 watchers over 100 ops", watchers: 1000, ops: 100 },
];

const CONTENDERS = ["progresscast watch", "progresscast SSE (HTTP)", "raw XREAD BLOCK", "BullMQ QueueEvents"] as const;
type Contender = (typeof CONTENDERS)[number];

interface Outcome {
  readonly contender: Contender;
  readonly shape: string;
  readonly watchers: number;
  readonly ops: number;
  readonly published: number;
  readonly delivered: number;
  readonly expected: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Latencies of one run, in ms. */
class Samples {
  #values = new Float64Array(1 << 16);
  #n = 0;
  add(ms: number): void {
    if (this.#n === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#n++] = ms;
  }
  get count(): number {
    return this.#n;
  }
  values(): Float64Array {
    return this.#values.subarray(0, this.#n);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Publish at RATE/s for SECONDS, round robin over `ops`; `send` carries the call time. */
async function drive(ops: readonly string[], send: (op: string, t: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let sent = 0;
  const total = Math.round(RATE * SECONDS);
  const inFlight = new Set<Promise<unknown>>();
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE) + 1);
    while (sent < due) {
      const op = ops[sent % ops.length] as string;
      const p = send(op, performance.now()).catch(() => {});
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      sent++;
    }
    await sleep(2);
  }
  await Promise.all(inFlight);
  return sent;
}

/** Wait until `done()` or the deadline. */
async function settle(done: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await sleep(20);
}

function opNames(run: string, shape: Shape): string[] {
  return Array.from({ length: shape.ops }, (_, i) => `${run}-${i}`);
}

function outcome(contender: Contender, shape: Shape, published: number, samples: Samples): Outcome {
  const v = samples.values();
  // Each watcher follows one op; each op gets published/ops events.
  const expected = published * (shape.watchers / shape.ops);
  return {
    contender,
    shape: shape.name,
    watchers: shape.watchers,
    ops: shape.ops,
    published,
    delivered: samples.count,
    expected,
    p50: quantile(v, 0.5),
    p99: quantile(v, 0.99),
    max: quantile(v, 1),
  };
}

// ---------------------------------------------------------------- contenders

async function ours(url: string, shape: Shape, run: string): Promise<Outcome> {
  const publisher = new Progress({ port: nodeRedis({ url }), throttle: false, estimate: false, logger: {} });
  const reader = new Progress({ port: nodeRedis({ url }), logger: {} });
  const ops = opNames(run, shape);
  const samples = new Samples();
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  for (const op of ops) await publisher.publish(op, { message: "start" });
  let ready = 0;
  const watchers = Array.from({ length: shape.watchers }, async (_, i) => {
    const op = ops[i % ops.length] as string;
    let first = true;
    for await (const item of reader.watch(op, { signal: stop.signal, maxQueue: 100_000 })) {
      if (first) {
        first = false;
        ready++;
      }
      if (item.kind !== "event") continue;
      const t = item.event.data?.t;
      if (typeof t === "number") samples.add(performance.now() - t);
    }
  });
  await settle(() => ready >= shape.watchers, 30_000);
  await sleep(200);
  const published = await drive(ops, (op, t) => publisher.publish(op, { message: "tick", data: { t } }));
  const expected = published * (shape.watchers / shape.ops);
  await settle(() => samples.count >= expected, 10_000);
  stop.abort();
  await Promise.allSettled(watchers);
  await publisher.close();
  await reader.close();
  return outcome("progresscast watch", shape, published, samples);
}

/** Read an SSE response, calling `onData` with each `data:` line's text. */
function sseClient(url: string, onOpen: () => void, onData: (line: string) => void): () => void {
  let request: ReturnType<typeof get> | undefined;
  request = get(url, { agent: false }, (res: IncomingMessage) => {
    onOpen();
    res.setEncoding("utf8");
    let buffer = "";
    res.on("data", (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.startsWith("data:")) onData(line);
        nl = buffer.indexOf("\n");
      }
    });
    res.on("error", () => {});
  });
  request.on("error", () => {});
  return () => {
    request?.destroy();
    request = undefined;
  };
}

async function oursSse(url: string, shape: Shape, run: string): Promise<Outcome> {
  const publisher = new Progress({ port: nodeRedis({ url }), throttle: false, estimate: false, logger: {} });
  const reader = new Progress({ port: nodeRedis({ url }), logger: {} });
  const server: Server = createServer(async (req, res) => {
    const op = new URL(req.url ?? "/", "http://x").searchParams.get("op") ?? "";
    await writeResponse(res, await reader.sse(toRequest(req, res), op, { heartbeatMs: 60_000 }));
  });
  server.maxConnections = 20_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ops = opNames(run, shape);
  const samples = new Samples();
  for (const op of ops) await publisher.publish(op, { message: "start" });
  let open = 0;
  const tRe = /"t":([0-9.e+-]+)/;
  const closers: Array<() => void> = [];
  for (let i = 0; i < shape.watchers; i++) {
    const op = ops[i % ops.length] as string;
    closers.push(
      sseClient(
        `${base}/?op=${encodeURIComponent(op)}`,
        () => open++,
        (line) => {
          const m = tRe.exec(line);
          if (m) samples.add(performance.now() - Number(m[1]));
        },
      ),
    );
    if (i % 100 === 99) await sleep(5);
  }
  await settle(() => open >= shape.watchers, 30_000);
  await sleep(300);
  const published = await drive(ops, (op, t) => publisher.publish(op, { message: "tick", data: { t } }));
  const expected = published * (shape.watchers / shape.ops);
  await settle(() => samples.count >= expected, 10_000);
  for (const close of closers) close();
  await publisher.close();
  await reader.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  return outcome("progresscast SSE (HTTP)", shape, published, samples);
}

async function raw(url: string, shape: Shape, run: string): Promise<Outcome> {
  const publisher = new Progress({ port: nodeRedis({ url }), throttle: false, estimate: false, logger: {} });
  const client = createClient({ url, RESP: 2 });
  await client.connect();
  const ops = opNames(run, shape);
  const keys = ops.map((op) => `pc:{${op}}:events`);
  const perOp = shape.watchers / shape.ops;
  const samples = new Samples();
  for (const op of ops) await publisher.publish(op, { message: "start" });
  const last = keys.map(() => "$");
  let running = true;
  let frames = 0;
  const reader = (async () => {
    while (running) {
      const reply = (await client.sendCommand([
        "XREAD",
        "COUNT",
        "1000",
        "BLOCK",
        "200",
        "STREAMS",
        ...keys,
        ...last,
      ])) as [string, [string, string[]][]][] | null;
      if (!reply) continue;
      for (const [key, entries] of reply) {
        const k = keys.indexOf(key);
        for (const [id, flat] of entries) {
          last[k] = id;
          const fields: Record<string, string> = {};
          for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
          const event = decodeEvent({ id, fields });
          if (!event) continue;
          const t = event.data?.t;
          const json = JSON.stringify(event);
          for (let w = 0; w < perOp; w++) {
            const frame = `id: ${id}\nevent: ${event.type}\ndata: ${json}\n\n`;
            frames += frame.length > 0 ? 1 : 0;
            if (typeof t === "number") samples.add(performance.now() - t);
          }
        }
      }
    }
  })();
  await sleep(300);
  const published = await drive(ops, (op, t) => publisher.publish(op, { message: "tick", data: { t } }));
  const expected = published * perOp;
  await settle(() => samples.count >= expected, 10_000);
  running = false;
  await reader.catch(() => {});
  await client.quit();
  await publisher.close();
  if (frames === 0 && published > 0) throw new Error("raw reader built no frames");
  return outcome("raw XREAD BLOCK", shape, published, samples);
}

async function bullmq(url: string, shape: Shape, run: string): Promise<Outcome> {
  const { hostname, port } = new URL(url);
  const connection = { host: hostname, port: Number(port), maxRetriesPerRequest: null };
  const name = `bq-${run}`;
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const ops = opNames(run, shape);
  const jobs: Job[] = await queue.addBulk(ops.map((op) => ({ name: "job", data: {}, opts: { jobId: op } })));
  const byOp = new Map(jobs.map((j) => [j.id as string, j]));
  const samples = new Samples();
  events.setMaxListeners(shape.watchers + 10);
  for (let i = 0; i < shape.watchers; i++) {
    const op = ops[i % ops.length] as string;
    events.on("progress", ({ jobId, data }) => {
      if (jobId !== op) return;
      const t = (data as { t?: unknown } | undefined)?.t;
      if (typeof t === "number") samples.add(performance.now() - t);
    });
  }
  await sleep(300);
  const published = await drive(ops, (op, t) => (byOp.get(op) as Job).updateProgress({ t }));
  const expected = published * (shape.watchers / shape.ops);
  await settle(() => samples.count >= expected, 10_000);
  await events.close();
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close();
  return outcome("BullMQ QueueEvents", shape, published, samples);
}

const RUNNERS: Record<Contender, (url: string, shape: Shape, run: string) => Promise<Outcome>> = {
  "progresscast watch": ours,
  "progresscast SSE (HTTP)": oursSse,
  "raw XREAD BLOCK": raw,
  "BullMQ QueueEvents": bullmq,
};

// ---------------------------------------------------------------- chart

/** An SVG line chart of p99 against watchers (log x) for watchers of one op. */
export function chart(outcomes: readonly Outcome[]): string {
  const W = 640;
  const H = 360;
  const left = 70;
  const right = 190;
  const top = 30;
  const bottom = 50;
  const xs = [1, 100, 1000];
  const single = outcomes.filter((o) => o.ops === 1);
  const maxY = Math.max(1, ...single.map((o) => o.p99).filter(Number.isFinite)) * 1.1;
  const x = (w: number): number => left + (Math.log10(w) / 3) * (W - left - right);
  const y = (ms: number): number => top + (1 - ms / maxY) * (H - top - bottom);
  const colors: Record<Contender, string> = {
    "progresscast watch": "#1f77b4",
    "progresscast SSE (HTTP)": "#2ca02c",
    "raw XREAD BLOCK": "#7f7f7f",
    "BullMQ QueueEvents": "#d62728",
  };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12" role="img">`,
    "<title>Delivery p99 against the number of watchers of one operation</title>",
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">Delivery p99 (publish to watcher) vs watchers of one operation</text>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="black"/>`,
  ];
  for (const w of xs) {
    parts.push(`<text x="${x(w)}" y="${H - bottom + 18}" text-anchor="middle">${w.toLocaleString("en-US")}</text>`);
  }
  parts.push(`<text x="${(left + W - right) / 2}" y="${H - 12}" text-anchor="middle">watchers (log scale)</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (maxY / 4) * i;
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)} ms</text>`);
    parts.push(`<line x1="${left}" y1="${y(v)}" x2="${W - right}" y2="${y(v)}" stroke="#ddd"/>`);
  }
  CONTENDERS.forEach((c, i) => {
    const points = xs
      .map((w) => single.find((o) => o.contender === c && o.watchers === w))
      .filter((o): o is Outcome => o !== undefined && Number.isFinite(o.p99));
    if (points.length === 0) return;
    const d = points.map((o) => `${x(o.watchers).toFixed(1)},${y(o.p99).toFixed(1)}`).join(" ");
    parts.push(`<polyline points="${d}" fill="none" stroke="${colors[c]}" stroke-width="2"/>`);
    for (const o of points) {
      parts.push(`<circle cx="${x(o.watchers).toFixed(1)}" cy="${y(o.p99).toFixed(1)}" r="3" fill="${colors[c]}"/>`);
    }
    parts.push(`<rect x="${W - right + 12}" y="${top + i * 20}" width="12" height="3" fill="${colors[c]}"/>`);
    parts.push(`<text x="${W - right + 30}" y="${top + i * 20 + 5}">${c}</text>`);
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const server = await startRedis();
  const began = performance.now();
  const outcomes: Outcome[] = [];
  try {
    let n = 0;
    for (const shape of SHAPES) {
      for (const contender of CONTENDERS) {
        if (ONLY !== undefined && !`${shape.name} ${contender}`.includes(ONLY)) continue;
        const run = `d${(n++).toString(36)}${Date.now().toString(36)}`;
        const o = await RUNNERS[contender](server.url, shape, run);
        outcomes.push(o);
        console.log(
          `${shape.name.padEnd(28)} ${contender.padEnd(24)} p50 ${fmtMs(o.p50)}  p99 ${fmtMs(o.p99)}  max ${fmtMs(o.max)}  ${o.delivered}/${o.expected}`,
        );
      }
    }
  } finally {
    await server.close();
  }
  if (ONLY !== undefined) return;
  const seconds = Math.round((performance.now() - began) / 1000);
  const head = ["watchers", "contender", "p50", "p99", "max", "delivered", "p99 vs raw", "p99 vs BullMQ"];
  const rows = outcomes.map((o) => {
    const rawP99 = outcomes.find((r) => r.shape === o.shape && r.contender === "raw XREAD BLOCK")?.p99 ?? Number.NaN;
    const bull = outcomes.find((r) => r.shape === o.shape && r.contender === "BullMQ QueueEvents")?.p99 ?? Number.NaN;
    return [
      o.shape,
      o.contender,
      fmtMs(o.p50),
      fmtMs(o.p99),
      fmtMs(o.max),
      `${o.delivered.toLocaleString("en-US")} / ${o.expected.toLocaleString("en-US")}`,
      fmtRatio(o.p99 / rawP99),
      fmtRatio(o.p99 / bull),
    ];
  });
  console.log(`\n${textTable(head, rows)}`);
  const svgPath = fileURLToPath(new URL("./delivery.svg", import.meta.url));
  writeFileSync(svgPath, chart(outcomes));
  const m = machine();
  const ratio = (shape: string): number =>
    (outcomes.find((o) => o.shape === shape && o.contender === "progresscast watch")?.p99 ?? Number.NaN) /
    (outcomes.find((o) => o.shape === shape && o.contender === "raw XREAD BLOCK")?.p99 ?? Number.NaN);
  const verdict = ["1,000 watchers, 1 op", "1,000 watchers over 100 ops"].map((s) => {
    const r = ratio(s);
    return `- ${s}: progresscast watch p99 at ${fmtRatio(r)} of raw, bar 1.50x: ${r <= 1.5 ? "met" : `missed by ${fmtRatio(r / 1.5)}`}`;
  });
  writeSection(
    "delivery",
    `## Delivery latency: publish to watcher, publish to SSE client

Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB; Node ${m.node}; Redis ${redisVersion()} (a fresh \`redis-server\` on loopback); ${m.date}.

Command: \`npx tsx bench/delivery.ts --seconds ${SECONDS} --rate ${RATE}\` (run by \`npm run bench\`). ${seconds} s in all.

A publisher (progresscast on node-redis; BullMQ's \`job.updateProgress\` for BullMQ) sends ${RATE} events/s for ${SECONDS} s, round robin over the operations; each event carries its call time, and each watcher records the time it sees the event. Publisher and watchers share one process (one clock, and one CPU budget: fan-out work delays the next publish too).

${markdownTable(head, rows)}

![Delivery p99 against watchers](delivery.svg)

### Verdict

${verdict.join("\n")}

### What is compared

- **progresscast watch**: \`progress.watch(op)\` once per watcher on one manager (one reader for all; the hub decodes each entry).
- **progresscast SSE (HTTP)**: \`progress.sse()\` behind \`node:http\` with \`progresscast/node\`; one HTTP client (a socket, a parser of \`data:\` lines) per watcher, in the same process, so the client side's CPU is counted too.
- **raw XREAD BLOCK**: the floor for a Node process: one blocking \`XREAD\` over the operations' streams, each entry decoded and serialized to JSON once, then one SSE frame string built per watcher per entry.
- **BullMQ QueueEvents**: one \`QueueEvents\` reader (ioredis), one \`progress\` listener per watcher that keeps the events of its job.`,
  );
  writeJson("delivery", { machine: m, seconds: SECONDS, rate: RATE, outcomes });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
  process.exit(0);
}
