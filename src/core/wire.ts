/**
 * Wire format v1: the flat string fields of a stream entry and a snapshot
 * hash, readable in `redis-cli` and writable by a publisher in any language.
 * Zod schemas describe it (a JSON Schema is generated from them); encode and
 * decode happen here, once.
 *
 * @module
 */
import { ProgressValidationError } from "./errors.ts";
import { fromLegacyFields } from "./legacy.ts";
import type { Fields, StreamEntry } from "./port.ts";

/** Wire version written in the `v` field. */
export const WIRE_VERSION = "1";

/** Every status an operation can have. */
export const STATUSES = ["queued", "running", "completed", "failed", "cancelled"] as const;
/** Status of an operation. */
export type ProgressStatus = (typeof STATUSES)[number];
/** Statuses after which an operation accepts no more updates (unless asked). */
export const TERMINAL_STATUSES: readonly ProgressStatus[] = ["completed", "failed", "cancelled"];

/** True when `status` ends an operation. */
export function isTerminal(status: string | undefined): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** Longest `message`, in characters. */
export const MAX_MESSAGE_LENGTH = 2048;
/** Largest `data`, in bytes of its JSON (UTF-8). */
export const MAX_DATA_BYTES = 16_384;
/** Longest operation id, scope or correlation id. */
export const MAX_ID_LENGTH = 128;
/**
 * Operation ids and scopes: letters, digits and `_ - . : @ /`, 1 to 128
 * characters, starting with a letter or digit. No braces, whitespace or
 * control characters, so no id can reach another operation's keys.
 */
export const ID_PATTERN: RegExp = /^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$/;
/** Event types: a letter, then letters, digits and `_ . : -`, up to 64. */
export const TYPE_PATTERN: RegExp = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
/** Correlation ids: printable ASCII without spaces, up to 128. */
export const CID_PATTERN: RegExp = /^[\x21-\x7e]{1,128}$/;

/** Decimal numbers on the wire: no sign, no exponent, at most 2 decimals. */
export const DECIMAL: RegExp = /^(0|[1-9]\d*)(\.\d{1,2})?$/;
/** Integers on the wire. */
export const INTEGER: RegExp = /^(0|[1-9]\d*)$/;
/** Timestamps on the wire: ISO 8601 UTC with milliseconds. */
export const TS: RegExp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/**
 * Stream entry ids: `<ms>-<seq>`, each part an unsigned 64-bit integer. Only
 * such ids reach the backend or an SSE `id:` line.
 */
export const STREAM_ID: RegExp = /^\d{1,20}-\d{1,20}$/;
/** Largest `eta`, in seconds (about 31,700 years): past it a number no longer prints as a plain decimal. */
export const MAX_ETA_SECONDS = 1e12;

const U64_MAX = 18_446_744_073_709_551_615n;
/** `ts` must print as 4-digit years: 0000-01-01 to 9999-12-31. */
const TS_MIN_MS = -62_167_219_200_000;
const TS_MAX_MS = 253_402_300_799_999;

/** Flat fields of a v1 stream entry (all strings, as Redis holds them). */
export interface WireEvent {
  v: "1";
  op: string;
  seq: string;
  type: string;
  status: ProgressStatus;
  progress?: string | undefined;
  current?: string | undefined;
  total?: string | undefined;
  message?: string | undefined;
  cid?: string | undefined;
  ts: string;
  data?: string | undefined;
  eta?: string | undefined;
  /** Attempt of the operation, `1` unless it was restarted; written by the backend. Absent from old publishers: read as 1. */
  attempt?: string | undefined;
}

