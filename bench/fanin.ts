/**
 * Fan-in of live events: what a published event costs Redis and each watching
 * server as the operations a server watches (K) and the servers watching (S)
 * grow. One redis-server on a free loopback port; S server processes each
 * watch the same K operations (`support/fanin-server.ts`); one publisher
 * process (`support/fanin-publisher.ts`) publishes 1,000 events/s round robin
 * over the K operations. After a warm-up, a window of 8 s is measured:
 *
 * - Redis CPU per published event: `used_cpu_sys + used_cpu_user` of `INFO cpu`
 *   over the window, divided by the events published in it;
 * - the read command's cost per call (`INFO commandstats`, the read command that
 *   took the most time in the window: XREAD for a blocking reader);
 * - server CPU (`process.cpuUsage()` of each server process) per delivered
 *   event, and per second of each server;
 * - events delivered / expected: after the run, every server must have
 *   received every published event (the lowest server's share is shown: 1.00).
 *
 * Side by side, cell by cell (variants):
 * - `raw`: the floor. A bare Lua script per event (XADD MAXLEN ~ 1000, HSET,
 *   PUBLISH of `[id, field, value, ...]` as JSON on a channel named as the
 *   stream); each server SUBSCRIBEs to the K channels and parses every message.
 * - `xread`: progresscast, `createProgress({ port: nodeRedis(...), liveChannels: false })`,
 *   `progress.watch(op)` per operation (one blocking XREAD over every watched stream).
 * - `live`: the same with `liveChannels: true` (live delivery over pub/sub). A
 *   library without the option ignores it and this row measures the blocking
 *   reader; the table says whether any server connection was subscribed.
 * - `bullmq`: BullMQ `QueueEvents` listening for `progress` in each server;
 *   the publisher calls `job.updateProgress()` on K jobs.
 *
 * Cells (K x S): 100x1, 1000x1, 10000x1, 1000x4, 10000x4; each variant in a
 * cell gets fresh processes and an emptied Redis.
 *
 * Run: `npx tsx bench/fanin.ts` (run by `npm run bench`; about 6 minutes on 2
 * cores). One variant: `npx tsx bench/fanin.ts --variants live` (or
 * `--variants raw,live` to see it beside the floor). Options: --variants
 * raw,xread,live,bullmq (the ones to run), --quick (K = 100 and 1,000 only,
 * 4 s windows), --cells 100x1,1000x4 (K x S, instead of the default ones),
 * --seconds (window), --warmup (seconds), --rate (events/s, 1000), --dry-run
 * (do not write bench/RESULTS.md). Whatever runs, the section is rewritten with
 * the rows of this run only. Loopback only; stops everything it started; exits
 * 1 when a server missed or duplicated events, 2 when it cannot run, gives up,
 * or a cell did not run to the end (that cell's row says why).
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { createClient } from "redis";
import { startRedis } from "../test/support/redis-server.ts";
import {
  type Child,
  type FaninVariant,
  type FromFaninPublisher,
  type FromFaninServer,
  forkChild,
  supervise,
  type ToFaninPublisher,
  type ToFaninServer,
} from "./support/children.ts";
import { machine } from "./support/machine.ts";
import { markdownTable, redisVersion, textTable, writeJson, writeSection } from "./support/results.ts";
import { fmtRate, fmtRatio } from "./support/stats.ts";

const VARIANTS: readonly FaninVariant[] = ["raw", "xread", "live", "bullmq"];
const LABEL: Record<FaninVariant, string> = {
  raw: "raw: script + SUBSCRIBE",
  xread: "progresscast, blocking XREAD reader",
  live: "progresscast, live channels",
  bullmq: "BullMQ QueueEvents",
};
const READ_COMMANDS = ["xread", "xreadgroup", "xrange", "xrevrange"];
/** Commands kept per row in RESULTS.json (by time taken in the window). */
const TOP_COMMANDS = 8;

