/**
 * Redis's error answers as the core's typed errors: the one place that reads
 * Redis error text (`WRONGTYPE`, `NOGROUP`), for every Redis adapter.
 *
 * @module
 */
import { BackendError, MissingGroupError, WrongTypeError } from "../core/errors.ts";

/**
 * The typed error for an error answer of Redis: {@link WrongTypeError} for
 * `WRONGTYPE` (with `keys` when known), {@link MissingGroupError} for
 * `NOGROUP`, else a {@link BackendError}. `reply` is Redis's text; `message`
 * what the error says.
 */
export function replyError(reply: string, message: string, cause: unknown, keys?: readonly string[]): BackendError {
  if (/\bWRONGTYPE\b/.test(reply)) return new WrongTypeError(message, keys, { cause });
  if (/\bNOGROUP\b/.test(reply)) return new MissingGroupError(message, { cause });
  return new BackendError(message, { cause });
}
