/**
 * The live reader: each watched stream's events arrive on its live channel
 * (the append script publishes every event it writes), and the stream is read
 * only to catch up. A watched key costs nothing while quiet and one message
 * per event, however many keys a process watches.
 *
 * Order of a new key (Centrifugo's): subscribe, and once the backend
 * confirmed, read what was written after the watcher's last id; live
 * messages that arrive meanwhile are held and merged after the read,
 * dropping ids already delivered. A `seq` jump on an operation's channel
 * means a missed message: the gap is read from the stream. After the
 * subscriber connection was lost, every key catches up from its last id,
 * a few at a time, in pages.
 *
 * @module
 */
import { BackendError } from "../errors.ts";
import type { Logger, Metrics } from "../observe.ts";
import type { LiveHandler, LiveSubscription, StreamEntry, StreamPort } from "../port/port.ts";
import { backoff, microtask, sleep } from "../util.ts";
import { compareIds } from "../wire/index.ts";
import type { Listener } from "./reader.ts";

/** Entries per catch-up read. */
const PAGE = 500;
/** Keys caught up at once after a reconnect. */
const CATCH_UP_CONCURRENCY = 8;

/** How one watcher of a key is fed: held back while its own catch-up read runs. */
interface Feed {
  readonly listener: Listener;
  /** Live entries held while this watcher's catch-up read runs; null once it is live. */
  held: StreamEntry[] | null;
}

interface KeyState {
  readonly key: string;
  /** An operation's stream (its entries' `seq` go up by one) rather than a scope's. */
  readonly sequenced: boolean;
  /** Highest id handed to the watchers of the key. */
  lastId: string;
  /** Highest `seq` seen on an operation's stream (0: none yet). */
  lastSeq: number;
  readonly feeds: Set<Feed>;
  /** Live entries held while the key catches up (subscribing, a gap, a reconnect); null when live. */
  held: StreamEntry[] | null;
  /** The subscription was confirmed. */
  subscribed: boolean;
  /** A catch-up read runs; `again` asks it for one more round when it ends. */
  catching: boolean;
  again: boolean;
}

/** Options of a {@link LiveReader}. */
export interface LiveReaderOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly closed: AbortSignal;
  /** Failed reads of one key in a row after which its watches end. */
  readonly maxReadFailures: number;
  /**
   * Called once when the live path failed for good (a backend that refuses
   * subscriptions): the reader hands every watch to it, from its last id.
   */
  readonly fallback: () => {
    subscribe(key: string, after: string, listener: Listener, sequenced?: boolean): () => void;
  };
}

/**
 * One live reader per manager: one subscription (one subscriber connection
 * on Redis) for every watched key, whatever the number of watchers. Same
 * contract as the blocking reader: {@link LiveReader.subscribe} delivers every
 * entry of a key after `after`, in order, possibly twice (listeners drop ids
 * they have).
 */
export class LiveReader {
  readonly #keys = new Map<string, KeyState>();
  readonly #port: StreamPort;
  readonly #o: LiveReaderOptions;
  readonly #subscription: LiveSubscription;
  /** Keys to subscribe or unsubscribe at the end of this tick, in one call each. */
  #toAdd = new Set<string>();
  #toRemove = new Set<string>();
  #flushing = false;
  #fallback: ReturnType<LiveReaderOptions["fallback"]> | undefined;
  /** Unsubscribe functions of watches handed to the fallback, by listener. */
  readonly #handedOver = new Map<Listener, () => void>();

