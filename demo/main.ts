/**
 * `npm start`: simulated jobs report progress; live bars are drawn from
 * `get` and `history`. Memory backend by default; Redis when REDIS_URL is set.
 */

import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { createProgress } from "../src/index.ts";

const url = process.env.REDIS_URL;
const progress = createProgress(url ? { port: nodeRedis({ url }), prefix: "pc-demo" } : { prefix: "pc-demo" });
const run = Date.now().toString(36);
const jobs = [
  { op: `index-docs-${run}`, total: 120, stepMs: 25 },
  { op: `import-csv-${run}`, total: 60, stepMs: 70 },
  { op: `render-video-${run}`, total: 40, stepMs: 140 },
];

async function work(job: (typeof jobs)[number]): Promise<void> {
  await progress.publish(job.op, { status: "running", current: 0, total: job.total, message: "starting" });
  for (let i = 1; i <= job.total; i++) {
    await new Promise((r) => setTimeout(r, job.stepMs));
    progress.report(job.op, { current: i, total: job.total, message: `item ${i} of ${job.total}` });
  }
  await progress.publish(job.op, { status: "completed", current: job.total, total: job.total, message: "done" });
}

function bar(p: number, width = 30): string {
  const filled = Math.round((p / 100) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

async function draw(first: boolean): Promise<boolean> {
  const lines: string[] = [];
  let finished = 0;
  for (const job of jobs) {
    const s = await progress.get(job.op);
    const events = (await progress.history(job.op)).length;
    const p = s?.progress ?? 0;
    if (s?.status === "completed") finished++;
    const eta = s?.eta !== undefined ? `${s.eta.toFixed(1)}s left` : "";
    lines.push(
      `${job.op.padEnd(24)} ${bar(p)} ${p.toFixed(1).padStart(5)}% ${(s?.status ?? "queued").padEnd(9)} ${String(events).padStart(3)} events ${eta}`,
    );
  }
  process.stdout.write(`${first ? "" : `\x1b[${jobs.length}A`}${lines.map((l) => `\x1b[2K${l}`).join("\n")}\n`);
  return finished === jobs.length;
}

console.log(`progresscast demo on the ${progress.backend} backend${url ? ` (${url})` : ""}\n`);
const working = Promise.all(jobs.map(work));
let first = true;
while (!(await draw(first))) {
  first = false;
  await new Promise((r) => setTimeout(r, 100));
}
await working;
await progress.close();
console.log("\nAll jobs finished.");
