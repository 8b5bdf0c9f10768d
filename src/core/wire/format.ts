/**
 * Wire format v1: the flat string fields of a stream entry and a snapshot
 * hash, readable in `redis-cli` and writable by a publisher in any language.
 * This file holds its types, limits and patterns and the id check; ids,
 * encoding and decoding are in `ids.ts`, `encode.ts` and `decode.ts`, the
 * lenient reading of old entries in `lenient.ts` (zod schemas of the same
 * rules are in `src/schema`).
 *
 * @module
 */

import { ProgressValidationError } from "../errors.ts";

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
/** Largest `eta`, in seconds (about 31,700 years): past it a number no longer prints as a plain decimal. */
export const MAX_ETA_SECONDS = 1e12;

/** `ts` must print as 4-digit years: 0000-01-01 to 9999-12-31. */
export const TS_MIN_MS = -62_167_219_200_000;
export const TS_MAX_MS = 253_402_300_799_999;

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

/** Length of a string in bytes of UTF-8. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) bytes += c > 0x7ff ? (c >= 0xd800 && c <= 0xdbff ? 1 : 2) : 1;
  }
  return bytes;
}