  constructor(port: StreamPort, live: NonNullable<StreamPort["live"]>, options: LiveReaderOptions) {
    this.#port = port;
    this.#o = options;
    const handler: LiveHandler = {
      message: (key, entry) => this.#message(key, entry),
      resumed: () => this.#resumed(),
      failed: (error) => this.#failed(error),
    };
    this.#subscription = live(handler);
    options.closed.addEventListener(
      "abort",
      () => {
        for (const s of this.#keys.values()) for (const f of s.feeds) f.listener.close();
        this.#keys.clear();
        void this.#subscription.close().catch(() => {});
      },
      { once: true },
    );
  }

  /** Number of keys followed now. */
  get size(): number {
    return this.#keys.size;
  }

  /**
   * Deliver every entry of `key` after `after` to `listener` until the
   * returned function is called. `sequenced`: the key is an operation's stream,
   * whose `seq` goes up by one per entry, so a jump reveals a missed message.
   */
  subscribe(key: string, after: string, listener: Listener, sequenced = false): () => void {
    if (this.#fallback) {
      const off = this.#fallback.subscribe(key, after, listener, sequenced);
      this.#handedOver.set(listener, off);
      return () => {
        this.#handedOver.delete(listener);
        off();
      };
    }
    let state = this.#keys.get(key);
    const feed: Feed = { listener, held: null };
    if (!state) {
      state = {
        key,
        sequenced,
        lastId: after,
        lastSeq: 0,
        feeds: new Set([feed]),
        held: [],
        subscribed: false,
        catching: false,
        again: false,
      };
      this.#keys.set(key, state);
      this.#toRemove.delete(key);
      this.#toAdd.add(key);
      this.#schedule();
    } else {
      state.feeds.add(feed);
      if (state.held === null && compareIds(after, state.lastId) < 0) {
        // This watcher is behind the key: read what it lacks, holding live entries for it meanwhile.
        feed.held = [];
        void this.#catchUpFeed(state, feed, after);
      }
    }
    this.#gauge();
    return () => {
      const off = this.#handedOver.get(listener);
      if (off) {
        this.#handedOver.delete(listener);
        off();
        return;
      }
      const s = this.#keys.get(key);
      if (!s) return;
      s.feeds.delete(feed);
      if (s.feeds.size === 0) {
        this.#keys.delete(key);
        this.#toAdd.delete(key);
        if (s.subscribed) {
          this.#toRemove.add(key);
          this.#schedule();
        }
      }
      this.#gauge();
    };
  }

  #gauge(): void {
    let n = 0;
    for (const s of this.#keys.values()) n += s.feeds.size;
    this.#o.metrics.gauge("watchers_active", n);
  }

  #schedule(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    microtask(() => void this.#flush());
  }

