/**
 * The ioredis backend on Redis Cluster. Commands are routed by the slot of
 * their first key (ioredis follows MOVED and ASK, and retries TRYAGAIN,
 * CLUSTERDOWN and a node lost in a failover); a batch is one append script per
 * slot plus a wake-up SPUBLISH of that slot right behind it on the same
 * connection; watching subscribes to the wake-up channels of the watched slots
 * through ioredis's sharded subscribers (one per master) and reads woken slots
 * with non-blocking XREADs (see `core/cluster.ts`). Connections per process:
 * one per master for commands, one sharded subscriber per master, and, only
 * for consumer groups' blocking reads, one more per master touched.
 *
 * @module
 */
import { Cluster, type ClusterNode, type ClusterOptions, Command } from "ioredis";
import {
  type ClusterCommands,
  ClusterWaiter,
  clusterAppend,
  DEFAULT_WAKE_CHANNEL,
  ScopeCopier,
} from "../../core/cluster.ts";
import { ConnectionClosedError, TimeoutError } from "../../core/errors.ts";
import { CANCEL_SCRIPT, CANCEL_SHA } from "../../core/lua.ts";
import type {
  AppendResult,
  ClaimOptions,
  Cursor,
  GroupReadOptions,
  KeyEntries,
  OperationRead,
  StreamEntry,
  StreamPort,
} from "../../core/port.ts";
import {
  isNoScript,
  mapError,
  READ_SCRIPT,
  READ_SHA,
  readiness,
  toEntries,
  toFields,
  toKeyEntries,
  UTF8,
} from "./replies.ts";

/** The part of an ioredis `Cluster` (v5 or v6) this adapter calls, typed structurally. */
export interface IoRedisClusterClient {
  readonly isCluster: boolean;
  /** `wait`, `connecting`, `connect`, `ready`, `reconnecting`, `close`, `end`, `disconnecting`. */
  readonly status: string;
  readonly options: { readonly shardedSubscribers?: boolean | undefined };
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
  let wakeListener: ((channel: string) => void) | undefined;
  const onMessage = (channel: string): void => wakeListener?.(channel);
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
  const exec = (c: IoRedisClusterClient, name: string, args: string[]): Promise<unknown> =>
    direct
      ? ((c as unknown as Cluster).sendCommand(new Command(name, args, UTF8)) as Promise<unknown>)
      : c.call(name, args);

  const command = async (
    name: string,
    args: string[],
    what: string,
    c: IoRedisClusterClient = client,
  ): Promise<unknown> => {
    if (c.status !== "ready") await ready(c, what);
    try {
      return await exec(c, name, args);
    } catch (cause) {
      throw mapError(cause, what);
    }
  };

  /** EVALSHA routed by the first key, EVAL on NOSCRIPT (a new or flushed master). */
  const script = async (
    sha: string,
    source: string,
    keys: readonly string[],
    args: readonly string[],
    what: string,
  ): Promise<unknown> => {
    if (client.status !== "ready") await ready(client, what);
    const call = [sha, String(keys.length)];
    for (const k of keys) call.push(k);
    for (const a of args) call.push(a);
    try {
      return await exec(client, "evalsha", call);
    } catch (cause) {
      if (!isNoScript(cause)) throw mapError(cause, what);
    }
    call[0] = source;
    return await command("eval", call, what);
  };

