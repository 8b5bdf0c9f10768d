/**
 * The publisher of `fanin.ts` in its own process (see `children.ts`): `init`
 * creates every operation the way its variant writes (so each stream, snapshot
 * or job exists before anyone watches), `run` publishes round robin over the
 * operations at a fixed rate for a number of seconds.
 *
 * - `xread`, `live`: `progress.publish()` (`createProgress` on node-redis, no throttle).
 * - `raw`: one `EVALSHA` of the bare script per event (`RAW_SCRIPT`: XADD + HSET + PUBLISH).
 * - `bullmq`: `job.updateProgress()` on one job per operation.
 */
import type { FaninVariant, FromFaninPublisher, ToFaninPublisher } from "./children.ts";

const send = (message: FromFaninPublisher): void => {
  if (process.connected) process.send?.(message);
};
/** Publishes in flight at most: past it the publisher falls behind its schedule rather than pile up. */
const MAX_IN_FLIGHT = 5000;
const now = (): number => performance.timeOrigin + performance.now();

/** Publish event number `n` (from 1) of an operation; resolves true when it was written. */
type PublishFn = (op: string, n: number) => Promise<boolean>;

let publishFn: PublishFn | undefined;
let closeFn: () => Promise<void> = async () => {};
let ops: readonly string[] = [];
let published = 0;
let failed = 0;
let behind = 0;

/** Create `ops` in batches of 1000, the first event of each as `publish(op, 0)`. */
async function createAll(publish: PublishFn): Promise<void> {
  for (let i = 0; i < ops.length; i += 1000) {
    const results = await Promise.all(ops.slice(i, i + 1000).map((op) => publish(op, 0)));
    if (results.includes(false)) throw new Error("could not create the operations");
  }
}

async function progresscast(variant: FaninVariant, redisUrl: string, prefix: string): Promise<void> {
  const { createProgress } = await import("../../src/index.ts");
  const { progressOptions } = await import("./fanin-common.ts");
  const progress = createProgress(progressOptions(variant, redisUrl, prefix, true));
  const publish: PublishFn = async (op, n) =>
    (await progress.publish(op, n === 0 ? { progress: 0 } : { current: n, total: 1_000_000, data: { t: now() } })).ok;
  await createAll(publish);
  publishFn = publish;
  closeFn = async () => {
    await progress.close();
  };
}

async function raw(redisUrl: string, prefix: string): Promise<void> {
  const { createClient } = await import("redis");
  const { encodeUpdate } = await import("../../src/core/wire/index.ts");
  const { FANIN_MAX_LEN, RAW_SCRIPT, rawKeys } = await import("./fanin-common.ts");
  const client = createClient({ url: redisUrl, RESP: 2, name: "fanin-raw-publisher" });
  client.on("error", () => {});
  await client.connect();
  const sha = String(await client.sendCommand(["SCRIPT", "LOAD", RAW_SCRIPT]));
  const maxLen = String(FANIN_MAX_LEN);
  const publish: PublishFn = async (op, n) => {
    const { stream, state } = rawKeys(prefix, op);
    const fields = encodeUpdate(op, n === 0 ? { progress: 0 } : { current: n, total: 1_000_000, data: { t: now() } });
    fields.seq = String(n + 1);
    const args = ["EVALSHA", sha, "2", stream, state, maxLen];
    for (const [field, value] of Object.entries(fields)) if (value !== undefined) args.push(field, value);
    await client.sendCommand(args);
    return true;
  };
  await createAll(publish);
  publishFn = publish;
  closeFn = async () => {
    await client.close();
  };
}

async function bullmq(redisUrl: string, queueName: string): Promise<void> {
  const { Queue } = await import("bullmq");
  const { hostname, port } = new URL(redisUrl);
  const queue = new Queue(queueName, {
    connection: { host: hostname, port: Number(port), maxRetriesPerRequest: null },
  });
  const jobs = new Map<string, Awaited<ReturnType<typeof queue.add>>>();
  for (let i = 0; i < ops.length; i += 1000) {
    const added = await queue.addBulk(
      ops.slice(i, i + 1000).map((op) => ({ name: "job", data: {}, opts: { jobId: op } })),
    );
    for (const job of added) if (job.id !== undefined) jobs.set(job.id, job);
  }
  if (jobs.size !== ops.length) throw new Error(`added ${jobs.size} of ${ops.length} jobs`);
  publishFn = async (op, n) => {
    await jobs.get(op)?.updateProgress({ current: n, total: 1_000_000, t: now() });
    return true;
  };
  closeFn = () => queue.close();
}

async function init(message: Extract<ToFaninPublisher, { type: "init" }>): Promise<void> {
  const t0 = performance.now();
  ops = message.ops;
  if (message.variant === "raw") await raw(message.redisUrl, message.prefix);
  else if (message.variant === "bullmq") await bullmq(message.redisUrl, message.prefix);
  else await progresscast(message.variant, message.redisUrl, message.prefix);
  send({ type: "initialized", ms: Math.round(performance.now() - t0) });
}

async function run(message: Extract<ToFaninPublisher, { type: "run" }>): Promise<void> {
  const publish = publishFn;
  if (!publish) throw new Error("run before init");
  const { rate, seconds } = message;
  const planned = Math.floor(rate * seconds);
  const step = new Array<number>(ops.length).fill(0);
  const cpu = process.cpuUsage();
  let issued = 0;
  let inFlight = 0;
  let maxBehind = 0;
  const t0 = performance.now();
  const publishOne = (): void => {
    const i = issued % ops.length;
    issued++;
    const n = (step[i] ?? 0) + 1;
    step[i] = n;
    inFlight++;
    publish(ops[i] as string, n).then(
      (ok) => {
        inFlight--;
        if (ok) published++;
        else failed++;
      },
      () => {
        inFlight--;
        failed++;
      },
    );
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(planned, Math.floor((rate * (performance.now() - t0)) / 1000));
      while (issued < due && inFlight < MAX_IN_FLIGHT) publishOne();
      behind = due - issued;
      if (behind > maxBehind) maxBehind = behind;
      if (issued >= planned) {
        resolve();
        return;
      }
      setTimeout(tick, 2);
    };
    tick();
  });
  const wall = (performance.now() - t0) / 1000;
  for (let i = 0; i < 60_000 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 5));
  const runSeconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  send({
    type: "done",
    published,
    failed: failed + inFlight,
    seconds: Math.round(runSeconds * 10) / 10,
    rate: published / Math.max(wall, runSeconds),
    maxBehind,
    cpuMs: Math.round((used.user + used.system) / 1000),
  });
  await closeFn();
}

const fail = (error: unknown): void => {
  send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
};

process.on("message", (message: ToFaninPublisher) => {
  if (message.type === "init") init(message).catch(fail);
  else if (message.type === "run") run(message).catch(fail);
  else if (message.type === "stats") send({ type: "stats", published, failed, behind });
});
process.on("disconnect", () => process.exit(0));
