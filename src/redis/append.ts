/**
 * The append call every Redis adapter makes: the arguments of the append
 * script (`lua/append.lua`) for a batch, the legacy variant when any item
 * carries writes for old readers, and the decoding of the reply (RESP2,
 * RESP3 or REST shapes).
 *
 * @module
 */
import type { AppendItem, AppendOptions, AppendResult } from "../core/port/port.ts";
import { APPEND_SCRIPT, APPEND_SHA, LEGACY_APPEND_SCRIPT, LEGACY_APPEND_SHA } from "./scripts.ts";

/** Keys and arguments of one call of the append script. */
export interface ScriptCall {
  readonly keys: string[];
  readonly args: string[];
}

/**
 * Encode a batch for the append script. Items must carry fields whose first
 * three are `v`, `op`, `seq` (the encoder of the wire format guarantees it);
 * `attempt` is sent last, whatever its place in the item.
 */
export function encodeAppend(items: readonly AppendItem[], options: AppendOptions, sharded = false): ScriptCall {
  const keys: string[] = [];
  const args: string[] = [
    String(options.ttlSeconds),
    String(options.maxLen),
    String(options.terminalTtlSeconds),
    String(items.length),
  ];
  for (const item of items) {
    keys.push(item.eventsKey, item.stateKey, item.scopeKey ?? item.eventsKey);
    const flags =
      (item.allowBackwards ? 1 : 0) |
      (item.allowAfterTerminal ? 2 : 0) |
      (item.scopeKey ? 4 : 0) |
      (item.terminal ? 8 : 0) |
      (item.restart ? 16 : 0) |
      (item.fields.status === "queued" ? 32 : 0) |
      (sharded ? 64 : 0);
    const at = args.length;
    args.push(String(flags), item.fields.progress ?? "", "");
    const { fields } = item;
    for (const name in fields) if (name !== "attempt") args.push(name, fields[name] as string);
    // Always last, where the script sets it.
    args.push("attempt", "1");
    args[at + 2] = String(args.length - at - 3);
  }
  return { keys, args };
}

/** Decode the reply of the append script (RESP2 or RESP3 shapes, or REST's). */
export function decodeAppend(reply: unknown, count: number): AppendResult[] {
  if (!Array.isArray(reply) || reply.length !== count) {
    throw new TypeError(`Unexpected reply to the append script: ${JSON.stringify(reply)}`);
  }
  return reply.map((row: unknown): AppendResult => {
    if (!Array.isArray(row)) throw new TypeError(`Unexpected row in the append reply: ${JSON.stringify(row)}`);
    const code = String(row[0]);
    const seq = Number(row[2]);
    const cancelled = row[3] == null || row[3] === false ? null : String(row[3]);
    if (code === "ok") return { ok: true, id: String(row[1]), seq, cancelled, attempt: Number(row[4]) || 1 };
    if (code === "backwards" || code === "terminal") return { ok: false, refused: code, seq, cancelled };
    throw new TypeError(`Unexpected code in the append reply: ${code}`);
  });
}

/** A script call ready for EVALSHA (EVAL `source` on NOSCRIPT). */
export interface AppendCall extends ScriptCall {
  readonly sha: string;
  readonly source: string;
}

/**
 * The call that appends `items`: the append script, or its legacy variant
 * when any item carries legacy writes.
 */
export function appendCall(items: readonly AppendItem[], options: AppendOptions): AppendCall {
  const main = encodeAppend(items, options);
  if (!items.some((item) => item.legacy !== undefined && item.legacy.length > 0)) {
    return { ...main, sha: APPEND_SHA, source: APPEND_SCRIPT };
  }
  const keys = [...main.keys];
  const section: string[] = [];
  const keyIndex = (key: string): string => {
    keys.push(key);
    return String(keys.length);
  };
  for (const item of items) {
    const writes = item.legacy ?? [];
    section.push(String(writes.length));
    for (const w of writes) {
      if (w.kind === "hash") {
        const args = Object.entries(w.fields).flat();
        section.push("H", keyIndex(w.key), String(options.ttlSeconds), String(args.length), ...args);
      } else if (w.kind === "stream") {
        const args = [keyIndex(w.stateKey), String(options.ttlSeconds), ...Object.entries(w.fields).flat()];
        section.push("X", keyIndex(w.key), String(options.maxLen), String(args.length), ...args);
      } else {
        section.push("P", w.channel, "0", "1", w.message);
      }
    }
  }
  section.push(String(section.length + 1));
  return { keys, args: [...main.args, ...section], sha: LEGACY_APPEND_SHA, source: LEGACY_APPEND_SCRIPT };
}

/** Decode the reply of {@link appendCall}, with the subscriber count of a legacy publish. */
export function decodeAppendCall(reply: unknown, count: number): AppendResult[] {
  const results = decodeAppend(reply, count);
  if (!Array.isArray(reply)) return results;
  return results.map((result, i) => {
    const row: unknown = reply[i];
    // After code, id, seq, cancel and attempt: only a legacy publish adds it.
    const subscribers = Array.isArray(row) ? row[5] : undefined;
    return result.ok && subscribers !== undefined && subscribers !== null
      ? { ...result, subscribers: Number(subscribers) }
      : result;
  });
}
