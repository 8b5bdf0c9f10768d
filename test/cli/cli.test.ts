/**
 * The `progresscast` command, run as a real process (tsx on the sources)
 * against a real redis-server.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { type CliIo, main } from "../../src/cli/main.ts";
import { createProgress, type Progress, silentLogger } from "../../src/index.ts";
import { freePort, type RedisServer, startRedis } from "../support/redis-server.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TSX = join(root, "node_modules", ".bin", "tsx");
const CLI = join(root, "src", "cli", "index.ts");
/**
 * The command bundled once from the same sources, as tsup builds it: tsx costs
 * about a second of CPU per process (several seconds of wall time on a busy
 * machine), plain node a fifth of that. One case runs the sources with tsx.
 */
const artifacts = join(root, "test", "artifacts", `cli-${process.pid}-${Date.now().toString(36)}`);
const BUNDLE = join(artifacts, "index.js");

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

interface Running {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  /** Output so far. */
  readonly out: () => string;
  /** Resolves once stdout matches. */
  readonly until: (pattern: RegExp, timeoutMs?: number) => Promise<void>;
  /** Resolves when the process exits by itself; rejects after `timeoutMs`. */
  readonly exit: (timeoutMs?: number) => Promise<Result>;
}

const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();

/** The environment of a child: this one's, without any backend settings. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ["REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"]) {
    if (!(name in extra)) delete env[name];
  }
  return env;
}

function start(
  args: readonly string[],
  env: Record<string, string> = {},
  command: readonly string[] = [process.execPath, BUNDLE],
): Running {
  const started = performance.now();
  const [file = "", ...pre] = command;
  const child = spawn(file, [...pre, ...args], { cwd: root, env: cleanEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    for (const l of listeners) l();
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<Result>((resolve) => {
    child.on("close", (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
  const within = <T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} within ${timeoutMs} ms; stdout: ${stdout}\nstderr: ${stderr}`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  };
  return {
    child,
    out: () => stdout,
    until: (pattern, timeoutMs = 20_000) =>
      within(
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (pattern.test(stdout)) {
              listeners.delete(check);
              resolve();
            }
          };
          listeners.add(check);
          check();
        }),
        timeoutMs,
        `no output matching ${pattern}`,
      ),
    exit: (timeoutMs = 25_000) => within(exited, timeoutMs, "the process did not exit"),
  };
}

const run = (args: readonly string[], env: Record<string, string> = {}): Promise<Result> => start(args, env).exit();

let server: RedisServer;
let progress: Progress;
const prefix = `cli${Math.random().toString(36).slice(2, 8)}`;
let backend: string[];

beforeAll(async () => {
  await build({
    entryPoints: [CLI],
    outfile: BUNDLE,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "silent",
  });
  server = await startRedis();
  backend = ["--redis", server.url, "--prefix", prefix];
  progress = createProgress({
    port: nodeRedis({ url: server.url, connectTimeoutMs: 2000 }),
    prefix,
    throttle: false,
    estimate: false,
    logger: silentLogger,
  });
});

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await progress?.close();
  await server?.close();
  rmSync(artifacts, { recursive: true, force: true });
});

/** Run `main` in this process, as the command would with these arguments. */
async function inProcess(
  args: readonly string[],
  options: { env?: Record<string, string>; signal?: AbortSignal; onOutput?: (stdout: string) => void } = {},
): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: {
      write: (chunk: string) => {
        stdout += chunk;
        options.onOutput?.(stdout);
      },
    },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env: options.env ?? {},
    signal: options.signal,
  };
  const started = performance.now();
  const code = await main(args, io);
  return { code, stdout, stderr, ms: performance.now() - started };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Items of `watch --json` output. */
type Item = { kind: string; snapshot?: unknown; event?: Record<string, unknown> & { seq?: number; op?: string } };
const items = (stdout: string): Item[] =>
  stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Item);

