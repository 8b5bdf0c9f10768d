/**
 * BullMQ bridge: every job of a queue becomes an operation, its job id the
 * operation id. `bridgeQueue` reads the queue's event stream once (one
 * `QueueEvents` per queue, however many jobs) and forwards each job's
 * progress, start, retries, completion and failure; a retried job starts a new
 * attempt of its operation. `withProgress` wraps a processor so that
 * `job.updateProgress` also publishes from the worker itself, with no hop
 * through the queue's event stream, and each new attempt is started by the
 * worker running it, before any of its progress. BullMQ 5 and 6 (an optional
 * peer dependency).
 *
 * @example
 * ```ts
 * import { bridgeQueue } from "progresscast/bullmq";
 *
 * const bridge = await bridgeQueue("imports", { connection: { host: "127.0.0.1", port: 6379 }, progress });
 * // ... browsers follow progress.sse(request, jobId) ...
 * await bridge.close();
 * ```
 *
 * @module
 */
import { type ConnectionOptions, type Job, type Processor, Queue, QueueEvents } from "bullmq";
import type { Progress, PublishOptions, PublishResult } from "../core/progress.ts";
import type { ProgressUpdate } from "../core/wire/index.ts";

/** A value given to `job.updateProgress`: a number, or an object. */
export type JobProgressValue = string | boolean | number | object;

/** Options of {@link bridgeQueue}. */
export interface BridgeOptions {
  /**
   * How to reach the queue's Redis, as BullMQ takes it (options or a client).
   * @example { host: "127.0.0.1", port: 6379 }
   */
  readonly connection: ConnectionOptions;
  /**
   * The manager the jobs' progress is published with.
   * @example createProgress({ port: nodeRedis({ url }) })
   */
  readonly progress: Progress;
  /**
   * BullMQ's key prefix, when the queue uses another than BullMQ's default.
   * @default "bull"
   * @example "myapp"
   */
  readonly prefix?: string;
  /**
   * Also publish each job's events to a scope (a user, a tenant), chosen per job id.
   * @default undefined
   * @example () => "imports"
   */
  readonly scope?: (jobId: string) => string | undefined;
  /**
   * Forward `job.updateProgress` calls read from the queue's event stream. Set
   * `false` when every worker wraps its processor with {@link withProgress},
   * which publishes them directly, so they are not published twice (and
   * starts each new attempt: see `startAttempts`).
   * @default true
   * @example false
   */
  readonly forwardProgress?: boolean;
  /**
   * Who starts the new attempt of a job's operation when BullMQ runs the job
   * again (a retry, `job.retry()`, a stalled job). `"worker"`: every worker
   * wraps its processor with {@link withProgress}, which publishes each run
   * itself (`running`, progress, `completed` or `failed`, and the `retry`
   * event starting the next attempt when a run fails and BullMQ will retry),
   * so nothing of an attempt is lost or lands in the next one however late
   * the queue's events reach the bridge; the bridge then publishes only
   * `queued` of a job not taken by a worker yet (and `completed`/`failed`,
   * which repeat the worker's, for a job that ends without its processor).
   * `"bridge"`: the bridge starts attempts on the queue's retry events and
   * publishes `running`, for workers without `withProgress`.
   * @default "worker" when `forwardProgress` is false, else "bridge"
   * @example "worker"
   */
  readonly startAttempts?: "worker" | "bridge";
  /**
   * Read the queue's event stream after this id (e.g. {@link Bridge.lastEventId}
   * of a bridge that stopped). By default it starts one second before the
   * bridge, so no event of a job added while the bridge starts is missed.
   * @default one second before now
   * @example "1732372800000-0"
   */
  readonly lastEventId?: string;
  /**
   * Turns a value given to `job.updateProgress` into a progress update.
   * @default {@link toProgressUpdate}
   * @example (value) => ({ progress: Number(value) })
   */
  readonly map?: (value: JobProgressValue) => ProgressUpdate;
  /**
   * Called when the bridge could not forward an event (bad input, a backend
   * failure returned by a publish, a job that could not be read). The bridge goes on.
   * @default undefined
   * @example (error, jobId) => logger.warn({ error, jobId }, "progress bridge")
   */
  readonly onError?: (error: unknown, jobId: string) => void;
}

