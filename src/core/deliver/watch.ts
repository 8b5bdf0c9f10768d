import { type BackendError, isConnectionClosedError, SlowConsumerError } from "../errors.ts";
import type { Metrics } from "../observe.ts";
import type { OperationRead, StreamEntry, StreamPort } from "../port/port.ts";
import { backoff, sleep } from "../util.ts";
import { compareIds, decodeEvent, decodeSnapshot, isTerminal, type ProgressEvent } from "../wire/index.ts";
import { compact, entrySize, shared, type WatchItem } from "./items.ts";
import type { Listener, Reader } from "./reader.ts";

export type { WatchItem } from "./items.ts";

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
  readonly hub: Reader;
  readonly metrics: Metrics;
  readonly closed: AbortSignal;
}

const PAGE = 500;
/** A consumer that takes longer than this to ask for its next item, with more than `maxQueue` waiting, is behind. */
const LAG_MS = 150;

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

type Keys = {
  readonly events: string;
  readonly state: string | null;
  readonly op?: string | undefined;
  /** A scope's stream (not an operation's): its watch spots each operation's data loss apart. */
  readonly scope?: boolean | undefined;
};

/** Operations a scope watch remembers the last seq of (the oldest forgotten first). */
const SCOPE_SEQS = 10_000;
type Result = IteratorResult<WatchItem, void>;
const DONE: Result = Object.freeze({ done: true, value: undefined });

/**
 * Snapshot, then the history after `after` (or all of it), then live events,
 * with no gap and no duplicate; ends after a terminal event of an operation
 * (never for a scope) or when `signal` aborts.
 */
export function watchStream(ctx: WatchContext, keys: Keys, options: WatchOptions): Watch {
  return new Watch(ctx, keys, options);
}

/**
 * One watch, as an async generator. Catching up (the first read, history
 * pages, a reset) runs as an inner generator; once live, entries the hub
 * delivers are handed to a waiting `next()` directly from the reader, and
 * {@link Watch.poll} gives what is already queued without a promise, so a
 * process with a thousand watchers of one operation does little per event
 * beyond resolving one promise each.
 */
export class Watch implements AsyncGenerator<WatchItem, void, undefined>, Listener {
  readonly #ctx: WatchContext;
  readonly #keys: Keys;
  readonly #signal: AbortSignal | undefined;
  /** Entries of an operation's stream belong to it even when a foreign writer left `op` out. */
  readonly #op: string | undefined;
  readonly #single: boolean;
  readonly #maxQueue: number;
  readonly #maxQueueBytes: number;
  readonly #after: string | undefined;
  /** Catching up (or recovering from a reset): items come from here until it ends. */
  #inner: AsyncGenerator<WatchItem, void, undefined> | null;
  #lastId: string;
  /** The highest seq seen: a later entry with a lower one means the backend lost data (a reset, never a rewind). */
  #lastSeq = 0;
  /** An operation's watch: the attempt seen last (0 before any); a higher one is a restart. */
  #lastAttempt = 0;
  /** A scope watch: the highest seq seen per operation (bounded), to spot one that lost its data. */
  readonly #seqByOp: Map<string, number> | undefined;
  #queue: StreamEntry[] = [];
  #queuedBytes = 0;
  /** When the consumer was last handed an item (or woke with an empty queue): the start of its lag. */
  #handedAt = Date.now();
  #failure: Error | undefined;
  #waiter: { resolve: (r: Result | Promise<Result>) => void; reject: (e: unknown) => void } | undefined;
  #unsubscribe: (() => void) | undefined;
  #subscribed = false;
  #ended = false;
  readonly #onAbort = (): void => this.#wakeWaiter();

