/**
 * One side of a BullMQ deployment in its own process, as the README's BullMQ
 * example runs it: `bridge` (bridgeQueue in the API server, forwardProgress
 * false) or `worker` (a Worker whose processor is wrapped by withProgress; each
 * job reports three steps and its first attempt fails). Prints `ready`, stops on SIGTERM.
 */
import { Worker } from "bullmq";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { bridgeQueue, withProgress } from "../../src/bullmq/index.ts";
import { createProgress } from "../../src/index.ts";

const [role, port, prefix, queueName, scope] = process.argv.slice(2);
if ((role !== "bridge" && role !== "worker") || !port || !prefix || !queueName || !scope) {
  throw new Error("usage: child.ts bridge|worker <redis-port> <prefix> <queue> <scope>");
}
const connection = { host: "127.0.0.1", port: Number(port), maxRetriesPerRequest: null };
const progress = createProgress({
  port: nodeRedis({ url: `redis://127.0.0.1:${port}` }),
  prefix,
  // Every step is an event of its own, so the test can name the exact sequence.
  throttle: role === "worker" ? false : { intervalMs: 250 },
  logger: {},
});
let close: () => Promise<unknown>;
if (role === "bridge") {
  const bridge = await bridgeQueue(queueName, { connection, progress, forwardProgress: false, scope: () => scope });
  close = () => bridge.close();
} else {
  const worker = new Worker(
    queueName,
    withProgress(
      progress,
      async (job) => {
        for (let step = 1; step <= 3; step++) {
          await job.updateProgress({ current: step, total: 3, message: `Step ${step} of 3` });
        }
        if (job.attemptsMade === 0) throw new Error(`flaky ${job.id}`);
        return "ok";
      },
      { scope: () => scope },
    ),
    { connection, concurrency: 4 },
  );
  await worker.waitUntilReady();
  close = () => worker.close();
}
process.on("SIGTERM", () => {
  void close()
    .then(() => progress.close())
    .finally(() => process.exit(0));
});
process.stdout.write("ready\n");
