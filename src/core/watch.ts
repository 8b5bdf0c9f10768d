import { isConnectionClosedError, SlowConsumerError } from "./errors.ts";
import type { Hub, Listener } from "./hub.ts";
import type { Metrics } from "./observe.ts";
import type { OperationRead, StreamEntry, StreamPort } from "./port.ts";
import { backoff, sleep } from "./util.ts";
import {
  compareIds,
  decodeEvent,
  decodeSnapshot,
  isTerminal,
  type ProgressEvent,
  type ProgressSnapshot,
} from "./wire.ts";

/** One item of a watch: the snapshot first (or a reset), then events. */
export type WatchItem =
  | {
      /** The state when the watch began; null when the operation is not known yet. */
      readonly kind: "snapshot";
      readonly snapshot: ProgressSnapshot | null;
    }
  | {
      /** `after` was older than the kept history: replace local state with this snapshot; history follows. */
      readonly kind: "reset";
      readonly snapshot: ProgressSnapshot | null;
    }
  | { readonly kind: "event"; readonly event: ProgressEvent };

/** Options of `progress.watch`. */
export interface WatchOptions {
  /** Resume after this event id (exclusive): only later events are yielded. */
  readonly after?: string | undefined;
  /** Stop the watch. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Most items held for a consumer that reads slower than events arrive. Past
   * it, intermediate progress events are coalesced (the newest per operation
   * kept); terminal and other event types are always kept.
   * Coalescing is for consumers that fall behind, measured by their lag (the
   * entries of earlier reads still unconsumed when a new read arrives, or a
   * consumer that took over 150 ms to ask for its next item), never by the
   * size of one read: a consumer that keeps up sees every event.
   * @default 256
   */
  readonly maxQueue?: number | undefined;
  /**
   * Byte budget of entries held for this watch and not yet consumed (field
   * names and values, after coalescing). Past it the watch ends with a
   * `SlowConsumerError` and holds nothing more: a consumer that stopped reading
   * never grows memory without bound. SSE and WebSocket connections close with
   * a clear reason; their clients resume from their last event id.
   * @default 1048576
   */
  readonly maxQueueBytes?: number | undefined;
}

/** What a watch needs from its manager. */
export interface WatchContext {
  readonly port: StreamPort;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly closed: AbortSignal;
}

const PAGE = 500;
/** A consumer that takes longer than this to ask for its next item, with more than `maxQueue` waiting, is behind. */
const LAG_MS = 150;

/**
 * Live entries are shared by every watcher of a key (the hub hands the same
 * objects to all): each is decoded, and sized, once per process.
 */
const decodedEvents = new WeakMap<StreamEntry, ProgressEvent | null>();
const entrySizes = new WeakMap<StreamEntry, number>();

/**
 * The event of a live entry, decoded once and shared (frozen) by every watcher
 * of its stream (all of which pass the same `op`); null for an invalid entry.
 */
export function sharedEvent(entry: StreamEntry, op: string | undefined): ProgressEvent | null {
  let event = decodedEvents.get(entry);
  if (event === undefined) {
    const decoded = decodeEvent(entry, op);
    event = decoded === null ? null : Object.freeze(decoded);
    decodedEvents.set(entry, event);
  }
  return event;
}

/** Approximate bytes an entry holds: its id, field names and values. */
function entrySize(entry: StreamEntry): number {
  let size = entrySizes.get(entry);
  if (size === undefined) {
    size = 64 + entry.id.length;
    for (const key in entry.fields) size += key.length + (entry.fields[key]?.length ?? 0);
    entrySizes.set(entry, size);
  }
  return size;
}

function removable(entry: StreamEntry): boolean {
  const type = entry.fields.type;
  return (type === undefined || type === "progress") && !isTerminal(entry.fields.status);
}