// The scenarios of the command's users run as real processes; variations of
// them call `main` in this process, against the same Redis.
describe.concurrent("progresscast command, as a process", { timeout: 45_000 }, () => {
  it("publishes, then inspect shows the snapshot and the history (table and --json)", async ({ expect }) => {
    const first = await run([
      "publish",
      "job-a",
      "--progress",
      "40",
      "--message",
      "Chunked 40 of 100",
      "--scope",
      "team-a",
      ...backend,
    ]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^published job-a: seq 1, id \d+-\d+\n$/);

    const second = await inProcess([
      "publish",
      "job-a",
      "--current",
      "60",
      "--total",
      "100",
      "--type",
      "file_completed",
      "--data",
      '{"file":"a.csv"}',
      "--cid",
      "req-1",
      "--json",
      ...backend,
    ]);
    expect(second.code).toBe(0);
    const result = JSON.parse(second.stdout) as { ok: boolean; outcome: string; seq: number; id: string };
    expect(result).toMatchObject({ ok: true, outcome: "published", seq: 2, cancelled: null });

    const table = await run(["inspect", "job-a", ...backend]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^operation\s+job-a$/m);
    expect(table.stdout).toMatch(/^status\s+running$/m);
    expect(table.stdout).toMatch(/^progress\s+60%/m);
    expect(table.stdout).toMatch(/^cid\s+req-1$/m);
    expect(table.stdout).toMatch(/^history: 2 events$/m);
    expect(table.stdout).toMatch(/^attempt\s+1$/m);
    expect(table.stdout).toMatch(/^ID\s+SEQ\s+ATTEMPT\s+TIME\s+TYPE\s+STATUS\s+PROGRESS\s+COUNT\s+MESSAGE$/m);
    expect(table.stdout).toMatch(/\s1\s+1\s+\S+Z\s+progress\s+running\s+40%\s+Chunked 40 of 100$/m);
    expect(table.stdout).toMatch(
      new RegExp(`^${result.id}\\s+2\\s+1\\s+\\S+Z\\s+file_completed\\s+running\\s+60%\\s+60/100$`, "m"),
    );

    const json = await inProcess(["inspect", "job-a", "--json", ...backend]);
    expect(json.code).toBe(0);
    const inspected = JSON.parse(json.stdout) as {
      snapshot: Record<string, unknown>;
      history: Array<Record<string, unknown>>;
    };
    expect(inspected.snapshot).toMatchObject({
      op: "job-a",
      seq: 2,
      status: "running",
      progress: 60,
      message: "Chunked 40 of 100",
      data: { file: "a.csv" },
      id: result.id,
    });
    expect(inspected.history.map((e) => e.seq)).toEqual([1, 2]);
    expect(inspected.history[1]).toMatchObject({ type: "file_completed", cid: "req-1", current: 60, total: 100 });
  });

  it("refuses bad input with a non-zero exit and a message naming the field", async ({ expect }) => {
    const r = await run(["publish", "job-bad", "--progress", "140", ...backend]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("progresscast: Invalid progress: must be a finite number from 0 to 100 (got 140)\n");
    expect(r.stdout).toBe("");
    expect(await progress.get("job-bad")).toBeNull();
  });

  it("cancel marks the operation; the job learns it on its next publish", async ({ expect }) => {
    // The operation must exist to be cancelled: on a busy machine the first write may time out, so try again.
    let published = await progress.publish("job-c", { progress: 10, message: "working" });
    for (let i = 0; i < 10 && !published.ok; i++) published = await progress.publish("job-c", { progress: 10 });
    expect(published).toMatchObject({ ok: true });
    const cancelled = await run(["cancel", "job-c", "--reason", "user pressed cancel", ...backend]);
    expect(cancelled.stderr).toBe("");
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe("cancel requested: job-c (user pressed cancel)\n");
    expect((await progress.get("job-c"))?.cancel).toBe("user pressed cancel");
    const r = await progress.publish("job-c", { progress: 20 });
    expect(r.ok && r.cancelled).toBe("user pressed cancel");
  });

  it("watch --json prints the snapshot and each event, and exits 0 by itself when the job completes", async ({
    expect,
  }) => {
    const watcher = start(["watch", "job-w", "--json", ...backend]);
    await watcher.until(/"kind":"snapshot"/);
    for (const p of [25, 50, 75]) {
      await progress.publish("job-w", { progress: p, message: `at ${p}` });
      await pause(20);
    }
    await progress.publish("job-w", { type: "file_completed", message: "a.csv", data: { rows: 3 } });
    const done = await progress.publish("job-w", { status: "completed", message: "done" });
    const result = await watcher.exit();
    expect(result.code, result.stderr).toBe(0);
    const all = items(result.stdout);
    expect(all[0]).toEqual({ kind: "snapshot", snapshot: null });
    expect(all.slice(1).every((i) => i.kind === "event")).toBe(true);
    const events = all.slice(1).map((i) => i.event ?? {});
    expect(events.map((e) => e.progress)).toEqual([25, 50, 75, undefined, 100]);
    expect(events[3]).toMatchObject({ type: "file_completed", message: "a.csv", data: { rows: 3 } });
    expect(events[4]).toMatchObject({ status: "completed", message: "done", id: done.ok ? done.id : "?" });

    // Resuming after the second event: the snapshot, then only what came later.
    const resumed = await inProcess(["watch", "job-w", "--json", "--after", String(events[1]?.id), ...backend]);
    expect(resumed.code).toBe(0);
    const later = items(resumed.stdout);
    expect(later[0]?.kind).toBe("snapshot");
    expect(later.slice(1).map((i) => i.event?.seq)).toEqual([3, 4, 5]);
  });

  it("watch draws a progress bar that ends at 100%", async ({ expect }) => {
    const watcher = start(["watch", "job-b", ...backend]);
    await watcher.until(/job-b {2}waiting for the first event/);
    await progress.publish("job-b", { current: 0, total: 4, message: "starting" });
    for (let i = 1; i <= 4; i++) {
      await pause(20);
      await progress.publish("job-b", { current: i, total: 4, message: `row ${i}` });
    }
    await progress.publish("job-b", { status: "completed", message: "all rows" });
    const result = await watcher.exit();
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toContain("job-b  [##########----------]  50%  running  2/4  row 2");
    expect(lines[lines.length - 1]).toBe("job-b  [####################]  100%  completed  4/4  all rows");
  });

  it("watch --scope follows every operation of the scope until Ctrl-C (exit status 130)", async ({ expect }) => {
    const watcher = start(["watch", "--scope", "team-w", "--json", ...backend]);
    await progress.publish("job-s1", { progress: 10 }, { scope: "team-w" });
    await progress.publish("job-s2", { progress: 20 }, { scope: "team-w" });
    await watcher.until(/"op":"job-s2"/);
    watcher.child.kill("SIGINT");
    const result = await watcher.exit();
    expect(result.code).toBe(130);
    expect(items(result.stdout).map((i) => i.event?.op)).toEqual(["job-s1", "job-s2"]);
  });

  it("exits 2 with the usage for an unknown command (run from the sources with tsx)", async ({ expect }) => {
    const unknown = await start(["frobnicate", "x"], {}, [TSX, CLI]).exit();
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^progresscast: unknown command "frobnicate"\n/);
    expect(unknown.stderr).toMatch(/^Usage: progresscast <command> \[options\]$/m);
    expect(unknown.stdout).toBe("");
  });
});

