/**
 * Folder `deliver/`: the read path. This file is the reader (one per
 * manager: every watched stream read once, fanned out in memory); `watch.ts`
 * turns it into one watcher's snapshot, history and live events; `sse.ts` and
 * `websocket.ts` serve watchers over HTTP; `http.ts` holds what those share
 * (the `authorize` hook, the resume id, the 400 answer).
 *
 * @module
 */
import { BackendError, isWrongTypeError } from "../errors.ts";
import type { Logger, Metrics } from "../observe.ts";
import type { StreamEntry, StreamPort } from "../port/port.ts";
import { backoff, sleep } from "../util.ts";
import { compareIds } from "../wire/index.ts";

/** A key holds another type of value (as the adapter reported it, maybe wrapped once). */
function isWrongType(error: unknown): boolean {
  return isWrongTypeError(error) || (error instanceof Error && isWrongTypeError(error.cause));
}

/** The keys a WRONGTYPE error names (the adapter found them), or none. */
function wrongTypeKeys(error: unknown): readonly string[] {
  if (isWrongTypeError(error)) return Array.isArray(error.keys) ? error.keys : [];
  return error instanceof Error ? wrongTypeKeys(error.cause) : [];
}

/** Receives entries of one key, in order; may see an entry twice and must drop ids at or below its own. */
export interface Listener {
  deliver(entries: readonly StreamEntry[]): void;
  /** The manager closed: stop waiting. */
  close(): void;
  /** Reading failed `maxReadFailures` times in a row: end with this error. */
  fail(error: BackendError): void;
}

/** What watchers subscribe to: the blocking reader ({@link Hub}) or the live reader. */
export interface Reader {
  /**
   * Deliver every entry of `key` after `after` to `listener` until the
   * returned function is called. `sequenced`: an operation's stream, whose
   * `seq` goes up by one per entry.
   */
  subscribe(key: string, after: string, listener: Listener, sequenced?: boolean): () => void;
}

interface KeyState {
  cursor: string;
  readonly listeners: Set<Listener>;
}

/**
 * One reader per manager: however many watchers, each watched stream is read
 * once and fanned out in memory. The reader keeps one `wait` in flight over
 * every watched key; adding a key (or a watcher that needs older entries)
 * interrupts it so the next read includes the change at once.
 */
export class Hub implements Reader {
  readonly #keys = new Map<string, KeyState>();
  readonly #port: StreamPort;
  readonly #blockMs: number;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #closed: AbortSignal;
  readonly #maxReadFailures: number;
  #interrupt: AbortController | undefined;
  #running = false;

  constructor(
    port: StreamPort,
    options: { blockMs: number; logger: Logger; metrics: Metrics; closed: AbortSignal; maxReadFailures: number },
  ) {
    this.#port = port;
    this.#maxReadFailures = options.maxReadFailures;
    this.#blockMs = options.blockMs;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#closed = options.closed;
    // One listener on the manager's signal for all watchers, not one each.
    this.#closed.addEventListener(
      "abort",
      () => {
        this.#interrupt?.abort();
        for (const s of this.#keys.values()) for (const l of s.listeners) l.close();
      },
      { once: true },
    );
  }

  /** Number of keys read now. */
  get size(): number {
    return this.#keys.size;
  }

  /** Deliver every entry of `key` after `after` to `listener` until the returned function is called. */
  subscribe(key: string, after: string, listener: Listener): () => void {
    let state = this.#keys.get(key);
    if (!state) {
      state = { cursor: after, listeners: new Set() };
      this.#keys.set(key, state);
      this.#wake();
    } else if (compareIds(after, state.cursor) < 0) {
      // This watcher needs entries the reader already passed: read them again; others drop duplicates.
      state.cursor = after;
      this.#wake();
    }
    state.listeners.add(listener);
    this.#metrics.gauge("watchers_active", this.#count());
    return () => {
      const s = this.#keys.get(key);
      if (!s) return;
      s.listeners.delete(listener);
      if (s.listeners.size === 0) this.#keys.delete(key);
      this.#metrics.gauge("watchers_active", this.#count());
      if (this.#keys.size === 0) this.#interrupt?.abort();
    };
  }

  /** End every watch of this reader: each listener gets the error and is removed. */
  #failAll(cause: unknown, failures: number): void {
    const detail = cause instanceof Error ? cause.message : String(cause);
    const error = new BackendError(
      `Reading watched streams failed ${failures} times in a row (${detail}); the watch ended. Watch again to resume from the last event id.`,
      { cause },
    );
    const states = [...this.#keys.values()];
    this.#keys.clear();
    this.#metrics.gauge("watchers_active", 0);
    for (const s of states) for (const l of s.listeners) l.fail(error);
  }

  /**
   * End every watch of `key` (it holds another type: someone wrote over it),
   * with the reason naming the key. False when the key is not watched now.
   */
  #endWrongType(key: string, cause: unknown): boolean {
    const state = this.#keys.get(key);
    if (!state) return false;
    this.#keys.delete(key);
    this.#metrics.increment("read_failures");
    this.#logger.error?.("a watched key holds another type; ending its watches", { key, error: cause });
    const error = new BackendError(
      `The watched key ${key} holds another type of value, not a stream (${cause instanceof Error ? cause.message : String(cause)}); the watch ended.`,
      { cause },
    );
    for (const l of state.listeners) l.fail(error);
    return true;
  }