const { values: flags } = parseArgs({
  options: {
    variants: { type: "string", default: VARIANTS.join(",") },
    quick: { type: "boolean", default: false },
    cells: { type: "string" },
    seconds: { type: "string" },
    warmup: { type: "string" },
    rate: { type: "string", default: "1000" },
    "dry-run": { type: "boolean", default: false },
  },
});
const QUICK = flags.quick;
const RATE = Number(flags.rate);
const WINDOW_S = Number(flags.seconds ?? (QUICK ? 4 : 8));
const WARMUP_S = Number(flags.warmup ?? (QUICK ? 1.5 : 2));
const variants = (flags.variants ?? "").split(",").map((v) => v.trim());
const unknown = variants.filter((v) => !VARIANTS.includes(v as FaninVariant));
const cellSpec = flags.cells ?? (QUICK ? "100x1,1000x1,1000x4" : "100x1,1000x1,10000x1,1000x4,10000x4");
const CELLS = cellSpec.split(",").map((c) => {
  const [k, s] = c.split("x").map(Number);
  return { k: k ?? Number.NaN, s: s ?? Number.NaN };
});
if (
  unknown.length > 0 ||
  variants.length === 0 ||
  ![RATE, WINDOW_S, WARMUP_S].every((n) => Number.isFinite(n) && n > 0) ||
  !CELLS.every((c) => Number.isInteger(c.k) && c.k > 0 && Number.isInteger(c.s) && c.s > 0 && c.s <= 16)
) {
  console.error(
    `fanin: bad options (variants from ${VARIANTS.join(",")}, cells like 100x1,1000x4, positive numbers): ${JSON.stringify(flags)}`,
  );
  process.exit(2);
}
const RUN = VARIANTS.filter((v) => variants.includes(v));
/** How long the servers get, after the publisher ends, to receive what is still on its way. */
const DRAIN_MS = QUICK ? 10_000 : 15_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const us = (value: number): string => (Number.isFinite(value) ? `${fmtRate(value)} µs` : "n/a");

const supervisor = supervise("fanin", QUICK ? 600 : 1500);
const { children } = supervisor;
const redis = await startRedis();
supervisor.redis = redis;
const inspector = createClient({ url: redis.url, RESP: 2, name: "bench-inspector" });
await inspector.connect();

