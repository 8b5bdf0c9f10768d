/**
 * The ioredis backend on Redis Cluster. Commands are routed by the slot of
 * their first key (ioredis follows MOVED and ASK, and retries TRYAGAIN,
 * CLUSTERDOWN and a node lost in a failover); a batch is one append script per
 * slot plus a wake-up SPUBLISH of that slot right behind it on the same
 * connection; watching subscribes to the wake-up channels of the watched slots
 * through ioredis's sharded subscribers (one per master) and reads woken slots
 * with non-blocking XREADs (see `src/redis/cluster.ts`). Connections per process:
 * one per master for commands, one sharded subscriber per master, and, only
 * for consumer groups' blocking reads, one more per master touched.
 *
 * @module
 */
import { Cluster, type ClusterNode, type ClusterOptions } from "ioredis";
import { ConnectionClosedError, TimeoutError } from "../../core/errors.ts";
import type { AppendResult, Cursor, KeyEntries, StreamPort } from "../../core/port/port.ts";
import { type RedisCalls, redisMethods, toKeyEntries, xreadArgs } from "../../redis/calls.ts";
import {
  type ClusterCommands,
  ClusterWaiter,
  clusterAppend,
  DEFAULT_WAKE_CHANNEL,
  ScopeCopier,
} from "../../redis/cluster.ts";
import { droppingOnStop, withDeadline } from "../../redis/deadline.ts";
import { namingWrongType } from "../../redis/errors.ts";
import { mapError, quitOrDisconnect, readiness, sendArgs, sender } from "./replies.ts";

/** The part of an ioredis `Cluster` (v5 or v6) this adapter calls, typed structurally. */
export interface IoRedisClusterClient {
  readonly isCluster: boolean;
  /** `wait`, `connecting`, `connect`, `ready`, `reconnecting`, `close`, `end`, `disconnecting`. */
  readonly status: string;
  readonly options: { readonly shardedSubscribers?: boolean | undefined };
  /** Per slot, the nodes serving it (`host:port`), the master first. */
  readonly slots?: ReadonlyArray<ReadonlyArray<string> | undefined>;
  call(command: string, args: (string | number)[]): Promise<unknown>;
  connect(): Promise<unknown>;
  duplicate(overrideStartupNodes?: never[], overrideOptions?: Record<string, unknown>): IoRedisClusterClient;
  disconnect(reconnect?: boolean): void;
  quit(): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "ready" | "end", listener: () => void): unknown;
  on(event: "smessage", listener: (channel: string, message: string) => void): unknown;
  off(event: "ready" | "end", listener: () => void): unknown;
  off(event: "smessage", listener: (channel: string, message: string) => void): unknown;
}

/** The cluster the adapter creates: seed nodes and ioredis `ClusterOptions`. */
export interface IoRedisClusterConfig {
  /** Seed nodes, e.g. `[{ host: "10.0.0.1", port: 7000 }]` or `["redis://10.0.0.1:7000"]`. */
  readonly nodes: readonly ClusterNode[];
  /** ioredis `ClusterOptions` (`redisOptions` for password, TLS...). */
  readonly options?: ClusterOptions | undefined;
}

/** Tell an ioredis `Cluster` from a standalone client, by shape. */
export function isIoRedisCluster(client: unknown): client is IoRedisClusterClient {
  return (client as { isCluster?: unknown } | null | undefined)?.isCluster === true;
}

/** Settings the cluster backend shares with the standalone one. */
export interface ClusterSettings {
  readonly connectTimeoutMs: number;
  readonly blockMarginMs: number;
  readonly onConnectionError: (error: Error) => void;
  readonly pollMs?: number | undefined;
}

/**
 * The cluster backend over an ioredis `Cluster`: one given (never closed), or
 * the seed nodes of one the adapter creates and closes.
 */