/** A running bridge: {@link bridgeQueue}'s result. */
export interface Bridge extends AsyncDisposable {
  /** The bridged queue's name. */
  readonly queueName: string;
  /** Id of the last event of the queue's event stream handled; resume a new bridge from it. */
  readonly lastEventId: string | undefined;
  /** Stops reading and closes the bridge's BullMQ connections (not `progress`). Idempotent. */
  close(): Promise<void>;
}

const int = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;

/**
 * The default mapping of a `job.updateProgress` value: a number is a percent
 * (clamped to 0..100); an object's `progress`, `current`, `total` and `message`
 * fields are taken as such and its other fields go to `data`; a string is a
 * message. Never throws.
 *
 * @example
 * ```ts
 * toProgressUpdate(42);                                  // { progress: 42 }
 * toProgressUpdate({ current: 3, total: 10, file: "a" }); // { current: 3, total: 10, data: { file: "a" } }
 * ```
 */
export function toProgressUpdate(value: JobProgressValue): ProgressUpdate {
  if (typeof value === "number") {
    return Number.isFinite(value) ? { progress: Math.min(100, Math.max(0, Math.round(value * 100) / 100)) } : {};
  }
  if (typeof value === "string") return { message: value.slice(0, 2048) };
  if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
  const { progress, current, total, message, ...rest } = value as Record<string, unknown>;
  const update: { -readonly [K in keyof ProgressUpdate]: ProgressUpdate[K] } = {};
  if (typeof progress === "number" && Number.isFinite(progress)) update.progress = Math.min(100, Math.max(0, progress));
  const c = int(current);
  const t = int(total);
  if (c !== undefined && (t === undefined || c <= t)) update.current = c;
  if (t !== undefined) update.total = t;
  if (typeof message === "string") update.message = message.slice(0, 2048);
  if (Object.keys(rest).length > 0) update.data = rest;
  return update;
}

/**
 * Forwards every job of a queue to progresscast, the job id as the operation
 * id: `queued` when added, `running` when a worker takes it, each
 * `job.updateProgress` (coalesced, unless `forwardProgress` is false), then
 * `completed` or `failed`. When an attempt fails and will be retried, a
 * `retry` event (status `queued`, the failure in `message`, `data.attemptsMade`
 * and `data.attempts`) starts a new attempt of the operation (published with
 * `restart`: `attempt` one more, `seq` goes on, the snapshot and the history
 * start over). `job.retry()` of a failed or completed job starts a new attempt too.
 * With `startAttempts: "worker"` (the default with `forwardProgress: false`),
 * the workers' {@link withProgress} publishes runs and starts attempts instead,
 * and the bridge adds `queued` only for jobs no worker took yet. One `QueueEvents`
 * reader and one `Queue` connection per bridged queue. Resolves when reading.
 *
 * @throws {Error} when the queue's Redis cannot be reached (BullMQ's error).
 * @example
 * ```ts
 * const progress = createProgress({ port: nodeRedis({ url: "redis://127.0.0.1:6379" }) });
 * const bridge = await bridgeQueue("imports", { connection: { host: "127.0.0.1", port: 6379 }, progress });
 * app.get("/progress/:op", (c) => progress.sse(c.req.raw, c.req.param("op")));
 * ```
 */
