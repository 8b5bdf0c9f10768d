/**
 * Which backend the command talks to (flags, then environment), opening it,
 * and turning its failures into one clear line.
 *
 * @module
 */
import {
  createProgress,
  isBackendError,
  isConnectionClosedError,
  isProgressValidationError,
  isTimeoutError,
  type Logger,
  type Metrics,
  type Progress,
  type StreamPort,
} from "../index.ts";
import { EXIT, type OptionValues, str, UsageError } from "./args.ts";

/** How long a command waits for Redis before giving up: short, so a wrong URL fails fast. */
export const CONNECT_TIMEOUT_MS = 2000;

/** Where the backend is, before anything is opened. */
export type BackendConfig =
  | { readonly kind: "redis"; readonly url: string; readonly prefix: string | undefined }
  | {
      readonly kind: "redis-cluster";
      /** Seed nodes, as `redis://[user:pass@]host:port` (or `rediss://`) URLs. */
      readonly nodes: readonly string[];
      readonly prefix: string | undefined;
    }
  | { readonly kind: "upstash"; readonly url: string; readonly token: string; readonly prefix: string | undefined };

/** Environment variables the command reads. */
export type Env = Readonly<Record<string, string | undefined>>;

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === "" ? undefined : v);

/**
 * Seed nodes of a Redis Cluster from `host:port,host:port` (the
 * `--redis-cluster` form) or `redis+cluster://[user:pass@]host:port,host:port`
 * (`rediss+cluster://` for TLS), as one URL per node.
 *
 * @throws {UsageError} for an empty list or a node that is not `host:port`.
 * @example
 * ```ts
 * clusterNodes("redis+cluster://10.0.0.1:7000,10.0.0.2:7000"); // ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
 * ```
 */
export function clusterNodes(spec: string): string[] {
  let scheme = "redis";
  let auth = "";
  let list = spec;
  const url = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]*)\/?$/.exec(spec);
  if (url) {
    scheme = url[1] ?? "redis";
    auth = url[2] ? `${url[2]}@` : "";
    list = url[3] ?? "";
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new UsageError(
      `a Redis Cluster URL must start with redis+cluster:// or rediss+cluster:// (got ${JSON.stringify(spec)})`,
    );
  }
  const nodes = list.split(",").filter((n) => n !== "");
  if (nodes.length === 0) {
    throw new UsageError(`give the cluster's nodes as host:port,host:port (got ${JSON.stringify(spec)})`);
  }
  return nodes.map((node) => {
    if (!/^(\[[0-9a-f:.]+\]|[^\s:,/@[\]]+):\d{1,5}$/i.test(node)) {
      throw new UsageError(`a cluster node must be host:port (got ${JSON.stringify(node)})`);
    }
    return `${scheme}://${auth}${node}`;
  });
}

/**
 * Pick the backend: `--redis`, `--redis-cluster`, `--upstash-url`, then
 * `REDIS_URL` (a `redis+cluster://` URL means a cluster), then
 * `UPSTASH_REDIS_REST_URL`. Null when none is given.
 *
 * @throws {UsageError} for two backend flags at once, a URL of the wrong kind or a missing token.
 */
export function backendConfig(values: OptionValues, env: Env): BackendConfig | null {
  const prefix = str(values, "prefix");
  const redisFlag = nonEmpty(str(values, "redis"));
  const clusterFlag = nonEmpty(str(values, "redis-cluster"));
  const upstashFlag = nonEmpty(str(values, "upstash-url"));
  if ([redisFlag, clusterFlag, upstashFlag].filter((f) => f !== undefined).length > 1) {
    throw new UsageError("give one of --redis, --redis-cluster or --upstash-url");
  }
  if (clusterFlag !== undefined) return { kind: "redis-cluster", nodes: clusterNodes(clusterFlag), prefix };
  const redis =
    redisFlag ?? (upstashFlag === undefined && clusterFlag === undefined ? nonEmpty(env.REDIS_URL) : undefined);
  if (redis !== undefined && /^rediss?\+cluster:\/\//.test(redis)) {
    return { kind: "redis-cluster", nodes: clusterNodes(redis), prefix };
  }
  if (redis !== undefined) {
    if (!/^rediss?:\/\/\S+$/.test(redis)) {
      throw new UsageError(`the Redis URL must start with redis:// or rediss:// (got ${JSON.stringify(redis)})`);
    }
    return { kind: "redis", url: redis, prefix };
  }
  const url = upstashFlag ?? nonEmpty(env.UPSTASH_REDIS_REST_URL);
  if (url === undefined) return null;
  if (!/^https?:\/\/\S+$/.test(url)) {
    throw new UsageError(`the Upstash REST URL must start with https:// (got ${JSON.stringify(url)})`);
  }
  const token = nonEmpty(str(values, "upstash-token")) ?? nonEmpty(env.UPSTASH_REDIS_REST_TOKEN);
  if (token === undefined) {
    throw new UsageError("--upstash-url needs --upstash-token (or UPSTASH_REDIS_REST_TOKEN)");
  }
  return { kind: "upstash", url, token, prefix };
}

/** The message given when no backend is configured. */
export const NO_BACKEND =
  "no backend: pass --redis <url> (or set REDIS_URL), --redis-cluster <host:port,...>, or --upstash-url and --upstash-token " +
  "(or UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN). The in-memory backend cannot be shared between processes.";

