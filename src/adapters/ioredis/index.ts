/**
 * The ioredis backend: the `ioredis` package over TCP, the client BullMQ
 * already runs. A publish is one round trip (one Lua script, EVALSHA first,
 * EVAL on NOSCRIPT) sent as one prebuilt command with one argument array;
 * waiting for new entries is one blocking XREAD over every watched key on a
 * dedicated connection, with a client-side deadline.
 *
 * @module
 */
import { Redis } from "ioredis";
import { ConnectionClosedError, ProgressValidationError, TimeoutError } from "../../core/errors.ts";
import type {
  AppendResult,
  Cursor,
  KeyEntries,
  LiveHandler,
  LiveSubscription,
  StreamPort,
} from "../../core/port/port.ts";
import { appendCall, decodeAppendCall } from "../../redis/append.ts";
import { type RedisCalls, redisMethods, toKeyEntries, xreadArgs } from "../../redis/calls.ts";
import { blockTimeout, silentFor, withDeadline } from "../../redis/deadline.ts";
import { namingWrongType } from "../../redis/errors.ts";
import { type OpenSubscriber, redisLive } from "../../redis/live.ts";
import { type IoRedisClusterClient, type IoRedisClusterConfig, ioredisCluster, isIoRedisCluster } from "./cluster.ts";
import { quitOrDisconnect, readiness, sendArgs, sender } from "./replies.ts";

export type { IoRedisClusterClient, IoRedisClusterConfig } from "./cluster.ts";

/**
 * The part of an ioredis client (`new Redis(...)`, v5 or v6) this adapter
 * calls, typed structurally so any compatible client fits.
 */
export interface IoRedisClient {
  /** `wait`, `connecting`, `connect`, `ready`, `reconnecting`, `close`, `end`. */
  readonly status: string;
  call(command: string, args: (string | number)[]): Promise<unknown>;
  connect(): Promise<unknown>;
  duplicate(override?: Record<string, unknown>): IoRedisClient;
  disconnect(reconnect?: boolean): void;
  quit(): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "ready" | "end", listener: () => void): unknown;
  off(event: "ready" | "end", listener: () => void): unknown;
}

/** What a subscriber connection (a duplicate of the client) is called with. */
interface IoRedisSubscriberClient extends IoRedisClient {
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  on(event: "message", listener: (channel: string, message: string) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "ready" | "end" | "close", listener: () => void): unknown;
}

/** Options of {@link ioredis}: a URL, a client you built, or a Redis Cluster to connect to. */
export type IoRedisOptions = (
  | {
      /** Redis URL, e.g. `redis://127.0.0.1:6379`. The adapter opens and closes its connections. */
      readonly url: string;
      readonly client?: undefined;
      readonly cluster?: undefined;
    }
  | {
      /**
       * An ioredis client you created: `new Redis(...)` or `new Cluster(...)`.
       * It is connected if needed and never closed by the adapter; blocking
       * reads (and, for a Cluster without `shardedSubscribers`, wake-up
       * subscriptions) use duplicates the adapter owns. Its `keyPrefix` is not
       * applied: give `createProgress` a `prefix` instead.
       */
      readonly client: IoRedisClient | IoRedisClusterClient;
      readonly url?: undefined;
      readonly cluster?: undefined;
    }
  | {
      /**
       * Redis Cluster: the seed nodes and options of the ioredis `Cluster` the
       * adapter creates (with sharded subscribers) and closes.
       */
      readonly cluster: IoRedisClusterConfig;
      readonly url?: undefined;
      readonly client?: undefined;
    }
) & {
  /**
   * How long a command waits for the first connection before failing. Once a
   * connection was ready, a command sent while it is down fails at once
   * (the core retries terminal events), never waits in a queue.
   * @default 5000
   */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * Added to a blocking read's `blockMs` to make its client-side deadline (on
   * a cluster: the deadline of each non-blocking read). A connection that
   * stays silent past it is taken for dead: it is closed and a new one is
   * opened (after the caller's jittered backoff) for the next read.
   * @default 2000
   */
  readonly blockMarginMs?: number | undefined;
  /**
   * Interval of PING health checks of the command connection the adapter
   * opened; one not answered within the interval is dropped and reopened. A
   * blocking read that misses its deadline also checks it at once. A client
   * you pass in is never disconnected.
   * @default 10000
   */
  readonly healthCheckMs?: number | undefined;
  /**
   * Redis Cluster only: every watched slot is read at least this often even
   * without a wake-up (a publisher that does not signal, a lost message).
   * @default 2000
   */
  readonly pollMs?: number | undefined;
  /** Called with connection errors the client reports between commands. @default ignore */
  readonly onConnectionError?: ((error: Error) => void) | undefined;
};

