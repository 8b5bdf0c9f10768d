/**
 * The node-redis backend on Redis Cluster. Commands are routed by the slot of
 * their first key (the client follows MOVED and ASK); a batch is one append
 * script per slot plus a wake-up SPUBLISH of that slot pipelined behind it;
 * watching subscribes to the wake-up channels of the watched slots and reads
 * woken slots with non-blocking XREADs (see `src/redis/cluster.ts`). Connections:
 * one per master for commands, one sharded subscriber per master, and, only
 * for consumer groups' blocking reads, one more per master.
 *
 * @module
 */
import { createCluster, type RedisClusterOptions } from "redis";
import { ConnectionClosedError, TimeoutError } from "../../core/errors.ts";
import type {
  AppendResult,
  Cursor,
  KeyEntries,
  LiveHandler,
  LiveSubscription,
  StreamPort,
} from "../../core/port/port.ts";
import { sleep } from "../../core/util.ts";
import { type RedisCalls, redisMethods, toKeyEntries, xreadArgs } from "../../redis/calls.ts";
import {
  type ClusterCommands,
  ClusterWaiter,
  clusterAppend,
  clusterLive,
  DEFAULT_WAKE_CHANNEL,
  ScopeCopier,
} from "../../redis/cluster.ts";
import { droppingOnStop, withDeadline } from "../../redis/deadline.ts";
import { namingWrongType } from "../../redis/errors.ts";
import { slotOf } from "../../redis/slot.ts";
import { closeOrDestroy, isNoScript, mapError } from "./replies.ts";

/** A master as the cluster client knows it. */
export interface NodeRedisClusterNode {
  readonly host: string;
  readonly port: number;
}

/** The part of a node-redis client the cluster backend uses for sharded subscriptions. */
export interface NodeRedisSubscriber {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  duplicate(): NodeRedisSubscriber;
  sSubscribe(channels: string, listener: (message: string, channel: string) => unknown): Promise<unknown>;
  sUnsubscribe(channels: string): Promise<unknown>;
  destroy(): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "sharded-channel-moved", listener: (channel: string) => void): unknown;
}

/** The part of a node-redis cluster client (`createCluster`) this adapter calls (v5 or v6). */
export interface NodeRedisClusterClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  /** Shard of each slot (public getter of node-redis cluster clients). */
  readonly slots: ReadonlyArray<{ readonly master: NodeRedisClusterNode } | undefined>;
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  connect(): Promise<unknown>;
  duplicate(): NodeRedisClusterClient;
  nodeClient(node: NodeRedisClusterNode): Promise<NodeRedisSubscriber>;
  getSlotMaster(slot: number): unknown;
  destroy(): void;
  close(): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/** Options of the cluster client the adapter creates (`createCluster` options: `rootNodes`, `defaults`, ...). */
export type NodeRedisClusterConfig = RedisClusterOptions;

/** Tell a node-redis cluster client from a standalone one, by shape. */
export function isNodeRedisCluster(client: unknown): client is NodeRedisClusterClient {
  const c = client as { getSlotMaster?: unknown; nodeClient?: unknown } | null;
  return typeof c?.getSlotMaster === "function" && typeof c.nodeClient === "function";
}

/** Settings the cluster backend shares with the standalone one. */
export interface ClusterSettings {
  readonly connectTimeoutMs: number;
  readonly onConnectionError: (error: Error) => void;
  readonly wakeChannel?: string | undefined;
  readonly pollMs?: number | undefined;
}

/** Create a cluster client the adapter owns: fail-fast offline, quick topology refresh after a lost node. */
export function createOwnedCluster(config: NodeRedisClusterConfig): NodeRedisClusterClient {
  const cluster = createCluster({
    topologyRefreshOnReconnectionAttemptStrategy: 200,
    ...config,
    RESP: 2,
    defaults: { disableOfflineQueue: true, ...config.defaults },
  });
  return cluster as unknown as NodeRedisClusterClient;
}

const TRANSIENT = /^(TRYAGAIN|CLUSTERDOWN|MOVED|ASK)\b/;
const UNSENT_ERRORS = new Set(["ClientOfflineError", "ClientClosedError"]);

/** An error after which a command certainly did not run: safe to send again. */
function retriable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return TRANSIENT.test(error.message) || UNSENT_ERRORS.has(error.constructor.name);
}

/**
 * The cluster backend over a node-redis cluster client. `owned`: the adapter
 * created the client and closes it.
 */
