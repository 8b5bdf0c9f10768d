/**
 * Encoding an update into wire fields, checked field by field.
 *
 * @module
 */
import { ProgressValidationError } from "../errors.ts";
import type { Fields } from "../port/port.ts";
import {
  assertId,
  CID_PATTERN,
  MAX_DATA_BYTES,
  MAX_ETA_SECONDS,
  MAX_MESSAGE_LENGTH,
  type ProgressUpdate,
  STATUSES,
  TS_MAX_MS,
  TS_MIN_MS,
  TYPE_PATTERN,
  utf8Length,
  WIRE_VERSION,
} from "./format.ts";

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