/** Keep at most `max` entries: drop progress events superseded by a later one for the same operation, oldest first. */
export function compact(queue: StreamEntry[], max: number): number {
  if (queue.length <= max) return 0;
  const latest = new Map<string, number>();
  queue.forEach((e, i) => {
    if (removable(e)) latest.set(e.fields.op ?? "", i);
  });
  let excess = queue.length - max;
  let dropped = 0;
  const kept: StreamEntry[] = [];
  queue.forEach((e, i) => {
    if (excess > 0 && removable(e) && latest.get(e.fields.op ?? "") !== i) {
      excess--;
      dropped++;
    } else kept.push(e);
  });
  queue.splice(0, queue.length, ...kept);
  return dropped;
}

/**
 * The first read of a watch, retried a few times (jittered backoff) when the
 * connection was closed or timed out under it: a backend that just replaced a
 * dead socket answers the next attempt. Other failures reach the caller.
 */
async function firstRead(
  ctx: WatchContext,
  keys: { readonly events: string; readonly state: string | null },
  after: string | undefined,
  signal: AbortSignal | undefined,
): Promise<OperationRead> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await ctx.port.read(keys.state, keys.events, { after, limit: PAGE });
    } catch (error) {
      // A connection replaced under the read (a silent socket) is worth another try; a backend that could not be
      // reached within connectTimeoutMs is not: the caller hears it at once.
      const transient = isConnectionClosedError(error);
      if (!transient || attempt >= 3 || signal?.aborted || ctx.closed.aborted) throw error;
      await sleep(50 + backoff(attempt, 100, 1000), signal);
    }
  }
}

/**
 * Snapshot, then the history after `after` (or all of it), then live events,
 * with no gap and no duplicate; ends after a terminal event of an operation
 * (never for a scope) or when `signal` aborts.
 */
