/**
 * `progresscast serve`: a ready gateway that hands progress to browsers over
 * SSE and WebSockets, authorized by signed tokens, for teams whose jobs and
 * API are not written in Node (a Celery worker and a FastAPI app mint the
 * tokens; see python/progresscast/token.py).
 *
 * Loaded only when the command runs: `jose`, `ws` and `prom-client` stay out
 * of every other command and of the library's entries.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { createProgress, type Logger, type Metrics, type Progress } from "../index.ts";
import { EXIT, flag, list, str, UsageError } from "./args.ts";
import { backendConfig, explain, openBackend, stderrLogger } from "./backend.ts";
import type { CommandContext } from "./commands.ts";
import { createGateway } from "./gateway.ts";
import { publicKey, secretKey, TokenVerifier } from "./token.ts";

/** Default port of the gateway. */
export const DEFAULT_PORT = 8080;

/** Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

function port(raw: string): number {
  const n = Number(raw);
  if (!/^\d{1,5}$/.test(raw) || n > 65_535)
    throw new UsageError(`--port must be 0 to 65535 (got ${JSON.stringify(raw)})`);
  return n;
}

function drainMs(raw: string | undefined): number {
  if (raw === undefined) return 10_000;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < 0 || n > 3600) {
    throw new UsageError(`--drain-timeout must be 0 to 3600 seconds (got ${JSON.stringify(raw)})`);
  }
  return Math.round(n * 1000);
}

function origins(values: readonly string[]): string[] {
  for (const origin of values) {
    if (origin === "*") continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || parsed.origin !== origin) {
      throw new UsageError(
        `--cors-origin takes an origin such as https://app.example.com (scheme, host, port; no path) or "*" (got ${JSON.stringify(origin)})`,
      );
    }
  }
  return [...values];
}

/** The token check from the options; undefined with --no-auth. @throws {UsageError} for a missing, weak or unusable key. */
function verifierFrom(ctx: CommandContext, host: string): TokenVerifier | undefined {
  const { values, io } = ctx;
  const secret = str(values, "jwt-secret") || io.env.PROGRESSCAST_JWT_SECRET || undefined;
  const keyFile = str(values, "jwt-public-key") || undefined;
  if (flag(values, "no-auth")) {
    if (secret !== undefined || keyFile !== undefined) {
      throw new UsageError("serve: --no-auth and a JWT key exclude each other", ctx.command);
    }
    if (!isLoopback(host)) {
      throw new UsageError(
        `serve: --no-auth lets anyone watch anything, so it is refused on ${host}; ` +
          "bind a loopback address (--host 127.0.0.1) or give --jwt-secret / --jwt-public-key",
        ctx.command,
      );
    }
    return undefined;
  }
  if (secret === undefined && keyFile === undefined) {
    throw new UsageError(
      "serve: give --jwt-secret (or PROGRESSCAST_JWT_SECRET) or --jwt-public-key to check tokens; " +
        "--no-auth serves without them, on a loopback host only",
      ctx.command,
    );
  }
  let pem: string | undefined;
  if (keyFile !== undefined) {
    try {
      pem = readFileSync(keyFile, "utf8");
    } catch (error) {
      throw new UsageError(`cannot read --jwt-public-key ${keyFile}: ${(error as Error).message}`);
    }
  }
  return new TokenVerifier({
    secret: secret === undefined ? undefined : secretKey(secret),
    publicKey: pem === undefined || keyFile === undefined ? undefined : publicKey(pem, keyFile),
  });
}

/** `/metrics` and connection gauges, when prom-client is installed. */
interface MetricsSetup {
  readonly sink: Metrics;
  readonly handler: (request: Request) => Promise<Response>;
  readonly onConnection: (transport: "sse" | "ws", delta: 1 | -1) => void;
}