  /** Send the subscriptions and unsubscriptions gathered in this tick, one call each; retry on failure. */
  async #flush(): Promise<void> {
    let failures = 0;
    try {
      while ((this.#toAdd.size > 0 || this.#toRemove.size > 0) && !this.#o.closed.aborted && !this.#fallback) {
        const remove = [...this.#toRemove];
        this.#toRemove = new Set();
        if (remove.length > 0) await this.#subscription.remove(remove).catch(() => {});
        const add = [...this.#toAdd];
        this.#toAdd = new Set();
        if (add.length === 0) continue;
        try {
          await this.#subscription.add(add);
          failures = 0;
        } catch (error) {
          failures++;
          this.#o.metrics.increment("read_failures");
          const ending = failures >= this.#o.maxReadFailures;
          this.#o.logger.error?.(
            ending
              ? "subscribing to live channels failed; ending the watches"
              : "subscribing to live channels failed; retrying",
            { error, keys: add.length, failures },
          );
          for (const key of add) {
            const state = this.#keys.get(key);
            if (!state) continue;
            if (ending) this.#end(state, this.#readError(state.key, error, failures));
            else this.#toAdd.add(key);
          }
          if (!ending) await sleep(Math.max(50, backoff(failures - 1, 100, 2000)), this.#o.closed);
          continue;
        }
        const now = add.map((k) => this.#keys.get(k)).filter((s): s is KeyState => s !== undefined);
        for (const state of now) state.subscribed = true;
        // Subscribed: what was written before is read now, what comes after arrives live.
        void this.#catchUpMany(now);
      }
    } finally {
      this.#flushing = false;
      if ((this.#toAdd.size > 0 || this.#toRemove.size > 0) && !this.#o.closed.aborted && !this.#fallback) {
        this.#schedule();
      }
    }
  }

  /** Live messages of this tick, per key: handed over together, as one read would be. */
  #incoming = new Map<KeyState, StreamEntry[]>();
  /** The other map of the pair: handed-over maps are cleared and reused, not reallocated per tick. */
  #spare = new Map<KeyState, StreamEntry[]>();

  #message(key: string, entry: StreamEntry): void {
    const state = this.#keys.get(key);
    if (!state) return;
    if (state.held !== null) {
      state.held.push(entry);
      return;
    }
    const batch = this.#incoming.get(state);
    if (batch) {
      batch.push(entry);
      return;
    }
    this.#incoming.set(state, [entry]);
    if (this.#incoming.size === 1) microtask(() => this.#handOver());
  }

  /** Deliver the messages of this tick, one call per key; a `seq` jump holds the rest and reads the gap. */
  #handOver(): void {
    const incoming = this.#incoming;
    this.#incoming = this.#spare;
    this.#spare = incoming;
    try {
      for (const [state, entries] of incoming) {
        if (this.#keys.get(state.key) !== state) continue;
        if (state.held !== null) {
          state.held.push(...entries);
          continue;
        }
        let end = entries.length;
        if (state.sequenced) {
          let seq = state.lastSeq;
          for (let i = 0; i < entries.length; i++) {
            const next = Number((entries[i] as StreamEntry).fields.seq);
            if (!Number.isSafeInteger(next)) continue;
            if (seq > 0 && next > seq + 1) {
              end = i;
              break;
            }
            seq = next;
          }
        }
        this.#deliver(state, end === entries.length ? entries : entries.slice(0, end));
        if (end < entries.length) {
          // A message was missed (seq jumped): read the gap from the stream, holding what came after it.
          state.held = entries.slice(end);
          void this.#catchUp(state);
        }
      }
    } finally {
      incoming.clear();
    }
  }

  /** Hand entries (ascending) to every feed of the key; those at or below `lastId` are dropped. */
  #deliver(state: KeyState, all: readonly StreamEntry[]): void {
    let entries = all;
    const first = entries[0];
    if (first && compareIds(first.id, state.lastId) <= 0) {
      entries = entries.filter((e) => compareIds(e.id, state.lastId) > 0);
    }
    const last = entries[entries.length - 1];
    if (!last) return;
    state.lastId = last.id;
    if (state.sequenced) {
      const seq = Number(last.fields.seq);
      if (Number.isSafeInteger(seq)) state.lastSeq = seq;
    }
    for (const feed of state.feeds) {
      if (feed.held !== null) feed.held.push(...entries);
      else feed.listener.deliver(entries);
    }
    const ms = Number(last.id.slice(0, last.id.indexOf("-")));
    if (Number.isFinite(ms)) this.#o.metrics.observe("delivery_lag_ms", Math.max(0, Date.now() - ms));
  }

  /** The subscriber connection was lost and is back: every key catches up from its last id. */
  #resumed(): void {
    const states = [...this.#keys.values()].filter((s) => s.subscribed);
    for (const s of states) s.held ??= [];
    void this.#catchUpMany(states);
  }

  /** Catch several keys up, a few at a time. */
  async #catchUpMany(states: readonly KeyState[]): Promise<void> {
    const queue = [...states];
    const worker = async (): Promise<void> => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) await this.#catchUp(s);
    };
    await Promise.all(Array.from({ length: Math.min(CATCH_UP_CONCURRENCY, queue.length) }, worker));
  }

  /**
   * Read a key's stream after its last id, page by page, then merge the live
   * entries held meanwhile. One round at a time per key: a request while one
   * runs makes it read once more.
   */
  async #catchUp(state: KeyState): Promise<void> {
    if (state.catching) {
      state.again = true;
      return;
    }
    state.catching = true;
    try {
      do {
        state.again = false;
        await this.#catchUpRound(state);
      } while (state.again && this.#keys.get(state.key) === state);
    } finally {
      state.catching = false;
    }
  }