export async function* watchStream(
  ctx: WatchContext,
  keys: { readonly events: string; readonly state: string | null; readonly op?: string | undefined },
  options: WatchOptions,
): AsyncGenerator<WatchItem, void, undefined> {
  const { signal } = options;
  // Entries of an operation's stream belong to it even when a foreign writer left `op` out.
  const op = keys.op;
  const maxQueue = options.maxQueue ?? 256;
  const maxQueueBytes = options.maxQueueBytes ?? 1_048_576;
  const single = keys.state !== null;
  if (signal?.aborted || ctx.closed.aborted) return;

  const first = await firstRead(ctx, keys, options.after, signal);
  const snapshot = decodeSnapshot(first.state);
  let lastId = options.after ?? "0-0";
  let reset = false;
  if (options.after !== undefined) {
    const oldest = first.firstId;
    if (oldest !== null && compareIds(options.after, oldest) < 0) {
      // The entry right after `after` may be gone. Only a stream that still starts at seq 1 proves nothing was trimmed.
      const head = await ctx.port.read(null, keys.events, { limit: 1 });
      reset = head.entries[0]?.fields.seq !== "1";
    } else if (oldest === null && snapshot?.id !== undefined && compareIds(options.after, snapshot.id) < 0) {
      reset = true; // the stream was dropped after the end; the snapshot holds what is left
    }
  }
  if (single || reset) {
    if (reset) ctx.metrics.increment("resets");
    yield { kind: reset ? "reset" : "snapshot", snapshot };
  }

  let page = first.entries;
  if (reset) page = (await ctx.port.read(null, keys.events, { limit: PAGE })).entries;
  let ended = false;
  // The highest seq seen: a later entry with a lower one means the backend lost data (a reset, never a rewind).
  let lastSeq = snapshot?.seq ?? 0;
  for (;;) {
    for (const entry of page) {
      if (compareIds(entry.id, lastId) <= 0) continue;
      lastId = entry.id;
      const event = decodeEvent(entry, op);
      if (event === null) continue;
      if (event.seq > lastSeq) lastSeq = event.seq;
      yield { kind: "event", event };
      if (single && isTerminal(event.status)) ended = true;
    }
    if (page.length < PAGE || ended) break;
    page = (await ctx.port.read(null, keys.events, { after: lastId, limit: PAGE })).entries;
  }
  // The snapshot was read with the history in one round trip: if it says the operation ended, nothing live follows.
  if (single && isTerminal(snapshot?.status)) ended = true;
  if (ended || signal?.aborted) return;
  if (lastId === "0-0" && snapshot?.id !== undefined && page.length === 0 && first.entries.length === 0) {
    // Nothing in the stream to read from: follow from what the snapshot last saw.
    lastId = snapshot.id;
  }

  const queue: StreamEntry[] = [];
  let queuedBytes = 0;
  // When the consumer was last handed an item (or woke with an empty queue): the start of its lag.
  let handedAt = Date.now();
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  let unsubscribe = (): void => {};
  const listener: Listener = {
    deliver(entries) {
      if (failure) return;
      const before = queue.length;
      for (const e of entries) {
        const tail = queue[queue.length - 1]?.id ?? lastId;
        if (compareIds(e.id, tail) > 0) {
          queue.push(e);
          queuedBytes += entrySize(e);
        }
      }
      // Coalesce only for a consumer that fell behind: its lag is what it left unconsumed
      // from earlier reads. One read larger than maxQueue, to a consumer that kept up, loses nothing.
      const dropped = compact(queue, maxQueue + (queue.length - before));
      if (dropped > 0) {
        queuedBytes = 0;
        for (const e of queue) queuedBytes += entrySize(e);
        ctx.metrics.increment("events_coalesced", dropped, { where: "delivery" });
      }
      if (queuedBytes > maxQueueBytes) {
        failure = new SlowConsumerError(
          `The watch of ${keys.events} held ${queuedBytes} bytes of events its consumer had not read (budget ${maxQueueBytes}); it ended. Resume after the last event id received.`,
          maxQueueBytes,
        );
        queue.length = 0;
        queuedBytes = 0;
        unsubscribe();
      }
      wake?.();
    },
    close() {
      wake?.();
    },
    fail(error) {
      failure ??= error;
      wake?.();
    },
  };
  const stop = (): void => wake?.();
  signal?.addEventListener("abort", stop, { once: true });
  unsubscribe = ctx.hub.subscribe(keys.events, lastId, listener);
  try {
    for (;;) {
      while (queue.length === 0) {
        if (signal?.aborted || ctx.closed.aborted) return;
        if (failure) throw failure;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        handedAt = Date.now();
      }
      if (failure instanceof SlowConsumerError) throw failure;
      if (queue.length > maxQueue && Date.now() - handedAt > LAG_MS) {
        // Back after falling behind: what piled up meanwhile is coalesced before it is handed over.
        const dropped = compact(queue, maxQueue);
        queuedBytes = 0;
        for (const e of queue) queuedBytes += entrySize(e);
        if (dropped > 0) ctx.metrics.increment("events_coalesced", dropped, { where: "delivery" });
      }
      const entry = queue.shift() as StreamEntry;
      queuedBytes -= entrySize(entry);
      const event = sharedEvent(entry, op);
      if (event === null) {
        lastId = entry.id; // not a valid event: skipped, never fatal
        continue;
      }
      if (single && event.seq > 0 && event.seq <= lastSeq) {
        // seq went backwards: the backend lost data (a restart that kept nothing). Start over from what it holds now.
        const again = await firstRead(ctx, keys, undefined, signal);
        ctx.metrics.increment("resets");
        yield { kind: "reset", snapshot: decodeSnapshot(again.state) };
        lastSeq = 0;
        const restart = again.entries.length > 0 ? again.entries : [entry];
        for (const e of restart) {
          const ev = decodeEvent(e, op);
          lastId = compareIds(e.id, lastId) > 0 ? e.id : lastId;
          if (ev === null) continue;
          if (ev.seq > lastSeq) lastSeq = ev.seq;
          ctx.metrics.increment("events_delivered");
          yield { kind: "event", event: ev };
          if (isTerminal(ev.status)) return;
        }
        while (queue.length > 0 && compareIds((queue[0] as StreamEntry).id, lastId) <= 0) {
          queuedBytes -= entrySize(queue.shift() as StreamEntry);
        }
        continue;
      }
      lastId = entry.id;
      if (event.seq > lastSeq) lastSeq = event.seq;
      ctx.metrics.increment("events_delivered");
      handedAt = Date.now();
      yield { kind: "event", event };
      if (single && isTerminal(event.status)) return;
    }
  } finally {
    unsubscribe();
    signal?.removeEventListener("abort", stop);
  }
}
