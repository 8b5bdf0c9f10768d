/**
 * Folder `jobs/`: what a job does with the manager. This file is the task
 * lifecycle (`progress.task`); `cancel.ts` keeps who listens for an
 * operation's cancellation; `consume.ts` reads a scope through a consumer group.
 *
 * @module
 */
import { ProgressValidationError } from "../errors.ts";
import type { PublishOptions } from "../publish/prepare.ts";
import type { PublishResult } from "../publish/writer.ts";
import type { ProgressUpdate } from "../wire/index.ts";
import { encodeUpdate, TYPE_PATTERN } from "../wire/index.ts";

/** Options of `progress.task`. */
export interface TaskOptions {
  /** Correlation id carried on every event. */
  readonly cid?: string | undefined;
  /** Also publish to this scope's stream. */
  readonly scope?: string | undefined;
  /** Units in all, for `advance` and `progress({ current })`. */
  readonly total?: number | undefined;
  /** Metadata merged into every event's `data`. */
  readonly data?: Readonly<Record<string, unknown>> | undefined;
  /** Include the error's stack in `fail` events. @default false */
  readonly includeStack?: boolean | undefined;
  /**
   * Start a new attempt of the operation (a retried job under the same id,
   * whether or not the previous attempt ended): the task's first event is
   * published with `restart: true`, so its `attempt` is one more than the
   * previous one's, `seq` goes on, the snapshot is replaced instead of merged,
   * the stream's history of the previous attempt is dropped and watchers get a
   * `reset`. Without it, a task of an ended operation is refused (`terminal`).
   * Until that first event is written, a cancellation mark left by an ended
   * attempt is not taken for this one.
   * @default false
   */
  readonly restart?: boolean | undefined;
}

/** Fields of an application's own event. */
export interface TaskEventFields {
  readonly message?: string | undefined;
  readonly data?: Readonly<Record<string, unknown>> | undefined;
  readonly progress?: number | undefined;
  readonly current?: number | undefined;
  readonly total?: number | undefined;
}

/** What a task needs from its manager. */
export interface TaskHost {
  publish(op: string, update: ProgressUpdate, options: PublishOptions): Promise<PublishResult>;
  report(op: string, update: ProgressUpdate, options: PublishOptions): void;
  /** Read the cancellation mark (one round trip). */
  cancelMark(op: string): Promise<string | null>;
  /** Be told of a cancellation mark seen on any publish of `op`. */
  onCancel(op: string, listener: (reason: string) => void): () => void;
  readonly cancelCheckMs: number;
}

/**
 * One job's lifecycle: start, progress, events, then complete, fail or
 * cancelled. `await using` a task that ends without `complete` or `fail`
 * publishes `failed`, so no job stays `running` forever.
 *
 * @example
 * ```ts
 * await using task = progress.task("import-42", { total: rows.length });
 * await task.start("Importing");
 * for (const row of rows) {
 *   if (task.signal.aborted) break;
 *   await insert(row);
 *   task.advance();
 * }
 * await task.complete({ rows: rows.length });
 * ```
 *
 * A retried job under the same id runs as a new attempt of the operation:
 *
 * @example
 * ```ts
 * const task = progress.task(job.id, { restart: job.attemptsMade > 0 });
 * await task.start(); // attempt 2, 3, ...: the snapshot and the history start over
 * ```
 */
export class Task implements AsyncDisposable {
  /** The operation id. */
  readonly op: string;
  /** Aborts with the reason given to `progress.cancel(op, reason)`. */
  readonly signal: AbortSignal;
  readonly #host: TaskHost;
  readonly #options: TaskOptions;
  readonly #publish: PublishOptions;
  readonly #abort = new AbortController();
  #current = 0;
  #total: number | undefined;
  #ended: "completed" | "failed" | "cancelled" | undefined;
  #lastPublishAt = Date.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopListening: () => void;
  #checking = false;
  /** The next event starts a new attempt (until one that does has been handed to the backend). */
  #restart: boolean;

  constructor(host: TaskHost, op: string, options: TaskOptions) {
    this.op = op;
    this.#host = host;
    this.#options = options;
    this.#total = options.total;
    this.#publish = options.scope === undefined ? {} : { scope: options.scope };
    this.#restart = options.restart === true;
    this.signal = this.#abort.signal;
    this.#stopListening = host.onCancel(op, (reason) => void this.#cancelled(reason));
    this.#timer = setInterval(() => void this.#check(), host.cancelCheckMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Whether the task has ended (completed, failed or cancelled). */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /**
   * Publish `running` (progress 0 unless counts say otherwise).
   * @throws {ProgressValidationError} for bad input.
   */
  async start(message?: string): Promise<PublishResult> {
    return await this.#send({
      ...this.#base(),
      status: "running",
      ...(this.#total !== undefined ? { current: this.#current, total: this.#total } : { progress: 0 }),
      ...(message !== undefined ? { message } : {}),
    });
  }

