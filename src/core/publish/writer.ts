/**
 * Folder `publish/`: the write path. `prepare.ts` turns an update into an
 * append item (encode, estimate, keys, legacy writes through the compat
 * seam); `coalesce.ts` holds the newest `report` per operation; `batcher.ts`
 * gathers concurrent first writes into one port call; `append.ts` is that
 * call, partial-failure aware; `outbox.ts` holds what the backend did not
 * take; this file sends, holds and resends; `estimate.ts` computes the ETA.
 *
 * Writing prepared events: the first send (through the batcher), holding in
 * the outbox what the backend did not take, resending it, and reporting
 * failures. First writes and resends go through one partial-failure-aware
 * send (`appendEach`, in `append.ts`).
 *
 * @module
 */

import {
  BackendError,
  ConnectionClosedError,
  isProgressError,
  isProgressValidationError,
  type ProgressError,
} from "../errors.ts";
import type { CancelListeners } from "../jobs/cancel.ts";
import type { Logger, Metrics } from "../observe.ts";
import { noMetrics } from "../observe.ts";
import type { ProgressOptions } from "../options.ts";
import type { AppendItem, AppendOptions, AppendResult, StreamPort } from "../port/port.ts";
import { appendEach } from "./append.ts";
import { Batcher } from "./batcher.ts";
import { Outbox, type OutboxEntry, type OutboxOutcome } from "./outbox.ts";

/** What a publish did. It never rejects for a backend fault: the fault is here. */
export type PublishResult =
  | {
      readonly ok: true;
      readonly outcome: "published";
      /** Stream entry id of the event. */
      readonly id: string;
      readonly seq: number;
      /** The reason given to `cancel`, when the operation was asked to stop; else null. */
      readonly cancelled: string | null;
      /** Attempt of the operation the event belongs to: 1, one more at each restart. */
      readonly attempt: number;
      /** Legacy mode `importProgress`: how many subscribers received the old message (as `publish_update` answered). */
      readonly subscribers?: number;
    }
  | {
      readonly ok: false;
      readonly outcome: "refused";
      /** `backwards`: progress below the current; `terminal`: the operation already ended. */
      readonly reason: "backwards" | "terminal";
      readonly seq: number;
      readonly cancelled: string | null;
    }
  | {
      readonly ok: false;
      readonly outcome: "failed";
      /** The backend failure (for a terminal event: the last one before `retry.deadlineMs` passed). */
      readonly error: ProgressError;
      /**
       * True when the event is held in the outbox and will still be written
       * when the backend answers again (while the process lives, until `close()`);
       * false when it is lost (the manager is closed, or the outbox was full).
       */
      readonly queued: boolean;
    };

/** An event the backend had not taken when `flush()` or `close()` stopped waiting. */
export interface UnwrittenEvent {
  readonly op: string;
  /** Event type, `progress` unless an application's own. */
  readonly type: string;
  readonly status: string;
  /** Percent, when the event carries one. */
  readonly progress?: number | undefined;
  readonly cid?: string | undefined;
  /** The event's time, ISO 8601. */
  readonly ts: string;
  /** When the backend first refused it, ISO 8601. */
  readonly heldSince: string;
}

/** What the writer needs from the manager's options. */
export interface WriterOptions {
  readonly port: StreamPort;
  readonly ttlSeconds: number;
  readonly maxLen: number;
  readonly terminalTtlSeconds: number;
  readonly maxBatch: number;
  readonly outboxMaxEvents: number;
  readonly retry: {
    readonly deadlineMs: number;
    readonly attempts: number | undefined;
    readonly minDelayMs: number;
    readonly maxDelayMs: number;
  };
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly onError: ProgressOptions["onError"];
}

/** Sends prepared events, holds what the backend does not take, and resends it in order per operation. */
export class Writer {
  readonly #o: WriterOptions;
  readonly #append: AppendOptions;
  readonly #batcher: Batcher;
  readonly #outbox: Outbox;
  readonly #cancels: CancelListeners;
  readonly #closing: AbortSignal;
  /** Errors the batcher gave appends it sent behind their operation's held events (not refusals). */
  readonly #behind = new WeakSet<Error>();
  /** Sends nobody awaits (coalesced reports), until they settle. */
  readonly #unawaited = new Set<Promise<unknown>>();