  constructor(ctx: WatchContext, keys: Keys, options: WatchOptions) {
    this.#ctx = ctx;
    this.#keys = keys;
    this.#signal = options.signal;
    this.#op = keys.op;
    this.#single = keys.state !== null;
    this.#maxQueue = options.maxQueue ?? 256;
    this.#maxQueueBytes = options.maxQueueBytes ?? 1_048_576;
    this.#after = options.after;
    this.#lastId = options.after ?? "0-0";
    this.#seqByOp = keys.state === null && keys.scope === true ? new Map() : undefined;
    this.#inner = this.#catchUp();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next item: from the catch-up phase, from the live queue, or the next live entry to arrive. */
  next(): Promise<Result> {
    if (this.#inner !== null) return this.#nextInner(this.#inner);
    try {
      const ready = this.#take();
      if (ready !== undefined) return Promise.resolve(ready);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#inner !== null) return this.#nextInner(this.#inner);
    return new Promise<Result>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /**
   * The next item if one can be had without waiting (queued live entries),
   * else undefined: then `next()` waits for it. Throws what `next()` would reject with.
   */
  poll(): Result | undefined {
    if (this.#inner !== null) return undefined;
    return this.#take();
  }

  /** Stop: release the reader's subscription; a pending `next()` resolves done. */
  async return(): Promise<Result> {
    const inner = this.#inner;
    this.#inner = null;
    this.#finish();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve(DONE);
    if (inner !== null) await inner.return(undefined);
    return DONE;
  }

  /** Stop, rejecting with `error`. */
  async throw(error: unknown): Promise<Result> {
    await this.return();
    throw error;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  // Listener: called by the hub's reader.

  deliver(entries: readonly StreamEntry[]): void {
    if (this.#failure || this.#ended) return;
    const queue = this.#queue;
    const before = queue.length;
    for (const e of entries) {
      const tail = queue[queue.length - 1]?.id ?? this.#lastId;
      if (compareIds(e.id, tail) > 0) {
        queue.push(e);
        this.#queuedBytes += entrySize(e);
      }
    }
    if (queue.length === before) return;
    // Coalesce only for a consumer that fell behind: its lag is what it left unconsumed
    // from earlier reads. One read larger than maxQueue, to a consumer that kept up, loses nothing.
    if (queue.length > this.#maxQueue) this.#compact(this.#maxQueue + (queue.length - before));
    if (this.#queuedBytes > this.#maxQueueBytes) {
      this.#failure = new SlowConsumerError(
        `The watch of ${this.#keys.events} held ${this.#queuedBytes} bytes of events its consumer had not read (budget ${this.#maxQueueBytes}); it ended. Resume after the last event id received.`,
        this.#maxQueueBytes,
      );
      queue.length = 0;
      this.#queuedBytes = 0;
      this.#release();
    }
    this.#wakeWaiter();
  }

  close(): void {
    this.#wakeWaiter();
  }

  fail(error: BackendError): void {
    this.#failure ??= error;
    this.#wakeWaiter();
  }

  // Internals.

  #compact(max: number): void {
    const dropped = compact(this.#queue, max);
    if (dropped === 0) return;
    this.#queuedBytes = 0;
    for (const e of this.#queue) this.#queuedBytes += entrySize(e);
    this.#ctx.metrics.increment("events_coalesced", dropped, { where: "delivery" });
  }

  #wakeWaiter(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    let ready: Result | undefined;
    try {
      ready = this.#take();
    } catch (error) {
      this.#waiter = undefined;
      waiter.reject(error);
      return;
    }
    if (ready !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(ready);
    } else if (this.#inner !== null) {
      this.#waiter = undefined;
      waiter.resolve(this.#nextInner(this.#inner));
    } else this.#handedAt = Date.now();
  }

  /** Release the reader's subscription and the abort listener; idempotent. */
  #release(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }

  #finish(): void {
    this.#ended = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#release();
  }

  async #nextInner(inner: AsyncGenerator<WatchItem, void, undefined>): Promise<Result> {
    let r: Result;
    try {
      r = await inner.next();
    } catch (error) {
      this.#inner = null;
      this.#finish();
      throw error;
    }
    if (!r.done) return r;
    if (this.#inner === inner) this.#inner = null;
    if (this.#ended) return DONE;
    this.#subscribe();
    return this.next();
  }

  #subscribe(): void {
    if (this.#subscribed) return;
    this.#subscribed = true;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#unsubscribe = this.#ctx.hub.subscribe(this.#keys.events, this.#lastId, this, this.#single);
  }

  /**
   * The next live item if one is ready, else undefined (nothing queued, or a
   * reset to run: then `#inner` is set). Ends (done) on abort, close, or after
   * a terminal event of an operation; throws the failure that ended the watch.
   */
  #take(): Result | undefined {
    for (;;) {
      if (this.#ended) return DONE;
      const queue = this.#queue;
      if (queue.length === 0 || this.#failure instanceof SlowConsumerError) {
        if (this.#signal?.aborted || this.#ctx.closed.aborted) {
          this.#finish();
          return DONE;
        }
        const failure = this.#failure;
        if (failure) {
          this.#finish();
          throw failure;
        }
        return undefined;
      }
      if (queue.length > this.#maxQueue && Date.now() - this.#handedAt > LAG_MS) {
        // Back after falling behind: what piled up meanwhile is coalesced before it is handed over.
        this.#compact(this.#maxQueue);
      }
      const entry = queue.shift() as StreamEntry;
      this.#queuedBytes -= entrySize(entry);
      const decoded = shared(entry, this.#op);
      if (decoded === null) {
        this.#lastId = entry.id; // not a valid event: skipped, never fatal
        continue;
      }
      const event = decoded.event;
      if (this.#single && event.seq > 0 && event.seq <= this.#lastSeq) {
        // seq went backwards: the backend lost data (a restart that kept nothing). Start over from what it holds now.
        this.#inner = this.#recover(entry);
        return undefined;
      }
      // The operation was restarted while watched, or (a scope) one of its operations lost its data.
      const restarted = this.#single && this.#lastAttempt > 0 && event.attempt > this.#lastAttempt;
      if (this.#single) this.#lastAttempt = event.attempt;
      const lost = !this.#noteSeq(event);
      this.#lastId = entry.id;
      if (event.seq > this.#lastSeq) this.#lastSeq = event.seq;
      if (this.#single && isTerminal(event.status)) this.#finish();
      if (restarted || lost) {
        // A reset with the operation's snapshot now, then the event.
        this.#inner = this.#resetBefore(restarted ? this.#keys.state : null, event);
        return undefined;
      }
      this.#ctx.metrics.increment("events_delivered");
      this.#handedAt = Date.now();
      return decoded.result;
    }
  }

  /**
   * A scope watch: remember the event's seq for its operation; false when it
   * is not above the last one seen (the backend lost that operation's data).
   */
  #noteSeq(event: ProgressEvent): boolean {
    const seqs = this.#seqByOp;
    if (seqs === undefined || event.seq <= 0) return true;
    const last = seqs.get(event.op);
    seqs.delete(event.op);
    seqs.set(event.op, event.seq);
    if (seqs.size > SCOPE_SEQS) {
      const oldest = seqs.keys().next();
      if (!oldest.done) seqs.delete(oldest.value);
    }
    return last === undefined || event.seq > last;
  }

  /**
   * A reset, then `event`, already counted as seen. The reset carries the
   * snapshot at `stateKey` (the watched operation's own), or with null (a
   * scope) the event itself: a scope watch reads nothing but its scope's
   * stream, so an entry naming another operation never hands out that
   * operation's snapshot.
   */
  async *#resetBefore(stateKey: string | null, event: ProgressEvent): AsyncGenerator<WatchItem, void, undefined> {
    const ctx = this.#ctx;
    const snapshot = stateKey === null ? event : decodeSnapshot(await ctx.port.getState(stateKey));
    ctx.metrics.increment("resets");
    yield { kind: "reset", snapshot };
    ctx.metrics.increment("events_delivered");
    this.#handedAt = Date.now();
    yield { kind: "event", event };
  }

  /** After `seq` went backwards: a reset with the snapshot the backend holds now, then its history. */
  async *#recover(entry: StreamEntry): AsyncGenerator<WatchItem, void, undefined> {
    const ctx = this.#ctx;
    const again = await firstRead(ctx, this.#keys, undefined, this.#signal);
    ctx.metrics.increment("resets");
    yield { kind: "reset", snapshot: decodeSnapshot(again.state) };
    this.#lastSeq = 0;
    const restart = again.entries.length > 0 ? again.entries : [entry];
    for (const e of restart) {
      const ev = decodeEvent(e, this.#op);
      if (compareIds(e.id, this.#lastId) > 0) this.#lastId = e.id;
      if (ev === null) continue;
      if (ev.seq > this.#lastSeq) this.#lastSeq = ev.seq;
      ctx.metrics.increment("events_delivered");
      if (isTerminal(ev.status)) this.#finish();
      yield { kind: "event", event: ev };
      if (this.#ended) return;
    }
    const queue = this.#queue;
    while (queue.length > 0 && compareIds((queue[0] as StreamEntry).id, this.#lastId) <= 0) {
      this.#queuedBytes -= entrySize(queue.shift() as StreamEntry);
    }
  }

  /** The snapshot, then the history after `after` (or all of it); sets where live reading starts. */
  async *#catchUp(): AsyncGenerator<WatchItem, void, undefined> {
    const ctx = this.#ctx;
    const keys = this.#keys;
    const signal = this.#signal;
    const single = this.#single;
    const after = this.#after;
    if (signal?.aborted || ctx.closed.aborted) {
      this.#finish();
      return;
    }
    const first = await firstRead(ctx, keys, after, signal);
    const snapshot = decodeSnapshot(first.state);
    let reset = false;
    if (after !== undefined) {
      const oldest = first.firstId;
      if (oldest !== null && compareIds(after, oldest) < 0) {
        // The entry right after `after` may be gone. Only a stream that still starts at seq 1 proves nothing was trimmed.
        const head = await ctx.port.read(null, keys.events, { limit: 1 });
        reset = head.entries[0]?.fields.seq !== "1";
      } else if (oldest === null && snapshot?.id !== undefined && compareIds(after, snapshot.id) < 0) {
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
    this.#lastSeq = snapshot?.seq ?? 0;
    if (single) this.#lastAttempt = snapshot?.attempt ?? 0;
    for (;;) {
      for (const entry of page) {
        if (compareIds(entry.id, this.#lastId) <= 0) continue;
        this.#lastId = entry.id;
        const event = decodeEvent(entry, this.#op);
        if (event === null) continue;
        if (event.seq > this.#lastSeq) this.#lastSeq = event.seq;
        if (single && event.attempt > this.#lastAttempt) this.#lastAttempt = event.attempt;
        if (!this.#noteSeq(event)) {
          yield* this.#resetBefore(null, event);
          continue;
        }
        yield { kind: "event", event };
        if (single && isTerminal(event.status)) ended = true;
      }
      if (page.length < PAGE || ended) break;
      page = (await ctx.port.read(null, keys.events, { after: this.#lastId, limit: PAGE })).entries;
    }
    // The snapshot was read with the history in one round trip: if it says the operation ended, nothing live follows.
    if (single && isTerminal(snapshot?.status)) ended = true;
    if (ended || signal?.aborted || ctx.closed.aborted) {
      this.#finish();
      return;
    }
    if (this.#lastId === "0-0" && snapshot?.id !== undefined && page.length === 0 && first.entries.length === 0) {
      // Nothing in the stream to read from: follow from what the snapshot last saw.
      this.#lastId = snapshot.id;
    }
  }
}
