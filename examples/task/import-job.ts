// A worker: one job's lifecycle with progress.task. Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx import-job.ts
// Needs: npm install progresscast redis
import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
const rows = Array.from({ length: 50 }, (_, i) => ({ id: i + 1 }));
const insert = (row: { id: number }) => new Promise((resolve) => setTimeout(resolve, 10, row));

const task = progress.task("import-42", { total: rows.length, scope: "user-7" });
try {
  await task.start("Importing");
  for (const row of rows) {
    if (task.signal.aborted) break; // progress.cancel("import-42", "user pressed cancel") ends it `cancelled`
    await insert(row);
    task.advance(); // coalesced, never throws
  }
  if (!task.signal.aborted) {
    await task.event("file_completed", { data: { file: "rows.csv" } });
    await task.complete({ rows: rows.length });
  }
} catch (error) {
  await task.fail(error);
} finally {
  await progress.close(); // flushes what is held; the script can exit
}
