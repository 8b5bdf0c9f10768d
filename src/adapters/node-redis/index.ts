/**
 * The node-redis backend: the `redis` package over TCP, for Node workers,
 * long-lived servers and Deno. A publish is one round trip (one Lua script,
 * EVALSHA first, EVAL on NOSCRIPT), and the script publishes each event on
 * its stream's live channel; watchers are fed from one subscriber connection
 * (SUBSCRIBE to the channels of the watched streams). Without live channels
 * (`liveChannels: false`, legacy mode) waiting is one blocking XREAD over
 * every watched key on one dedicated connection.
 *
 * @module
 */
import { createClient } from "redis";
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
import {
  createOwnedCluster,
  isNodeRedisCluster,
  type NodeRedisClusterClient,
  type NodeRedisClusterConfig,
  nodeRedisCluster,
} from "./cluster.ts";
import { closeOrDestroy, isNoScript, mapError } from "./replies.ts";

export type { NodeRedisClusterClient, NodeRedisClusterConfig } from "./cluster.ts";

/** The part of a node-redis client this adapter calls (v5 or v6). */
export interface NodeRedisClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  sendCommand(args: string[]): Promise<unknown>;
  connect(): Promise<unknown>;
  duplicate(overrides?: Record<string, unknown>): NodeRedisClient;
  destroy(): void;
  close(): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "ready" | "end", listener: () => void): unknown;
}