  /** A command that must answer within `ms`: a silent node fails the call instead of hanging it. */
  const bounded = async (name: string, args: string[], what: string, ms: number): Promise<unknown> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`Redis did not answer ${what} within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([command(name, args, what), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };

  const commands: ClusterCommands = {
    script: (sha, source, keys, args) => script(sha, source, keys, args, "append"),
    publish: (channel, message) => command("spublish", [channel, message], "wake-up"),
    async read(cursors: readonly Cursor[], count: number): Promise<KeyEntries[]> {
      const args = ["COUNT", String(count), "STREAMS"];
      for (const c of cursors) args.push(c.key);
      for (const c of cursors) args.push(c.after);
      return toKeyEntries(await bounded("xread", args, "wait", Math.max(5000, blockMarginMs)));
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
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<null>((resolve, reject) => {
      onAbort = () => {
        drop();
        resolve(null);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      timer = setTimeout(() => {
        drop();
        reject(new TimeoutError(`A blocking group read did not answer within ${blockMs + blockMarginMs} ms`));
      }, blockMs + blockMarginMs);
    });
    try {
      return await Promise.race([command("xreadgroup", args, "groupRead", b), stop]);
    } catch (error) {
      if (closed || signal?.aborted) return null;
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  };

  const port: StreamPort & { delete(stateKey: string, eventsKey: string): Promise<boolean> } = {
    name: "ioredis-cluster",
    capabilities: { groups: true, blocking: true, cluster: true },

    /** One script call per slot touched (with its wake-up behind it), plus one per scope slot for scoped events. */
    async append(items, o): Promise<AppendResult[]> {
      if (client.status !== "ready") await ready(client, "append");
      return await clusterAppend(commands, copier, items, o, DEFAULT_WAKE_CHANNEL);
    },

    /** One round trip: the read script on the operation's slot. */
    async read(stateKey, eventsKey, range): Promise<OperationRead> {
      const after = range.after === undefined || range.after === "0" ? "-" : `(${range.after}`;
      const reply = await script(
        READ_SHA,
        READ_SCRIPT,
        stateKey === null ? [eventsKey] : [eventsKey, stateKey],
        [after, String(range.limit)],
        "read",
      );
      const [state, entries, first] = Array.isArray(reply) ? reply : [];
      return { state: toFields(state), entries: toEntries(entries), firstId: toEntries(first)[0]?.id ?? null };
    },

    /** One round trip (HGETALL). */
    async getState(stateKey) {
      return toFields(await command("hgetall", [stateKey], "getState"));
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

    /** One round trip (the cancel script). */
    async cancel(stateKey, reason, ttlSeconds) {
      return Number(await script(CANCEL_SHA, CANCEL_SCRIPT, [stateKey], [reason, String(ttlSeconds)], "cancel")) === 1;
    },

    /** One round trip (XGROUP CREATE ... MKSTREAM); an existing group is kept. */
    async ensureGroup(key, group) {
      try {
        await command("xgroup", ["CREATE", key, group, "0", "MKSTREAM"], "ensureGroup");
      } catch (error) {
        if (!(error instanceof Error && error.message.includes("BUSYGROUP"))) throw error;
      }
    },

    /** One round trip (XREADGROUP), blocking on a cluster client of its own when `blockMs` > 0. */
    async groupRead(o: GroupReadOptions): Promise<StreamEntry[]> {
      const args = ["GROUP", o.group, o.consumer, "COUNT", String(o.count)];
      if (o.blockMs > 0) args.push("BLOCK", String(o.blockMs));
      args.push("STREAMS", o.key, ">");
      const reply =
        o.blockMs > 0 ? await blocking(args, o.blockMs, o.signal) : await command("xreadgroup", args, "groupRead");
      return toKeyEntries(reply).flatMap((k) => k.entries);
    },

    /** One round trip (XACK). */
    async ack(key, group, ids) {
      if (ids.length === 0) return 0;
      return Number(await command("xack", [key, group, ...ids], "ack"));
    },

    /** One round trip (XAUTOCLAIM); entries deleted meanwhile are left out. */
    async claim(o: ClaimOptions): Promise<StreamEntry[]> {
      const reply = await command(
        "xautoclaim",
        [o.key, o.group, o.consumer, String(o.minIdleMs), "0-0", "COUNT", String(o.count)],
        "claim",
      );
      return Array.isArray(reply) ? toEntries(reply[1]).filter((e) => Object.keys(e.fields).length > 0) : [];
    },

    /** One round trip (XPENDING); 0 when the stream or the group does not exist. */
    async pending(key, group) {
      let reply: unknown;
      try {
        reply = await command("xpending", [key, group], "pending");
      } catch (error) {
        if (error instanceof Error && error.message.includes("NOGROUP")) return 0;
        throw error;
      }
      return Array.isArray(reply) ? Number(reply[0]) : 0;
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
      if (owned) {
        if (client.status === "ready") {
          try {
            await client.quit();
            return;
          } catch {
            // fall through: close the sockets
          }
        }
        client.disconnect();
      }
    },
  };
  return port;
}
