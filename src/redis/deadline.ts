/**
 * Client-side deadlines of the Redis adapters: a call that must answer in
 * time, a blocking read dropped when its watcher stops, and the check that a
 * connection went silent.
 *
 * @module
 */
import { TimeoutError } from "../core/errors.ts";

/** Options of {@link withDeadline}. */
export interface DeadlineOptions {
  /** How long `work` may take. */
  readonly ms: number;
  /** Called when `ms` pass first (drop the silent connection); its error is what the call rejects with. */
  readonly expired: () => Error;
  readonly signal?: AbortSignal | undefined;
  /**
   * Called when `signal` aborts before `work` settles. Return true to resolve
   * null at once (the connection was dropped), false to keep waiting for
   * `work` (it was told to end, e.g. with CLIENT UNBLOCK). @default resolve null at once
   */
  readonly aborted?: (() => boolean) | undefined;
}

/**
 * Wait for `work` with a client-side deadline: a connection that stays
 * silent past `ms` (a socket a proxy or NAT dropped without closing) fails the
 * call instead of hanging it.
 *
 * @throws what `work` throws, or `expired()`'s error once `ms` pass.
 * @example
 * ```ts
 * await withDeadline(client.sendCommand(args), { ms: 7000, expired: () => new TimeoutError("silent") });
 * ```
 */
export async function withDeadline<T>(work: Promise<T>, options: DeadlineOptions): Promise<T | null> {
  const { signal } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<null>((resolve, reject) => {
    timer = setTimeout(() => reject(options.expired()), options.ms);
    if (!signal) return;
    onAbort = () => {
      if (options.aborted?.() ?? true) resolve(null);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * A blocking read on a connection of its own that cannot be unblocked from
 * another one (a cluster client's): aborting `signal` drops the connection and
 * resolves null at once; so does a failure after `closed()` or an abort. Past
 * `ms` the connection is dropped too, and the call rejects.
 *
 * @throws {TimeoutError} when `work` has not answered within `ms`.
 * @throws what `work` throws otherwise.
 * @example
 * ```ts
 * await droppingOnStop(() => send(blocker, args), { ms: 7000, signal, drop, closed: () => closed, what: "group read" });
 * ```
 */
export async function droppingOnStop<T>(
  work: () => Promise<T>,
  options: {
    readonly ms: number;
    readonly signal: AbortSignal | undefined;
    readonly drop: () => void;
    readonly closed: () => boolean;
    readonly what: string;
  },
): Promise<T | null> {
  const { ms, signal, drop } = options;
  try {
    return await withDeadline(work(), {
      ms,
      expired: () => {
        drop();
        return new TimeoutError(`A blocking ${options.what} did not answer within ${ms} ms`);
      },
      signal,
      aborted: () => {
        drop();
        return true;
      },
    });
  } catch (error) {
    if (options.closed() || signal?.aborted) return null;
    throw error;
  }
}

/**
 * A health check: resolves true when `ping` has not answered within `ms`
 * (an answer that is an error counts as an answer). Never rejects.
 *
 * @example
 * ```ts
 * if (await silentFor(() => client.ping(), 10_000)) client.disconnect(true);
 * ```
 */
export async function silentFor(ping: () => Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silent = new Promise<true>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  const answered = (async () => {
    try {
      await ping();
    } catch {
      // An error is an answer.
    }
    return false;
  })();
  try {
    return await Promise.race([answered, silent]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The deadline error of a blocking read whose connection was replaced.
 *
 * @example
 * ```ts
 * throw blockTimeout(5000, 7000);
 * ```
 */
export function blockTimeout(blockMs: number, deadlineMs: number): TimeoutError {
  return new TimeoutError(
    `Redis did not answer a ${blockMs} ms blocking read within ${deadlineMs} ms; the connection was replaced`,
  );
}
