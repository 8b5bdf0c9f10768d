/**
 * Normalization of REST replies to the port's shapes. Replies arrive as
 * RESP2 arrays of strings when the client was built with
 * `automaticDeserialization: false`; with the client's default they arrive
 * JSON-parsed (numbers, objects, `{ id: fields }` maps), and are turned back
 * into strings here so the port always speaks strings.
 *
 * @module
 */
import type { Fields, KeyEntries, StreamEntry } from "../../core/port/port.ts";

/** A reply value as a string: JSON-parsed values are turned back into text. */
export function asString(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value === undefined) return "";
  // The client's JSON parsing turned the text "null" into null.
  return JSON.stringify(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Fields from a flat `[f1, v1, f2, v2, ...]` reply or a `{ f: v }` object. */
export function toFields(reply: unknown): Fields {
  const fields: Fields = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) fields[asString(reply[i])] = asString(reply[i + 1]);
  } else if (isRecord(reply)) {
    for (const [name, value] of Object.entries(reply)) fields[name] = asString(value);
  }
  return fields;
}

/** A hash reply, or null when the hash is empty or missing. */
export function toState(reply: unknown): Fields | null {
  const fields = toFields(reply);
  for (const _ in fields) return fields;
  return null;
}

/**
 * Stream entries from `[[id, [f1, v1, ...]], ...]` (or `{ id: { f: v } }`).
 * Entries whose fields are nil (deleted while pending) are left out.
 */
export function toEntries(reply: unknown): StreamEntry[] {
  const entries: StreamEntry[] = [];
  if (Array.isArray(reply)) {
    for (const row of reply) {
      if (!Array.isArray(row) || row[1] === null || row[1] === undefined) continue;
      entries.push({ id: asString(row[0]), fields: toFields(row[1]) });
    }
  } else if (isRecord(reply)) {
    for (const [id, fields] of Object.entries(reply)) entries.push({ id, fields: toFields(fields) });
  }
  return entries;
}

/** The reply of XREAD / XREADGROUP (`[[key, entries], ...]` or nil), keys with entries only. */
export function toKeyEntries(reply: unknown): KeyEntries[] {
  const out: KeyEntries[] = [];
  const add = (key: unknown, rows: unknown): void => {
    const entries = toEntries(rows);
    if (entries.length > 0) out.push({ key: asString(key), entries });
  };
  if (Array.isArray(reply)) {
    for (const stream of reply) if (Array.isArray(stream)) add(stream[0], stream[1]);
  } else if (isRecord(reply)) {
    for (const [key, rows] of Object.entries(reply)) add(key, rows);
  }
  return out;
}

/** The entries of an XAUTOCLAIM reply (`[next, entries, deleted]`). */
export function toClaimed(reply: unknown): StreamEntry[] {
  return Array.isArray(reply) ? toEntries(reply[1]) : [];
}

/** The pending count of `group` from an XINFO GROUPS reply, or null when the group is missing. */
export function toGroupPending(reply: unknown, group: string): number | null {
  if (!Array.isArray(reply)) return null;
  for (const info of reply) {
    const fields = Array.isArray(info) ? toFields(info) : isRecord(info) ? toFields(info) : {};
    if (fields.name === group) return Number(fields.pending ?? 0);
  }
  return null;
}