export async function bridgeQueue(queueName: string, options: BridgeOptions): Promise<Bridge> {
  const { progress, connection, forwardProgress = true, map = toProgressUpdate } = options;
  const workerStarts = (options.startAttempts ?? (forwardProgress ? "bridge" : "worker")) === "worker";
  const prefix = options.prefix === undefined ? {} : { prefix: options.prefix };
  const queue = new Queue(queueName, { connection, ...prefix });
  const events = new QueueEvents(queueName, {
    connection,
    ...prefix,
    lastEventId: options.lastEventId ?? `${Date.now() - 1000}-0`,
  });
  // Jobs whose attempt failed and will run again: their next `active` starts a new attempt.
  const retrying = new Set<string>();
  // Per job, events are forwarded in order even when one needs a read first.
  const chains = new Map<string, Promise<void>>();
  let lastEventId: string | undefined;
  let closed: Promise<void> | undefined;

  const fail = (error: unknown, jobId: string): void => {
    try {
      options.onError?.(error, jobId);
    } catch {
      // A throwing error handler must not stop the bridge.
    }
  };
  const publishOptions = (jobId: string, extra: PublishOptions = {}): PublishOptions => {
    const scope = options.scope?.(jobId);
    return scope === undefined ? extra : { ...extra, scope };
  };
  const checked = (jobId: string, result: PublishResult): void => {
    if (result.outcome === "failed") fail(result.error, jobId);
  };
  const inOrder = (jobId: string, id: string, work: () => Promise<void>): void => {
    lastEventId = id;
    const next = (chains.get(jobId) ?? Promise.resolve())
      .then(work)
      .catch((error: unknown) => fail(error, jobId))
      .finally(() => {
        if (chains.get(jobId) === next) chains.delete(jobId);
      });
    chains.set(jobId, next);
  };
  const publish = (jobId: string, update: ProgressUpdate, extra?: PublishOptions): Promise<void> =>
    progress.publish(jobId, update, publishOptions(jobId, extra)).then((r) => checked(jobId, r));

  /** The `message` of an error's stack (`Error: disk full\n    at ...` -> `disk full`). */
  const messageOf = (stack: string | undefined): string | undefined =>
    stack?.split("\n")[0]?.replace(/^[\w$.]*: /, "") || undefined;

  /**
   * The `retry` event of attempt `n`: queued, saying why it failed. The job is
   * read after the fact (a later attempt may have run already), so the failure
   * is taken from its `n`-th stack trace, not from `failedReason` (the latest).
   */
  const retryUpdate = (job: Job | undefined, n: number | undefined): ProgressUpdate => {
    const made = n ?? job?.attemptsMade;
    const data: Record<string, unknown> = {};
    if (made !== undefined) data.attemptsMade = made;
    if (job?.opts.attempts !== undefined) data.attempts = job.opts.attempts;
    const traces = job?.stacktrace ?? [];
    const stack = made !== undefined && traces.length >= made ? traces[made - 1] : undefined;
    return {
      type: "retry",
      status: "queued",
      message: (messageOf(stack ?? undefined) ?? job?.failedReason ?? "The attempt failed; retrying").slice(0, 2048),
      data,
    };
  };

  /**
   * Attempt `n` failed and the job will run again: the `retry` event starts
   * the next attempt of the operation, so the snapshot and the history start
   * over with it and a client following the job sees it whenever it joins.
   * When the workers start attempts, they have published all of it already,
   * in order, and the bridge leaves the operation alone.
   */
  const retry = async (jobId: string, n: number | undefined): Promise<void> => {
    if (workerStarts) return;
    retrying.add(jobId);
    await publish(jobId, retryUpdate(await queue.getJob(jobId), n), { restart: true });
  };

  // Attempts seen starting, per job, counted as the events arrive.
  const started = new Map<string, number>();
  /**
   * `queued` of a job that waits to run. When the workers run jobs with
   * `withProgress`, it is left out once a worker took the job (the queue's
   * events may reach the bridge after the worker's own); a `queued` that
   * crosses the worker's `running` on the way is refused by the ordering rules.
   */
  const queued = (jobId: string): Promise<void> =>
    workerStarts && started.has(jobId) ? Promise.resolve() : publish(jobId, { status: "queued" });
  events.on("waiting", ({ jobId, prev }, id) => {
    const n = started.get(jobId);
    inOrder(jobId, id, () => {
      if (prev === "active") return retry(jobId, n);
      // `job.retry()` of a failed (or completed) job: the operation runs again, as a new attempt
      // (started by the worker when workers start attempts).
      if (prev === "failed" || prev === "completed") {
        return workerStarts ? Promise.resolve() : publish(jobId, { status: "queued" }, { restart: true });
      }
      // A delayed job due (a retry's backoff ended): the workers said so when its attempt failed.
      if (workerStarts && n !== undefined) return Promise.resolve();
      return queued(jobId);
    });
  });
  events.on("delayed", ({ jobId }, id) => {
    const n = started.get(jobId);
    inOrder(jobId, id, async () => {
      // A delay after an attempt is a retry with backoff; a delay on add is a scheduled job.
      if (n !== undefined) return await retry(jobId, n);
      const job = await queue.getJob(jobId);
      if (job && job.attemptsMade > 0) await retry(jobId, undefined);
      else await queued(jobId);
    });
  });
  events.on("active", ({ jobId }, id) => {
    started.set(jobId, (started.get(jobId) ?? 0) + 1);
    // The worker publishes its own `running`, before any progress of the run.
    if (workerStarts) {
      lastEventId = id;
      return;
    }
    inOrder(jobId, id, async () => {
      // A retried attempt (started by its `retry` event) runs from 0.
      if (retrying.delete(jobId)) await publish(jobId, { status: "running", progress: 0 });
      else await publish(jobId, { status: "running" });
    });
  });
  events.on("progress", ({ jobId, data }, id) => {
    if (!forwardProgress) {
      lastEventId = id;
      return;
    }
    inOrder(jobId, id, async () => {
      progress.report(jobId, map(data), publishOptions(jobId));
    });
  });
  // With workers that start attempts these repeat what the worker published (refused as the
  // operation already ended); they matter for a job that ends without its processor (stalled too often).
  events.on("completed", ({ jobId }, id) => {
    started.delete(jobId);
    inOrder(jobId, id, () => publish(jobId, { status: "completed", progress: 100 }));
  });
  events.on("failed", ({ jobId, failedReason }, id) => {
    started.delete(jobId);
    inOrder(jobId, id, () => publish(jobId, { status: "failed", message: String(failedReason).slice(0, 2048) }));
  });
  events.on("error", (error) => fail(error, ""));

  await Promise.all([events.waitUntilReady(), queue.waitUntilReady()]);

  const close = (): Promise<void> => {
    closed ??= (async () => {
      await events.close();
      await Promise.allSettled([...chains.values()]);
      await queue.close();
    })();
    return closed;
  };
  return {
    queueName,
    get lastEventId() {
      return lastEventId;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Options of {@link withProgress}. */
export interface WithProgressOptions<J extends Job = Job> {
  /**
   * Also publish to a scope, chosen per job.
   * @default undefined
   * @example (job) => `user-${job.data.userId}`
   */
  readonly scope?: (job: J) => string | undefined;
  /**
   * Turns a value given to `job.updateProgress` into a progress update.
   * @default {@link toProgressUpdate}
   * @example (value) => ({ progress: Number(value) })
   */
  readonly map?: (value: JobProgressValue) => ProgressUpdate;
}

/**
 * Wraps a BullMQ processor so that its job's run is published from the worker
 * itself, the job id as the operation id, in order and with no hop through
 * the queue's event stream: each `job.updateProgress(value)` also reports to
 * progresscast (coalesced, never throws) before BullMQ records it. The job's
 * data type is the processor's (`async (job: Job<ImportData>) => ...`).
 * `queued` of a job waiting for its first run comes from {@link bridgeQueue};
 * give it `forwardProgress: false` so progress is not published twice.
 *
 * The worker starts and ends each run of the job on the operation, awaiting
 * each publish before BullMQ goes on, so within an attempt the status only
 * goes forward (`queued`, `running`, then `completed` or `failed`) and no
 * event of an attempt lands after the next one started:
 * - before the processor: `running`. When BullMQ runs the job again after a
 *   failed attempt, the attempt was started already (below) and `running`
 *   comes with progress 0. When the operation ended (`job.retry()`, an id used
 *   again), the previous run did not end (a stalled job) or the failed run
 *   could not say so, a `retry` event (status `running`, progress 0, the
 *   previous failure in `message`, `data.attemptsMade` and `data.attempts`)
 *   starts a new attempt of the operation (`restart`).
 * - when the processor returns: `completed`.
 * - when it throws and BullMQ will run the job again: a `retry` event that
 *   starts the next attempt (status `queued`, the error in `message`,
 *   `data.attemptsMade` and `data.attempts`), shown while the job waits; when
 *   it will not: `failed` with the error's message.
 *
 * Bad input (a job id that is not an operation id) goes to the manager's
 * logger and `onError`, never into the job.
 *
 * @example
 * ```ts
 * const worker = new Worker("imports", withProgress(progress, async (job: Job<{ file: string }>) => {
 *   for (let i = 1; i <= 10; i++) await job.updateProgress({ current: i, total: 10, message: job.data.file });
 *   return "done";
 * }), { connection });
 * ```
 */
export function withProgress<T = DefaultJobData, R = unknown, N extends string = string>(
  progress: Progress,
  processor: Processor<T, R, N>,
  options: WithProgressOptions<Job<T, R, N>> = {},
): Processor<T, R, N> {
  const map = options.map ?? toProgressUpdate;
  return async (job, token, signal) => {
    const op = job.id;
    if (op === undefined) return await processor(job, token, signal);
    const scope = options.scope?.(job);
    const publishOptions: PublishOptions = scope === undefined ? {} : { scope };
    await startRun(progress, job as Job, op, publishOptions);
    const update = job.updateProgress.bind(job);
    job.updateProgress = (value) => {
      progress.report(op, map(value), publishOptions);
      return update(value);
    };
    let result: R;
    try {
      result = await processor(job, token, signal);
    } catch (error) {
      await failedRun(progress, job as Job, op, error, publishOptions);
      throw error;
    }
    await publishSafely(progress, op, { status: "completed" }, publishOptions);
    return result;
  };
}

/**
 * The job data of a processor that does not say (BullMQ's own default, as a
 * `Worker` without type arguments gives it). Annotate the processor's job
 * (`async (job: Job<ImportData>) => ...`) or give the Worker type arguments
 * to have it checked.
 */
export type DefaultJobData = Job["data"];

/** Whether BullMQ ran this job before without the run ending in a failure (a stalled job, a `DelayedError`). */
function interrupted(job: Job): boolean {
  // `attemptsStarted` counts this run too; BullMQ versions without it leave it undefined.
  const started: number | undefined = job.attemptsStarted;
  return started !== undefined && started > job.attemptsMade + 1;
}

/** Errors a processor throws to move its job elsewhere (delayed, waiting for children, rate limited): no failure. */
const NOT_FAILURES = new Set(["DelayedError", "WaitingChildrenError", "WaitingError", "RateLimitError"]);

/** Whether BullMQ will run the job again after `error`, by its attempts (a backoff strategy may still say no). */
function willRetry(job: Job, error: unknown): boolean {
  const name = error instanceof Error ? error.name : "";
  if (name === "UnrecoverableError") return false;
  return job.attemptsMade + 1 < (job.opts.attempts ?? 1);
}

/** Publish, sending bad input to the manager's logger and `onError` instead of throwing it. */
async function publishSafely(
  progress: Progress,
  op: string,
  update: ProgressUpdate,
  options: PublishOptions,
): Promise<PublishResult | undefined> {
  try {
    return await progress.publish(op, update, options);
  } catch {
    // Bad input only (publish never rejects for the backend): report() logs it and passes it to onError.
    progress.report(op, update, options);
    return undefined;
  }
}

/** The first event of a run of `job`: a new attempt of its operation unless one was started for this run. */
async function startRun(progress: Progress, job: Job, op: string, options: PublishOptions): Promise<void> {
  if (!interrupted(job)) {
    // After a failed run, that run started this attempt (its `retry` event): this one runs from 0.
    const update: ProgressUpdate = job.attemptsMade > 0 ? { status: "running", progress: 0 } : { status: "running" };
    const result = await publishSafely(progress, op, update, options);
    // Refused: the operation ended (`job.retry()`, an id used again) or is still in the previous attempt.
    if (result?.outcome !== "refused") return;
  }
  const data: Record<string, unknown> = { attemptsMade: job.attemptsMade };
  if (job.opts.attempts !== undefined) data.attempts = job.opts.attempts;
  const restart: ProgressUpdate = { type: "retry", status: "running", progress: 0, data };
  const again = job.failedReason ? { ...restart, message: job.failedReason.slice(0, 2048) } : restart;
  await publishSafely(progress, op, again, { ...options, restart: true });
}

/**
 * A run that threw: when BullMQ will run the job again, the next attempt starts now, saying
 * why this one failed; else the operation fails. Both before BullMQ moves the job.
 */
async function failedRun(
  progress: Progress,
  job: Job,
  op: string,
  error: unknown,
  options: PublishOptions,
): Promise<void> {
  if (error instanceof Error && NOT_FAILURES.has(error.name)) return;
  const text = (error instanceof Error ? error.message : String(error)) || "The attempt failed";
  if (!willRetry(job, error)) {
    await publishSafely(progress, op, { status: "failed", message: text.slice(0, 2048) }, options);
    return;
  }
  const data: Record<string, unknown> = { attemptsMade: job.attemptsMade + 1 };
  if (job.opts.attempts !== undefined) data.attempts = job.opts.attempts;
  await publishSafely(
    progress,
    op,
    { type: "retry", status: "queued", message: text.slice(0, 2048), data },
    { ...options, restart: true },
  );
}