// ------------------------------------------------------------------ Redis counters
interface RedisCounters {
  /** used_cpu_sys + used_cpu_user, µs. */
  readonly cpuUs: number;
  readonly commands: ReadonlyMap<string, { readonly calls: number; readonly usec: number }>;
}
const redisCounters = async (): Promise<RedisCounters> => {
  const cpu = String(await inspector.sendCommand(["INFO", "cpu"]));
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, "m").exec(cpu)?.[1] ?? Number.NaN);
  const stats = String(await inspector.sendCommand(["INFO", "commandstats"]));
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    commands.set(m[1] ?? "", { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return { cpuUs: (field("used_cpu_sys") + field("used_cpu_user")) * 1e6, commands };
};
/** Connections subscribed to at least one channel (SUBSCRIBE or SSUBSCRIBE). */
const subscribedConnections = async (): Promise<number> =>
  String(await inspector.sendCommand(["CLIENT", "LIST"]))
    .split("\n")
    .filter((l) => Number(/\bsub=(\d+)/.exec(l)?.[1] ?? 0) > 0 || Number(/\bssub=(\d+)/.exec(l)?.[1] ?? 0) > 0).length;

// ------------------------------------------------------------------ one cell
interface Row {
  readonly variant: FaninVariant;
  readonly k: number;
  readonly s: number;
  /** Why the cell did not run to the end, if it did not. */
  readonly error?: string;
  readonly windowS?: number;
  readonly publishedPerS?: number;
  readonly redisUsPerEvent?: number;
  readonly read?: { readonly command: string; readonly usPerCall: number; readonly callsPerS: number };
  readonly serverUsPerEvent?: number;
  readonly serverMsPerS?: number;
  readonly published?: number;
  readonly received?: readonly number[];
  /** Lowest and highest server's received / published. */
  readonly deliveredMin?: number;
  readonly deliveredMax?: number;
  readonly subscribed?: number;
  /** Setup times: the publisher creating the operations, the slowest server getting ready. */
  readonly initMs?: number;
  readonly readyMs?: number;
  /** The costliest commands of the window (`INFO commandstats` deltas): `"<calls> calls, <usec> usec"`. */
  readonly commands?: Record<string, string>;
}

type Server = Child<ToFaninServer, FromFaninServer>;
type Publisher = Child<ToFaninPublisher, FromFaninPublisher>;

/** Rejects when one of `list` reports an error: the cell ends there, the others still run. */
const failureOf = (list: readonly (Server | Publisher)[]): Promise<never> => {
  const failed = new Promise<never>((_, reject) => {
    for (const child of list) {
      void (child as Child<unknown, { readonly type: "error"; readonly message: string }>)
        .next("error", 2 ** 31 - 1)
        .then((e) => reject(new Error(`${child.process.spawnargs.at(-1)}: ${e.message}`)))
        .catch(() => {});
    }
  });
  failed.catch(() => {});
  return failed;
};
const stop = async (list: readonly (Server | Publisher)[]): Promise<void> => {
  await Promise.all(
    list.map((c) => {
      const p = c.process;
      if (p.exitCode !== null || p.signalCode !== null) return undefined;
      const exited = new Promise((r) => p.once("exit", r));
      c.kill();
      return exited;
    }),
  );
  for (const c of list) children.splice(children.indexOf(c as Child<unknown, { type: string }>), 1);
};

let cellNumber = 0;
async function runCell(variant: FaninVariant, k: number, s: number): Promise<Row> {
  const prefix = `fanin${(cellNumber++).toString(36)}${variant}`;
  const ops = Array.from({ length: k }, (_, i) => `op-${i}`);
  await inspector.sendCommand(["FLUSHALL"]);
  const publisher: Publisher = forkChild("fanin-publisher.ts", `fanin publisher ${variant} K=${k}`);
  const servers: Server[] = Array.from({ length: s }, (_, i) =>
    forkChild("fanin-server.ts", `fanin server ${i + 1} ${variant} K=${k}`),
  );
  for (const c of [publisher, ...servers]) children.push(c as Child<unknown, { type: string }>);
  const failed = failureOf([publisher, ...servers]);
  const guard = <T>(step: Promise<T>): Promise<T> => Promise.race([step, failed]);
  try {
    publisher.send({ type: "init", variant, redisUrl: redis.url, prefix, ops });
    const initMs = (await guard(publisher.next("initialized", 120_000))).ms;
    for (const server of servers) server.send({ type: "start", variant, redisUrl: redis.url, prefix, ops });
    const readyMs = Math.max(
      ...(await guard(Promise.all(servers.map((server) => server.next("ready", 180_000))))).map((r) => r.ms),
    );
    await sleep(500);
    const seconds = WARMUP_S + WINDOW_S + 0.5;
    publisher.send({ type: "run", rate: RATE, seconds });
    const done = publisher.next("done", (seconds + 120) * 1000);
    const mark = async () => {
      const at = performance.now();
      for (const server of servers) server.send({ type: "mark" });
      publisher.send({ type: "stats" });
      const [r, p, ...m] = await guard(
        Promise.all([
          redisCounters(),
          publisher.next("stats", 30_000),
          ...servers.map((server) => server.next("mark", 30_000)),
        ]),
      );
      return { at, redis: r, published: p.published, servers: m };
    };
    await sleep(WARMUP_S * 1000);
    const a = await mark();
    await sleep((WINDOW_S * 1000) / 2);
    const subscribed = await subscribedConnections();
    await sleep((WINDOW_S * 1000) / 2);
    const b = await mark();
    const pub = await guard(done);
    const counts = await guard(
      Promise.all(
        servers.map((server) => {
          server.send({ type: "wait", count: pub.published, timeoutMs: DRAIN_MS });
          return server.next("count", DRAIN_MS + 10_000);
        }),
      ),
    );

    const windowS = (b.at - a.at) / 1000;
    const published = b.published - a.published;
    const deltas: [string, { calls: number; usec: number }][] = [];
    for (const [name, after] of b.redis.commands) {
      const before = a.redis.commands.get(name) ?? { calls: 0, usec: 0 };
      if (after.calls > before.calls) {
        deltas.push([name, { calls: after.calls - before.calls, usec: after.usec - before.usec }]);
      }
    }
    // The commands that took the most time in the window, for RESULTS.json.
    deltas.sort((x, y) => y[1].usec - x[1].usec);
    const commands = Object.fromEntries(
      deltas.slice(0, TOP_COMMANDS).map(([name, d]) => [name, `${d.calls} calls, ${d.usec} usec`]),
    );
    const all = new Map(deltas);
    const readName = READ_COMMANDS.filter((c) => all.has(c)).sort(
      (x, y) => (all.get(y)?.usec ?? 0) - (all.get(x)?.usec ?? 0),
    )[0];
    const readStats = readName === undefined ? undefined : all.get(readName);
    let cpuUs = 0;
    let delivered = 0;
    let msPerS = 0;
    b.servers.forEach((after, i) => {
      const before = a.servers[i];
      if (!before) return;
      cpuUs += after.cpuUs - before.cpuUs;
      delivered += after.received - before.received;
      msPerS += (after.cpuUs - before.cpuUs) / 1000 / ((after.at - before.at) / 1000) / s;
    });
    const received = counts.map((c) => c.received);
    const shares = received.map((r) => r / pub.published);
    return {
      variant,
      k,
      s,
      windowS,
      publishedPerS: published / windowS,
      redisUsPerEvent: (b.redis.cpuUs - a.redis.cpuUs) / published,
      ...(readName && readStats
        ? {
            read: {
              command: readName.toUpperCase(),
              usPerCall: readStats.usec / readStats.calls,
              callsPerS: readStats.calls / windowS,
            },
          }
        : {}),
      serverUsPerEvent: cpuUs / delivered,
      serverMsPerS: msPerS,
      published: pub.published,
      received,
      deliveredMin: Math.min(...shares),
      deliveredMax: Math.max(...shares),
      subscribed,
      initMs,
      readyMs,
      commands,
    };
  } catch (error) {
    return { variant, k, s, error: error instanceof Error ? error.message : String(error) };
  } finally {
    await stop([publisher, ...servers]);
  }
}

// ------------------------------------------------------------------ the run
const began = performance.now();
const loadAtStart = loadavg()[0] ?? Number.NaN;
console.log(
  `fanin: ${RUN.join(", ")} over ${CELLS.map((c) => `K=${c.k} S=${c.s}`).join("; ")}; ${RATE} events/s, ${WARMUP_S} s warm-up, ${WINDOW_S} s window; redis ${redis.url}`,
);
const rows: Row[] = [];
for (const { k, s } of CELLS) {
  for (const variant of RUN) {
    const t0 = performance.now();
    const row = await runCell(variant, k, s);
    const cellS = ((performance.now() - t0) / 1000).toFixed(0);
    rows.push(row);
    console.log(
      row.error
        ? `  K=${k} S=${s} ${LABEL[variant]}: did not run to the end: ${row.error}`
        : `  K=${k} S=${s} ${LABEL[variant]}: Redis ${us(row.redisUsPerEvent ?? Number.NaN)}/event, ${row.read ? `${row.read.command} ${us(row.read.usPerCall)}/call` : "no reads"}, server ${us(row.serverUsPerEvent ?? Number.NaN)}/event, ${(row.serverMsPerS ?? 0).toFixed(0)} ms/s each, delivered ${(row.deliveredMin ?? 0).toFixed(2)}-${(row.deliveredMax ?? 0).toFixed(2)} (${cellS} s: operations created in ${row.initMs} ms, servers ready in ${row.readyMs} ms)`,
    );
  }
}
const seconds = Math.round((performance.now() - began) / 1000);

// ------------------------------------------------------------------ tables
const find = (variant: FaninVariant, k: number, s: number): Row | undefined =>
  rows.find((r) => r.variant === variant && r.k === k && r.s === s && !r.error);
const ratio = (a: number | undefined, b: number | undefined): number => (a ?? Number.NaN) / (b ?? Number.NaN);
const delivered = (r: Row): string => {
  const share = (r.deliveredMin ?? 0) < 1 ? (r.deliveredMin ?? 0) : (r.deliveredMax ?? 0);
  const text = share.toFixed(2);
  return share === 1 ? text : `${text} (${(r.received ?? []).map(fmtRate).join(", ")} of ${fmtRate(r.published ?? 0)})`;
};
const head = [
  "K watched ops",
  "S servers",
  "variant",
  "published/s",
  "Redis CPU per published event",
  "vs raw",
  "read cost per call (calls/s)",
  "server CPU per delivered event",
  "vs raw",
  "server CPU, each server",
  "delivered / expected",
];
const table = rows.map((r) => {
  const cell = [fmtRate(r.k), String(r.s), LABEL[r.variant]];
  if (r.error) return [...cell, `did not run: ${r.error.split("\n")[0]}`, "", "", "", "", "", "", ""];
  const raw = find("raw", r.k, r.s);
  return [
    ...cell,
    fmtRate(r.publishedPerS ?? Number.NaN),
    us(r.redisUsPerEvent ?? Number.NaN),
    fmtRatio(ratio(r.redisUsPerEvent, raw?.redisUsPerEvent)),
    r.read ? `${r.read.command} ${us(r.read.usPerCall)} (${fmtRate(r.read.callsPerS)}/s)` : "none",
    us(r.serverUsPerEvent ?? Number.NaN),
    fmtRatio(ratio(r.serverUsPerEvent, raw?.serverUsPerEvent)),
    `${fmtRate(r.serverMsPerS ?? Number.NaN)} ms/s`,
    delivered(r),
  ];
});
const oneServer = CELLS.filter((c) => c.s === 1).map((c) => c.k);
const kLo = Math.min(...oneServer);
const kHi = Math.max(...oneServer);
const sPairs = [...new Set(CELLS.filter((c) => c.s > 1).map((c) => c.k))]
  .filter((k) => CELLS.some((c) => c.k === k && c.s === 1))
  .map((k) => ({ k, s: Math.max(...CELLS.filter((c) => c.k === k).map((c) => c.s)) }));
/** K against K with one server, when the cells hold two sizes of K at S = 1. */
const byK = kHi > kLo;
const scaleHead = [
  "variant",
  ...(byK ? [`Redis CPU/event: K=${fmtRate(kHi)} vs K=${fmtRate(kLo)} (S=1)`] : []),
  ...sPairs.map((p) => `Redis CPU/event: S=${p.s} vs S=1 (K=${fmtRate(p.k)})`),
  ...(byK ? [`server CPU/event: K=${fmtRate(kHi)} vs K=${fmtRate(kLo)} (S=1)`] : []),
];
const scaleRows = RUN.map((v) => [
  LABEL[v],
  ...(byK ? [fmtRatio(ratio(find(v, kHi, 1)?.redisUsPerEvent, find(v, kLo, 1)?.redisUsPerEvent))] : []),
  ...sPairs.map((p) => fmtRatio(ratio(find(v, p.k, p.s)?.redisUsPerEvent, find(v, p.k, 1)?.redisUsPerEvent))),
  ...(byK ? [fmtRatio(ratio(find(v, kHi, 1)?.serverUsPerEvent, find(v, kLo, 1)?.serverUsPerEvent))] : []),
]);
const scales = scaleHead.length > 1;
console.log(`\n${textTable(head, table)}${scales ? `\n\n${textTable(scaleHead, scaleRows)}` : ""}`);
const scaling = scales
  ? `Scaling (the same measure, one cell against another; the goal for the live design is 1.50x or less):\n\n${markdownTable(scaleHead, scaleRows, [false])}\n\n`
  : "";

const complete = rows.filter((r) => !r.error);
const missed = complete.filter((r) => r.deliveredMin !== 1 || r.deliveredMax !== 1);
const failed = rows.filter((r) => r.error);
const liveRows = complete.filter((r) => r.variant === "live");
const liveNote =
  liveRows.length === 0
    ? ""
    : liveRows.every((r) => (r.subscribed ?? 0) === 0)
      ? "\n\nLive channels: no server connection was subscribed to a channel during the live rows (`CLIENT LIST`), so the library in this run does not have the `liveChannels` option yet and those rows measure the blocking reader."
      : `\n\nLive channels: server connections subscribed to channels during the live rows (\`CLIENT LIST\`): ${liveRows.map((r) => `${r.subscribed} at K=${fmtRate(r.k)} S=${r.s}`).join(", ")}.`;
const m = machine();
const command = `npx tsx bench/fanin.ts${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;
const outcome = `Result: ${missed.length === 0 && failed.length === 0 ? "every server received every event in every cell" : [missed.length > 0 ? `events missed or duplicated in ${missed.map((r) => `${r.variant} K=${r.k} S=${r.s}`).join(", ")}` : "", failed.length > 0 ? `${failed.length} cells did not run to the end` : ""].filter(Boolean).join("; ")}. ${seconds} s in all; 1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]?.toFixed(1)} at the end, on ${m.cores} cores (other processes on the machine take CPU from Redis and the servers, which shows in the per-event costs).`;
const markdown = `## Fan-in: Redis and server CPU per event, by watched operations and servers

Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB; Node ${m.node}; Redis ${redisVersion()} on loopback; ${m.date}.

