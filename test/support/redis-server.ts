/**
 * Starts a real `redis-server` on a free loopback port for a test run, and
 * stops it. Nothing is kept on disk unless persistence is asked for (then in
 * the server's own temporary folder, removed by `close`); nothing depends on
 * an earlier run. A port is only free when checked: when another process
 * takes it before redis-server binds it, the server exits at once, which is
 * noticed, and another port is tried.
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

/** A redis-server that did not come up: it exited, or did not get ready in time. */
export class RedisStartError extends Error {
  override name = "RedisStartError";
  /** Whether it could not bind a port because something else holds it: start it again on other ports. */
  readonly portInUse: boolean;
  constructor(message: string, portInUse: boolean) {
    super(message);
    this.portInUse = portInUse;
  }
}

/** Redis logs this once it listens on every port it was given. */
const READY = "Ready to accept connections";
const IN_USE = "Address already in use";

/**
 * Spawn `redis-server` with `args` and resolve with the process once it has
 * logged that it accepts connections (so it bound every port itself: a server
 * another process started on the same port does not count) and `port`
 * answers. Its log goes to a pipe read here, of which the tail is kept for
 * errors.
 *
 * @throws {RedisStartError} as soon as the process exits before it is ready
 *   (`portInUse` when a port was taken, the log's last lines in the message),
 *   or when it is not ready within `timeoutMs` (then it is killed).
 */
export async function launchRedis(args: readonly string[], port: number, timeoutMs = 10_000): Promise<ChildProcess> {
  // Logging to stdout is forced (after the caller's args, so it wins): readiness is read from the log.
  const child = spawn("redis-server", [...args, "--logfile", "", "--daemonize", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const tail = (): string => log.trim().split("\n").slice(-4).join("\n");
      const keep = (chunk: Buffer): void => {
        // Read for the process's whole life, so a full pipe never blocks it; keep only a tail.
        log = (log + chunk.toString("utf8")).slice(-8192);
        if (log.includes(READY)) resolve();
      };
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      child.once("error", (error) =>
        reject(new RedisStartError(`redis-server could not be run: ${error.message}`, false)),
      );
      child.once("exit", (code, signal) => {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        reject(
          new RedisStartError(
            `redis-server on port ${port} ${how} before accepting connections:\n${tail()}`,
            log.includes(IN_USE),
          ),
        );
      });
      timer = setTimeout(() => {
        reject(
          new RedisStartError(`redis-server on port ${port} was not ready within ${timeoutMs} ms:\n${tail()}`, false),
        );
      }, timeoutMs);
    });
    await waitForPort(port, true, timeoutMs);
    return child;
  } catch (error) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /**
   * `"aof"`: an append-only file with `appendfsync always`, so every write
   * Redis answered survives a SIGKILL and a `start()`. `"none"` keeps nothing.
   * @default "none"
   */
  readonly persistence?: "none" | "aof";
  /**
   * Picks the port to try. A port is only free when checked: another process
   * may take it before redis-server binds it, and then another pick is tried.
   * @default freePort
   */
  readonly pickPort?: () => Promise<number>;
  /**
   * How many ports to try when the picked one turns out taken.
   * @default 5
   */
  readonly attempts?: number;
}

/**
 * Start a redis-server on a free loopback port. Extra args are passed through.
 *
 * @throws {RedisStartError} when it exits for another reason than a taken
 *   port, is not ready within 10 s, or every one of `attempts` ports was taken.
 */
export async function startRedis(
  extraArgs: readonly string[] = [],
  options: StartRedisOptions = {},
): Promise<RedisServer> {
  assertRedisInstalled();
  const pickPort = options.pickPort ?? freePort;
  const attempts = options.attempts ?? 5;
  const dir = mkdtempSync(join(tmpdir(), "progresscast-redis-"));
  const args = (port: number): string[] => [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    ...(options.persistence === "aof" ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]),
    "--dir",
    dir,
    ...extraArgs,
  ];
  let child: ChildProcess | undefined;
  let port = 0;
  const tried: number[] = [];
  for (;;) {
    port = await pickPort();
    tried.push(port);
    try {
      child = await launchRedis(args(port), port);
      break;
    } catch (error) {
      const retry = error instanceof RedisStartError && error.portInUse && tried.length < attempts;
      if (!retry) {
        rmSync(dir, { recursive: true, force: true });
        if (error instanceof RedisStartError && error.portInUse) {
          throw new RedisStartError(`redis-server found every port it tried taken (${tried.join(", ")})`, true);
        }
        throw error;
      }
    }
  }
  const start = async (): Promise<void> => {
    // The same port again: clients of this server know it, so a taken port is an error here.
    child = await launchRedis(args(port), port);
  };
  const stop = async (options?: { crash?: boolean }): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill(options?.crash ? "SIGKILL" : "SIGTERM");
    await exited;
    await waitForPort(port, false);
  };
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