  async #catchUpRound(state: KeyState): Promise<void> {
    const alive = (): boolean => this.#keys.get(state.key) === state;
    for (;;) {
      try {
        const done = await this.#readPages(
          state.key,
          state.lastId,
          alive,
          (page) => this.#deliver(state, page),
          (error) => this.#o.logger.error?.("catching up a watched stream failed; retrying", { key: state.key, error }),
        );
        if (!done) return;
      } catch (error) {
        this.#end(state, error instanceof BackendError ? error : this.#readError(state.key, error, 1));
        return;
      }
      // Caught up: merge what arrived live meanwhile (a jump in it starts another round).
      const held = state.held ?? [];
      state.held = null;
      held.sort((a, b) => compareIds(a.id, b.id));
      for (let i = 0; i < held.length; i++) {
        const entry = held[i] as StreamEntry;
        if (compareIds(entry.id, state.lastId) <= 0) continue;
        if (state.sequenced && state.lastSeq > 0) {
          const seq = Number(entry.fields.seq);
          if (Number.isSafeInteger(seq) && seq > state.lastSeq + 1) {
            state.held = held.slice(i);
            break;
          }
        }
        this.#deliver(state, [entry]);
      }
      if (state.held === null) return;
    }
  }

  /** Read what one watcher lacks (after `after`), then hand it what was held for it. */
  async #catchUpFeed(state: KeyState, feed: Feed, after: string): Promise<void> {
    const read: StreamEntry[] = [];
    try {
      const done = await this.#readPages(
        state.key,
        after,
        () => state.feeds.has(feed),
        (page) => read.push(...page),
      );
      if (!done) return;
    } catch (error) {
      state.feeds.delete(feed);
      feed.listener.fail(error instanceof BackendError ? error : this.#readError(state.key, error, 1));
      return;
    }
    const held = feed.held ?? [];
    feed.held = null;
    // The listener drops ids it already has: the read, then what arrived live meanwhile.
    if (read.length > 0) feed.listener.deliver(read);
    if (held.length > 0) feed.listener.deliver(held);
  }

  /**
   * Read `key` after `after` to its end, a page at a time, handing each page
   * to `onPage`. A failed read is retried with backoff (`onRetry` hears each
   * failure). Resolves true once read to the end, false when `alive()` turned
   * false or the manager closed on the way.
   *
   * @throws {BackendError} after `maxReadFailures` failed reads in a row.
   */
  async #readPages(
    key: string,
    after: string,
    alive: () => boolean,
    onPage: (page: readonly StreamEntry[]) => void,
    onRetry?: (error: unknown) => void,
  ): Promise<boolean> {
    let from = after;
    let failures = 0;
    for (;;) {
      if (!alive() || this.#o.closed.aborted) return false;
      let page: readonly StreamEntry[];
      try {
        page = (await this.#port.read(null, key, { after: from, limit: PAGE })).entries;
      } catch (error) {
        if (!alive() || this.#o.closed.aborted) return false;
        failures++;
        this.#o.metrics.increment("read_failures");
        if (failures >= this.#o.maxReadFailures) throw this.#readError(key, error, failures);
        onRetry?.(error);
        await sleep(Math.max(50, backoff(failures - 1, 100, 2000)), this.#o.closed);
        continue;
      }
      failures = 0;
      if (!alive()) return false;
      onPage(page);
      const last = page[page.length - 1];
      if (last) from = last.id;
      if (page.length < PAGE) return true;
    }
  }

  /** End every watch of one key with the reason. */
  #end(state: KeyState, error: BackendError): void {
    if (this.#keys.get(state.key) === state) this.#keys.delete(state.key);
    if (state.subscribed) {
      this.#toRemove.add(state.key);
      this.#schedule();
    }
    for (const feed of state.feeds) feed.listener.fail(error);
    this.#gauge();
  }

  #readError(key: string, cause: unknown, failures: number): BackendError {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new BackendError(
      `Reading the watched stream ${key} failed ${failures} times in a row (${detail}); the watch ended. Watch again to resume from the last event id.`,
      { cause },
    );
  }

  /** The live path failed for good: every watch goes on with the fallback reader, from its last id. */
  #failed(error: Error): void {
    if (this.#fallback || this.#o.closed.aborted) return;
    this.#o.logger.warn?.("live channels unavailable; watching by reading the streams instead", { error });
    const fallback = this.#o.fallback();
    this.#fallback = fallback;
    const states = [...this.#keys.values()];
    this.#keys.clear();
    for (const state of states) {
      for (const feed of state.feeds) {
        // A watcher still catching up resumes from where the key is; it drops what it has.
        const off = fallback.subscribe(state.key, state.lastId, feed.listener, state.sequenced);
        this.#handedOver.set(feed.listener, off);
        if (feed.held !== null && feed.held.length > 0) feed.listener.deliver(feed.held);
      }
    }
    void this.#subscription.close().catch(() => {});
  }
}
