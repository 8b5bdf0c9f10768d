// The quick start: a worker reports an import's progress. Needs: npm install progresscast redis
// Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx worker.ts
import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
const insertRow = () => new Promise((resolve) => setTimeout(resolve, 1)); // your work: a row written somewhere

await progress.publish("import-42", { status: "running", total: 1000, current: 0 });
for (let i = 1; i <= 1000; i++) {
  await insertRow();
  progress.report("import-42", { current: i, total: 1000, message: `Row ${i}` }); // coalesced, never throws
}
await progress.publish("import-42", { status: "completed" });
console.log(await progress.get("import-42")); // the latest state, as a server hands it to a late joiner
await progress.close(); // flushes what is held
