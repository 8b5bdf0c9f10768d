/**
 * Live channels over a Redis subscriber connection, shared by the node-redis
 * and ioredis adapters: one connection per manager subscribed to the channel
 * of every watched stream (named like the stream key), in batches; a
 * client-side deadline on a PING it must answer (a silent socket is
 * replaced); after the connection was lost, a new one subscribes every
 * channel again and the core is told to catch up.
 *
 * @module
 */
import type { LiveHandler, LiveSubscription, StreamEntry } from "../core/port/port.ts";
import { backoff, sleep } from "../core/util.ts";
import { isStreamId } from "../core/wire/index.ts";

/** One subscriber connection, as a client library gives it. */
export interface Subscriber {
  /** SUBSCRIBE to channels; resolves once Redis confirmed them all. */
  subscribe(channels: readonly string[]): Promise<void>;
  /** UNSUBSCRIBE from channels. */
  unsubscribe(channels: readonly string[]): Promise<void>;
  /** PING on the subscribed connection; resolves when answered. */
  ping(): Promise<unknown>;
  /** Close the connection at once. */
  destroy(): void;
}

/**
 * Opens subscriber connections. `onMessage` receives every message; `onLost`
 * is called (at most once per connection) when the connection broke.
 */
export type OpenSubscriber = (
  onMessage: (channel: string, payload: string) => void,
  onLost: (error: Error) => void,
) => Promise<Subscriber>;

/** Options of {@link redisLive}. */
export interface RedisLiveOptions {
  /** Interval of the PING the subscriber connection must answer. @default 5000 */
  readonly pingMs?: number | undefined;
  /** A PING not answered within this is a silent connection: it is replaced. @default 5000 */
  readonly deadlineMs?: number | undefined;
  /** Channels per SUBSCRIBE command. @default 1000 */
  readonly batch?: number | undefined;
  /** Told of each lost connection (a structured log in the adapter). */
  readonly onConnectionError?: ((error: Error) => void) | undefined;
}

/**
 * Decode a live message: the JSON array `[id, field, value, ...]` the append
 * script publishes. Null for anything else (someone else's message).
 *
 * @example
 * ```ts
 * parseLiveMessage('["1-0","v","1","op","job-1"]'); // { id: "1-0", fields: { v: "1", op: "job-1" } }
 * ```
 */
export function parseLiveMessage(payload: string): StreamEntry | null {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  if (!Array.isArray(value) || value.length % 2 !== 1 || !isStreamId(value[0])) return null;
  const fields: Record<string, string> = {};
  for (let i = 1; i < value.length; i += 2) {
    const k: unknown = value[i];
    const v: unknown = value[i + 1];
    if (typeof k !== "string" || typeof v !== "string") return null;
    fields[k] = v;
  }
  return { id: value[0], fields };
}

/** Subscribe in slices of `batch` channels: one command each, all in flight at once. */
async function inBatches(
  channels: readonly string[],
  batch: number,
  run: (c: string[]) => Promise<void>,
): Promise<void> {
  const calls: Promise<void>[] = [];
  for (let i = 0; i < channels.length; i += batch) calls.push(run(channels.slice(i, i + batch)));
  await Promise.all(calls);
}

/**
 * Live channels on one subscriber connection, opened on the first `add`.
 *
 * @throws nothing itself; `add` rejects when no connection can be opened (the core retries).
 */
export function redisLive(
  open: OpenSubscriber,
  handler: LiveHandler,
  options: RedisLiveOptions = {},
): LiveSubscription {
  const pingMs = options.pingMs ?? 5000;
  const deadlineMs = options.deadlineMs ?? 5000;
  const batch = options.batch ?? 1000;
  const channels = new Set<string>();
  let current: Promise<Subscriber> | undefined;
  let generation = 0;
  let closed = false;
  let reconnecting = false;
  const stopped = new AbortController();

  const onMessage = (channel: string, payload: string): void => {
    if (!channels.has(channel)) return;
    const entry = parseLiveMessage(payload);
    if (entry) handler.message(channel, entry);
  };

  /** The connection of this generation broke: forget it and, if anything is followed, open another. */
  const lost = (gen: number, error: Error): void => {
    if (gen !== generation || closed) return;
    generation++;
    const was = current;
    current = undefined;
    void was?.then((s) => s.destroy()).catch(() => {});
    options.onConnectionError?.(error);
    if (channels.size > 0) void reconnect();
  };

  const connect = (): Promise<Subscriber> => {
    if (current) return current;
    const gen = generation;
    const opened = open(onMessage, (error) => lost(gen, error));
    current = opened;
    opened.catch(() => {
      if (current === opened) current = undefined;
    });
    return opened;
  };

  /** Open a new connection, subscribe every channel followed, then tell the core to catch up. */
  const reconnect = async (): Promise<void> => {
    if (reconnecting) return;
    reconnecting = true;
    try {
      for (let attempt = 0; !closed && channels.size > 0; attempt++) {
        const gen = generation;
        try {
          const s = await connect();
          await inBatches([...channels], batch, (c) => s.subscribe(c));
          if (gen !== generation) continue;
          handler.resumed();
          return;
        } catch (error) {
          if (gen === generation) lost(gen, error instanceof Error ? error : new Error(String(error)));
          await sleep(backoff(attempt, 100, 2000), stopped.signal);
        }
      }
    } finally {
      reconnecting = false;
    }
  };

  // The deadline: a PING the connection must answer, or it is replaced.
  let pinging = false;
  const timer = setInterval(() => {
    const pending = current;
    if (!pending || pinging || closed) return;
    const gen = generation;
    pinging = true;
    void (async () => {
      try {
        const s = await pending;
        let timeout: ReturnType<typeof setTimeout> | undefined;
        const silent = await Promise.race([
          s.ping().then(
            () => false,
            () => true,
          ),
          new Promise<boolean>((r) => {
            timeout = setTimeout(() => r(true), deadlineMs);
          }),
        ]);
        clearTimeout(timeout);
        if (silent) lost(gen, new Error(`The subscriber connection did not answer PING within ${deadlineMs} ms`));
      } catch {
        // the connection failed to open: its own failure is handled where it was opened
      } finally {
        pinging = false;
      }
    })();
  }, pingMs);
  (timer as { unref?: () => void }).unref?.();

  return {
    async add(keys) {
      for (const k of keys) channels.add(k);
      if (reconnecting) return; // the reconnect subscribes every channel, then the core catches up
      const gen = generation;
      const s = await connect();
      try {
        await inBatches(keys, batch, (c) => s.subscribe(c));
      } catch (error) {
        lost(gen, error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
    },
    async remove(keys) {
      for (const k of keys) channels.delete(k);
      const pending = current;
      if (!pending) return;
      const s = await pending.catch(() => undefined);
      await s?.unsubscribe([...keys]).catch(() => {});
    },
    async close() {
      if (closed) return;
      closed = true;
      stopped.abort();
      clearInterval(timer);
      channels.clear();
      const pending = current;
      current = undefined;
      const s = await pending?.catch(() => undefined);
      s?.destroy();
    },
  };
}