/** A URL fit to print: no password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === "") return url;
    u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

/** An opened backend and what the command needs to explain its failures. */
export interface Backend {
  readonly progress: Progress;
  /** "Redis at redis://127.0.0.1:6379", "Redis Cluster at ..." or "Upstash at https://...". */
  readonly where: string;
  /** The last connection error the client reported, if any. */
  readonly connectionError: () => string | undefined;
}

/** A logger for long-running commands: one line per warning on stderr, at most one every 5 s. */
export function stderrLogger(write: (line: string) => void): Logger {
  let last = 0;
  const line = (message: string, fields: Readonly<Record<string, unknown>>): void => {
    const now = Date.now();
    if (now - last < 5000) return;
    last = now;
    const error = fields.error;
    write(`progresscast: warning: ${message}${error instanceof Error ? `: ${error.message}` : ""}\n`);
  };
  return { warn: line, error: line };
}

/**
 * Open the backend (lazily: the first command connects). The adapters are
 * imported only when chosen, so `redis` and `@upstash/redis` stay optional.
 * `extra.metrics` receives the manager's metrics (the gateway's `/metrics`).
 *
 * @throws {UsageError} when the chosen backend's client package is not installed.
 */
export async function openBackend(
  config: BackendConfig,
  logger: Logger,
  extra: { readonly metrics?: Metrics } = {},
): Promise<Backend> {
  let lastError: string | undefined;
  let port: StreamPort;
  let where: string;
  if (config.kind === "redis-cluster") {
    const { nodeRedis } = await importAdapter(
      () => import("../adapters/node-redis/index.ts"),
      "redis",
      "--redis-cluster needs the `redis` package: npm install redis",
    );
    where = `Redis Cluster at ${config.nodes.map(redact).join(",")}`;
    const first = new URL(config.nodes[0] ?? "redis://127.0.0.1:6379");
    port = nodeRedis({
      cluster: {
        rootNodes: config.nodes.map((url) => ({ url })),
        // Discovered nodes get credentials and TLS from the defaults, not from the seed URLs.
        defaults: {
          ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
          ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
          ...(first.protocol === "rediss:" ? { socket: { tls: true } } : {}),
        },
      },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      onConnectionError: (error) => {
        lastError = error.message || error.name;
      },
    });
  } else if (config.kind === "redis") {
    const { nodeRedis } = await importAdapter(
      () => import("../adapters/node-redis/index.ts"),
      "redis",
      "--redis needs the `redis` package: npm install redis",
    );
    where = `Redis at ${redact(config.url)}`;
    port = nodeRedis({
      url: config.url,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      onConnectionError: (error) => {
        lastError = error.message || error.name;
      },
    });
  } else {
    const { upstash } = await importAdapter(
      () => import("../adapters/upstash/index.ts"),
      "@upstash/redis",
      "--upstash-url needs the `@upstash/redis` package: npm install @upstash/redis",
    );
    where = `Upstash at ${config.url}`;
    port = upstash({ url: config.url, token: config.token, retry: { retries: 2, backoff: (n) => 100 * 2 ** n } });
  }
  const progress = createProgress({
    port,
    ...(config.prefix !== undefined ? { prefix: config.prefix } : {}),
    logger,
    ...(extra.metrics !== undefined ? { metrics: extra.metrics } : {}),
    // A command publishes what it is told, at once, and ends: nothing is held for a later retry
    // (a process about to exit cannot keep an outbox), so an unreachable backend fails the command now.
    throttle: false,
    retry: { deadlineMs: 0 },
    closeTimeoutMs: 0,
  });
  return { progress, where, connectionError: () => lastError };
}

async function importAdapter<T>(load: () => Promise<T>, pkg: string, hint: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === "ERR_MODULE_NOT_FOUND" && error instanceof Error && error.message.includes(`'${pkg}'`)) {
      throw new UsageError(hint);
    }
    throw error;
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
]);

/**
 * The network failure in a cause chain (ECONNREFUSED and the like), if any.
 * Some clients rethrow such failures without their cause: their message
 * (`fetch failed`, `connect ECONNREFUSED ...`) is all that is left to go on.
 */
function networkCause(error: unknown): Error | undefined {
  let e: unknown = error;
  let found: Error | undefined;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return e;
    if (/\bfetch failed\b|\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)\b/.test(e.message)) {
      found ??= e;
    }
    e = e.cause;
  }
  return found;
}

/** A failure as one line for stderr, and the exit status it calls for. */
export function explain(error: unknown, backend: Backend | undefined): { message: string; code: number } {
  if (error instanceof UsageError) return { message: error.message, code: EXIT.usage };
  if (isProgressValidationError(error)) return { message: error.message, code: EXIT.usage };
  const message = error instanceof Error ? error.message : String(error);
  if (backend !== undefined) {
    const network = networkCause(error);
    const connectionError = backend.connectionError();
    if (isTimeoutError(error) || isConnectionClosedError(error) || network !== undefined) {
      const why = network?.message ?? connectionError ?? message;
      const detail = why === message ? message : `${why} (${message})`;
      return { message: `cannot reach ${backend.where}: ${detail}`, code: EXIT.failure };
    }
    if (isBackendError(error)) return { message: `${backend.where} failed: ${message}`, code: EXIT.failure };
  }
  return { message, code: EXIT.failure };
}
