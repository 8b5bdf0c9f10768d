// A BullMQ worker whose job.updateProgress also publishes to progresscast directly.
// Needs: npm install progresscast bullmq redis
// Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx worker.ts
import { Queue, Worker } from "bullmq";
import { createProgress } from "progresscast";
import { withProgress } from "progresscast/bullmq";
import { nodeRedis } from "progresscast/node-redis";

const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const progress = createProgress({ port: nodeRedis({ url: url.href }) });

const worker = new Worker(
  "imports",
  withProgress(progress, async (job) => {
    for (let file = 1; file <= 5; file++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await job.updateProgress({ current: file, total: 5, message: `File ${file} of 5` });
    }
    if (job.attemptsMade === 0) throw new Error("The first attempt fails, to show a retry");
    return { files: 5 };
  }),
  { connection },
);

const queue = new Queue("imports", { connection });
const job = await queue.add("import", { user: 7 }, { jobId: process.env.JOB_ID ?? `import-${Date.now()}`, attempts: 3 });
console.log(`added ${job.id}`);
process.on("SIGTERM", () => void Promise.all([worker.close(), queue.close()]).then(() => progress.close()));
