/**
 * One watching server of `fanin.ts` in its own process (see `children.ts`):
 * `start` watches every operation it is given the way its variant does, and
 * counts each event it receives (decoded or parsed, then dropped); `mark`
 * reports that count with this process's CPU, `wait` answers once a count is
 * reached.
 *
 * - `xread`, `live`: `progress.watch(op)` once per operation on one manager
 *   (`createProgress` on node-redis), counting the `event` items of the run.
 * - `raw`: one node-redis subscriber connection, `SUBSCRIBE` to every
 *   operation's channel in batches; each message is `JSON.parse`d and counted.
 * - `bullmq`: one `QueueEvents` of the queue, counting `progress` events.
 */
import { setMaxListeners } from "node:events";
import type { FromFaninServer, ToFaninServer } from "./children.ts";

const send = (message: FromFaninServer): void => {
  if (process.connected) process.send?.(message);
};
const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error);
  const cause =
    error.cause instanceof Error ? `\ncaused by ${error.cause.constructor.name}: ${describe(error.cause)}` : "";
  return `${error.stack ?? error.message}${cause}`;
};
const fail = (error: unknown): void => {
  send({ type: "error", message: describe(error) });
};
/** Channels named in one SUBSCRIBE. */
const SUBSCRIBE_BATCH = 500;
/** Watches opened before waiting for their snapshots. */
const WATCH_BATCH = 1000;

let received = 0;
const waiters = new Set<{ count: number; resolve(): void }>();
const count = (): void => {
  received++;
  if (waiters.size === 0) return;
  for (const w of waiters) {
    if (received >= w.count) {
      waiters.delete(w);
      w.resolve();
    }
  }
};

async function watchAll(message: Extract<ToFaninServer, { type: "start" }>): Promise<void> {
  const { createProgress } = await import("../../src/index.ts");
  const { progressOptions } = await import("./fanin-common.ts");
  const progress = createProgress(progressOptions(message.variant, message.redisUrl, message.prefix, false));
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  process.on("disconnect", () => stop.abort());
  let ready = 0;
  let failure: unknown;
  const watchOne = async (op: string): Promise<void> => {
    let first = true;
    for await (const item of progress.watch(op, { signal: stop.signal, maxQueue: 100_000 })) {
      if (first) {
        first = false;
        ready++;
      }
      // The history replayed after the snapshot (each operation's first event) is not counted: only the run's events carry `t`.
      if (item.kind === "event" && item.event.data?.t !== undefined) count();
    }
  };
  // Watches open a batch at a time, as connections arrive over time: each batch waits for its snapshots.
  for (let i = 0; i < message.ops.length; i += WATCH_BATCH) {
    for (const op of message.ops.slice(i, i + WATCH_BATCH)) {
      watchOne(op).catch((error: unknown) => {
        if (failure === undefined) fail(error);
        failure ??= error;
      });
    }
    const target = Math.min(message.ops.length, i + WATCH_BATCH);
    for (let waited = 0; ready < target && failure === undefined; waited += 5) {
      if (waited > 120_000) throw new Error(`${ready} of ${target} watches got their snapshot within 120 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (failure !== undefined) return;
  }
}

async function subscribeAll(message: Extract<ToFaninServer, { type: "start" }>): Promise<void> {
  const { createClient } = await import("redis");
  const { rawKeys } = await import("./fanin-common.ts");
  const subscriber = createClient({ url: message.redisUrl, RESP: 2, name: "fanin-raw-subscriber" });
  subscriber.on("error", fail);
  await subscriber.connect();
  const channels = message.ops.map((op) => rawKeys(message.prefix, op).stream);
  const listener = (payload: string): void => {
    const entry: unknown = JSON.parse(payload);
    if (Array.isArray(entry) && typeof entry[0] === "string") count();
  };
  for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) {
    await subscriber.subscribe(channels.slice(i, i + SUBSCRIBE_BATCH), listener);
  }
}

async function listenBullmq(message: Extract<ToFaninServer, { type: "start" }>): Promise<void> {
  const { QueueEvents } = await import("bullmq");
  const { hostname, port } = new URL(message.redisUrl);
  const events = new QueueEvents(message.prefix, {
    connection: { host: hostname, port: Number(port), maxRetriesPerRequest: null },
  });
  events.on("error", fail);
  events.on("progress", ({ data }) => {
    if (data !== undefined) count();
  });
  await events.waitUntilReady();
}

async function start(message: Extract<ToFaninServer, { type: "start" }>): Promise<void> {
  const t0 = performance.now();
  if (message.variant === "raw") await subscribeAll(message);
  else if (message.variant === "bullmq") await listenBullmq(message);
  else await watchAll(message);
  received = 0;
  send({ type: "ready", ms: Math.round(performance.now() - t0) });
}

process.on("message", (message: ToFaninServer) => {
  if (message.type === "start") {
    start(message).catch(fail);
  } else if (message.type === "mark") {
    const cpu = process.cpuUsage();
    send({ type: "mark", received, cpuUs: cpu.user + cpu.system, at: performance.now() });
  } else if (message.type === "wait") {
    const answer = (): void => send({ type: "count", received });
    if (received >= message.count) {
      answer();
      return;
    }
    const w = {
      count: message.count,
      resolve: () => {
        clearTimeout(timer);
        answer();
      },
    };
    const timer = setTimeout(() => {
      waiters.delete(w);
      answer();
    }, message.timeoutMs);
    waiters.add(w);
  }
});
process.on("disconnect", () => process.exit(0));