/** What a job reports. Every field is optional: `status` defaults to `running` and `type` to `progress`. */
export interface ProgressUpdate {
  /** Percent done, 0..100, rounded to 2 decimals. Derived from `current/total` when absent. */
  readonly progress?: number | undefined;
  /** Units done (rows, files): a non-negative integer, at most `total`. */
  readonly current?: number | undefined;
  /** Units in all: a non-negative integer. */
  readonly total?: number | undefined;
  /** Human text, at most {@link MAX_MESSAGE_LENGTH} characters. */
  readonly message?: string | undefined;
  /** @default "running" */
  readonly status?: ProgressStatus | undefined;
  /** Event type. @default "progress" */
  readonly type?: string | undefined;
  /** Correlation id carried to logs and clients. */
  readonly cid?: string | undefined;
  /** Application metadata: a JSON object of at most {@link MAX_DATA_BYTES} bytes. */
  readonly data?: Readonly<Record<string, unknown>> | undefined;
  /** Estimated seconds remaining. Computed by the manager when absent. */
  readonly eta?: number | undefined;
  /** Event time. @default now */
  readonly ts?: Date | undefined;
}

/** An event as read back: typed fields plus the stream entry id. */
export interface ProgressEvent {
  /** Stream entry id: what clients resume from. */
  readonly id: string;
  readonly op: string;
  readonly seq: number;
  readonly type: string;
  readonly status: ProgressStatus;
  readonly progress?: number;
  readonly current?: number;
  readonly total?: number;
  readonly message?: string;
  readonly cid?: string;
  /** ISO 8601 UTC with milliseconds. */
  readonly ts: string;
  readonly data?: Record<string, unknown>;
  /** Estimated seconds remaining. */
  readonly eta?: number;
  /**
   * The type as written, when a foreign publisher wrote one outside the safe
   * set (a letter, then up to 63 letters, digits or `_ . : -`); `type` is then `progress`.
   */
  readonly rawType?: string;
  /** Attempt of the operation: 1, then one more at each restart (a retried job). */
  readonly attempt: number;
}

/** The latest state of an operation: the merge of its events. */
export interface ProgressSnapshot extends Omit<ProgressEvent, "id"> {
  /** Id of the latest event, when known. */
  readonly id?: string;
  /** Reason given to `cancel`, when the operation was asked to stop. */
  readonly cancel?: string;
}

const HINTS: Record<string, string> = {
  progress: "a finite number from 0 to 100",
  current: "a non-negative integer",
  total: "a non-negative integer",
  message: `a string of at most ${MAX_MESSAGE_LENGTH} characters`,
  status: `one of ${STATUSES.join(", ")}`,
  type: "letters, digits and _ . : - (starting with a letter), at most 64",
  cid: "printable ASCII without spaces, 1 to 128 characters",
  data: "a plain JSON object",
  eta: `a non-negative finite number of seconds, at most ${MAX_ETA_SECONDS}`,
  ts: "a valid Date from year 0000 to 9999",
};

const RULES: ReadonlyArray<readonly [keyof ProgressUpdate, (v: unknown) => boolean]> = [
  ["progress", (v) => typeof v === "number" && v >= 0 && v <= 100],
  ["current", (v) => Number.isSafeInteger(v) && (v as number) >= 0],
  ["total", (v) => Number.isSafeInteger(v) && (v as number) >= 0],
  ["message", (v) => typeof v === "string" && v.length <= MAX_MESSAGE_LENGTH],
  ["status", (v) => typeof v === "string" && (STATUSES as readonly string[]).includes(v)],
  ["type", (v) => typeof v === "string" && TYPE_PATTERN.test(v)],
  ["cid", (v) => typeof v === "string" && CID_PATTERN.test(v)],
  [
    "data",
    (v) =>
      v !== null &&
      typeof v === "object" &&
      (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null),
  ],
  ["eta", (v) => typeof v === "number" && v >= 0 && v <= MAX_ETA_SECONDS],
  ["ts", (v) => v instanceof Date && v.getTime() >= TS_MIN_MS && v.getTime() <= TS_MAX_MS],
];

/**
 * Check an update field by field. Written by hand so the runtime bundle carries
 * no schema library; `progresscast/schema` holds the same rules as zod schemas
 * and a property test keeps the two in agreement. Unknown fields are ignored.
 */
