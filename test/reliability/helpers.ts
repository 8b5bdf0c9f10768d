/** Small helpers shared by the reliability tests. */
import type { WatchItem } from "../../src/core/deliver/watch.ts";

/** Collects what a watch yields, in the background, until it ends or `signal` aborts. */
export interface Collected {
  readonly items: WatchItem[];
  /** Set when the watch threw. */
  error: unknown;
  /** Resolves when the watch ended. */
  readonly done: Promise<void>;
}

export function collect(watch: AsyncIterable<WatchItem>): Collected {
  const out: Collected = { items: [], error: undefined, done: Promise.resolve() };
  (out as { done: Promise<void> }).done = (async () => {
    try {
      for await (const item of watch) out.items.push(item);
    } catch (error) {
      out.error = error;
    }
  })();
  return out;
}

/** Poll `check` until it returns true, failing with `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The `seq` of every event item, in order. */
export function seqs(items: readonly WatchItem[]): number[] {
  return items.flatMap((i) => (i.kind === "event" ? [i.event.seq] : []));
}
