/**
 * Reply normalization and error mapping shared by the node-redis standalone
 * and cluster backends (RESP2 and RESP3 shapes alike).
 *
 * @module
 */
import { BackendError, ConnectionClosedError } from "../../core/errors.ts";
import type { Fields, KeyEntries, StreamEntry } from "../../core/port.ts";

const CLOSED_ERRORS = new Set([
  "ClientClosedError",
  "ClientOfflineError",
  "SocketClosedUnexpectedlyError",
  "DisconnectsClientError",
]);

export function mapError(cause: unknown, what: string): Error {
  const name = cause instanceof Error ? cause.constructor.name : "";
  const message = cause instanceof Error ? cause.message : String(cause);
  if (CLOSED_ERRORS.has(name))
    return new ConnectionClosedError(`Redis connection unavailable during ${what}: ${message}`, { cause });
  return new BackendError(`Redis failed during ${what}: ${message}`, { cause });
}

export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/** Normalize HGETALL in RESP2 (flat array), RESP3 (map or object) shapes. */
export function toFields(reply: unknown): Fields | null {
  const out: Fields = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) out[String(k)] = String(v);
  } else if (reply && typeof reply === "object") {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** Normalize XRANGE-style entries: `[[id, [f, v, ...]], ...]`. */
export function toEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamEntry[] = [];
  for (const row of reply) {
    if (!Array.isArray(row)) continue;
    const fields = toFields(row[1]) ?? {};
    out.push({ id: String(row[0]), fields });
  }
  return out;
}

/** Normalize XREAD replies: RESP2 `[[key, entries], ...]`, RESP3 map of key to entries. */
export function toKeyEntries(reply: unknown): KeyEntries[] {
  if (reply == null) return [];
  const pairs: Array<[unknown, unknown]> = Array.isArray(reply)
    ? reply.filter(Array.isArray).map((r) => [r[0], r[1]] as [unknown, unknown])
    : reply instanceof Map
      ? [...reply.entries()]
      : typeof reply === "object"
        ? Object.entries(reply)
        : [];
  return pairs.map(([key, entries]) => ({ key: String(key), entries: toEntries(entries) }));
}

/**
 * KEYS: events [, state]. ARGV: start ("-" or "(id"), limit.
 * Reply: { state (flat), entries, [oldest entry] }.
 */
export const READ_SCRIPT = `local st={}
if KEYS[2] then st=redis.call('HGETALL',KEYS[2]) end
return {st,redis.call('XRANGE',KEYS[1],ARGV[1],'+','COUNT',ARGV[2]),redis.call('XRANGE',KEYS[1],'-','+','COUNT',1)}`;
export const READ_SHA = "d2f1ed35768e393eefaac69383e293dc4752ae29";