export function ioredisCluster(
  source: IoRedisClusterClient | IoRedisClusterConfig,
  settings: ClusterSettings,
): StreamPort {
  const { connectTimeoutMs, blockMarginMs, onConnectionError } = settings;
  const owned = !isIoRedisCluster(source);
  const client: IoRedisClusterClient = isIoRedisCluster(source)
    ? source
    : (new Cluster([...source.nodes], {
        lazyConnect: true,
        shardedSubscribers: true,
        // A lost master is replaced within a couple of seconds: keep retrying that long.
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 200,
        ...source.options,
        redisOptions: {
          connectTimeout: connectTimeoutMs,
          ...source.options?.redisOptions,
          protocol: 2,
          replyMapping: "legacy",
        },
      }) as unknown as IoRedisClusterClient);
  if (owned) client.on("error", onConnectionError);
  let closed = false;
  const { watch, ready } = readiness(connectTimeoutMs, () => closed, "ioredis cluster");
  watch(client);

  // Wake-ups need ioredis's sharded subscribers: a Cluster given without them gets a duplicate that has them.
  let subscriber: IoRedisClusterClient | undefined;
  let wakeListener: ((channel: string, message: string) => void) | undefined;
  const onMessage = (channel: string, message: string): void => wakeListener?.(channel, message);
  const sub = (): IoRedisClusterClient => {
    if (subscriber) return subscriber;
    const s = client.options.shardedSubscribers
      ? client
      : client.duplicate([], { shardedSubscribers: true, lazyConnect: true });
    if (s !== client) {
      s.on("error", onConnectionError);
      watch(s);
    }
    s.on("smessage", onMessage);
    subscriber = s;
    return s;
  };

  const direct = client instanceof Cluster;
  const { exec, command, script } = sender<IoRedisClusterClient>(client, direct, ready);

  /** A command that must answer within `ms`: a silent node fails the call instead of hanging it. */
  const bounded = (name: string, args: string[], what: string, ms: number): Promise<unknown> =>
    withDeadline(command(name, args, what), {
      ms,
      expired: () => new TimeoutError(`Redis did not answer ${what} within ${ms} ms`),
    });

  const commands: ClusterCommands = {
    script: (sha, source, keys, args) => script(sha, source, keys, args, "append"),
    nodeOf: (slot) => client.slots?.[slot]?.[0],
    publish: (channel, message) => command("spublish", [channel, message], "wake-up"),
    async read(cursors: readonly Cursor[], count: number): Promise<KeyEntries[]> {
      const args = xreadArgs(cursors, count);
      try {
        return toKeyEntries(
          await sendArgs(args, (name, rest) => bounded(name, rest, "wait", Math.max(5000, blockMarginMs))),
        );
      } catch (error) {
        // WRONGTYPE names no key: TYPE of this slot's keys, one pipeline to its node.
        throw await namingWrongType(
          error,
          cursors.map((c) => c.key),
          (keys) => Promise.all(keys.map((key) => bounded("type", [key], "wait", Math.max(5000, blockMarginMs)))),
        );
      }
    },
    async subscribe(channels, listener) {
      const s = sub();
      wakeListener = listener;
      if (s.status !== "ready") await ready(s, "subscribe");
      try {
        // One SSUBSCRIBE per channel: channels of different slots cannot share one.
        await Promise.all(channels.map((ch) => exec(s, "ssubscribe", [ch])));
      } catch (cause) {
        throw mapError(cause, "subscribe");
      }
    },
    async unsubscribe(channels) {
      const s = subscriber;
      if (s?.status !== "ready") return;
      await Promise.all(channels.map((ch) => exec(s, "sunsubscribe", [ch]).catch(() => {})));
    },
  };

  const copier = new ScopeCopier(commands, {
    wakeChannel: DEFAULT_WAKE_CHANNEL,
    onGiveUp: (copy, error) =>
      onConnectionError(
        new ConnectionClosedError(`A scope copy to ${copy.scopeKey} was given up (event ${copy.fields.id})`, {
          cause: error,
        }),
      ),
  });
  const waiter = new ClusterWaiter(commands, { wakeChannel: DEFAULT_WAKE_CHANNEL, pollMs: settings.pollMs });

  /**
   * Consumer groups' blocking reads run on a cluster client of their own, so
   * they never stall other commands to the same master. A blocked read cannot
   * be interrupted across nodes: on abort, or past its deadline, that client
   * is dropped (and a new one made for the next read).
   */
  let blocker: IoRedisClusterClient | undefined;
  const blocking = async (args: string[], blockMs: number, signal: AbortSignal | undefined): Promise<unknown> => {
    if (signal?.aborted) return null;
    if (!blocker) {
      const b = client.duplicate([], { lazyConnect: true, shardedSubscribers: false });
      b.on("error", onConnectionError);
      watch(b);
      blocker = b;
    }
    const b = blocker;
    const drop = (): void => {
      if (blocker === b) blocker = undefined;
      b.disconnect();
    };
    try {
      if (b.status !== "ready") await ready(b, "groupRead");
    } catch (error) {
      drop();
      throw error;
    }
    return await droppingOnStop(() => sendArgs(args, (name, rest) => command(name, rest, "groupRead", b)), {
      ms: blockMs + blockMarginMs,
      signal,
      drop,
      closed: () => closed,
      what: "group read",
    });
  };

  const calls: RedisCalls = {
    command: (_key, args, what) => sendArgs(args, (name, rest) => command(name, rest, what)),
    script: (sha, source, keys, args, what) => script(sha, source, keys, args, what),
    blockingGroupRead: (_key, args, blockMs, signal) => blocking(args, blockMs, signal),
  };

  const port: StreamPort & { delete(stateKey: string, eventsKey: string): Promise<boolean> } = {
    name: "ioredis-cluster",
    capabilities: { groups: true, blocking: true, cluster: true },
    ...redisMethods(calls),

    /** One script call per slot touched (with its wake-up behind it), plus one per scope slot for scoped events. */
    async append(items, o): Promise<AppendResult[]> {
      if (client.status !== "ready") await ready(client, "append");
      return await clusterAppend(commands, copier, items, o, DEFAULT_WAKE_CHANNEL);
    },

    /** Non-blocking reads of the woken slots, pipelined per master; see `ClusterWaiter`. */
    async wait(cursors, o): Promise<KeyEntries[]> {
      if (cursors.length === 0 || o.signal?.aborted) return [];
      if (client.status !== "ready") await ready(client, "wait");
      return await waiter.wait(cursors, o);
    },

    /** One round trip (DEL of the snapshot and the stream; on a cluster they share a slot). */
    async delete(stateKey: string, eventsKey: string): Promise<boolean> {
      return Number(await command("del", [stateKey, eventsKey], "delete")) > 0;
    },

    /**
     * Writes held scope copies once more, then closes the adapter's own
     * clients (subscriber and blocker duplicates, an owned cluster); a
     * cluster passed in stays open. Idempotent.
     */
    async close() {
      if (closed) return;
      if (copier.held > 0) await copier.retry();
      closed = true;
      copier.close();
      await waiter.close();
      wakeListener = undefined;
      blocker?.disconnect();
      blocker = undefined;
      subscriber?.off("smessage", onMessage);
      if (subscriber && subscriber !== client) subscriber.disconnect();
      subscriber = undefined;
      if (owned) await quitOrDisconnect(client);
    },
  };
  return port;
}
