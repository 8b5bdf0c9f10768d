/**
 * Decoding stream entries and snapshots into events, leniently: a field out
 * of shape loses that field, never the event.
 *
 * @module
 */
import type { Fields, StreamEntry } from "../port/port.ts";
import {
  CID_PATTERN,
  ID_PATTERN,
  INTEGER,
  MAX_DATA_BYTES,
  MAX_ETA_SECONDS,
  MAX_MESSAGE_LENGTH,
  type ProgressEvent,
  type ProgressSnapshot,
  type ProgressStatus,
  STATUSES,
  TS,
  TS_MAX_MS,
  TYPE_PATTERN,
  utf8Length,
} from "./format.ts";
import { isStreamId } from "./ids.ts";
import { fromLegacyFields } from "./lenient.ts";

const SAFE_TYPE = "progress";

/** Plain decimals as other publishers write them (`33.333333333333336`): no sign, no exponent. */
const PLAIN_DECIMAL = /^\d{1,20}(\.\d{1,20})?$/;

/** A plain decimal within `max`; anything else is dropped. */
function decimal(value: string | undefined, max: number): number | undefined {
  if (value === undefined || !PLAIN_DECIMAL.test(value)) return undefined;
  const n = Number(value);
  return n <= max ? n : undefined;
}

/** A wire integer within the safe range; anything else is dropped. */
function integer(value: string | undefined): number | undefined {
  if (value === undefined || value.length > 16 || !INTEGER.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

function status(value: string | undefined): ProgressStatus {
  return (STATUSES as readonly string[]).includes(value ?? "") ? (value as ProgressStatus) : "running";
}

/** A JSON object within the size limit; anything else is dropped. */
function object(value: string | undefined): Record<string, unknown> | undefined {
  // A UTF-16 unit is at most 3 UTF-8 bytes: only a long value needs counting.
  if (value === undefined || (value.length * 3 > MAX_DATA_BYTES && utf8Length(value) > MAX_DATA_BYTES))
    return undefined;
  try {
    const data: unknown = JSON.parse(value);
    return data !== null && typeof data === "object" && !Array.isArray(data)
      ? (data as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined; // not JSON: keep the event, drop the field
  }
}

/** The time of a stream entry id (within the years 0000 to 9999), as a wire timestamp; "" without an id. */
function idTime(id: string | undefined): string {
  if (id === undefined) return "";
  return new Date(Math.min(Number(id.slice(0, id.indexOf("-"))), TS_MAX_MS)).toISOString();
}

function attemptOf(value: string | undefined): number {
  const n = integer(value);
  return n !== undefined && n >= 1 ? n : 1;
}

function common(fields: Fields, id: string | undefined): Omit<ProgressEvent, "id"> {
  const out: {
    -readonly [K in keyof Omit<ProgressEvent, "id">]: Omit<ProgressEvent, "id">[K];
  } = {
    op: fields.op ?? "",
    seq: integer(fields.seq) ?? 0,
    type: SAFE_TYPE,
    status: status(fields.status),
    ts: fields.ts !== undefined && TS.test(fields.ts) ? fields.ts : idTime(id),
    attempt: attemptOf(fields.attempt),
  };
  const type = fields.type;
  if (type !== undefined && type !== "") {
    // Event names reach SSE `event:` lines and client handlers: only the safe set passes as a type.
    if (TYPE_PATTERN.test(type)) out.type = type;
    else out.rawType = type.length > MAX_MESSAGE_LENGTH ? type.slice(0, MAX_MESSAGE_LENGTH) : type;
  }
  const progress = decimal(fields.progress, 100);
  if (progress !== undefined) out.progress = progress;
  const total = integer(fields.total);
  if (total !== undefined) out.total = total;
  const current = integer(fields.current);
  if (current !== undefined && (total === undefined || current <= total)) out.current = current;
  const message = fields.message;
  if (message !== undefined) {
    out.message = message.length > MAX_MESSAGE_LENGTH ? message.slice(0, MAX_MESSAGE_LENGTH) : message;
  }
  if (fields.cid !== undefined && CID_PATTERN.test(fields.cid)) out.cid = fields.cid;
  const data = object(fields.data);
  if (data !== undefined) out.data = data;
  const eta = decimal(fields.eta, MAX_ETA_SECONDS);
  if (eta !== undefined) out.eta = eta;
  return out;
}

/**
 * Decode a stream entry. Lenient on purpose: an entry written by another
 * language with a field out of shape loses that field, never the event; a
 * type outside the safe set is delivered as `progress` with `rawType`; a bad
 * `ts` is replaced by the time of the entry id; an entry read from an
 * operation's stream belongs to that operation (`op`), whatever `op` field it
 * carries, so forged or misplaced data never reaches another operation's
 * watchers. Null only when it cannot belong to any operation (no valid `op`
 * and none given: a scope's stream), or when its id is not a stream entry id. Never throws, and
 * what it returns always passes the wire format's rules.
 *
 * @example
 * ```ts
 * const event = decodeEvent({ id: "1732890000000-0", fields: { op: "job-1", seq: "1", status: "running" } });
 * if (event) console.log(event.type, event.ts); // "progress" "2024-11-29T14:20:00.000Z"
 * ```
 */
export function decodeEvent(entry: StreamEntry, op?: string): ProgressEvent | null {
  if (!isStreamId(entry.id)) return null;
  const fields = fromLegacyFields(entry.fields);
  const own = fields.op;
  // An operation's own stream holds only its events: an entry naming another operation there
  // (forged or misplaced) is delivered as the stream's, never attributed to the one it names.
  const owner = op ?? (own !== undefined && ID_PATTERN.test(own) ? own : undefined);
  if (owner === undefined || !ID_PATTERN.test(owner)) return null;
  return { id: entry.id, ...common(fields, entry.id), op: owner };
}

/**
 * Decode a snapshot hash; null for an empty one. Fields out of shape are
 * dropped as in {@link decodeEvent}; an `id` that is not a stream entry id is
 * dropped too, so it never reaches a read of the backend.
 */
export function decodeSnapshot(fields: Fields | null): ProgressSnapshot | null {
  if (fields === null || Object.keys(fields).length === 0) return null;
  fields = fromLegacyFields(fields);
  const id = isStreamId(fields.id) ? fields.id : undefined;
  const base = common(fields, id);
  const snapshot: { -readonly [K in keyof ProgressSnapshot]: ProgressSnapshot[K] } = {
    ...base,
    op: base.op !== "" && ID_PATTERN.test(base.op) ? base.op : "",
    status: fields.status === undefined ? "queued" : base.status,
  };
  if (id !== undefined) snapshot.id = id;
  if (fields.cancel !== undefined) snapshot.cancel = fields.cancel.slice(0, 512);
  return snapshot;
}
