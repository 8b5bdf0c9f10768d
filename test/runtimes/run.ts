/**
 * Run a command to completion for the runtime tests, collecting its output
 * (stdout and stderr interleaved, colours off) to print when it fails.
 */
import { spawn } from "node:child_process";

export interface RunResult {
  /** Exit code; null when killed (by the timeout). */
  readonly code: number | null;
  readonly output: string;
}

export async function run(
  command: string,
  args: readonly string[],
  options: { readonly env?: Record<string, string>; readonly timeoutMs?: number; readonly cwd?: string } = {},
): Promise<RunResult> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? process.cwd(),
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const timer = setTimeout(() => {
    output += `\n[killed after ${options.timeoutMs} ms]\n`;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 60_000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c) => resolve(c));
    });
    return { code, output };
  } finally {
    clearTimeout(timer);
  }
}