function checkUpdate(update: ProgressUpdate): void {
  for (const [key, ok] of RULES) {
    const value = update[key];
    if (value !== undefined && !ok(value)) {
      throw new ProgressValidationError(key, value, `must be ${HINTS[key] ?? "valid"}`);
    }
  }
}

/** Throw a {@link ProgressValidationError} unless `op` is a safe operation id. */
export function assertId(value: unknown, field = "op"): asserts value is string {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new ProgressValidationError(
      field,
      value,
      "must be 1 to 128 letters, digits or _ . : @ / - and start with a letter or digit (no braces, spaces or control characters)",
    );
  }
}

/** True for a stream entry id (`<ms>-<seq>`, both unsigned 64-bit integers). */
export function isStreamId(value: unknown): value is string {
  if (typeof value !== "string" || !STREAM_ID.test(value)) return false;
  const dash = value.indexOf("-");
  return BigInt(value.slice(0, dash)) <= U64_MAX && BigInt(value.slice(dash + 1)) <= U64_MAX;
}

/** The largest stream entry id: nothing can follow it, so it is no id to resume after. */
const LAST_STREAM_ID = `${U64_MAX}-${U64_MAX}`;

/**
 * Whether `value` is an id to resume after: a stream entry id that some entry
 * can follow (not the largest id, `18446744073709551615-18446744073709551615`).
 *
 * @example
 * ```ts
 * isResumeId("1732890000000-0"); // true
 * ```
 */
export function isResumeId(value: unknown): value is string {
  return isStreamId(value) && value.replace(/^0+(?=\d)/, "").replace(/-0+(?=\d)/, "-") !== LAST_STREAM_ID;
}

/**
 * Throw a {@link ProgressValidationError} unless `value` is a stream entry id
 * (`1732890000000-0`), so a bad resume id never reaches the backend.
 *
 * @throws {ProgressValidationError} naming `field`.
 * @example
 * ```ts
 * assertStreamId(url.searchParams.get("after"), "after");
 * ```
 */
export function assertStreamId(value: unknown, field = "after"): asserts value is string {
  if (!isResumeId(value)) {
    throw new ProgressValidationError(
      field,
      value,
      "must be a stream entry id such as 1732890000000-0 (the id of an event already seen), below the largest id",
    );
  }
}

/** Format a number the one way the wire uses: at most 2 decimals, no exponent, no -0. */
export function formatDecimal(value: number): string {
  const rounded = Math.round(value * 100) / 100;
  if (rounded === 0) return "0";
  // An integer over 100 is exact as a double, so String() gives the shortest decimal; past 1e21 it would use an exponent.
  return Math.abs(rounded) < 1e21 ? String(rounded) : rounded.toFixed(2).replace(/\.?0+$/, "");
}

/**
 * Validate and normalize an update into wire fields (without `seq` and
 * `attempt`, which the backend assigns; placeholders keep their places:
 * `seq` third, after `v` and `op`; `attempt` is moved last by the backend).
 *
 * @throws {ProgressValidationError} naming the first bad field and its value.
 */
