import type { AppendItem, AppendOptions, AppendResult, StreamPort } from "../port/port.ts";
import { microtask } from "../util.ts";
import { appendEach } from "./append.ts";

interface Pending {
  readonly item: AppendItem;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: Error) => void;
}

/**
 * Gathers the appends pending at the same moment (many jobs reporting from
 * one process) into one port call, so the backend sees one script call per
 * batch instead of one per publish. With nothing in flight an append is sent
 * at once; otherwise it joins the batch sent on the next microtask. Batches
 * are capped so one call never grows without bound.
 *
 * An operation has at most one call in flight: its later appends wait for
 * that call's answer (then go together), so a call that fails can never be
 * overtaken by a later one of the same operation that succeeds. When `behind`
 * says an append must queue behind events held elsewhere (its operation's
 * earlier call failed meanwhile), it is rejected with that error instead of sent.
 */
export class Batcher {
  #queue: Pending[] = [];
  #scheduled = false;
  #inFlight = 0;
  #idle: Array<() => void> = [];
  /** Events keys with a call in flight, and how many of their appends it carries. */
  readonly #busy = new Map<string, number>();
  readonly #port: StreamPort;
  readonly #options: AppendOptions;
  readonly #maxBatch: number;
  readonly #behind: (item: AppendItem) => Error | undefined;

  constructor(
    port: StreamPort,
    options: AppendOptions,
    maxBatch: number,
    behind: (item: AppendItem) => Error | undefined = () => undefined,
  ) {
    this.#port = port;
    this.#options = options;
    this.#maxBatch = maxBatch;
    this.#behind = behind;
  }

  /** Queue one append; resolves with its result, rejects with a BackendError. */
  append(item: AppendItem): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => {
      if (this.#inFlight === 0 && !this.#scheduled) {
        // Nothing on the way: send at once (a lone, awaited publish pays no wait).
        // Publishes arriving while it is in flight gather into the next batch.
        this.#inFlight++;
        this.#mark(item, 1);
        void this.#send([{ item, resolve, reject }]);
        return;
      }
      this.#queue.push({ item, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        microtask(this.#drain);
      }
    });
  }

  /** Resolves when every append queued so far has been answered. */
  async idle(): Promise<void> {
    while (this.#queue.length > 0 || this.#inFlight > 0) {
      if (this.#queue.length > 0 && !this.#scheduled) this.#drain();
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
  }

  readonly #drain = (): void => {
    this.#scheduled = false;
    const ready: Pending[] = [];
    const waiting: Pending[] = [];
    for (const p of this.#queue) {
      // Behind an operation's call in flight: it goes once that call is answered, in order.
      if (this.#busy.has(p.item.eventsKey)) {
        waiting.push(p);
        continue;
      }
      const behind = this.#behind(p.item);
      if (behind) p.reject(behind);
      else ready.push(p);
    }
    this.#queue = waiting;
    for (let i = 0; i < ready.length; i += this.#maxBatch) {
      const batch = ready.length <= this.#maxBatch ? ready : ready.slice(i, i + this.#maxBatch);
      this.#inFlight++;
      for (const p of batch) this.#mark(p.item, 1);
      void this.#send(batch);
    }
  };

  #mark(item: AppendItem, delta: 1 | -1): void {
    const n = (this.#busy.get(item.eventsKey) ?? 0) + delta;
    if (n > 0) this.#busy.set(item.eventsKey, n);
    else this.#busy.delete(item.eventsKey);
  }

  async #send(batch: Pending[]): Promise<void> {
    try {
      // Part of a batch may be written (another cluster slot failed): each item gets its own answer.
      const answers = await appendEach(
        this.#port,
        batch.map((p) => p.item),
        this.#options,
        false,
      );
      batch.forEach((p, i) => {
        const answer = answers[i];
        if (answer instanceof Error) p.reject(answer);
        else if (answer) p.resolve(answer);
      });
    } finally {
      this.#inFlight--;
      for (const p of batch) this.#mark(p.item, -1);
      // Appends that waited for this call: after the answers above have been handled.
      if (this.#queue.length > 0 && !this.#scheduled) {
        this.#scheduled = true;
        microtask(this.#drain);
      }
      if (this.#idle.length > 0) for (const wake of this.#idle.splice(0)) wake();
    }
  }
}
