/**
 * What the ioredis backends (standalone and cluster) share: reply
 * normalization, error mapping, the read script, and waiting for a client's
 * first connection.
 *
 * @module
 */
import { BackendError, ConnectionClosedError, TimeoutError } from "../../core/errors.ts";
import type { Fields, KeyEntries, StreamEntry } from "../../core/port.ts";

/** Replies as strings. */
export const UTF8 = { replyEncoding: "utf8" } as const;

/** Whether Redis answered that it does not know a script's SHA. */
export function isNoScript(error: unknown): boolean {
  const cause = error instanceof BackendError ? error.cause : error;
  return cause instanceof Error && cause.message.startsWith("NOSCRIPT");
}

/**
 * ioredis rejects with `ReplyError` when Redis answered with an error, and with
 * plain errors (or `MaxRetriesPerRequestError`, `ClusterAllFailedError`) when
 * the connection is gone.
 */
export function mapError(cause: unknown, what: string): Error {
  if (cause instanceof BackendError || cause instanceof TimeoutError) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  const name = cause instanceof Error ? cause.name : "";
  if (name === "ReplyError") return new BackendError(`Redis failed during ${what}: ${message}`, { cause });
  if (message === "Command timed out")
    return new TimeoutError(`Redis did not answer in time during ${what}`, { cause });
  return new ConnectionClosedError(`Redis connection unavailable during ${what}: ${message}`, { cause });
}

/** Normalize HGETALL: a flat array (RESP2, or RESP3 with legacy mapping), a Map or an object. */
export function toFields(reply: unknown): Fields | null {
  const out: Fields = {};
  let any = false;
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) {
      out[String(reply[i])] = String(reply[i + 1]);
      any = true;
    }
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) {
      out[String(k)] = String(v);
      any = true;
    }
  } else if (reply && typeof reply === "object") {
    for (const [k, v] of Object.entries(reply)) {
      out[k] = String(v);
      any = true;
    }
  }
  return any ? out : null;
}

/** Normalize XRANGE-style entries: `[[id, [f, v, ...]], ...]`. */
export function toEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamEntry[] = [];
  for (const row of reply) {
    if (!Array.isArray(row)) continue;
    out.push({ id: String(row[0]), fields: toFields(row[1]) ?? {} });
  }
  return out;
}

/** Normalize XREAD replies: `[[key, entries], ...]`, or a Map/object of key to entries. */
export function toKeyEntries(reply: unknown): KeyEntries[] {
  if (reply == null) return [];
  const out: KeyEntries[] = [];
  if (Array.isArray(reply)) {
    for (const r of reply) if (Array.isArray(r)) out.push({ key: String(r[0]), entries: toEntries(r[1]) });
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) out.push({ key: String(k), entries: toEntries(v) });
  } else if (typeof reply === "object") {
    for (const [k, v] of Object.entries(reply)) out.push({ key: k, entries: toEntries(v) });
  }
  return out;
}

/**
 * KEYS: events [, state]. ARGV: start ("-" or "(id"), limit.
 * Reply: { state (flat), entries, [oldest entry] }.
 */
export const READ_SCRIPT = `local st={}
if KEYS[2] then st=redis.call('HGETALL',KEYS[2]) end
return {st,redis.call('XRANGE',KEYS[1],ARGV[1],'+','COUNT',ARGV[2]),redis.call('XRANGE',KEYS[1],'-','+','COUNT',1)}`;
/** SHA1 of {@link READ_SCRIPT}, as `SCRIPT LOAD` answers it. */
export const READ_SHA = "d2f1ed35768e393eefaac69383e293dc4752ae29";

/** What readiness tracking needs of a client: ioredis `Redis` and `Cluster` both fit. */
export interface Connectable {
  readonly status: string;
  connect(): Promise<unknown>;
  on(event: "ready" | "end", listener: () => void): unknown;
  off(event: "ready" | "end", listener: () => void): unknown;
}

/**
 * Waiting for connections: a command waits for a client's first connection (up
 * to `connectTimeoutMs`); once a client was ready, a command sent while it is
 * down fails at once instead of waiting in ioredis's offline queue.
 */
export function readiness(
  connectTimeoutMs: number,
  closed: () => boolean,
  name: string,
): { watch(c: Connectable): void; ready(c: Connectable, what: string): Promise<void> } {
  const everReady = new WeakSet<Connectable>();
  const firstReady = new WeakMap<Connectable, Promise<void>>();
  const watch = (c: Connectable): void => {
    if (c.status === "ready") everReady.add(c);
    else {
      const mark = (): void => {
        everReady.add(c);
        c.off("ready", mark);
      };
      c.on("ready", mark);
    }
  };
  const ready = async (c: Connectable, what: string): Promise<void> => {
    if (closed()) throw new ConnectionClosedError(`The ${name} backend is closed (${what})`);
    if (c.status === "ready") return;
    if (everReady.has(c) || c.status === "end")
      throw new ConnectionClosedError(`Redis connection unavailable during ${what} (status ${c.status})`);
    if (c.status === "wait") c.connect().catch(() => {});
    // One wait (one pair of listeners, one timer) shared by every command that arrives meanwhile.
    let pending = firstReady.get(c);
    if (!pending) {
      pending = new Promise<void>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          c.off("ready", onReady);
          c.off("end", onEnd);
          firstReady.delete(c);
        };
        const onReady = (): void => {
          done();
          resolve();
        };
        const onEnd = (): void => {
          done();
          reject(new ConnectionClosedError("Redis connection ended before it was ready"));
        };
        const timer = setTimeout(() => {
          done();
          reject(new TimeoutError(`Redis was not reachable within ${connectTimeoutMs} ms`));
        }, connectTimeoutMs);
        c.on("ready", onReady);
        c.on("end", onEnd);
      });
      firstReady.set(c, pending);
    }
    try {
      await pending;
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw cause instanceof TimeoutError
        ? new TimeoutError(`${message} (${what})`, { cause })
        : new ConnectionClosedError(`${message} (${what})`, { cause });
    }
  };
  return { watch, ready };
}
