import { isConnectionClosedError, isTimeoutError } from "./errors.ts";
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
   * @default 256
   */
  readonly maxQueue?: number | undefined;
}

/** What a watch needs from its manager. */
export interface WatchContext {
  readonly port: StreamPort;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly closed: AbortSignal;
}

const PAGE = 500;

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
      const transient = isConnectionClosedError(error) || isTimeoutError(error);
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
  for (;;) {
    for (const entry of page) {
      if (compareIds(entry.id, lastId) <= 0) continue;
      lastId = entry.id;
      const event = decodeEvent(entry, op);
      if (event === null) continue;
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
  let wake: (() => void) | undefined;
  const listener: Listener = {
    deliver(entries) {
      for (const e of entries) {
        const tail = queue[queue.length - 1]?.id ?? lastId;
        if (compareIds(e.id, tail) > 0) queue.push(e);
      }
      const dropped = compact(queue, maxQueue);
      if (dropped > 0) ctx.metrics.increment("events_coalesced", dropped, { where: "delivery" });
      wake?.();
    },
    close() {
      wake?.();
    },
  };
  const stop = (): void => wake?.();
  signal?.addEventListener("abort", stop);
  const unsubscribe = ctx.hub.subscribe(keys.events, lastId, listener);
  try {
    for (;;) {
      while (queue.length === 0) {
        if (signal?.aborted || ctx.closed.aborted) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      const entry = queue.shift() as StreamEntry;
      lastId = entry.id;
      const event = decodeEvent(entry, op);
      if (event === null) continue;
      ctx.metrics.increment("events_delivered");
      yield { kind: "event", event };
      if (single && isTerminal(event.status)) return;
    }
  } finally {
    unsubscribe();
    signal?.removeEventListener("abort", stop);
  }
}