  /**
   * A read of many keys failed because one holds another type. When the
   * adapter named the keys (it asked their types in one round trip), end
   * their watches at once; else read each key alone and end the watches of
   * the keys that fail. Returns how many keys were dropped.
   */
  async #isolate(
    cursors: ReadonlyArray<{ readonly key: string; readonly after: string }>,
    error: unknown,
  ): Promise<number> {
    let dropped = 0;
    const named = wrongTypeKeys(error);
    if (named.length > 0) {
      for (const key of new Set(named)) if (this.#endWrongType(key, error)) dropped++;
    } else {
      for (const { key, after } of cursors) {
        try {
          await this.#port.read(null, key, { after, limit: 1 });
        } catch (cause) {
          if (isWrongType(cause) && this.#endWrongType(key, cause)) dropped++;
        }
      }
    }
    if (dropped > 0) this.#metrics.gauge("watchers_active", this.#count());
    return dropped;
  }

  #count(): number {
    let n = 0;
    for (const s of this.#keys.values()) n += s.listeners.size;
    return n;
  }

  #wake(): void {
    if (this.#running) this.#interrupt?.abort();
    else void this.#run();
  }

  async #run(): Promise<void> {
    this.#running = true;
    let failures = 0;
    try {
      while (this.#keys.size > 0 && !this.#closed.aborted) {
        const interrupt = new AbortController();
        this.#interrupt = interrupt;
        const cursors = [...this.#keys].map(([key, s]) => ({ key, after: s.cursor }));
        const asked = new Map(cursors.map((c) => [c.key, c.after]));
        let batches: Awaited<ReturnType<StreamPort["wait"]>>;
        try {
          batches = await this.#port.wait(cursors, { blockMs: this.#blockMs, count: 500, signal: interrupt.signal });
          failures = 0;
        } catch (error) {
          if (this.#closed.aborted) break;
          if (isWrongType(error) && (await this.#isolate(cursors, error)) > 0) continue;
          failures++;
          this.#metrics.increment("read_failures");
          const ending = failures >= this.#maxReadFailures;
          this.#logger.error?.(
            ending
              ? `reading watched streams failed ${failures} times in a row; ending the watches`
              : "reading watched streams failed; retrying",
            { error, keys: cursors.length, failures, maxReadFailures: this.#maxReadFailures },
          );
          if (ending) {
            this.#failAll(error, failures);
            failures = 0;
            continue;
          }
          await sleep(Math.max(50, backoff(failures - 1, 100, 2000)), this.#closed);
          continue;
        }
        const now = Date.now();
        for (const { key, entries } of batches) {
          const state = this.#keys.get(key);
          const last = entries[entries.length - 1];
          if (!state || !last) continue;
          // A watcher subscribed during the read and lowered the cursor: read again from there
          // (listeners drop repeats) instead of moving the cursor past what it still needs.
          const from = asked.get(key);
          if (from !== undefined && compareIds(state.cursor, from) < 0) continue;
          if (compareIds(last.id, state.cursor) > 0) state.cursor = last.id;
          for (const listener of state.listeners) listener.deliver(entries);
          const ms = Number(last.id.split("-")[0]);
          if (Number.isFinite(ms)) this.#metrics.observe("delivery_lag_ms", Math.max(0, now - ms));
        }
      }
    } finally {
      this.#running = false;
      this.#interrupt = undefined;
      // A subscription may have arrived as the loop ended.
      if (this.#keys.size > 0 && !this.#closed.aborted) void this.#run();
    }
  }
}
