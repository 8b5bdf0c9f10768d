/**
 * Runs an example as a user would: a child process (`tsx`, with
 * examples/tsconfig.json mapping `progresscast/...` to the sources), waiting
 * for its `listening on <url>` line.
 */
import { type ChildProcess, spawn } from "node:child_process";

export interface Running {
  readonly url: string;
  readonly output: () => string;
  /** Whether the process is still running. */
  readonly alive: () => boolean;
  stop(): Promise<void>;
}

export const TSX = "node_modules/.bin/tsx";

export function spawnExample(command: string, args: readonly string[], env: Record<string, string>): ChildProcess {
  return spawn(command, args, { env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
}

/** Starts `examples/<file>` and resolves once its output matches `ready` (by default `listening on <url>`), with the first group. */
export async function startExample(
  file: string,
  env: Record<string, string>,
  command: readonly string[] = [TSX, "--tsconfig", "examples/tsconfig.json"],
  ready: RegExp = /listening on (http:\/\/\S+?)\/?(\s|$)/,
  timeoutMs = 120_000,
): Promise<Running> {
  const [bin = TSX, ...pre] = command;
  const child = spawnExample(bin, [...pre, file], { PORT: "0", ...env });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not listen in time:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString("utf8");
      const m = ready.exec(output);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code}:\n${output}`));
    });
  });
  return {
    url,
    output: () => output,
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs `examples/<file>` to completion. */
export async function runExample(
  file: string,
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ code: number | null; output: string }> {
  const child = spawnExample(TSX, ["--tsconfig", "examples/tsconfig.json", file], env);
  let output = "";
  child.stdout?.on("data", (c: Buffer) => (output += c.toString("utf8")));
  child.stderr?.on("data", (c: Buffer) => (output += c.toString("utf8")));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, output };
}
