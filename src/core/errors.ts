/**
 * Errors: one base class, one subclass per failure mode, guards that match by
 * name so they work across realms and bundled copies.
 *
 * @module
 */

/** One problem found in an input, in the shape zod reports it. */
export interface ValidationIssue {
  /** Path of the offending field, e.g. `["data"]`. */
  readonly path: readonly PropertyKey[];
  /** What was wrong. */
  readonly message: string;
}

/** Base class of every error progresscast throws. */
export class ProgressError extends Error {
  override name = "ProgressError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Bad input: names the field and the value, says what is allowed.
 *
 * @example
 * ```ts
 * try { await progress.publish("job-1", { progress: 140 }); }
 * catch (e) { if (isProgressValidationError(e)) console.log(e.field); } // "progress"
 * ```
 */
export class ProgressValidationError extends ProgressError {
  override name = "ProgressValidationError";
  /** Dotted path of the offending field, e.g. `progress` or `data`. */
  readonly field: string;
  /** The offending value. */
  readonly value: unknown;
  /** Every problem found, zod-style. */
  readonly issues: readonly ValidationIssue[];
  constructor(field: string, value: unknown, message: string, issues: readonly ValidationIssue[] = []) {
    super(`Invalid ${field}: ${message} (got ${describe(value)})`);
    this.field = field;
    this.value = value;
    this.issues = issues.length > 0 ? issues : [{ path: field.split("."), message }];
  }
}

/** The backend answered with an error, or could not be reached. */
export class BackendError extends ProgressError {
  override name = "BackendError";
}

/**
 * The backend answered that a key holds another type of value than the
 * operation needs (someone overwrote a stream with a string). Thrown by the
 * Redis adapters for Redis's `WRONGTYPE`.
 */
export class WrongTypeError extends BackendError {
  override name = "WrongTypeError";
  /** The key or keys of the call, when the adapter knows them. */
  readonly keys: readonly string[];
  constructor(message: string, keys: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.keys = keys;
  }
}

/**
 * A consumer group (or its stream) does not exist: the stream expired and
 * took its group with it. Thrown by the adapters for Redis's `NOGROUP`.
 */
export class MissingGroupError extends BackendError {
  override name = "MissingGroupError";
}

/** The connection to the backend is closed (or the manager was closed). */
export class ConnectionClosedError extends BackendError {
  override name = "ConnectionClosedError";
}

/** An operation did not finish in time. */
export class TimeoutError extends ProgressError {
  override name = "TimeoutError";
}

/** A watcher or a caller was refused by the `authorize` hook. */
export class UnauthorizedError extends ProgressError {
  override name = "UnauthorizedError";
  /** HTTP-style status: 401 without credentials, 403 when forbidden. */
  readonly status: 401 | 403;
  constructor(message: string, status: 401 | 403 = 403, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

/**
 * A watch's consumer stopped reading: the events held for it passed its byte
 * budget (`maxQueueBytes`), so the watch ended instead of buffering without
 * bound. Watch again after the last event id received.
 *
 * @example
 * ```ts
 * let after: string | undefined;
 * try {
 *   for await (const item of progress.watch("job-1")) if (item.kind === "event") after = item.event.id;
 * } catch (e) {
 *   if (isSlowConsumerError(e)) console.log("fell behind; watch again after", after);
 * }
 * ```
 */
export class SlowConsumerError extends ProgressError {
  override name = "SlowConsumerError";
  /** The budget that was exceeded, in bytes. */
  readonly maxBytes: number;
  constructor(message: string, maxBytes: number, options?: { cause?: unknown }) {
    super(message, options);
    this.maxBytes = maxBytes;
  }
}

function isNamed(error: unknown, names: readonly string[]): boolean {
  return error instanceof Error && names.includes(error.name);
}

/** True for any error progresscast throws. */
export function isProgressError(error: unknown): error is ProgressError {
  return (
    error instanceof ProgressError ||
    isNamed(error, [
      "ProgressError",
      "ProgressValidationError",
      "BackendError",
      "WrongTypeError",
      "MissingGroupError",
      "ConnectionClosedError",
      "TimeoutError",
      "UnauthorizedError",
      "SlowConsumerError",
    ])
  );
}
/** True for a {@link ProgressValidationError}, across realms. */
export function isProgressValidationError(error: unknown): error is ProgressValidationError {
  return isNamed(error, ["ProgressValidationError"]);
}
/** True for a {@link BackendError} or one of its subclasses, across realms. */
export function isBackendError(error: unknown): error is BackendError {
  return isNamed(error, ["BackendError", "WrongTypeError", "MissingGroupError", "ConnectionClosedError"]);
}
/** True for a {@link WrongTypeError}, across realms. */
export function isWrongTypeError(error: unknown): error is WrongTypeError {
  return isNamed(error, ["WrongTypeError"]);
}
/** True for a {@link MissingGroupError}, across realms. */
export function isMissingGroupError(error: unknown): error is MissingGroupError {
  return isNamed(error, ["MissingGroupError"]);
}
/** True for a {@link ConnectionClosedError}, across realms. */
export function isConnectionClosedError(error: unknown): error is ConnectionClosedError {
  return isNamed(error, ["ConnectionClosedError"]);
}
/** True for a {@link TimeoutError}, across realms. */
export function isTimeoutError(error: unknown): error is TimeoutError {
  return isNamed(error, ["TimeoutError"]);
}
/** True for an {@link UnauthorizedError}, across realms. */
export function isUnauthorizedError(error: unknown): error is UnauthorizedError {
  return isNamed(error, ["UnauthorizedError"]);
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/** True for a {@link SlowConsumerError}, across realms. */
export function isSlowConsumerError(error: unknown): error is SlowConsumerError {
  return isNamed(error, ["SlowConsumerError"]);
}
