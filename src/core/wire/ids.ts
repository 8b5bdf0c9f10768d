/**
 * Stream entry ids (`<ms>-<seq>`): the pattern, the checks of a resume id,
 * and their order.
 *
 * @module
 */
import { ProgressValidationError } from "../errors.ts";

/**
 * Stream entry ids: `<ms>-<seq>`, each part an unsigned 64-bit integer. Only
 * such ids reach the backend or an SSE `id:` line.
 */
export const STREAM_ID: RegExp = /^\d{1,20}-\d{1,20}$/;

const U64_MAX = 18_446_744_073_709_551_615n;

/** True for a stream entry id (`<ms>-<seq>`, both unsigned 64-bit integers). */
export function isStreamId(value: unknown): value is string {
  if (typeof value !== "string" || !STREAM_ID.test(value)) return false;
  const dash = value.indexOf("-");
  // Parts of 19 digits or fewer are below 2^64: only a 20-digit part needs the exact comparison.
  if (dash < 20 && value.length - dash <= 20) return true;
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