describe.concurrent("progresscast command, in process", () => {
  it("names the bad field of a publish, before connecting anywhere", async ({ expect }) => {
    const cases: Array<[string[], string]> = [
      [["--progress", "lots"], 'Invalid progress: must be a number (got "lots")'],
      [["--status", "done"], "Invalid status: must be one of queued, running, completed, failed, cancelled"],
      [["--data", "{not json"], "Invalid data: must be a JSON object"],
      [["--data", "[1]"], "Invalid data: must be a JSON object"],
      [["--current", "7", "--total", "5"], "Invalid current: must not exceed total (5) (got 7)"],
      [["--total", "1.5"], "Invalid total: must be a non-negative integer (got 1.5)"],
      [["--type", "9lives"], "Invalid type:"],
      [["--scope", "a b"], "Invalid scope:"],
    ];
    for (const [args, message] of cases) {
      const r = await inProcess(["publish", "job-bad", ...args, "--redis", "redis://127.0.0.1:1"]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.startsWith(`progresscast: ${message}`), r.stderr).toBe(true);
      expect(r.ms).toBeLessThan(1000);
    }
    const badOp = await inProcess(["inspect", "{job}", ...backend]);
    expect(badOp.code).toBe(2);
    expect(badOp.stderr).toMatch(/^progresscast: Invalid op:/);
  });

  it("refused publishes exit 3; --allow-backwards lets one through", async ({ expect }) => {
    expect((await inProcess(["publish", "job-r", "--progress", "50", ...backend])).code).toBe(0);
    const back = await inProcess(["publish", "job-r", "--progress", "20", ...backend]);
    expect(back.code).toBe(3);
    expect(back.stderr).toMatch(/refused: progress of job-r would move backwards.*--allow-backwards/);
    expect((await inProcess(["publish", "job-r", "--progress", "20", "--allow-backwards", ...backend])).code).toBe(0);
    expect((await inProcess(["publish", "job-r", "--status", "completed", ...backend])).code).toBe(0);
    const after = await inProcess(["publish", "job-r", "--progress", "99", "--json", ...backend]);
    expect(after.code).toBe(3);
    expect(JSON.parse(after.stdout)).toMatchObject({ ok: false, outcome: "refused", reason: "terminal" });
  });

  it("publish reports a cancellation request; cancel of an ended operation exits 3", async ({ expect }) => {
    await progress.publish("job-k", { progress: 5 });
    expect((await inProcess(["cancel", "job-k", "--json", ...backend])).stdout).toBe(
      '{"op":"job-k","cancelled":true,"reason":"cancelled"}\n',
    );
    const r = await inProcess(["publish", "job-k", "--progress", "6", ...backend]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("progresscast: job-k was asked to stop: cancelled\n");
    await progress.publish("job-k", { status: "cancelled" });
    const again = await inProcess(["cancel", "job-k", ...backend]);
    expect(again.code).toBe(3);
    expect(again.stderr).toBe("progresscast: job-k already ended: nothing to cancel\n");
  });

  it("an --after that is not an event id exits 2, naming it, before reaching Redis", async ({ expect }) => {
    for (const command of ["inspect", "watch"]) {
      const r = await inProcess([command, "job-a", "--after", "yesterday", ...backend]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^progresscast: Invalid after: must be a stream entry id/);
    }
  });

  it("cancel of an unknown operation (a typo) exits 3 and writes nothing", async ({ expect }) => {
    const r = await inProcess(["cancel", "job-typo", ...backend]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('progresscast: no operation "job-typo" (unknown, or expired): nothing to cancel\n');
    expect(await progress.get("job-typo")).toBeNull();
    // A real job started later under that id is not told to stop.
    const published = await progress.publish("job-typo", { status: "queued" });
    expect(published).toMatchObject({ ok: true, cancelled: null });
  });

  it("inspect: --limit, --scope, and an unknown operation", async ({ expect }) => {
    for (let i = 1; i <= 3; i++) await progress.publish("job-i", { progress: i * 10 }, { scope: "team-i" });
    const limited = await inProcess(["inspect", "job-i", "--limit", "2", ...backend]);
    expect(limited.stdout).toMatch(/^history: 2 events$/m);
    expect(limited.stdout).toMatch(/^\(the first 2 shown: --after \d+-\d+ for more\)$/m);
    const scope = JSON.parse((await inProcess(["inspect", "--scope", "team-i", "--json", ...backend])).stdout);
    expect(scope).toMatchObject({ scope: "team-i", history: [{ seq: 1 }, { seq: 2 }, { seq: 3 }] });
    const unknown = await inProcess(["inspect", "no-such-job", ...backend]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('progresscast: no operation "no-such-job" (unknown, or expired)\n');
    const badLimit = await inProcess(["inspect", "job-i", "--limit", "0", ...backend]);
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toMatch(/Invalid limit/);
  });

  it("inspect shows the attempt of a retried operation, in the snapshot and in the history (also of a scope)", async ({
    expect,
  }) => {
    await progress.publish("job-retried", { progress: 70, message: "Step 7" }, { scope: "team-retried" });
    await progress.publish(
      "job-retried",
      { type: "retry", status: "queued", message: "disk full" },
      { restart: true, scope: "team-retried" },
    );
    await progress.publish("job-retried", { status: "running", progress: 0 }, { scope: "team-retried" });
    const shown = await inProcess(["inspect", "job-retried", ...backend]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^attempt\s+2$/m);
    expect(shown.stdout, shown.stdout).toMatch(/^\S+\s+2\s+2\s+\S+Z\s+retry\s+queued\s+disk full$/m);
    expect(shown.stdout).toMatch(/^\S+\s+3\s+2\s+\S+Z\s+progress\s+running\s+0%\s*$/m);
    const scope = await inProcess(["inspect", "--scope", "team-retried", ...backend]);
    expect(scope.stdout).toMatch(/^ID\s+OP\s+SEQ\s+ATTEMPT\s+TIME/m);
    expect(scope.stdout).toMatch(/^\S+\s+job-retried\s+1\s+1\s+\S+Z\s+progress\s+running\s+70%\s+Step 7$/m);
    expect(scope.stdout).toMatch(/^\S+\s+job-retried\s+2\s+2\s+\S+Z\s+retry\s+queued\s+disk full$/m);
  });

  it("watch exits 1 for a failed job, skips the history the snapshot covers, and stops on abort", async ({
    expect,
  }) => {
    await progress.publish("job-f", { progress: 30 });
    await progress.publish("job-f", { status: "failed", message: "disk full" });
    const failed = await inProcess(["watch", "job-f", ...backend]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe("job-f  [######--------------]  30%  failed  disk full\n");

    const controller = new AbortController();
    const watching = inProcess(["watch", "job-never", ...backend], {
      signal: controller.signal,
      onOutput: (out) => {
        if (out.includes("waiting")) controller.abort();
      },
    });
    const r = await watching;
    expect(r.code).toBe(130);
  });

  it("usage errors exit 2: unknown option, missing operand, no backend, both backends", async ({ expect }) => {
    const flag = await inProcess(["inspect", "job-a", "--frob", ...backend]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^progresscast: Unknown option '--frob'/);
    expect(flag.stderr).toMatch(/^Usage: progresscast inspect <op>/m);
    const missing = await inProcess(["publish", ...backend]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing the operation id/);
    const none = await inProcess(["inspect", "job-a"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^progresscast: no backend: pass --redis <url> \(or set REDIS_URL\)/);
    const both = await inProcess(["inspect", "job-a", "--redis", server.url, "--upstash-url", "https://x.io"]);
    expect(both.code).toBe(2);
    const noToken = await inProcess(["inspect", "job-a", "--upstash-url", "https://x.io"]);
    expect(noToken.stderr).toMatch(/--upstash-token/);
    const nothing = await inProcess([]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/Usage: progresscast <command>/);
    const scopeAndOp = await inProcess(["watch", "job-a", "--scope", "s", ...backend]);
    expect(scopeAndOp.code).toBe(2);
  });

  it("prints help for each command, and reads REDIS_URL from the environment", async ({ expect }) => {
    for (const args of [
      ["--help"],
      ["watch", "--help"],
      ["publish", "-h"],
      ["help", "inspect"],
      ["cancel", "--help"],
    ]) {
      const h = await inProcess(args);
      expect(h.code).toBe(0);
      expect(h.stdout).toMatch(/^Usage: progresscast/);
    }
    expect((await inProcess(["publish", "--help"])).stdout).toMatch(/--progress <n>/);
    const viaEnv = await inProcess(["publish", "job-env", "--progress", "5", "--prefix", prefix], {
      env: { REDIS_URL: server.url },
    });
    expect(viaEnv.code).toBe(0);
    expect((await progress.get("job-env"))?.progress).toBe(5);
  });

  it("fails fast, in one line, when Redis cannot be reached", async ({ expect }) => {
    const url = `redis://user:secret@127.0.0.1:${await freePort()}`;
    const results = await Promise.all([
      inProcess(["publish", "job-x", "--status", "completed", "--redis", url]),
      inProcess(["cancel", "job-x", "--redis", url]),
      inProcess(["watch", "job-x", "--redis", url]),
    ]);
    for (const r of results) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^progresscast: cannot reach Redis at redis:\/\/user:\*\*\*@127\.0\.0\.1:\d+: .*\n$/);
      expect(r.stderr).not.toMatch(/secret/);
      expect(r.ms).toBeLessThan(4000);
    }
  });

  it("demo runs the repository's demo until Ctrl-C", async ({ expect }) => {
    const controller = new AbortController();
    let url: string | undefined;
    const result = await inProcess(["demo", "--port", "0"], {
      signal: controller.signal,
      onOutput: (out) => {
        url ??= /listening on (http:\/\/\S+)/.exec(out)?.[1];
        if (url !== undefined) controller.abort();
      },
    });
    expect(url, result.stdout + result.stderr).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(result.code).toBe(130);
  });
});

// Alone, so that its timing does not depend on the other processes.
describe("progresscast command, unreachable Redis", () => {
  it("fails with one clear line when Redis cannot be reached", async ({ expect }) => {
    const url = `redis://127.0.0.1:${await freePort()}`; // nothing listens there
    const r = await run(["inspect", "job-x", "--redis", url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^progresscast: cannot reach Redis at ${url}: connect ECONNREFUSED .*\\n$`));
    expect(r.ms).toBeLessThan(5000);
  });
});
