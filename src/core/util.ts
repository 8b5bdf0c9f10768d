/** An abortable sleep: resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)]. */
export function backoff(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/** Turn anything thrown into an Error. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

const settled = Promise.resolve();

/**
 * Run `fn` as a microtask. Unlike Node's `queueMicrotask`, which creates an
 * async resource per call, this costs one promise reaction: it is the one the
 * per-event paths (the live reader, the publish batcher) use. An exception
 * thrown by `fn` surfaces as an unhandled rejection.
 */
export function microtask(fn: () => void): void {
  void settled.then(fn);
}