export function nodeRedisCluster(
  client: NodeRedisClusterClient,
  owned: boolean,
  settings: ClusterSettings,
): StreamPort {
  const { connectTimeoutMs, onConnectionError } = settings;
  if (owned) client.on("error", onConnectionError);
  const wakeBase = settings.wakeChannel ?? DEFAULT_WAKE_CHANNEL;
  let closed = false;
  const connecting = new WeakMap<NodeRedisClusterClient, Promise<unknown>>();
  let blocker: NodeRedisClusterClient | undefined;

  const connect = async (c: NodeRedisClusterClient, what: string): Promise<void> => {
    if (closed) throw new ConnectionClosedError(`The node-redis cluster backend is closed (${what})`);
    if (c.isOpen && !connecting.has(c)) return;
    let pending = connecting.get(c);
    if (!pending) {
      pending = c.connect().finally(() => connecting.delete(c));
      pending.catch(() => {});
      connecting.set(c, pending);
    }
    try {
      await withDeadline(pending, {
        ms: connectTimeoutMs,
        expired: () => new TimeoutError(`Redis Cluster was not reachable within ${connectTimeoutMs} ms (${what})`),
      });
    } catch (cause) {
      throw cause instanceof TimeoutError ? cause : mapError(cause, what);
    }
  };

  /** One command routed by `key`; transient cluster errors (nothing ran) are retried for up to ~2 s. */
  const command = async (key: string, args: string[], what: string, c = client): Promise<unknown> => {
    if (!c.isOpen || connecting.has(c)) await connect(c, what);
    for (let attempt = 0; ; attempt++) {
      try {
        return await c.sendCommand(key, false, args);
      } catch (cause) {
        if (closed || attempt >= 12 || !retriable(cause)) throw mapError(cause, what);
        await sleep(Math.min(25 * 2 ** attempt, 400));
      }
    }
  };

  const script = async (sha: string, source: string, keys: string[], args: string[], what: string) => {
    const key = keys[0] ?? "";
    const call = ["EVALSHA", sha, String(keys.length), ...keys, ...args];
    try {
      return await command(key, call, what);
    } catch (error) {
      if (!isNoScript((error as { cause?: unknown }).cause)) throw error;
    }
    call[0] = "EVAL";
    call[1] = source;
    return await command(key, call, what);
  };

  /**
   * Sharded subscriptions on connections of our own, one per master. A
   * connection that errs, or a slot that moves, retires the subscription and
   * tells the waiter (`lost`), which subscribes again where the slot now lives.
   */
  interface Subscriber {
    client: NodeRedisSubscriber | undefined;
    readonly channels: Set<string>;
    ready: Promise<NodeRedisSubscriber>;
  }
  const subscribers = new Map<string, Subscriber>();
  const retire = (address: string, sub: Subscriber, lost: (channels: readonly string[]) => void): void => {
    if (subscribers.get(address) === sub) subscribers.delete(address);
    const channels = [...sub.channels];
    sub.channels.clear();
    if (sub.client?.isOpen) sub.client.destroy();
    lost(channels);
  };
  const subscriber = async (
    slot: number,
    lost: (channels: readonly string[]) => void,
  ): Promise<Subscriber & { client: NodeRedisSubscriber }> => {
    const master = client.slots[slot]?.master;
    if (!master) throw new ConnectionClosedError(`No master serves slot ${slot} now`);
    const address = `${master.host}:${master.port}`;
    let sub = subscribers.get(address);
    if (!sub) {
      // Registered before the first await, so concurrent subscriptions share one connection.
      const created: Subscriber = { client: undefined, channels: new Set(), ready: Promise.resolve() as never };
      created.ready = (async () => {
        const c = (await client.nodeClient(master)).duplicate();
        created.client = c;
        c.on("error", (error) => {
          onConnectionError(error);
          retire(address, created, lost);
        });
        c.on("sharded-channel-moved", (channel) => {
          created.channels.delete(channel);
          lost([channel]);
        });
        await c.connect();
        return c;
      })();
      created.ready.catch(() => {});
      subscribers.set(address, created);
      sub = created;
    }
    const s = sub;
    try {
      const c = await withDeadline(s.ready, {
        ms: connectTimeoutMs,
        expired: () => new TimeoutError(`The subscriber for ${address} did not connect within ${connectTimeoutMs} ms`),
      });
      if (!c) throw new ConnectionClosedError(`The subscriber for ${address} did not connect`);
      return Object.assign(s, { client: c });
    } catch (error) {
      retire(address, s, lost);
      throw error;
    }
  };

  const commands: ClusterCommands = {
    script: (sha, source, keys, args) => script(sha, source, keys, args, "append"),
    nodeOf: (slot) => {
      const master = client.slots[slot]?.master;
      return master ? `${master.host}:${master.port}` : undefined;
    },
    publish: (channel, message) => command(channel, ["SPUBLISH", channel, message], "wake-up"),
    async read(cursors: readonly Cursor[], count: number): Promise<KeyEntries[]> {
      try {
        return toKeyEntries(await command(cursors[0]?.key ?? "", xreadArgs(cursors, count), "wait"));
      } catch (error) {
        // WRONGTYPE names no key: TYPE of this slot's keys, one pipeline to its node.
        throw await namingWrongType(
          error,
          cursors.map((c) => c.key),
          (keys) => Promise.all(keys.map((key) => command(key, ["TYPE", key], "wait"))),
        );
      }
    },
    async subscribe(channels, listener, lost) {
      if (!client.isOpen || connecting.has(client)) await connect(client, "subscribe");
      const onMessage = (message: string, channel: string): void => listener(channel, message);
      try {
        // One SSUBSCRIBE per channel: channels of different slots cannot share one.
        await Promise.all(
          channels.map(async (channel) => {
            const sub = await subscriber(slotOf(channel), lost);
            await sub.client.sSubscribe(channel, onMessage);
            sub.channels.add(channel);
          }),
        );
      } catch (cause) {
        throw mapError(cause, "subscribe");
      }
    },
    async unsubscribe(channels) {
      await Promise.all(
        channels.map(async (channel) => {
          for (const sub of subscribers.values()) {
            if (!sub.channels.delete(channel)) continue;
            await sub.client?.sUnsubscribe(channel).catch(() => {});
          }
        }),
      );
    },
  };

  const copier = new ScopeCopier(commands, {
    wakeChannel: wakeBase,
    onGiveUp: (copy, error) =>
      onConnectionError(
        new ConnectionClosedError(`A scope copy to ${copy.scopeKey} was given up (event ${copy.fields.id})`, {
          cause: error,
        }),
      ),
  });
  const waiter = new ClusterWaiter(commands, { wakeChannel: wakeBase, pollMs: settings.pollMs });

  /** Consumer groups' blocking reads run on a cluster client of their own, so they never stall other commands. */
  const blocking = async (key: string, args: string[], blockMs: number, signal?: AbortSignal): Promise<unknown> => {
    if (signal?.aborted) return null;
    if (!blocker) {
      const b = client.duplicate();
      b.on("error", onConnectionError);
      blocker = b;
    }
    const b = blocker;
    const drop = (): void => {
      if (blocker === b) blocker = undefined;
      if (b.isOpen) b.destroy();
    };
    try {
      await connect(b, "groupRead");
    } catch (error) {
      drop();
      throw error;
    }
    // A blocked read cannot be interrupted: on abort (or a silent node) drop its connections.
    return await droppingOnStop(() => command(key, args, "groupRead", b), {
      ms: blockMs + 5000,
      signal,
      drop,
      closed: () => closed,
      what: `read of ${key}`,
    });
  };

  const calls: RedisCalls = {
    command: (key, args, what) => command(key, args, what),
    script,
    blockingGroupRead: blocking,
  };

  const port: StreamPort = {
    name: "node-redis-cluster",
    capabilities: { groups: true, blocking: true, cluster: true },
    ...redisMethods(calls),

    async append(items, o): Promise<AppendResult[]> {
      if (!client.isOpen || connecting.has(client)) await connect(client, "append");
      return await clusterAppend(commands, copier, items, o, wakeBase);
    },

    async wait(cursors, o): Promise<KeyEntries[]> {
      if (cursors.length === 0 || o.signal?.aborted) return [];
      if (!client.isOpen || connecting.has(client)) await connect(client, "wait");
      return await waiter.wait(cursors, o);
    },

    /** SSUBSCRIBE per watched stream on its master's subscriber connection; nothing per event. */
    live(handler: LiveHandler): LiveSubscription {
      return clusterLive(commands, handler);
    },

    /** Two DELs at once (the keys of a key preset may live in different slots). */
    async delete(stateKey, eventsKey) {
      const [a, b] = await Promise.all([
        command(stateKey, ["DEL", stateKey], "delete"),
        command(eventsKey, ["DEL", eventsKey], "delete"),
      ]);
      return Number(a) + Number(b) > 0;
    },

    async close() {
      if (closed) return;
      if (copier.held > 0) await copier.retry();
      closed = true;
      copier.close();
      await waiter.close();
      for (const sub of subscribers.values()) if (sub.client?.isOpen) sub.client.destroy();
      subscribers.clear();
      if (blocker?.isOpen) blocker.destroy();
      blocker = undefined;
      if (owned) await closeOrDestroy(client);
    },
  };
  return port;
}
