/**
 * Folder `src/redis/`: what the Redis adapters share, imported by
 * `src/adapters/*` only (a Biome rule keeps the core out). `lua/*.lua` are
 * the commented script sources; `scripts.ts` is generated from them (text
 * and SHA1); `append.ts` is the append call; this file the replies and the
 * one-command port methods; `deadline.ts` client-side deadlines; `errors.ts`
 * Redis error answers as typed errors; `cluster.ts` and `slot.ts` the slot
 * grouping, scope copier and sharded waiter of Redis Cluster.
 *
 * What the Redis adapters over TCP clients (node-redis, ioredis; a single
 * node and a cluster alike) share, runtime-agnostic: normalization of RESP2
 * and RESP3 replies, the read script, the port methods that are one command
 * or one script each (built on the adapter's own way of sending them), the
 * arguments of XREAD and XREADGROUP (client-side deadlines are in `deadline.ts`).
 *
 * @module
 */
import { isMissingGroupError } from "../core/errors.ts";
import type {
  ClaimOptions,
  Cursor,
  Fields,
  GroupReadOptions,
  KeyEntries,
  OperationRead,
  StreamEntry,
  StreamPort,
} from "../core/port/port.ts";
import { CANCEL_SCRIPT, CANCEL_SHA, READ_SCRIPT, READ_SHA } from "./scripts.ts";

/**
 * Normalize HGETALL: a flat array (RESP2, or RESP3 with legacy mapping), a Map
 * or an object. Null when the hash is empty or missing.
 *
 * @example
 * ```ts
 * toFields(["a", "1", "b", "2"]); // { a: "1", b: "2" }
 * ```
 */
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

/**
 * Normalize XRANGE-style entries: `[[id, [f, v, ...]], ...]`.
 *
 * @example
 * ```ts
 * toEntries([["1-0", ["a", "1"]]]); // [{ id: "1-0", fields: { a: "1" } }]
 * ```
 */
export function toEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamEntry[] = [];
  for (const row of reply) {
    if (!Array.isArray(row)) continue;
    out.push({ id: String(row[0]), fields: toFields(row[1]) ?? {} });
  }
  return out;
}

/**
 * Normalize XREAD / XREADGROUP replies: RESP2 `[[key, entries], ...]`, or a
 * Map or object of key to entries (RESP3). Nil is no entries.
 *
 * @example
 * ```ts
 * toKeyEntries([["k", [["1-0", ["a", "1"]]]]]); // [{ key: "k", entries: [...] }]
 * ```
 */
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
 * `XREAD COUNT <count> [BLOCK <blockMs>] STREAMS <keys...> <ids...>` (the
 * command name first).
 *
 * @example
 * ```ts
 * xreadArgs([{ key: "k", after: "0" }], 10); // ["XREAD", "COUNT", "10", "STREAMS", "k", "0"]
 * ```
 */
export function xreadArgs(cursors: readonly Cursor[], count: number, blockMs?: number): string[] {
  const args = ["XREAD", "COUNT", String(count)];
  if (blockMs !== undefined) args.push("BLOCK", String(blockMs));
  args.push("STREAMS");
  for (const c of cursors) args.push(c.key);
  for (const c of cursors) args.push(c.after);
  return args;
}

/** How an adapter sends what the shared methods need. */
export interface RedisCalls {
  /**
   * One command, `args[0]` its name. `key` routes it on a cluster (a
   * single-node adapter ignores it).
   */
  command(key: string, args: string[], what: string): Promise<unknown>;
  /** A script: EVALSHA with `sha`, EVAL of `source` on NOSCRIPT. */
  script(sha: string, source: string, keys: string[], args: string[], what: string): Promise<unknown>;
  /** XREADGROUP with BLOCK, on a connection of its own; null when aborted or closed. */
  blockingGroupRead(key: string, args: string[], blockMs: number, signal: AbortSignal | undefined): Promise<unknown>;
}