Command: \`${command}\`${command === "npx tsx bench/fanin.ts" ? " (run by `npm run bench`)" : ""}. One redis-server; S server processes, each watching the same K operations; one publisher process at ${fmtRate(RATE)} events/s round robin over the K operations. Measured over a ${WINDOW_S} s window after ${WARMUP_S} s of warm-up: Redis CPU (\`INFO cpu\`, sys + user) per event published in the window; the read command that took Redis the most time in the window (\`INFO commandstats\`) and its cost per call (Redis times a command on the wall clock, so that cost grows when other processes take the cores, while \`INFO cpu\` counts CPU time; a blocking reader that falls behind also reads more entries per call, fewer times); server CPU (\`process.cpuUsage()\` of every server process) per event delivered in the window, and per second of each server. Delivered / expected: events each server received over the whole run against events published (the lowest server; every server must receive every event: 1.00).

${markdownTable(head, table, [true, true, false])}

${scaling}${outcome}${liveNote}

What each variant runs: **raw** is the floor: a bare Lua script per event (\`XADD MAXLEN ~ 1000\` + \`HSET\` + \`PUBLISH\` of \`[id, field, value, ...]\` as JSON on a channel named as the operation's stream; streams created beforehand), each server \`SUBSCRIBE\`d to the K channels (node-redis, 500 a command) and parsing every message. **progresscast** rows: \`createProgress({ port: nodeRedis(...), liveChannels })\` in every process, \`progress.watch(op)\` once per operation per server, the publisher calling \`progress.publish()\` without throttling. **BullMQ**: \`QueueEvents\` (ioredis) listening for \`progress\` in every server, the publisher calling \`job.updateProgress()\` on K jobs.
`;
if (!flags["dry-run"]) {
  writeSection("fanin", markdown);
  writeJson("fanin", { machine: m, rate: RATE, windowS: WINDOW_S, warmupS: WARMUP_S, cells: CELLS, rows });
}

supervisor.done();
await inspector.close();
await redis.close();
console.log(outcome);
process.exit(missed.length > 0 ? 1 : failed.length > 0 ? 2 : 0);
