/**
 * Helpers of the `progresscast serve` tests: the command bundled once (as
 * tsup builds it) and run as a real process, waiting for its `listening on`
 * line; an SSE reader over `fetch` and eventsource-parser.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { createParser, type EventSourceMessage } from "eventsource-parser";

export const root: string = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Build the command into its own folder; returns the bundle and a cleanup. */
export async function bundleCli(name: string): Promise<{ readonly file: string; readonly remove: () => void }> {
  const dir = join(root, "test", "artifacts", `${name}-${process.pid}-${Date.now().toString(36)}`);
  const file = join(dir, "index.js");
  await build({
    entryPoints: [join(root, "src", "cli", "index.ts")],
    outfile: file,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "silent",
  });
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A running `progresscast serve`. */
export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal's name) once the process ends. */
  readonly exited: Promise<number | string>;
  /** SIGKILL, if still running. */
  readonly kill: () => void;
}

const running = new Set<GatewayProcess>();

/** The environment of a child: this one's, without backend or secret settings. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "PROGRESSCAST_JWT_SECRET"]) {
    delete env[name];
  }
  return { ...env, ...extra };
}

/**
 * Start `node <bundle> serve --port 0 ...args` and resolve once it listens.
 *
 * @throws when it exits first, or does not listen within `timeoutMs`.
 */
export async function startGateway(
  bundle: string,
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [bundle, "serve", "--port", "0", ...args], {
    cwd: root,
    env: cleanEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the gateway did not listen within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    const check = (): void => {
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${code}) before listening\n${stdout}\n${stderr}`));
    });
  });
  const gateway: GatewayProcess = {
    url,
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
  running.add(gateway);
  void exited.then(() => running.delete(gateway));
  return gateway;
}

/** SIGKILL every gateway still running (for afterAll). */
export function killGateways(): void {
  for (const g of running) g.kill();
}

/** An open SSE response being read. */
export interface SseReader {
  readonly events: EventSourceMessage[];
  /** Resolves once `predicate` holds for the events so far. @throws after `timeoutMs`. */
  until(predicate: (events: readonly EventSourceMessage[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves with how the body ended: "end" (closed by the server) or "error". */
  readonly ended: Promise<"end" | "error">;
  cancel(): void;
}

/** Read an SSE response body with eventsource-parser. */
export function readSse(response: Response): SseReader {
  const events: EventSourceMessage[] = [];
  const waiters = new Set<() => void>();
  const parser = createParser({
    onEvent: (event) => {
      events.push(event);
      for (const w of waiters) w();
    },
  });
  const body = response.body;
  if (!body) throw new Error(`no body (status ${response.status})`);
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let finished = false;
  const ended = (async (): Promise<"end" | "error"> => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return "end";
        parser.feed(value);
      }
    } catch {
      return "error";
    } finally {
      finished = true;
      for (const w of waiters) w();
    }
  })();
  return {
    events,
    ended,
    cancel: () => void reader.cancel().catch(() => {}),
    until: (predicate, timeoutMs = 15_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`SSE: condition not met within ${timeoutMs} ms; events: ${JSON.stringify(events)}`));
        }, timeoutMs);
        function check(): void {
          if (predicate(events)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          } else if (finished) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`SSE: the stream ended first; events: ${JSON.stringify(events)}`));
          }
        }
        waiters.add(check);
        check();
      }),
  };
}

/** The parsed `data:` of an SSE event. */
export const data = (event: EventSourceMessage | undefined): Record<string, unknown> =>
  JSON.parse(event?.data ?? "null") as Record<string, unknown>;
