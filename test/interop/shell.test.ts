/**
 * examples/shell/publish.sh (redis-cli and the shipped script) against a real
 * redis-server: progresscast delivers its events like a TypeScript worker's.
 */
import { execFileSync } from "node:child_process";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { createProgress, type Progress, type ProgressUpdate, silentLogger } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { delivered, run, SHELL } from "./support.ts";

let hasCli = true;
try {
  execFileSync("redis-cli", ["--version"], { stdio: "ignore" });
} catch {
  hasCli = false;
}

const CALLS: [string[], ProgressUpdate][] = [
  [["status=queued", "cid=req-1"], { status: "queued", cid: "req-1" }],
  [
    ["current=1", "total=3", "message=Chunked 1 of 3\nsecond line", "cid=req-1"],
    { current: 1, total: 3, message: "Chunked 1 of 3\nsecond line", cid: "req-1" },
  ],
  [
    ["type=file_completed", 'data={"file":"a.csv","rows":10}', "cid=req-1"],
    { type: "file_completed", data: { file: "a.csv", rows: 10 }, cid: "req-1" },
  ],
  [["progress=66.666", "current=2", "total=3", "eta=1.5"], { progress: 66.666, current: 2, total: 3, eta: 1.5 }],
  [["progress=10"], { progress: 10 }],
  [["status=completed", "message=done"], { status: "completed", message: "done" }],
  [["progress=100"], { progress: 100 }],
];

/** Timestamps differ between the two publishers: compare everything else. */
function withoutTs(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value).replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, "<ts>"));
}

describe.skipIf(!hasCli)("shell publisher", () => {
  let redis: RedisServer;
  let progress: Progress;
  const prefix = `sh${Math.random().toString(36).slice(2, 8)}`;
  const shell = (args: string[]) => run("bash", [SHELL, "-u", redis.url, "-P", prefix, ...args]);

  beforeAll(async () => {
    redis = await startRedis();
    progress = createProgress({
      port: nodeRedis({ url: redis.url }),
      prefix,
      throttle: false,
      estimate: false,
      logger: silentLogger,
    });
  });
  afterAll(async () => {
    await progress?.close();
    await redis?.close();
  });

  it("publishes events delivered exactly like a TypeScript worker's, loading the script on NOSCRIPT", async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    await client.scriptFlush();
    await client.quit();
    const lines: string[] = [];
    for (const [args, update] of CALLS) {
      await progress.publish("ts-op", update);
      const r = await shell(["sh-op", ...args]);
      expect(r.stderr).toBe("");
      lines.push(r.stdout.trim().replace(/\d+-\d+/, "<id>"));
    }
    expect(lines).toEqual([
      "published <id> 1 attempt 1",
      "published <id> 2 attempt 1",
      "published <id> 3 attempt 1",
      "published <id> 4 attempt 1",
      "refused backwards 4 attempt 1",
      "published <id> 5 attempt 1",
      "refused terminal 5 attempt 1",
    ]);
    expect(withoutTs(await delivered(progress, "sh-op"))).toEqual(withoutTs(await delivered(progress, "ts-op")));
  });

  it("refuses bad input with exit code 2, naming the field", async () => {
    for (const [args, field] of [
      [["bad op"], "op"],
      [["x", "status=done"], "status"],
      [["x", "progress=101"], "progress"],
      [["x", "current=5", "total=3"], "current"],
      [["x", "type=1bad"], "type"],
      [["x", "data=[1]"], "data"],
      [["x", "cid=a b"], "cid"],
    ] as const) {
      const r = await shell([...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Invalid ${field}:`);
    }
    expect(await progress.get("x")).toBeNull();
  });

  it("reports a cancellation", async () => {
    await progress.publish("sh-cancel", { progress: 1 });
    await progress.cancel("sh-cancel", "stop now");
    const r = await shell(["sh-cancel", "progress=2"]);
    expect(r.stdout.trim()).toMatch(/^published \d+-\d+ 2 attempt 1 cancelled stop now$/);
  });

  it("sends the attempt pair last, as the TypeScript publisher does", async () => {
    await shell(["sh-wire", "progress=5", "eta=3", 'data={"a":1}']);
    await shell(["sh-wire", "status=failed"]);
    await progress.publish("ts-wire", { progress: 5, eta: 3, data: { a: 1 } });
    await progress.publish("ts-wire", { status: "failed" });
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const names = async (op: string) =>
        ((await client.xRange(`${prefix}:{${op}}:events`, "-", "+")) ?? []).map((entry) => Object.keys(entry.message));
      const sh = await names("sh-wire");
      expect(sh).toEqual(await names("ts-wire"));
      // A running event ends with it; a terminal one has the script's added fields after it.
      expect(sh[0]?.at(-1)).toBe("attempt");
      expect(sh[1]).toContain("attempt");
    } finally {
      await client.quit();
    }
  });

  it("--restart starts a new attempt, delivered exactly like a TypeScript worker's restart", async () => {
    const steps: [string[], ProgressUpdate, boolean][] = [
      [["progress=40", "message=first try"], { progress: 40, message: "first try" }, false],
      [["status=failed", "message=boom"], { status: "failed", message: "boom" }, false],
      [["progress=5"], { progress: 5 }, true], // a retried job: after a terminal event, progress going back
      [["progress=60"], { progress: 60 }, false],
      [["progress=10"], { progress: 10 }, true], // restarted while running
      [["status=completed"], { status: "completed" }, false],
    ];
    const lines: string[] = [];
    for (const [args, update, restart] of steps) {
      await progress.publish("ts-retry", update, { restart });
      const r = await shell([...(restart ? ["--restart"] : []), "sh-retry", ...args]);
      expect(r.stderr).toBe("");
      lines.push(r.stdout.trim().replace(/\d+-\d+/, "<id>"));
    }
    expect(lines).toEqual([
      "published <id> 1 attempt 1",
      "published <id> 2 attempt 1",
      "published <id> 3 attempt 2",
      "published <id> 4 attempt 2",
      "published <id> 5 attempt 3",
      "published <id> 6 attempt 3",
    ]);
    const sh = await delivered(progress, "sh-retry");
    expect(withoutTs(sh)).toEqual(withoutTs(await delivered(progress, "ts-retry")));
    expect(sh.get).toMatchObject({ status: "completed", attempt: 3, seq: 6 });
    expect((sh.history as unknown[]).length).toBe(2); // only the last attempt's events are kept
  });

  it("--restart of an operation not known starts attempt 1", async () => {
    const r = await shell(["--restart", "sh-fresh", "progress=1"]);
    expect(r.stdout.trim()).toMatch(/^published \d+-\d+ 1 attempt 1$/);
  });
});
