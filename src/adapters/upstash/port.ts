/**
 * The Upstash `StreamPort` over any client shaped like `@upstash/redis`
 * (see {@link UpstashClient}). Every call costs at most one HTTP request
 * (reads made in the same turn share one); REST cannot block, so waits poll
 * with an adaptive interval.
 *
 * @module
 */

import { BackendError, ConnectionClosedError, ProgressValidationError } from "../../core/errors.ts";
import type {
  AppendItem,
  AppendOptions,
  AppendResult,
  ClaimOptions,
  Cursor,
  Fields,
  GroupReadOptions,
  KeyEntries,
  LiveHandler,
  LiveSubscription,
  OperationRead,
  PortCapabilities,
  StreamEntry,
  StreamPort,
} from "../../core/port/port.ts";
import { appendCall, decodeAppendCall } from "../../redis/append.ts";
import { namingWrongType, replyError } from "../../redis/errors.ts";
import { CANCEL_SCRIPT, CANCEL_SHA, DELETE_SCRIPT } from "../../redis/scripts.ts";
import type { UpstashClient, UpstashPipeline } from "./client.ts";
import { type UpstashLiveOptions, upstashLive } from "./live.ts";
import { toClaimed, toEntries, toGroupPending, toKeyEntries, toState } from "./replies.ts";

/** Polling of `wait` and `groupRead`, which REST cannot do server-side. */
export interface UpstashPollOptions {
  /**
   * Shortest pause between two polls, used while entries keep arriving.
   * Each poll is one request (and one billed command on Upstash).
   * @default 50
   */
  readonly pollMinMs?: number | undefined;
  /**
   * Longest pause between two polls: the interval doubles after every empty
   * poll up to this, so an idle watcher costs about one request per `pollMaxMs`.
   * @default 1000
   */
  readonly pollMaxMs?: number | undefined;
  /**
   * Live events through the database's streaming subscribe (the append
   * script publishes each event on its stream's channel): an idle watcher
   * then costs no request while its stream stands, and an event none per
   * watcher. Polling is the fallback, used as well when the endpoint refuses
   * streaming subscribe. `false`: poll only. With `upstash({ url, token })`
   * the same URL and token are used; with `upstash({ client })` give them here.
   * @default on with `{ url, token }`, off with `{ client }`
   */
  readonly live?: false | UpstashLiveOptions | undefined;
}

/** The port returned by `upstash()`: a `StreamPort` that is also `AsyncDisposable`. */
export interface UpstashPort extends StreamPort, AsyncDisposable {}

const DEFAULT_POLL_MIN_MS = 50;
const DEFAULT_POLL_MAX_MS = 1000;
const CAPABILITIES: PortCapabilities = Object.freeze({ groups: true, blocking: false });
const ABORTED: unique symbol = Symbol("aborted");

/** Commands of one port call waiting to go out in a shared pipeline. */
interface QueuedPipeline {
  readonly what: string;
  /** How many commands `add` queues. */
  readonly size: number;
  readonly add: (pipeline: UpstashPipeline) => void;
  readonly resolve: (replies: unknown[]) => void;
  readonly reject: (error: unknown) => void;
}

/** Adaptive poll interval: back to the floor when entries arrive, doubling to the ceiling while idle. */
class Backoff {
  #current: number;
  constructor(
    readonly min: number,
    readonly max: number,
  ) {
    this.#current = min;
  }
  reset(): void {
    this.#current = this.min;
  }
  next(): number {
    const pause = this.#current;
    this.#current = Math.min(this.max, this.#current * 2);
    return pause;
  }
}