export function encodeUpdate(op: string, update: ProgressUpdate, now: Date = new Date()): Fields {
  assertId(op);
  if (update === null || typeof update !== "object") {
    throw new ProgressValidationError("update", update, "must be an object");
  }
  checkUpdate(update);
  const u = update;
  if (u.current !== undefined && u.total !== undefined && u.current > u.total) {
    throw new ProgressValidationError("current", u.current, `must not exceed total (${u.total})`);
  }
  let progress = u.progress;
  if (progress === undefined && u.current !== undefined && u.total !== undefined) {
    progress = u.total === 0 ? 100 : (u.current / u.total) * 100;
  }
  const status = u.status ?? "running";
  if (progress === undefined && status === "completed") progress = 100;
  const fields: Fields = { v: WIRE_VERSION, op, seq: "0", type: u.type ?? "progress", status };
  if (progress !== undefined) fields.progress = formatDecimal(progress);
  if (u.current !== undefined) fields.current = String(u.current);
  if (u.total !== undefined) fields.total = String(u.total);
  if (u.message !== undefined) fields.message = u.message;
  if (u.cid !== undefined) fields.cid = u.cid;
  fields.ts = (u.ts ?? now).toISOString();
  if (u.data !== undefined) {
    let json: string;
    try {
      json = JSON.stringify(u.data);
    } catch (cause) {
      throw new ProgressValidationError("data", u.data, `must be serializable to JSON (${String(cause)})`);
    }
    if (utf8Length(json) > MAX_DATA_BYTES) {
      throw new ProgressValidationError("data", u.data, `must be at most ${MAX_DATA_BYTES} bytes of JSON`);
    }
    fields.data = json;
  }
  if (u.eta !== undefined) fields.eta = formatDecimal(u.eta);
  // The backend sets it (a new attempt on restart) and writes it last.
  fields.attempt = "1";
  return fields;
}

function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) bytes += c > 0x7ff ? (c >= 0xd800 && c <= 0xdbff ? 1 : 2) : 1;
  }
  return bytes;
}

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
  if (value === undefined || utf8Length(value) > MAX_DATA_BYTES) return undefined;
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

function common(fields: Fields, fallbackTs: string): Omit<ProgressEvent, "id"> {
  const out: {
    -readonly [K in keyof Omit<ProgressEvent, "id">]: Omit<ProgressEvent, "id">[K];
  } = {
    op: fields.op ?? "",
    seq: integer(fields.seq) ?? 0,
    type: SAFE_TYPE,
    status: status(fields.status),
    ts: fields.ts !== undefined && TS.test(fields.ts) ? fields.ts : fallbackTs,
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
  return { id: entry.id, ...common(fields, idTime(entry.id)), op: owner };
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
  const base = common(fields, idTime(id));
  const snapshot: { -readonly [K in keyof ProgressSnapshot]: ProgressSnapshot[K] } = {
    ...base,
    op: base.op !== "" && ID_PATTERN.test(base.op) ? base.op : "",
    status: fields.status === undefined ? "queued" : base.status,
  };
  if (id !== undefined) snapshot.id = id;
  if (fields.cancel !== undefined) snapshot.cancel = fields.cancel.slice(0, 512);
  return snapshot;
}

/**
 * Compare the decimal digits `a[as..ae)` and `b[bs..be)` as unsigned integers of
 * any size: by length once leading zeros are skipped, then digit by digit.
 */
function compareDigits(a: string, as: number, ae: number, b: string, bs: number, be: number): number {
  while (ae - as > 1 && a.charCodeAt(as) === 48) as++;
  while (be - bs > 1 && b.charCodeAt(bs) === 48) bs++;
  const aZero = ae === as || (ae - as === 1 && a.charCodeAt(as) === 48);
  const bZero = be === bs || (be - bs === 1 && b.charCodeAt(bs) === 48);
  if (aZero || bZero) return aZero && bZero ? 0 : aZero ? -1 : 1;
  const length = ae - as;
  if (length !== be - bs) return length - (be - bs);
  for (let i = 0; i < length; i++) {
    const d = a.charCodeAt(as + i) - b.charCodeAt(bs + i);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Compare two stream entry ids (`ms-seq`; a missing part counts as 0, as an
 * empty one does). Negative when a < b, zero when equal, positive when a > b.
 * Exact for the whole 64-bit range of both parts, and allocates nothing: it is
 * called for every entry a watcher sees.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  let ad = a.indexOf("-");
  let bd = b.indexOf("-");
  if (ad < 0) ad = a.length;
  if (bd < 0) bd = b.length;
  const ms = compareDigits(a, 0, ad, b, 0, bd);
  if (ms !== 0) return ms;
  return compareDigits(a, Math.min(ad + 1, a.length), a.length, b, Math.min(bd + 1, b.length), b.length);
}