async function loadMetrics(): Promise<MetricsSetup | undefined> {
  let prom: typeof import("prom-client");
  try {
    prom = await import("prom-client");
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code === "ERR_MODULE_NOT_FOUND") return undefined;
    throw error;
  }
  const { metricsHandler, prometheusMetrics } = await import("../prometheus/index.ts");
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry });
  const connections = new prom.Gauge({
    name: "progresscast_gateway_connections",
    help: "Open SSE streams and WebSockets of the gateway",
    labelNames: ["transport"] as const,
    registers: [registry],
  });
  connections.set({ transport: "sse" }, 0);
  connections.set({ transport: "ws" }, 0);
  return {
    sink: prometheusMetrics({ registry }),
    handler: metricsHandler(registry),
    onConnection: (transport, delta) => connections.inc({ transport }, delta),
  };
}

async function closeWithin(progress: Progress, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    progress.close().catch(() => {}),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** `serve`: the gateway, until SIGTERM or Ctrl-C; then a graceful shutdown and exit 0. */
export async function serve(ctx: CommandContext): Promise<number> {
  const { io, values } = ctx;
  const host = str(values, "host") ?? "127.0.0.1";
  const listenPort = port(str(values, "port") ?? String(DEFAULT_PORT));
  const drain = drainMs(str(values, "drain-timeout"));
  const corsOrigins = origins(list(values, "cors-origin"));
  // Everything that can be refused is refused before anything connects or binds.
  const verifier = verifierFrom(ctx, host);
  const config = backendConfig(values, io.env);
  const metrics = await loadMetrics();
  const logger: Logger = stderrLogger((line) => io.stderr.write(line));
  const sink = metrics ? { metrics: metrics.sink } : {};
  let progress: Progress;
  let where: string;
  let backend: Awaited<ReturnType<typeof openBackend>> | undefined;
  if (config === null) {
    progress = createProgress({ logger, ...sink });
    where = "memory backend";
    io.stderr.write(
      "progresscast: warning: no backend given: serving this process's memory backend, which no worker can reach; " +
        "pass --redis <url> (or set REDIS_URL)\n",
    );
  } else {
    backend = await openBackend(config, logger, sink);
    progress = backend.progress;
    where = backend.where;
  }
  try {
    // A wrong URL fails now, not at the first browser.
    await progress.get("healthz");
  } catch (error) {
    const { message, code } = explain(error, backend);
    io.stderr.write(`progresscast: ${message}\n`);
    await closeWithin(progress, 2000);
    return code;
  }
  const gateway = createGateway({
    progress,
    verifier,
    corsOrigins,
    metrics: metrics?.handler,
    onConnection: metrics?.onConnection,
    logger,
  });
  let address: { address: string; port: number };
  try {
    address = await gateway.listen(listenPort, host);
  } catch (error) {
    io.stderr.write(`progresscast: cannot listen on ${host}:${listenPort}: ${(error as Error).message}\n`);
    await closeWithin(progress, 2000);
    return EXIT.failure;
  }
  const shown = address.address.includes(":") ? `[${address.address}]` : address.address;
  const auth = verifier ? `tokens: ${verifier.algorithms.join(", ")}` : "no authorization (--no-auth)";
  io.stdout.write(`progresscast serve: listening on http://${shown}:${address.port} (${where}; ${auth})\n`);
  if (!metrics)
    io.stderr.write("progresscast: warning: /metrics needs the prom-client package: npm install prom-client\n");

  await new Promise<void>((resolve) => {
    if (io.signal === undefined) return;
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const open = gateway.open();
  io.stdout.write(
    `progresscast serve: shutting down: ending ${open.sse} stream${open.sse === 1 ? "" : "s"} and ` +
      `${open.ws} socket${open.ws === 1 ? "" : "s"}\n`,
  );
  await gateway.shutdown(drain);
  await closeWithin(progress, 2000);
  io.stdout.write("progresscast serve: stopped\n");
  return EXIT.ok;
}
