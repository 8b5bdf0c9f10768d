/**
 * Helpers of the interop tests: a Python with redis-py, running the Python
 * publisher and the shell publisher as real processes, and one normal form of
 * what progresscast delivers so two publishers' output can be compared.
 */
import { execFileSync, spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Progress } from "../../src/index.ts";

export const root: string = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The first of `$PROGRESSCAST_PYTHON`, `python3`, `/usr/bin/python3` that can
 * import redis-py; `absent` when no python3 exists; `no-redis` when none has redis-py.
 */
export function findPython(): { path: string } | "absent" | "no-redis" {
  let found = false;
  const candidates = [process.env.PROGRESSCAST_PYTHON, "python3", "/usr/bin/python3"];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      found = true;
    } catch {
      continue;
    }
    try {
      execFileSync(candidate, ["-c", "import redis, redis.asyncio"], { stdio: "ignore" });
      return { path: candidate };
    } catch {}
  }
  return found ? "no-redis" : "absent";
}

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a process to its end (rejecting after `timeoutMs`), feeding `input` to stdin. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} did not finish in time\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Replace stream ids and the operation id so two operations' output compare equal. */
export function normalize(value: unknown, op: string): unknown {
  const text = JSON.stringify(value)
    .replace(/\d{10,}-\d+/g, "<id>")
    .split(op)
    .join("<op>");
  return JSON.parse(text);
}

/** Everything progresscast delivers for an ended operation: get, history, watch and SSE. */
export async function delivered(progress: Progress, op: string): Promise<Record<string, unknown>> {
  const watched: unknown[] = [];
  for await (const item of progress.watch(op)) watched.push(item);
  const response = await progress.sse(new Request(`http://localhost/progress/${op}`), op);
  const sse = (await response.text())
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith(":"))
    .join("\n");
  return normalize(
    { get: await progress.get(op), history: await progress.history(op), watch: watched, sse, status: response.status },
    op,
  ) as Record<string, unknown>;
}

export const DRIVER: string = join(root, "test", "interop", "py", "driver.py");
export const SHELL: string = join(root, "examples", "shell", "publish.sh");
export const PYTHONPATH: string = join(root, "python");