interface Blocker {
  readonly client: IoRedisClient;
  id: string | undefined;
}

/**
 * Create the ioredis backend.
 *
 * @throws {ProgressValidationError} when none of `url`, `client` or `cluster` is given.
 * @example
 * ```ts
 * import { createProgress } from "progresscast";
 * import { ioredis } from "progresscast/ioredis";
 * const progress = createProgress({ port: ioredis({ url: "redis://127.0.0.1:6379" }) });
 * ```
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * const connection = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
 * const progress = createProgress({ port: ioredis({ client: connection }) }); // never closed by progresscast
 * ```
 * @example
 * ```ts
 * const clustered = ioredis({ cluster: { nodes: [{ host: "10.0.0.1", port: 7000 }] } });
 * // or ioredis({ client: new Cluster([{ host: "10.0.0.1", port: 7000 }]) })
 * ```
 */
export function ioredis(options: IoRedisOptions): StreamPort {
  if (!options || (typeof options.url !== "string" && !options.client && !options.cluster)) {
    throw new ProgressValidationError(
      "url",
      (options as { url?: unknown } | undefined)?.url,
      "give ioredis({ url }), ioredis({ client }) or ioredis({ cluster: { nodes } })",
    );
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const blockMarginMs = options.blockMarginMs ?? 2000;
  const healthCheckMs = options.healthCheckMs ?? 10_000;
  const onConnectionError = options.onConnectionError ?? (() => {});
  const settings = { connectTimeoutMs, blockMarginMs, onConnectionError, pollMs: options.pollMs };
  if (options.cluster) return ioredisCluster(options.cluster, settings);
  if (isIoRedisCluster(options.client)) return ioredisCluster(options.client, settings);
  // Fail fast while down: no offline queue, and commands in flight when the
  // connection drops are rejected at once instead of being resent later.
  const failFast = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 };
  const owned = options.client === undefined;
  const client: IoRedisClient =
    options.client ??
    (new Redis(options.url, {
      ...failFast,
      protocol: 2,
      connectTimeout: connectTimeoutMs,
    }) as unknown as IoRedisClient);
  if (owned) client.on("error", onConnectionError);

  // Our own copy of ioredis builds commands directly (one argument array, no
  // argument parsing); a client from another copy is called through `call`.
  const direct = client instanceof Redis;
  let closed = false;
  const { watch: watchReady, ready } = readiness(connectTimeoutMs, () => closed, "ioredis");
  watchReady(client);
  // Blocking reads get connections of their own (one for watching, one for consumer groups).
  const blockers = new Map<"wait" | "group", Blocker>();

  const { exec, command, script } = sender<IoRedisClient>(client, direct, ready);

  const blocker = (kind: "wait" | "group"): Blocker => {
    let b = blockers.get(kind);
    if (!b) {
      const c = client.duplicate({ ...failFast });
      c.on("error", onConnectionError);
      const created: Blocker = { client: c, id: undefined };
      // A reconnected connection has a new id.
      c.on("ready", () => {
        created.id = undefined;
      });
      watchReady(c);
      blockers.set(kind, created);
      b = created;
    }
    return b;
  };

  /**
   * PING the command connection (when the adapter owns it); when no answer
   * comes within `healthCheckMs`, drop the socket and reconnect, so commands
   * fail fast and then recover instead of queueing behind a socket that will
   * never answer.
   */
  let checking = false;
  const healthCheck = (): void => {
    if (!owned || checking || closed || client.status !== "ready") return;
    checking = true;
    void silentFor(() => exec(client, "ping", []), healthCheckMs).then((silent) => {
      checking = false;
      if (silent && !closed) {
        onConnectionError(new TimeoutError(`Redis did not answer PING within ${healthCheckMs} ms; reconnecting`));
        client.disconnect(true);
      }
    });
  };
  const healthTimer = owned ? setInterval(healthCheck, healthCheckMs) : undefined;
  (healthTimer as { unref?: () => void } | undefined)?.unref?.();

  /**
   * Run a blocking command on a dedicated connection, with a client-side
   * deadline of `blockMs + blockMarginMs`: past it the connection is closed
   * (the next call opens a new one, after the caller's jittered backoff) and
   * the call rejects with a `TimeoutError`. Aborting `signal` ends the block
   * at once with CLIENT UNBLOCK from the main connection, so a new watcher
   * never waits for the block to time out.
   */
  const blockingCommand = async (
    kind: "wait" | "group",
    name: string,
    args: string[],
    blockMs: number,
    signal: AbortSignal | undefined,
  ): Promise<unknown> => {
    const b = blocker(kind);
    if (b.client.status !== "ready") await ready(b.client, kind);
    if (signal?.aborted) return null;
    const deadlineMs = blockMs + blockMarginMs;
    const run = async (): Promise<unknown> => {
      b.id ??= String(await command("client", ["ID"], kind, b.client));
      if (signal?.aborted) return null;
      return await command(name, args, kind, b.client);
    };
    try {
      return await withDeadline(run(), {
        ms: deadlineMs,
        expired: () => {
          if (blockers.get(kind) === b) blockers.delete(kind);
          b.client.disconnect();
          healthCheck();
          return blockTimeout(blockMs, deadlineMs);
        },
        signal,
        aborted: () => {
          // Unblocked from the main connection: the read answers at once.
          if (b.id !== undefined) command("client", ["UNBLOCK", b.id], "unblock").catch(() => {});
          return false;
        },
      });
    } catch (cause) {
      if (closed) return null;
      throw cause;
    }
  };

  const calls: RedisCalls = {
    command: (_key, args, what) => sendArgs(args, (name, rest) => command(name, rest, what)),
    script,
    blockingGroupRead: (_key, args, blockMs, signal) =>
      sendArgs(args, (name, rest) => blockingCommand("group", name, rest, blockMs, signal)),
  };

  /** A subscriber connection for live channels: a duplicate that never reconnects by itself (it is replaced). */
  const openSubscriber: OpenSubscriber = async (onMessage, onLost) => {
    if (closed) throw new ConnectionClosedError("The ioredis backend is closed (subscribe)");
    const c = client.duplicate({
      ...failFast,
      retryStrategy: () => null,
      autoResubscribe: false,
    }) as unknown as IoRedisSubscriberClient;
    let gone = false;
    const fail = (error: Error): void => {
      if (gone) return;
      gone = true;
      onLost(error);
    };
    c.on("error", fail);
    c.on("close", () => fail(new ConnectionClosedError("The subscriber connection closed")));
    c.on("message", (channel, message) => onMessage(channel, message));
    watchReady(c);
    const destroy = (): void => {
      gone = true;
      c.disconnect();
    };
    try {
      await ready(c, "subscribe");
    } catch (error) {
      destroy();
      throw error;
    }
    return {
      subscribe: async (channels) => {
        await c.subscribe(...channels);
      },
      unsubscribe: async (channels) => {
        await c.unsubscribe(...channels);
      },
      ping: () => c.ping(),
      destroy,
    };
  };
  const subscriptions = new Set<LiveSubscription>();

  const port: StreamPort & { delete(stateKey: string, eventsKey: string): Promise<boolean> } = {
    name: "ioredis",
    capabilities: { groups: true, blocking: true },
    ...redisMethods(calls),

    /** One round trip: one script call for the whole batch. */
    async append(items, o): Promise<AppendResult[]> {
      const call = appendCall(items, o);
      return decodeAppendCall(await script(call.sha, call.source, call.keys, call.args, "append"), items.length);
    },

    /** One blocking XREAD over every key, on the dedicated connection. */
    async wait(cursors: readonly Cursor[], o): Promise<KeyEntries[]> {
      if (cursors.length === 0 || o.signal?.aborted) return [];
      const args = xreadArgs(cursors, o.count, o.blockMs);
      try {
        return toKeyEntries(
          await sendArgs(args, (name, rest) => blockingCommand("wait", name, rest, o.blockMs, o.signal)),
        );
      } catch (error) {
        // WRONGTYPE names no key: one TYPE per key, all sent before the first answer (one round trip).
        throw await namingWrongType(
          error,
          cursors.map((c) => c.key),
          (keys) => Promise.all(keys.map((key) => command("type", [key], "wait"))),
        );
      }
    },

    /** One subscriber connection per manager, SUBSCRIBE in batches; nothing per event. */
    live(handler: LiveHandler): LiveSubscription {
      const subscription = redisLive(openSubscriber, handler, {
        deadlineMs: healthCheckMs,
        pingMs: Math.min(healthCheckMs, 5000),
        onConnectionError,
      });
      subscriptions.add(subscription);
      return subscription;
    },

    /** One round trip (DEL of the snapshot and the stream; on a cluster they share a slot). */
    async delete(stateKey: string, eventsKey: string): Promise<boolean> {
      return Number(await command("del", [stateKey, eventsKey], "delete")) > 0;
    },

    /** Closes the blocking connections and an owned client; a client passed in stays open. Idempotent. */
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(healthTimer);
      await Promise.all([...subscriptions].map((sub) => sub.close()));
      subscriptions.clear();
      for (const b of blockers.values()) b.client.disconnect();
      blockers.clear();
      if (owned) await quitOrDisconnect(client);
    },
  };
  return port;
}