  constructor(options: WriterOptions, cancels: CancelListeners, closing: AbortSignal) {
    const o = options;
    this.#o = o;
    this.#cancels = cancels;
    this.#closing = closing;
    this.#append = { ttlSeconds: o.ttlSeconds, maxLen: o.maxLen, terminalTtlSeconds: o.terminalTtlSeconds };
    this.#batcher = new Batcher(o.port, this.#append, o.maxBatch, (item) => {
      // Its operation's earlier call failed while this one waited: it goes behind what is held.
      const op = item.fields.op ?? "";
      if (!this.#outbox.has(op)) return undefined;
      const error = this.#heldBehind(op);
      this.#behind.add(error);
      return error;
    });
    this.#outbox = new Outbox(
      { maxEvents: o.outboxMaxEvents, minDelayMs: o.retry.minDelayMs, maxDelayMs: o.retry.maxDelayMs },
      {
        send: (items) => this.#resend(items),
        written: (entry, result) => {
          this.#o.logger.info?.("held event written", {
            op: entry.op,
            cid: entry.cid,
            heldMs: Date.now() - entry.since,
            tries: entry.tries,
          });
          this.#settle(entry.op, entry.cid, result);
        },
        dropped: (entry, error) => this.fail(error, entry.op, entry.cid, "event dropped"),
        retrying: (entries, error, delayMs) => {
          this.#o.metrics.increment("publish_retries", entries.length);
          this.#o.logger.warn?.("backend unreachable, events held", {
            held: this.#outbox.size,
            retryInMs: delayMs,
            error,
          });
        },
      },
    );
  }

  /** Resolves when every first write queued so far has been answered. */
  idle(): Promise<void> {
    return this.#batcher.idle();
  }

  /** Send an event nobody awaits (a coalesced report); {@link Writer.drain} waits for it. */
  sendUnawaited(item: AppendItem, cid: string | undefined): void {
    const sent = this.send(item, cid, false);
    this.#unawaited.add(sent);
    void sent.finally(() => this.#unawaited.delete(sent));
  }

  /** Wait for first writes, unawaited sends and held events until none is left or `signal` aborts. */
  async drain(signal: AbortSignal): Promise<void> {
    do {
      await this.#batcher.idle();
      while (this.#unawaited.size > 0 && !signal.aborted) await Promise.allSettled([...this.#unawaited]);
      await this.#outbox.idle(signal);
    } while (!signal.aborted && (this.#unawaited.size > 0 || this.#outbox.size > 0));
  }

  /** The events held now. */
  unwritten(): UnwrittenEvent[] {
    return this.#outbox.entries().map(describeHeld);
  }

  /** Give up every held event, each failed with `error` and reported; returns them. */
  stop(error: ConnectionClosedError): UnwrittenEvent[] {
    const left = this.#outbox.stop(error);
    for (const entry of left) this.fail(error, entry.op, entry.cid, "event not written before close");
    return left.map(describeHeld);
  }

  /**
   * Send one event. `waits`: a terminal event waits for a backend that is
   * away (up to the retry deadline); a report does not.
   */
  async send(item: AppendItem, cid: string | undefined, waits: boolean): Promise<PublishResult> {
    const op = item.fields.op ?? "";
    if (this.#closing.aborted) {
      const error = new ConnectionClosedError("The progress manager is closed; create a new one to publish");
      this.fail(error, op, cid);
      return { ok: false, outcome: "failed", error, queued: false };
    }
    const started = Date.now();
    if (this.#outbox.has(op)) {
      // Earlier events of this operation are held: this one goes behind them, never ahead.
      return await this.#hold(item, cid, waits, this.#heldBehind(op), started, false);
    }
    const timed = this.#o.metrics !== noMetrics;
    const t0 = timed ? performance.now() : 0;
    let result: AppendResult;
    try {
      result = await this.#batcher.append(item);
    } catch (cause) {
      const error = isProgressError(cause) ? cause : new BackendError(String(cause), { cause });
      if (isProgressValidationError(error)) {
        // The backend refused the event itself: holding it would only retry it forever.
        this.fail(error, op, cid);
        return { ok: false, outcome: "failed", error, queued: false };
      }
      return await this.#hold(item, cid, waits, error, started, !this.#behind.has(error));
    }
    if (timed) this.#o.metrics.observe("publish_latency_ms", performance.now() - t0);
    // The backend answers: write what it refused earlier now rather than after the backoff.
    if (this.#outbox.size > 0) this.#outbox.kick();
    return this.#settle(op, cid, result);
  }

  /** Count and log a failure, and pass it to `onError`. Never throws. */
  fail(error: Error, op: string, cid: string | undefined, what = "publish failed"): void {
    const e = asProgressError(error);
    try {
      this.#o.metrics.increment("publish_failures");
      this.#o.logger.error?.(what, { op, cid, error: e });
    } catch {
      // A throwing logger or metrics sink must not break the job either.
    }
    try {
      this.#o.onError?.(e, cid === undefined ? { op } : { op, cid });
    } catch {
      // onError must not break the job.
    }
  }

  #heldBehind(op: string): BackendError {
    return new BackendError(
      `Held behind earlier events of operation "${op}" that the ${this.#o.port.name} backend has not taken yet`,
    );
  }

  /** Keep a refused event in the outbox; a waiting terminal publish waits for it there. */
  async #hold(
    item: AppendItem,
    cid: string | undefined,
    waits: boolean,
    error: ProgressError,
    started: number,
    refused: boolean,
  ): Promise<PublishResult> {
    const op = item.fields.op ?? "";
    if (this.#closing.aborted) {
      this.fail(error, op, cid);
      return { ok: false, outcome: "failed", error, queued: false };
    }
    const entry = this.#outbox.put(op, item, cid);
    if (!entry) return { ok: false, outcome: "failed", error, queued: false };
    const { attempts, deadlineMs } = this.#o.retry;
    if (!refused && !waits) {
      // A report joining its operation's held events: the failure was reported when they were refused.
      this.#o.logger.debug?.("report held behind earlier events", { op, cid });
      return { ok: false, outcome: "failed", error, queued: true };
    }
    if (!item.terminal || !waits || attempts === 0 || deadlineMs === 0) {
      this.fail(error, op, cid, "publish failed, event held for retry");
      return { ok: false, outcome: "failed", error, queued: true };
    }
    this.#o.logger.warn?.("publish failed, retrying", { op, cid, error });
    const outcome = await waitFor(entry, started + deadlineMs, attempts);
    if (outcome.kind === "written") return toPublishResult(outcome.result);
    if (outcome.kind === "dropped") {
      return { ok: false, outcome: "failed", error: asProgressError(outcome.error), queued: false };
    }
    const last = outcome.error === undefined ? error : asProgressError(outcome.error);
    this.fail(last, op, cid, "publish failed, event held for retry");
    return { ok: false, outcome: "failed", error: last, queued: true };
  }

  /** Send held events (heads of distinct operations); a bad one fails alone. Never rejects. */
  async #resend(items: readonly AppendItem[]): Promise<Array<AppendResult | Error>> {
    const out: Array<AppendResult | Error> = [];
    for (let i = 0; i < items.length; i += this.#o.maxBatch) {
      for (const r of await appendEach(this.#o.port, items.slice(i, i + this.#o.maxBatch), this.#append, true)) {
        out.push(r);
      }
    }
    return out;
  }

  /** Count, log and tell cancel listeners about a backend answer. */
  #settle(op: string, cid: string | undefined, result: AppendResult): PublishResult {
    if (result.cancelled !== null) this.#cancels.notify(op, result.cancelled);
    if (result.ok) this.#o.metrics.increment("events_published");
    else {
      this.#o.metrics.increment("events_refused", 1, { reason: result.refused });
      this.#o.logger.debug?.("update refused", { op, cid, reason: result.refused });
    }
    return toPublishResult(result);
  }
}

type Waited = OutboxOutcome | { readonly kind: "late"; readonly error: Error | undefined };

/** Wait until a held entry is written or given up, `deadline` passes, or `attempts` retries failed. */
function waitFor(entry: OutboxEntry, deadline: number, attempts: number | undefined): Promise<Waited> {
  return new Promise((resolve) => {
    let lastError: Error | undefined;
    let failures = 0;
    const done = (outcome: Waited): void => {
      clearTimeout(timer);
      entry.listeners.delete(listener);
      resolve(outcome);
    };
    const listener = (outcome: OutboxOutcome): void => {
      if (outcome.kind !== "failed") {
        done(outcome);
        return;
      }
      lastError = outcome.error;
      failures++;
      if (attempts !== undefined && failures >= attempts) done({ kind: "late", error: lastError });
    };
    const timer = setTimeout(() => done({ kind: "late", error: lastError }), Math.max(0, deadline - Date.now()));
    entry.listeners.add(listener);
  });
}

/** Any error as a typed error of the library. */
export function asProgressError(error: Error): ProgressError {
  if (isProgressError(error)) return error;
  const e: Error = error;
  return new BackendError(e.message, { cause: e });
}

function toPublishResult(result: AppendResult): PublishResult {
  return result.ok
    ? {
        ok: true,
        outcome: "published",
        id: result.id,
        seq: result.seq,
        cancelled: result.cancelled,
        attempt: result.attempt,
        ...(result.subscribers === undefined ? {} : { subscribers: result.subscribers }),
      }
    : { ok: false, outcome: "refused", reason: result.refused, seq: result.seq, cancelled: result.cancelled };
}

function describeHeld(entry: OutboxEntry): UnwrittenEvent {
  const f = entry.item.fields;
  const progress = f.progress === undefined ? undefined : Number(f.progress);
  return {
    op: entry.op,
    type: f.type ?? "progress",
    status: f.status ?? "running",
    ...(progress !== undefined ? { progress } : {}),
    ...(entry.cid !== undefined ? { cid: entry.cid } : {}),
    ts: f.ts ?? "",
    heldSince: new Date(entry.since).toISOString(),
  };
}
