/**
 * A latency histogram with 1 % wide buckets from 10 µs to about 1,000 s, small
 * enough to send between processes and merge: the SSE client processes of
 * `soak.ts` and `capacity.ts` each keep one and the parent adds them up.
 */

const MIN_MS = 0.01;
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Buckets up to MIN_MS * GROWTH^BUCKETS (about 1e6 ms). */
const BUCKETS = Math.ceil(Math.log(1e6 / MIN_MS) / LOG_GROWTH) + 1;

/** Counts per bucket; bucket 0 holds everything below 10 µs (and negative skew). */
export type Histogram = number[];

export function newHistogram(): Histogram {
  return new Array<number>(BUCKETS).fill(0);
}

export function record(h: Histogram, ms: number): void {
  const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
  h[i] = (h[i] ?? 0) + 1;
}

export function merge(into: Histogram, from: readonly number[]): void {
  for (let i = 0; i < from.length; i++) into[i] = (into[i] ?? 0) + (from[i] ?? 0);
}

export function count(h: readonly number[]): number {
  let n = 0;
  for (const c of h) n += c;
  return n;
}

/** Upper bound (ms) of the bucket holding the q-quantile (0..1); NaN when empty. */
export function histogramQuantile(h: readonly number[], q: number): number {
  const total = count(h);
  if (total === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    seen += h[i] ?? 0;
    if (seen >= rank) return MIN_MS * GROWTH ** i;
  }
  return MIN_MS * GROWTH ** (h.length - 1);
}

/** Upper bound (ms) of the highest non-empty bucket; NaN when empty. */
export function histogramMax(h: readonly number[]): number {
  for (let i = h.length - 1; i >= 0; i--) if ((h[i] ?? 0) > 0) return MIN_MS * GROWTH ** i;
  return Number.NaN;
}
