/**
 * Redis's error answers as the core's typed errors: the one place that reads
 * Redis error text (`WRONGTYPE`, `NOGROUP`), for every Redis adapter.
 *
 * @module
 */
import { BackendError, isWrongTypeError, MissingGroupError, WrongTypeError } from "../core/errors.ts";

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

/**
 * A read of many streams failed with `WRONGTYPE`, which does not say which
 * key: ask `TYPE` of every key of the read, in one round trip (`types`
 * answers one reply per key, in order), and name the keys holding something
 * else than a stream. Returns the error to throw: a {@link WrongTypeError}
 * carrying those keys (its message names them, the original error as cause),
 * or `error` itself when it is no `WRONGTYPE`, already names its keys, or the
 * check fails or finds no such key (the caller then knows no more than before).
 *
 * @example
 * ```ts
 * try { return await xread(keys); }
 * catch (error) { throw await namingWrongType(error, keys, (ks) => Promise.all(ks.map(type))); }
 * ```
 */
export async function namingWrongType(
  error: unknown,
  keys: readonly string[],
  types: (keys: readonly string[]) => Promise<readonly unknown[]>,
): Promise<unknown> {
  if (!isWrongTypeError(error) || error.keys.length > 0 || keys.length === 0) return error;
  let replies: readonly unknown[];
  try {
    replies = await types(keys);
  } catch {
    return error;
  }
  const wrong = keys.filter((_, i) => {
    const type = String(replies[i] ?? "none").toLowerCase();
    return type !== "stream" && type !== "none";
  });
  if (wrong.length === 0) return error;
  return new WrongTypeError(`${error.message} (holding another type: ${wrong.join(", ")})`, wrong, { cause: error });
}