/** What a subscriber connection (a duplicate of the client) is called with. */
interface NodeRedisSubscriberClient extends NodeRedisClient {
  subscribe(channels: string[], listener: (message: string, channel: string) => void): Promise<unknown>;
  unsubscribe(channels: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
}

/** Options of {@link nodeRedis}: a URL, or a client you built. */
export type NodeRedisOptions = (
  | {
      /** Redis URL, e.g. `redis://127.0.0.1:6379`. The adapter opens and closes its connections. */
      readonly url: string;
      readonly client?: undefined;
      readonly cluster?: undefined;
    }
  | {
      /**
       * A node-redis client you created: standalone (`createClient`) or Redis
       * Cluster (`createCluster`, told apart by shape). It is connected if
       * needed and never closed by the adapter; blocking reads use a duplicate
       * the adapter owns.
       */
      readonly client: NodeRedisClient | NodeRedisClusterClient;
      readonly url?: undefined;
      readonly cluster?: undefined;
    }
  | {
      /**
       * Redis Cluster: the options of the cluster client the adapter creates,
       * opens and closes (`createCluster` options, e.g. `{ rootNodes: [{ url }] }`).
       */
      readonly cluster: NodeRedisClusterConfig;
      readonly url?: undefined;
      readonly client?: undefined;
    }
) & {
  /**
   * How long a command waits for the first connection before failing.
   * @default 5000
   */
  readonly connectTimeoutMs?: number | undefined;
  /** Called with connection errors the client reports between commands. @default ignore */
  readonly onConnectionError?: ((error: Error) => void) | undefined;
  /**
   * Redis Cluster only: prefix of the sharded channels that wake watchers
   * (`<wakeChannel>:{<slot tag>}`). Publishers and watchers must agree.
   * @default "progresscast:wake"
   */
  readonly wakeChannel?: string | undefined;
  /**
   * Redis Cluster only: every watched slot is read at least this often even
   * without a wake-up, so an event whose wake-up was lost (a failover, a
   * publisher in another language) is late, never missed.
   * @default 2000
   */
  readonly pollMs?: number | undefined;
  /**
   * Standalone Redis: margin added to a blocking read's block time to form its client-side
   * deadline. A connection silent past `blockMs + blockMarginMs` (a socket a
   * proxy or NAT dropped without closing) is destroyed; the next read opens a
   * new one, after the caller's jittered backoff.
   * @default 2000
   */
  readonly blockMarginMs?: number | undefined;
  /**
   * Standalone Redis: interval of PING health checks of the connections the adapter opened
   * while they are idle; one not answered within the interval is destroyed and
   * reopened on next use. A blocking read that misses its deadline also checks
   * the command connection at once. A client you pass in is never destroyed.
   * @default 10000
   */
  readonly healthCheckMs?: number | undefined;
};

/** Let a timer not keep the process alive (Node and Deno timers both allow it). */
function unref(timer: unknown): void {
  if (timer !== null && typeof timer === "object" && "unref" in timer && typeof timer.unref === "function") {
    timer.unref();
  }
}

/**
 * Create the node-redis backend.
 *
 * @throws {ProgressValidationError} when none of `url`, `client` or `cluster` is given.
 * @example
 * ```ts
 * import { createProgress } from "progresscast";
 * import { nodeRedis } from "progresscast/node-redis";
 * const progress = createProgress({ port: nodeRedis({ url: "redis://127.0.0.1:6379" }) });
 * // Redis Cluster:
 * const clustered = nodeRedis({ cluster: { rootNodes: [{ url: "redis://10.0.0.1:7000" }] } });
 * ```
 */
export function nodeRedis(options: NodeRedisOptions): StreamPort {
  if (!options || (typeof options.url !== "string" && !options.client && !options.cluster)) {
    throw new ProgressValidationError(
      "url",
      (options as { url?: unknown } | undefined)?.url,
      "give nodeRedis({ url }), nodeRedis({ client }) or nodeRedis({ cluster: { rootNodes } })",
    );
  }
  const onConnectionError = options.onConnectionError ?? (() => {});
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  if (options.cluster || isNodeRedisCluster(options.client)) {
    const settings = { connectTimeoutMs, onConnectionError, wakeChannel: options.wakeChannel, pollMs: options.pollMs };
    if (options.cluster) return nodeRedisCluster(createOwnedCluster(options.cluster), true, settings);
    return nodeRedisCluster(options.client as NodeRedisClusterClient, false, settings);
  }
  const owned = options.client === undefined;
  const client: NodeRedisClient =
    (options.client as NodeRedisClient | undefined) ??
    (createClient({ url: options.url ?? "", disableOfflineQueue: true, RESP: 2 }) as unknown as NodeRedisClient);
  if (owned) client.on("error", onConnectionError);
  const connecting = new WeakMap<NodeRedisClient, Promise<unknown>>();
  const blockMarginMs = options.blockMarginMs ?? 2000;
  const healthCheckMs = options.healthCheckMs ?? 10_000;
  let closed = false;
  // Blocking reads get connections of their own (one for watching, one for consumer groups).
  const blockers = new Map<"wait" | "group", { client: NodeRedisClient; id: string | undefined }>();

  const ready = async (c: NodeRedisClient, what: string): Promise<void> => {
    if (closed) throw new ConnectionClosedError(`The node-redis backend is closed (${what})`);
    if (c.isReady) return;
    if (!c.isOpen) {
      const started = c.connect();
      started.catch(() => {});
      connecting.set(c, started);
    }
    const pending = connecting.get(c);
    if (!pending) return;
    try {
      await withDeadline(pending, {
        ms: connectTimeoutMs,
        expired: () => new TimeoutError(`Redis was not reachable within ${connectTimeoutMs} ms (${what})`),
      });
    } catch (cause) {
      throw cause instanceof TimeoutError ? cause : mapError(cause, what);
    }
  };

  const command = async (args: string[], what: string, c: NodeRedisClient = client): Promise<unknown> => {
    if (!c.isReady) await ready(c, what);
    try {
      return await c.sendCommand(args);
    } catch (cause) {
      throw mapError(cause, what);
    }
  };

  const script = async (
    sha: string,
    source: string,
    keys: string[],
    args: string[],
    what: string,
  ): Promise<unknown> => {
    if (!client.isReady) await ready(client, what);
    const call = ["EVALSHA", sha, String(keys.length)];
    for (const k of keys) call.push(k);
    for (const a of args) call.push(a);
    try {
      return await client.sendCommand(call);
    } catch (cause) {
      if (!isNoScript(cause)) throw mapError(cause, what);
    }
    call[0] = "EVAL";
    call[1] = source;
    return await command(call, what);
  };

  const dedicated = (): NodeRedisClient => {
    const c = client.duplicate({ disableOfflineQueue: true });
    c.on("error", onConnectionError);
    return c;
  };

  /**
   * PING the command connection (when the adapter owns it); destroy it when
   * no answer comes within `healthCheckMs`, so the next command reconnects
   * instead of queueing behind a socket that will never answer.
   */
  let checking = false;
  const healthCheck = (): void => {
    if (!owned || checking || closed || !client.isReady) return;
    checking = true;
    void silentFor(() => client.sendCommand(["PING"]), healthCheckMs).then((silent) => {
      checking = false;
      if (silent && !closed && client.isOpen) {
        onConnectionError(new TimeoutError(`Redis did not answer PING within ${healthCheckMs} ms; reconnecting`));
        client.destroy();
      }
    });
  };
  const healthTimer = owned ? setInterval(healthCheck, healthCheckMs) : undefined;
  unref(healthTimer);

  /**
   * Run a blocking command on a dedicated connection, with a client-side
   * deadline of `blockMs + blockMarginMs`: past it the connection is
   * destroyed (the next call opens a new one) and the call rejects with
   * TimeoutError. Aborting `signal` ends the block at once with CLIENT
   * UNBLOCK from the main connection, so a new watcher never waits for the
   * block to time out.
   */
  const blockingCommand = async (
    kind: "wait" | "group",
    args: string[],
    blockMs: number,
    signal: AbortSignal | undefined,
  ): Promise<unknown> => {
    let b = blockers.get(kind);
    if (!b) {
      const created = { client: dedicated(), id: undefined as string | undefined };
      // A reconnected connection has a new id.
      created.client.on("ready", () => {
        created.id = undefined;
      });
      blockers.set(kind, created);
      b = created;
    }
    const blocker = b;
    await ready(blocker.client, kind);
    if (signal?.aborted) return null;
    const deadlineMs = blockMs + blockMarginMs;
    const run = async (): Promise<unknown> => {
      blocker.id ??= String(await command(["CLIENT", "ID"], kind, blocker.client));
      if (signal?.aborted) return null;
      return await command(args, kind, blocker.client);
    };
    try {
      return await withDeadline(run(), {
        ms: deadlineMs,
        expired: () => {
          if (blockers.get(kind) === blocker) blockers.delete(kind);
          blocker.client.destroy();
          healthCheck();
          return blockTimeout(blockMs, deadlineMs);
        },
        signal,
        aborted: () => {
          // Unblocked from the main connection: the read answers at once.
          if (blocker.id !== undefined) command(["CLIENT", "UNBLOCK", blocker.id], "unblock").catch(() => {});
          return false;
        },
      });
    } catch (cause) {
      if (closed) return null;
      throw cause;
    }
  };

  /** A subscriber connection for live channels: a duplicate of the client, replaced (never reconnected) when lost. */
  const openSubscriber: OpenSubscriber = async (onMessage, onLost) => {
    if (closed) throw new ConnectionClosedError("The node-redis backend is closed (subscribe)");
    const c = client.duplicate({ disableOfflineQueue: true }) as unknown as NodeRedisSubscriberClient;
    let gone = false;
    const fail = (error: Error): void => {
      if (gone) return;
      gone = true;
      onLost(error);
    };
    c.on("error", fail);
    c.on("end", () => fail(new ConnectionClosedError("The subscriber connection ended")));
    const destroy = (): void => {
      gone = true;
      if (c.isOpen) c.destroy();
    };
    try {
      await ready(c, "subscribe");
    } catch (error) {
      destroy();
      throw error;
    }
    const listener = (message: string, channel: string): void => onMessage(channel, message);
    return {
      subscribe: async (channels) => {
        await c.subscribe([...channels], listener);
      },
      unsubscribe: async (channels) => {
        await c.unsubscribe([...channels]);
      },
      ping: () => c.ping(),
      destroy,
    };
  };
  const subscriptions = new Set<LiveSubscription>();

  const calls: RedisCalls = {
    command: (_key, args, what) => command(args, what),
    script,
    blockingGroupRead: (_key, args, blockMs, signal) => blockingCommand("group", args, blockMs, signal),
  };

  const port: StreamPort = {
    name: "node-redis",
    capabilities: { groups: true, blocking: true },
    ...redisMethods(calls),

    async append(items, o): Promise<AppendResult[]> {
      const call = appendCall(items, o);
      return decodeAppendCall(await script(call.sha, call.source, call.keys, call.args, "append"), items.length);
    },

    async wait(cursors: readonly Cursor[], o): Promise<KeyEntries[]> {
      if (cursors.length === 0 || o.signal?.aborted) return [];
      const args = xreadArgs(cursors, o.count, o.blockMs);
      try {
        return toKeyEntries(await blockingCommand("wait", args, o.blockMs, o.signal));
      } catch (error) {
        // WRONGTYPE names no key: one TYPE per key, sent in one write (node-redis pipelines a tick's commands).
        throw await namingWrongType(
          error,
          cursors.map((c) => c.key),
          (keys) => Promise.all(keys.map((key) => command(["TYPE", key], "wait"))),
        );
      }
    },

    live(handler: LiveHandler): LiveSubscription {
      const subscription = redisLive(openSubscriber, handler, {
        deadlineMs: healthCheckMs,
        pingMs: Math.min(healthCheckMs, 5000),
        onConnectionError,
      });
      subscriptions.add(subscription);
      return subscription;
    },

    async delete(stateKey, eventsKey) {
      return Number(await command(["DEL", stateKey, eventsKey], "delete")) > 0;
    },

    async close() {
      if (closed) return;
      closed = true;
      clearInterval(healthTimer);
      await Promise.all([...subscriptions].map((s) => s.close()));
      subscriptions.clear();
      for (const b of blockers.values()) if (b.client.isOpen) b.client.destroy();
      blockers.clear();
      if (owned) await closeOrDestroy(client);
    },
  };
  return port;
}
