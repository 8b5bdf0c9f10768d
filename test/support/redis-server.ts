/**
 * Starts a real `redis-server` on a free loopback port for a test run, and
 * stops it. Nothing is kept on disk unless persistence is asked for (then in
 * the server's own temporary folder, removed by `close`); nothing depends on
 * an earlier run.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stop the server (SIGKILL when `crash`), keeping the port for `start`. */
  stop(options?: { crash?: boolean }): Promise<void>;
  /** Start it again on the same port: empty, or with what its append-only file kept (`persistence: "aof"`). */
  start(): Promise<void>;
  /** Stop for good and remove its folder. */
  close(): Promise<void>;
}

export function assertRedisInstalled(): void {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error(
      "redis-server is not installed. The test suite starts its own Redis servers; install one with " +
        "`sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), then run `npm test` again.",
    );
  }
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, up: boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1");
    });
    if (open === up) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not ${up ? "start" : "stop"} within ${timeoutMs} ms`);
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /**
   * `"aof"`: an append-only file with `appendfsync always`, so every write
   * Redis answered survives a SIGKILL and a `start()`. `"none"` keeps nothing.
   * @default "none"
   */
  readonly persistence?: "none" | "aof";
}

/** Start a redis-server on a free loopback port. Extra args are passed through. */
export async function startRedis(
  extraArgs: readonly string[] = [],
  options: StartRedisOptions = {},
): Promise<RedisServer> {
  assertRedisInstalled();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "progresscast-redis-"));
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        ...(options.persistence === "aof"
          ? ["--appendonly", "yes", "--appendfsync", "always"]
          : ["--appendonly", "no"]),
        "--dir",
        dir,
        ...extraArgs,
      ],
      { stdio: "ignore" },
    );
    await waitForPort(port, true);
  };
  const stop = async (options?: { crash?: boolean }): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill(options?.crash ? "SIGKILL" : "SIGTERM");
    await exited;
    await waitForPort(port, false);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    async close() {
      await stop({ crash: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