/** The port methods that are one command or one script each. */
export type RedisMethods = Pick<
  Required<StreamPort>,
  "read" | "getState" | "cancel" | "ensureGroup" | "groupRead" | "ack" | "claim" | "pending"
>;

/**
 * The port methods every Redis TCP adapter implements the same way, over its
 * own {@link RedisCalls}. Each is one round trip; each rejects with what the
 * adapter's calls reject with (XGROUP's BUSYGROUP and XPENDING's NOGROUP are
 * answers, not failures).
 *
 * @example
 * ```ts
 * const port: StreamPort = { name: "x", capabilities, ...redisMethods(calls), append, wait, delete: del, cancel, close };
 * ```
 */
export function redisMethods(calls: RedisCalls): RedisMethods {
  const { command, script } = calls;
  return {
    /** One round trip: the read script gets the snapshot, the range and the oldest id together. */
    async read(stateKey, eventsKey, range): Promise<OperationRead> {
      const after = range.after === undefined || range.after === "0" ? "-" : `(${range.after}`;
      const reply = await script(
        READ_SHA,
        READ_SCRIPT,
        // A scope stream is read alone; an operation's stream and snapshot share a slot.
        stateKey === null ? [eventsKey] : [eventsKey, stateKey],
        [after, String(range.limit)],
        "read",
      );
      const [state, entries, first] = Array.isArray(reply) ? reply : [];
      return { state: toFields(state), entries: toEntries(entries), firstId: toEntries(first)[0]?.id ?? null };
    },

    async getState(stateKey) {
      return toFields(await command(stateKey, ["HGETALL", stateKey], "getState"));
    },

    /** The cancel script on the snapshot's slot. */
    async cancel(stateKey, reason, ttlSeconds) {
      return Number(await script(CANCEL_SHA, CANCEL_SCRIPT, [stateKey], [reason, String(ttlSeconds)], "cancel")) === 1;
    },

    /** XGROUP CREATE ... MKSTREAM; an existing group is kept. */
    async ensureGroup(key, group) {
      try {
        await command(key, ["XGROUP", "CREATE", key, group, "0", "MKSTREAM"], "ensureGroup");
      } catch (error) {
        if (!(error instanceof Error && error.message.includes("BUSYGROUP"))) throw error;
      }
    },

    /** XREADGROUP; blocking on a connection of its own when `blockMs` > 0. */
    async groupRead(o: GroupReadOptions): Promise<StreamEntry[]> {
      const args = ["XREADGROUP", "GROUP", o.group, o.consumer, "COUNT", String(o.count)];
      if (o.blockMs > 0) args.push("BLOCK", String(o.blockMs));
      args.push("STREAMS", o.key, ">");
      const reply =
        o.blockMs > 0
          ? await calls.blockingGroupRead(o.key, args, o.blockMs, o.signal)
          : await command(o.key, args, "groupRead");
      return toKeyEntries(reply).flatMap((k) => k.entries);
    },

    async ack(key, group, ids) {
      if (ids.length === 0) return 0;
      return Number(await command(key, ["XACK", key, group, ...ids], "ack"));
    },

    /** XAUTOCLAIM; entries deleted meanwhile are left out. */
    async claim(o: ClaimOptions): Promise<StreamEntry[]> {
      const reply = await command(
        o.key,
        ["XAUTOCLAIM", o.key, o.group, o.consumer, String(o.minIdleMs), "0-0", "COUNT", String(o.count)],
        "claim",
      );
      return Array.isArray(reply) ? toEntries(reply[1]).filter((e) => Object.keys(e.fields).length > 0) : [];
    },

    /** XPENDING; 0 when the stream or the group does not exist (as the other backends answer). */
    async pending(key, group) {
      let reply: unknown;
      try {
        reply = await command(key, ["XPENDING", key, group], "pending");
      } catch (error) {
        if (isMissingGroupError(error)) return 0;
        throw error;
      }
      return Array.isArray(reply) ? Number(reply[0]) : 0;
    },
  };
}
