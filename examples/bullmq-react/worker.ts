// The worker: BullMQ and progresscast share one ioredis connection; each job reports to its user's scope.
// Needs: npm install progresscast bullmq ioredis. Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx worker.ts
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { createProgress } from "progresscast";
import { withProgress } from "progresscast/bullmq";
import { ioredis } from "progresscast/ioredis";

const connection = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: null });
const progress = createProgress({ port: ioredis({ client: connection }) }); // a client passed in is never closed by it
const scopeOf = (jobId?: string) => jobId?.match(/^(user-\d+)\./)?.[1]; // the same rule as server.ts
const steps = Number(process.env.STEPS ?? 20);

const worker = new Worker(
  "imports",
  withProgress(
    progress,
    async (job) => {
      for (let step = 1; step <= steps; step++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        await job.updateProgress({ current: step, total: steps, message: `Step ${step} of ${steps}` });
      }
      return { steps };
    },
    { scope: (job) => scopeOf(job.id) },
  ),
  { connection },
);
console.log("worker ready");
process.on("SIGTERM", () => void worker.close().then(() => progress.close().then(() => connection.quit())));
