/**
 * The publisher of the load benchmarks in its own process (forked by
 * `soak.ts` and `capacity.ts`, see `children.ts`): `init` starts every
 * operation, `run` publishes round robin over the operations at a fixed rate
 * for a number of seconds (each event carries its publish time in `data.t`),
 * then ends every operation with a `completed` event.
 */
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { Progress } from "../../src/core/progress.ts";
import type { FromPublisher, ToPublisher } from "./children.ts";

const now = (): number => performance.timeOrigin + performance.now();
const send = (message: FromPublisher): void => {
  if (process.connected) process.send?.(message);
};
/** Publishes in flight at most: past it the publisher falls behind its schedule rather than pile up. */
const MAX_IN_FLIGHT = 20_000;

let progress: Progress | undefined;
let ops: readonly string[] = [];
let published = 0;
let refused = 0;
let failed = 0;
let inFlight = 0;
let behind = 0;

async function init(message: Extract<ToPublisher, { type: "init" }>): Promise<void> {
  const t0 = performance.now();
  progress = new Progress({
    port: nodeRedis({ url: message.redisUrl }),
    prefix: message.prefix,
    maxLen: message.maxLen,
    throttle: false,
    estimate: false,
    logger: {},
  });
  ops = message.ops;
  for (let i = 0; i < ops.length; i += 1000) {
    const results = await Promise.all(
      ops.slice(i, i + 1000).map((op) => (progress as Progress).publish(op, { status: "running", progress: 0 })),
    );
    const bad = results.find((r) => !r.ok);
    if (bad) throw new Error(`could not start the operations: ${JSON.stringify(bad)}`);
  }
  send({ type: "initialized", ms: Math.round(performance.now() - t0) });
}

async function run(message: Extract<ToPublisher, { type: "run" }>): Promise<void> {
  const p = progress;
  if (!p) throw new Error("run before init");
  const { rate, seconds } = message;
  const planned = Math.floor(rate * seconds);
  const total = Math.ceil(planned / ops.length) + 1;
  const step = new Array<number>(ops.length).fill(0);
  const cpu = process.cpuUsage();
  let issued = 0;
  let maxBehind = 0;
  const t0 = performance.now();
  const publishOne = (): void => {
    const i = issued % ops.length;
    issued++;
    const op = ops[i] as string;
    const current = (step[i] ?? 0) + 1;
    step[i] = current;
    inFlight++;
    void p.publish(op, { current, total, data: { t: now() } }).then((r) => {
      inFlight--;
      if (r.ok) published++;
      else if (r.outcome === "refused") refused++;
      else failed++;
    });
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = (performance.now() - t0) / 1000;
      const due = Math.min(planned, Math.floor(rate * elapsed));
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
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
  const runSeconds = (performance.now() - t0) / 1000;
  const terminals = await Promise.all(
    ops.map((op) => p.publish(op, { status: "completed", current: total, total, data: { t: now() } })),
  );
  const used = process.cpuUsage(cpu);
  send({
    type: "done",
    published,
    refused,
    failed,
    seconds: Math.round(runSeconds * 10) / 10,
    rate: published / Math.max(wall, runSeconds),
    maxBehind,
    terminals: terminals.filter((r) => r.ok).length,
    terminalFailures: terminals.filter((r) => !r.ok).length,
    cpuMs: Math.round((used.user + used.system) / 1000),
  });
  await p.close();
}

const fail = (error: unknown): void => {
  send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
};

process.on("message", (message: ToPublisher) => {
  if (message.type === "init") init(message).catch(fail);
  else if (message.type === "run") run(message).catch(fail);
  else if (message.type === "stats") send({ type: "stats", published, failed, inFlight, behind });
});
process.on("disconnect", () => process.exit(0));
