/**
 * The one partial-failure-aware port call, used by first writes (the
 * batcher) and resends (the writer's outbox).
 *
 * @module
 */
import { BackendError, isConnectionClosedError, isProgressError, isTimeoutError } from "../errors.ts";
import {
  type AppendItem,
  type AppendOptions,
  type AppendResult,
  PartialAppendError,
  type StreamPort,
} from "../port/port.ts";
import { toError } from "../util.ts";

/**
 * Append `items` in one port call and answer each: its result, or the error
 * that kept it from being written. A partial failure (another cluster slot
 * failed) keeps the results that stand. With `alone`, an item that failed
 * for another reason than a connection that is down or a timeout is tried
 * again by itself, so one event the backend rejects (a key of the wrong
 * type) does not hold back the others. Never rejects.
 */
export async function appendEach(
  port: StreamPort,
  items: readonly AppendItem[],
  options: AppendOptions,
  alone: boolean,
): Promise<Array<AppendResult | Error>> {
  // A first write's error names the backend; a resend keeps the error as thrown.
  const asError = alone
    ? toError
    : (cause: unknown): Error =>
        isProgressError(cause)
          ? cause
          : new BackendError(`The ${port.name} backend failed: ${String(cause)}`, { cause });
  const retry = async (item: AppendItem, error: Error): Promise<AppendResult | Error> =>
    (await appendEach(port, [item], options, alone))[0] ?? error;
  try {
    const results = await port.append(items, options);
    return items.map(
      (_, i) =>
        results[i] ?? new BackendError(`The ${port.name} backend answered ${results.length} of ${items.length}`),
    );
  } catch (cause) {
    if (cause instanceof PartialAppendError) {
      // Other cluster slots were written: their results stand.
      const { results } = cause;
      return await Promise.all(
        items.map(async (item, i) => {
          const r = results[i];
          if (!alone) return r === undefined ? asError(cause) : r instanceof Error ? asError(r) : r;
          // A failed event goes on alone unless its node is away.
          const own = r ?? cause;
          return own instanceof Error && !isConnectionClosedError(own) && !isTimeoutError(own)
            ? await retry(item, own)
            : own;
        }),
      );
    }
    const error = asError(cause);
    if (alone && items.length > 1 && !isConnectionClosedError(error) && !isTimeoutError(error)) {
      return await Promise.all(items.map((item) => retry(item, error)));
    }
    return items.map(() => error);
  }
}