  /**
   * Report progress: a percent, or counts. Coalesced; never throws (bad input
   * goes to the manager's `onError`).
   */
  progress(
    value: number | { readonly current: number; readonly total?: number },
    message?: string,
    data?: Readonly<Record<string, unknown>>,
  ): void {
    if (this.#ended) return;
    const update: { -readonly [K in keyof ProgressUpdate]: ProgressUpdate[K] } = this.#base(data);
    if (typeof value === "number") update.progress = value;
    else {
      this.#current = value.current;
      if (value.total !== undefined) this.#total = value.total;
      update.current = value.current;
      if (this.#total !== undefined) update.total = this.#total;
    }
    if (message !== undefined) update.message = message;
    this.#lastPublishAt = Date.now();
    if (this.#restart && valid(this.op, update)) {
      // The event that starts the new attempt (written at once, never coalesced away); bad input leaves it to the next one.
      this.#host.report(this.op, update, this.#nextOptions());
      return;
    }
    this.#host.report(this.op, update, this.#publish);
  }

  /** Count `n` more units done (of `total`). Coalesced; never throws. */
  advance(n = 1, message?: string): void {
    const current = this.#total === undefined ? this.#current + n : Math.min(this.#total, this.#current + n);
    this.progress({ current }, message);
  }

  /**
   * Publish an application's own event (`file_completed`, ...), at once.
   * @throws {ProgressValidationError} for a bad type or fields.
   */
  async event(type: string, fields: TaskEventFields = {}): Promise<PublishResult> {
    if (typeof type !== "string" || !TYPE_PATTERN.test(type) || type === "progress") {
      throw new ProgressValidationError(
        "type",
        type,
        "must be an event type other than progress: letters, digits, _ . : -",
      );
    }
    return await this.#send({ ...this.#base(fields.data), ...fields, ...this.#merged(fields.data), type });
  }

  /** Publish `completed` (progress 100). */
  async complete(data?: Readonly<Record<string, unknown>>, message?: string): Promise<PublishResult> {
    this.#finish("completed");
    return await this.#send({
      ...this.#base(data),
      status: "completed",
      ...(this.#total !== undefined ? { current: this.#total, total: this.#total } : {}),
      ...(message !== undefined ? { message } : {}),
    });
  }

  /** Publish `failed` with the error's name and message (and stack when `includeStack`). */
  async fail(error: unknown, data?: Readonly<Record<string, unknown>>): Promise<PublishResult> {
    this.#finish("failed");
    const e = error instanceof Error ? error : new Error(String(error));
    const info: Record<string, unknown> = { error: { name: e.name, message: e.message } };
    if (this.#options.includeStack && e.stack) (info.error as Record<string, unknown>).stack = e.stack;
    return await this.#send({
      ...this.#base({ ...data, ...info }),
      status: "failed",
      message: e.message.slice(0, 2048),
    });
  }

  /** End the task: a task neither completed nor failed is published `failed` (or `cancelled` if it was). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#ended) {
      if (this.signal.aborted) await this.#cancelled(String(this.signal.reason));
      else await this.fail(new Error("The task ended without complete() or fail()"));
    }
    this.#stop();
  }

  #base(data?: Readonly<Record<string, unknown>>): { -readonly [K in keyof ProgressUpdate]: ProgressUpdate[K] } {
    const update: { -readonly [K in keyof ProgressUpdate]: ProgressUpdate[K] } = {};
    if (this.#options.cid !== undefined) update.cid = this.#options.cid;
    const merged = this.#merged(data);
    if (merged.data !== undefined) update.data = merged.data;
    return update;
  }

  #merged(data?: Readonly<Record<string, unknown>>): { data?: Record<string, unknown> } {
    if (this.#options.data === undefined && data === undefined) return {};
    return { data: { ...this.#options.data, ...data } };
  }

  #finish(status: "completed" | "failed" | "cancelled"): void {
    this.#ended ??= status;
    this.#stop();
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopListening();
  }

  /** Options of the next event: the first one of a restarted task starts the new attempt. */
  #nextOptions(): PublishOptions {
    if (!this.#restart) return this.#publish;
    this.#restart = false;
    return { ...this.#publish, restart: true };
  }

  async #send(update: ProgressUpdate): Promise<PublishResult> {
    this.#lastPublishAt = Date.now();
    const options = this.#nextOptions();
    let result: PublishResult;
    try {
      result = await this.#host.publish(this.op, update, options);
    } catch (error) {
      if (options.restart === true) this.#restart = true;
      throw error;
    }
    // The restarting event was lost (not held for later): the next event starts the attempt instead.
    if (options.restart === true && result.outcome === "failed" && !result.queued) this.#restart = true;
    if (result.outcome !== "failed" && result.cancelled !== null && !this.#ended)
      await this.#cancelled(result.cancelled);
    return result;
  }

  async #check(): Promise<void> {
    if (this.#ended || this.#restart || this.#checking || Date.now() - this.#lastPublishAt < this.#host.cancelCheckMs)
      return;
    this.#checking = true;
    try {
      const reason = await this.#host.cancelMark(this.op);
      if (reason !== null) await this.#cancelled(reason);
    } catch {
      // The backend is unreachable: try again on the next interval.
    } finally {
      this.#checking = false;
    }
  }

  async #cancelled(reason: string): Promise<void> {
    if (this.#ended) return;
    this.#finish("cancelled");
    this.#abort.abort(reason);
    await this.#host.publish(this.op, { ...this.#base(), status: "cancelled", message: reason }, this.#nextOptions());
  }
}

/** Whether `update` would be accepted for `op` (the checks `publish` makes before writing). */
function valid(op: string, update: ProgressUpdate): boolean {
  try {
    encodeUpdate(op, update);
    return true;
  } catch {
    return false;
  }
}