/** Settle with the promise, or with {@link ABORTED} as soon as one of the signals aborts. */
function raceAbort<T>(promise: Promise<T>, signals: readonly AbortSignal[]): Promise<T | typeof ABORTED> {
  if (signals.some((signal) => signal.aborted)) {
    promise.catch(() => {});
    return Promise.resolve(ABORTED);
  }
  return new Promise<T | typeof ABORTED>((resolve, reject) => {
    const onAbort = (): void => {
      cleanup();
      promise.catch(() => {});
      resolve(ABORTED);
    };
    const cleanup = (): void => {
      for (const signal of signals) signal.removeEventListener("abort", onAbort);
    };
    for (const signal of signals) signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

/** Sleep `ms`, ending early (with {@link ABORTED}) when a signal aborts. */
function pause(ms: number, signals: readonly AbortSignal[]): Promise<undefined | typeof ABORTED> {
  let cancel = (): void => {};
  const slept = new Promise<undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    cancel = () => clearTimeout(timer);
  });
  return raceAbort(slept, signals).then((outcome) => {
    cancel();
    return outcome;
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A pipeline that failed because one of its commands did (`@upstash/redis` says which). */
function isCommandError(error: unknown): boolean {
  return /^Command \d+ \[/.test(messageOf(error));
}

function isNoScript(error: unknown): boolean {
  return messageOf(error).toLowerCase().includes("noscript");
}

function checkPollOption(name: "pollMinMs" | "pollMaxMs", value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ProgressValidationError(name, value, "expected a positive number of milliseconds");
  }
}

/**
 * Build the Upstash port over a client shaped like `@upstash/redis`. The
 * `upstash()` entry point calls this; use it directly only to bring a client
 * of your own that is not a `Redis` instance.
 *
 * @example
 * ```ts
 * const port = createUpstashPort(new Redis({ url, token, automaticDeserialization: false }));
 * ```
 */
export function createUpstashPort(client: UpstashClient, options: UpstashPollOptions = {}): UpstashPort {
  const pollMinMs = options.pollMinMs ?? DEFAULT_POLL_MIN_MS;
  const pollMaxMs = options.pollMaxMs ?? DEFAULT_POLL_MAX_MS;
  checkPollOption("pollMinMs", pollMinMs);
  checkPollOption("pollMaxMs", pollMaxMs);
  if (pollMaxMs < pollMinMs) {
    throw new ProgressValidationError("pollMaxMs", pollMaxMs, `must not be below pollMinMs (${pollMinMs})`);
  }
  const waitBackoff = new Backoff(pollMinMs, pollMaxMs);
  const groupBackoff = new Backoff(pollMinMs, pollMaxMs);
  const closing = new AbortController();

  const closedError = (): ConnectionClosedError =>
    new ConnectionClosedError("The upstash port is closed: create a new one with upstash({ url, token }).");

  /** Run one client call, mapping failures (HTTP, network, Redis) to BackendError. */
  const call = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    if (closing.signal.aborted) throw closedError();
    try {
      return await run();
    } catch (error) {
      const message = messageOf(error);
      const short = message.length > 300 ? `${message.slice(0, 300)}…` : message;
      throw replyError(message, `Upstash ${what} failed: ${short}`, error);
    }
  };

  /** EVALSHA, then EVAL once when the script is not cached (a second request only then). */
  const runScript = (what: string, script: string, sha: string, keys: string[], args: string[]): Promise<unknown> =>
    call(what, async () => {
      try {
        return await client.evalsha(sha, keys, args);
      } catch (error) {
        if (!isNoScript(error)) throw error;
        return await client.eval(script, keys, args);
      }
    });

  /**
   * Repeat `once` until it yields something, `blockMs` elapses, or a signal
   * aborts (the caller's, or the port's own on close): then it resolves [].
   */
  const poll = async <T>(
    backoff: Backoff,
    blockMs: number,
    signal: AbortSignal | undefined,
    once: () => Promise<T[]>,
  ): Promise<T[]> => {
    const signals = signal ? [closing.signal, signal] : [closing.signal];
    const deadline = Date.now() + Math.max(0, blockMs);
    for (;;) {
      if (closing.signal.aborted || signal?.aborted) return [];
      const found = await raceAbort(once(), signals);
      if (found === ABORTED) continue;
      if (found.length > 0) {
        backoff.reset();
        return found;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return [];
      await pause(Math.min(backoff.next(), remaining), signals);
    }
  };

  /**
   * Pipelines queued in the same turn of the event loop go out as one
   * request: a server starting many watches reads all their snapshots at once.
   */
  let queued: QueuedPipeline[] = [];
  const runAlone = (entry: QueuedPipeline): void => {
    const pipeline = client.pipeline();
    entry.add(pipeline);
    call(entry.what, () => pipeline.exec()).then(entry.resolve, entry.reject);
  };
  const flush = (): void => {
    const batch = queued;
    queued = [];
    const [only] = batch;
    if (only && batch.length === 1) {
      runAlone(only);
      return;
    }
    const pipeline = client.pipeline();
    for (const entry of batch) entry.add(pipeline);
    call("read", () => pipeline.exec()).then(
      (replies) => {
        let at = 0;
        for (const entry of batch) {
          entry.resolve(replies.slice(at, at + entry.size));
          at += entry.size;
        }
      },
      (error: unknown) => {
        // One command's error fails the whole pipeline: find out whose by sending each on its own.
        if (error instanceof BackendError && !(error instanceof ConnectionClosedError) && isCommandError(error.cause)) {
          for (const entry of batch) runAlone(entry);
        } else {
          for (const entry of batch) entry.reject(error);
        }
      },
    );
  };
  const pipelined = (what: string, size: number, add: (pipeline: UpstashPipeline) => void): Promise<unknown[]> =>
    new Promise<unknown[]>((resolve, reject) => {
      if (queued.length === 0) setTimeout(flush, 0);
      queued.push({ what, size, add, resolve, reject });
    });

  /** Replace `$` cursors by the id of the last entry now in each stream (one request, only when needed). */
  const resolveLatest = async (cursors: readonly Cursor[]): Promise<Cursor[]> => {
    const latest = cursors.filter((cursor) => cursor.after === "$");
    if (latest.length === 0) return [...cursors];
    const replies = await pipelined("XREVRANGE", latest.length, (pipeline) => {
      for (const cursor of latest) pipeline.xrevrange(cursor.key, "+", "-", 1);
    });
    const ids = new Map<string, string>();
    latest.forEach((cursor, i) => {
      ids.set(cursor.key, toEntries(replies[i])[0]?.id ?? "0-0");
    });
    return cursors.map((cursor) =>
      cursor.after === "$" ? { key: cursor.key, after: ids.get(cursor.key) ?? "0-0" } : cursor,
    );
  };

  const liveOptions = options.live;
  const subscriptions = new Set<LiveSubscription>();
  const port: UpstashPort = {
    name: "upstash",
    capabilities: CAPABILITIES,
    ...(liveOptions
      ? {
          /** One streaming request per batch of new keys; none per event, none while idle. */
          live(handler: LiveHandler): LiveSubscription {
            const subscription = upstashLive(liveOptions, handler);
            subscriptions.add(subscription);
            return subscription;
          },
        }
      : {}),

    /** One request: EVALSHA of the append script (plus one EVAL the first time the script is not cached). */
    async append(items: readonly AppendItem[], appendOptions: AppendOptions): Promise<AppendResult[]> {
      if (closing.signal.aborted) throw closedError();
      if (items.length === 0) return [];
      const call = appendCall(items, appendOptions);
      const reply = await runScript("append", call.source, call.sha, call.keys, call.args);
      try {
        return decodeAppendCall(reply, items.length);
      } catch (error) {
        throw new BackendError(`Upstash append failed: ${messageOf(error)}`, { cause: error });
      }
    },

    /**
     * One request: a pipeline of HGETALL, XRANGE after `after`, and XRANGE of
     * the first entry, shared with other reads made in the same turn.
     */
    async read(
      stateKey: string | null,
      eventsKey: string,
      range: { readonly after?: string | undefined; readonly limit: number },
    ): Promise<OperationRead> {
      if (closing.signal.aborted) throw closedError();
      const after = range.after;
      const start = after === undefined || after === "0" || after === "0-0" || after === "-" ? "-" : `(${after}`;
      const wantsEntries = range.limit > 0;
      const size = (stateKey !== null ? 1 : 0) + (wantsEntries ? 1 : 0) + 1;
      const replies = await pipelined("read", size, (pipeline) => {
        if (stateKey !== null) pipeline.hgetall(stateKey);
        if (wantsEntries) {
          if (Number.isFinite(range.limit)) pipeline.xrange(eventsKey, start, "+", Math.floor(range.limit));
          else pipeline.xrange(eventsKey, start, "+");
        }
        pipeline.xrange(eventsKey, "-", "+", 1);
      });
      let index = 0;
      const state = stateKey !== null ? toState(replies[index++]) : null;
      const entries = wantsEntries ? toEntries(replies[index++]) : [];
      const firstId = toEntries(replies[index])[0]?.id ?? null;
      return { state, entries, firstId };
    },

    /** One request: HGETALL (shared with other reads of the same turn). */
    async getState(stateKey: string): Promise<Fields | null> {
      if (closing.signal.aborted) throw closedError();
      const [reply] = await pipelined("HGETALL", 1, (pipeline) => pipeline.hgetall(stateKey));
      return toState(reply);
    },

    /**
     * Polls: one non-blocking XREAD over all keys per poll, the first at once,
     * then after an adaptive pause (`pollMinMs` doubling to `pollMaxMs` while
     * idle). A `$` cursor costs one more request first, to learn the last id.
     * `blockMs` 0 polls once. Resolves [] at once when the caller's signal
     * aborts or the port is closed meanwhile (a request in flight is left to
     * finish and its answer dropped).
     */
    async wait(
      cursors: readonly Cursor[],
      waitOptions: { readonly blockMs: number; readonly count: number; readonly signal?: AbortSignal | undefined },
    ): Promise<KeyEntries[]> {
      if (closing.signal.aborted) throw closedError();
      const { blockMs, count, signal } = waitOptions;
      if (signal?.aborted) return [];
      if (cursors.length === 0) {
        await pause(Math.max(0, blockMs), signal ? [closing.signal, signal] : [closing.signal]);
        return [];
      }
      const resolved = await resolveLatest(cursors);
      const keys = resolved.map((cursor) => cursor.key);
      const ids = resolved.map((cursor) => cursor.after);
      return await poll(waitBackoff, blockMs, signal, async () => {
        try {
          return toKeyEntries(await call("XREAD", () => client.xread(keys, ids, { count })));
        } catch (error) {
          // WRONGTYPE names no key: TYPE of every key, one request.
          // A client whose pipelines have no type() leaves the key to be found by the reader.
          if (typeof client.pipeline().type !== "function") throw error;
          throw await namingWrongType(error, keys, (all) =>
            pipelined("TYPE", all.length, (pipeline) => {
              for (const key of all) pipeline.type?.(key);
            }),
          );
        }
      });
    },

    /** One request: DEL of both keys (by a one-line EVAL, so the client needs nothing more). */
    async delete(stateKey: string, eventsKey: string): Promise<boolean> {
      if (closing.signal.aborted) throw closedError();
      const reply = await call("DEL", () => client.eval(DELETE_SCRIPT, [stateKey, eventsKey], []));
      return Number(reply) > 0;
    },

    /** One request: the cancel script (EVALSHA, EVAL the first time). */
    async cancel(stateKey: string, reason: string, ttlSeconds: number): Promise<boolean> {
      if (closing.signal.aborted) throw closedError();
      const reply = await runScript("cancel", CANCEL_SCRIPT, CANCEL_SHA, [stateKey], [reason, String(ttlSeconds)]);
      return Number(reply) === 1;
    },

    /** One request: XGROUP CREATE key group 0 MKSTREAM; an existing group is left as it is. */
    async ensureGroup(key: string, group: string): Promise<void> {
      try {
        await call("XGROUP CREATE", () =>
          client.xgroup(key, { type: "CREATE", group, id: "0", options: { MKSTREAM: true } }),
        );
      } catch (error) {
        if (error instanceof BackendError && messageOf(error).includes("BUSYGROUP")) return;
        throw error;
      }
    },

    /** Polls like `wait`: one non-blocking XREADGROUP `>` per poll until `blockMs`. */
    async groupRead(readOptions: GroupReadOptions): Promise<StreamEntry[]> {
      if (closing.signal.aborted) throw closedError();
      const { key, group, consumer, count, blockMs, signal } = readOptions;
      if (signal?.aborted) return [];
      return await poll(groupBackoff, blockMs, signal, async () => {
        const reply = await call("XREADGROUP", () => client.xreadgroup(group, consumer, key, ">", { count }));
        return toKeyEntries(reply).flatMap((stream) => stream.entries);
      });
    },

    /** One request: XACK (none when `ids` is empty). */
    async ack(key: string, group: string, ids: readonly string[]): Promise<number> {
      if (closing.signal.aborted) throw closedError();
      if (ids.length === 0) return 0;
      return Number(await call("XACK", () => client.xack(key, group, [...ids])));
    },

    /** One request: XAUTOCLAIM key group consumer minIdle 0-0 COUNT n. */
    async claim(claimOptions: ClaimOptions): Promise<StreamEntry[]> {
      const { key, group, consumer, minIdleMs, count } = claimOptions;
      const reply = await call("XAUTOCLAIM", () =>
        client.xautoclaim(key, group, consumer, minIdleMs, "0-0", { count }),
      );
      return toClaimed(reply);
    },

    /**
     * One request: XINFO GROUPS, whose `pending` is the count of XPENDING's
     * summary form (`@upstash/redis` has no method for that form). 0 when the
     * stream or the group does not exist.
     */
    async pending(key: string, group: string): Promise<number> {
      try {
        const reply = await call("XINFO GROUPS", () => client.xinfo(key, { type: "GROUPS" }));
        return toGroupPending(reply, group) ?? 0;
      } catch (error) {
        if (error instanceof BackendError && /no such key/i.test(messageOf(error))) return 0;
        throw error;
      }
    },

    /** Marks the port closed, ends pending waits and aborts the live streams; the client (REST, stateless) has nothing to release. */
    async close(): Promise<void> {
      closing.abort();
      await Promise.all([...subscriptions].map((sub) => sub.close()));
      subscriptions.clear();
    },

    async [Symbol.asyncDispose](): Promise<void> {
      await port.close();
    },
  };
  return port;
}
