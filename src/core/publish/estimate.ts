/**
 * Time remaining from the progress rate. Method: the rate is the progress
 * gained since a reference sample divided by the time since it; the reference
 * is the oldest sample within the last `windowMs` (30 s by default), so a
 * burst of updates does not move it and the estimate stays steady, while a
 * job that speeds up or slows down is followed within one window. No estimate
 * until the samples span `minSpanMs` and progress has moved.
 */
export class Estimator {
  readonly #samples = new Map<string, Array<{ t: number; p: number }>>();
  readonly #windowMs: number;
  readonly #minSpanMs: number;
  readonly #maxOps: number;

  constructor(windowMs = 30_000, minSpanMs = 500, maxOps = 10_000) {
    this.#windowMs = windowMs;
    this.#minSpanMs = minSpanMs;
    this.#maxOps = maxOps;
  }

  /** Record progress `p` (0..100) at time `t` (ms); returns seconds remaining, or undefined. */
  sample(op: string, p: number, t: number): number | undefined {
    let samples = this.#samples.get(op);
    if (!samples) {
      if (this.#samples.size >= this.#maxOps) {
        const oldest = this.#samples.keys().next();
        if (!oldest.done) this.#samples.delete(oldest.value);
      }
      samples = [];
      this.#samples.set(op, samples);
    }
    const last = samples[samples.length - 1];
    if (last && p < last.p) samples.length = 0;
    samples.push({ t, p });
    // Keep one sample at or before the window start as the reference.
    while (samples.length > 2 && (samples[1]?.t ?? t) <= t - this.#windowMs) samples.shift();
    if (samples.length > 64) samples.splice(1, samples.length - 64);
    if (p >= 100) return 0;
    const ref = samples[0];
    if (!ref || t - ref.t < this.#minSpanMs || p <= ref.p) return undefined;
    const rate = (p - ref.p) / (t - ref.t);
    return Math.round(((100 - p) / rate / 1000) * 10) / 10;
  }

  /** Forget an operation (it ended). */
  forget(op: string): void {
    this.#samples.delete(op);
  }
}
