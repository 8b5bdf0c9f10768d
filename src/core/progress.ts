import { Batcher } from "./batcher.ts";
import { type ConsumeOptions, checkConsumeOptions, consumeStream, type Delivery } from "./consume.ts";
import {
  BackendError,
  ConnectionClosedError,
  isProgressError,
  isProgressValidationError,
  type ProgressError,
  ProgressValidationError,
} from "./errors.ts";
import { Estimator } from "./estimate.ts";
import { Hub } from "./hub.ts";
import { noMetrics } from "./observe.ts";
import { type ProgressOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import type { AppendItem, AppendResult } from "./port.ts";
import { badRequest, type SseOptions, sseResponse, type WatchTarget } from "./sse.ts";
import { Task, type TaskOptions } from "./task.ts";
import { Coalescer, type Held } from "./throttle.ts";
import { backoff, sleep, toError } from "./util.ts";
import { type WatchItem, type WatchOptions, watchStream } from "./watch.ts";
import { serveSession, type WebSocketLike, type WebSocketOptions } from "./websocket.ts";
import {
  assertId,
  assertStreamId,
  decodeEvent,
  decodeSnapshot,
  encodeUpdate,
  isTerminal,
  MAX_ETA_SECONDS,
  type ProgressEvent,
  type ProgressSnapshot,
  type ProgressUpdate,
} from "./wire.ts";

/** Options of one publish. */
export interface PublishOptions {
  /** Also append the event to this scope's stream (a user, a tenant), so it can be followed or consumed as a whole. */
  readonly scope?: string | undefined;
  /** Accept an update that moves progress backwards. @default false */
  readonly allowBackwards?: boolean | undefined;
  /** Accept an update after the operation ended. @default false */
  readonly allowAfterTerminal?: boolean | undefined;
  /**
   * Start a new attempt of the operation (a retried job under the same id),
   * whether or not the previous one ended: the event's `attempt` is one more
   * than the previous (1 for an operation not known yet), `seq` keeps
   * increasing, the snapshot is replaced by this event (not merged with the
   * previous attempt), the stream's history of the previous attempt is
   * dropped (a client resuming from an id of it gets a `reset`), and the
   * ordering rules are waived for this event. A cancellation asked of an
   * attempt that did not end carries over; one of an ended attempt does not.
   * @default false
   */
  readonly restart?: boolean | undefined;
}

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
      /** The backend failure, after retries for terminal events. */
      readonly error: ProgressError;
    };

/** Which stream to read: one operation's, or a scope's. */
export type Target = string | { readonly scope: string };

/** Options of {@link Progress.history}. */
export interface HistoryOptions {
  /** Only events after this id (exclusive). */
  readonly after?: string | undefined;
  /** Most events returned. @default 1000 */
  readonly limit?: number | undefined;
}

/** Context handed to internal extensions (watch, sse, task) of the manager. */
export interface ManagerInternals {
  readonly options: ResolvedOptions;
  readonly closed: () => boolean;
  readonly signal: AbortSignal;
}

/**
 * The progress manager: publish from jobs, read from servers.
 * Created by {@link createProgress}.
 */
export class Progress implements AsyncDisposable {
  /** @internal */
  readonly internals: ManagerInternals;
  readonly #o: ResolvedOptions;
  readonly #batcher: Batcher;
  readonly #coalescer: Coalescer<PublishOptions>;
  readonly #estimator = new Estimator();
  readonly #reports = new Set<Promise<unknown>>();
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;
  #hub: Hub | undefined;
  readonly #cancelListeners = new Map<string, Set<(reason: string) => void>>();

  /** @throws {ProgressValidationError} for bad options. */
  constructor(options: ProgressOptions) {
    const o = resolveOptions(options);
    this.#o = o;
    this.#batcher = new Batcher(
      o.port,
      { ttlSeconds: o.ttlSeconds, maxLen: o.maxLen, terminalTtlSeconds: o.terminalTtlSeconds },
      o.maxBatch,
    );
    this.#coalescer = new Coalescer<PublishOptions>(o.intervalMs, (held) => this.#writeHeld(held));
    this.internals = { options: o, closed: () => this.#closed !== undefined, signal: this.#closing.signal };
  }

  /** The backend's name (`memory`, `node-redis`, `upstash`). */
  get backend(): string {
    return this.#o.port.name;
  }

  /**
   * Publish one event and wait for the backend's answer. The event is
   * appended to the operation's stream and merged into its snapshot atomically.
   *
   * @returns what happened: published (with id, seq and any cancellation), refused by the ordering rules, or failed.
   * @throws {ProgressValidationError} for bad input only; a backend failure is returned, never thrown.
   * @example
   * ```ts
   * const r = await progress.publish("import-42", { current: 420, total: 1000, message: "Rows" });
   * if (r.ok && r.cancelled) stopWorking();
   * ```
   */
  async publish(op: string, update: ProgressUpdate, options: PublishOptions = {}): Promise<PublishResult> {
    const item = this.#prepare(op, update, options);
    this.#coalescer.flushOp(op);
    return await this.#send(item, update.cid);
  }

  /**
   * Report progress without waiting: coalesced per operation (see `throttle`),
   * never throws. Bad input and backend failures go to `logger` and `onError`.
   *
   * @example
   * ```ts
   * for (const row of rows) { insert(row); progress.report(op, { current: ++done, total: rows.length }); }
   * await progress.flush();
   * ```
   */
  report(op: string, update: ProgressUpdate, options: PublishOptions = {}): void {
    if (this.#o.intervalMs === 0 || options.restart === true) {
      // A restart is never coalesced away: what is held of the previous attempt goes first.
      this.#coalescer.flushOp(op);
      this.#writeHeld({ op, update, options });
      return;
    }
    // Refuse bad input now, while the caller's stack is there; the held update is encoded
    // (and sampled for the estimate) once, when it is written.
    try {
      encodeUpdate(op, update);
      if (options.scope !== undefined) assertId(options.scope, "scope");
    } catch (error) {
      this.#fail(toError(error), op, update?.cid);
      return;
    }
    if (this.#coalescer.offer(op, update, options)) this.#o.metrics.increment("events_coalesced");
  }

  /**
   * The latest snapshot of an operation, or null when unknown or expired.
   * @throws {ProgressValidationError} for a bad id; {@link BackendError} when the backend fails.
   */
  async get(op: string): Promise<ProgressSnapshot | null> {
    assertId(op);
    return decodeSnapshot(await this.#o.port.getState(this.#o.keys.state(op)));
  }

  /**
   * Events of an operation (or a scope) still in its stream, oldest first.
   * @throws {ProgressValidationError} for a bad id, `after` or limit; {@link BackendError} when the backend fails.
   */
  async history(target: Target, options: HistoryOptions = {}): Promise<ProgressEvent[]> {
    const key = this.streamKey(target);
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new ProgressValidationError("limit", limit, "must be a positive integer");
    }
    if (options.after !== undefined) assertStreamId(options.after, "after");
    const read = await this.#o.port.read(null, key, { after: options.after, limit });
    const op = typeof target === "string" ? target : undefined;
    const events: ProgressEvent[] = [];
    for (const entry of read.entries) {
      const event = decodeEvent(entry, op);
      if (event !== null) events.push(event);
    }
    return events;
  }

  /**
   * Remove an operation: its snapshot and its stream, at once (copies of its
   * events in a scope's stream stay until that stream's own TTL). An update
   * of it still held by `report` is written first, so nothing written before
   * the call outlives it. Watchers of it see no more events. The id can be
   * used again afterwards, starting at `seq` 1.
   *
   * @returns false when the operation was not known (or already expired).
   * @throws {ProgressValidationError} for a bad id; {@link BackendError} when the backend fails.
   * @example
   * ```ts
   * app.delete("/jobs/:op", async (c) => c.json({ deleted: await progress.delete(c.req.param("op")) }));
   * ```
   */
  async delete(op: string): Promise<boolean> {
    assertId(op);
    this.#coalescer.flushOp(op);
    await this.#batcher.idle();
    this.#estimator.forget(op);
    return await this.#o.port.delete(this.#o.keys.state(op), this.#o.keys.events(op));
  }

  /**
   * Ask an operation to stop. Its task sees it on its next publish (the answer
   * carries it) or within `cancelCheckMs`, aborts `task.signal` and ends `cancelled`.
   * @returns false when the operation already ended or does not exist; nothing is written then.
   * @throws {ProgressValidationError} for a bad id or reason; {@link BackendError} when the backend fails.
   */
  async cancel(op: string, reason = "cancelled"): Promise<boolean> {
    assertId(op);
    if (typeof reason !== "string" || reason.length > 512) {
      throw new ProgressValidationError("reason", reason, "must be a string of at most 512 characters");
    }
    return await this.#o.port.cancel(this.#o.keys.state(op), reason, this.#o.ttlSeconds);
  }

  /**
   * Follow an operation (or a scope): the snapshot first, then the history
   * after `after` (or all of it), then live events, with no gap and no
   * duplicate. Ends after a terminal event of an operation, when `signal`
   * aborts, or when the manager closes. When `after` is older than the kept
   * history, a `reset` with the snapshot comes first. Breaking out of the loop
   * releases everything. However many watchers, one manager reads each stream once.
   *
   * @throws {ProgressValidationError} for a bad id or `after` (at once, not on the first read); {@link BackendError} when the first read fails.
   * @example
   * ```ts
   * for await (const item of progress.watch("import-42", { signal })) {
   *   if (item.kind === "event") console.log(item.event.progress, item.event.message);
   * }
   * ```
   */
  watch(target: Target, options: WatchOptions = {}): AsyncGenerator<WatchItem, void, undefined> {
    const events = this.streamKey(target);
    if (options.after !== undefined) assertStreamId(options.after, "after");
    const op = typeof target === "string" ? target : undefined;
    const state = op !== undefined ? this.#o.keys.state(op) : null;
    return watchStream(
      { port: this.#o.port, hub: this.#hubFor(), metrics: this.#o.metrics, closed: this.#closing.signal },
      { events, state, op },
      options,
    );
  }

  /**
   * A web-standard `text/event-stream` Response following an operation or a
   * scope: works in Hono, Next.js route handlers, `Deno.serve`, Cloudflare
   * Workers and Node (see `progresscast/node`). Each event carries `id:` (the
   * stream entry id), `event:` (its type) and `data:` (JSON); the snapshot comes
   * first as `event: snapshot` (or `reset`). Honours `Last-Event-ID` and an
   * `after` query parameter; sends `retry:` and heartbeat comments; closes after
   * a terminal event; frees everything when the client goes away.
   * Refused requests get 401/403 with no data. An invalid operation id, scope
   * or resume id gets a 400 with a short plain-text reason (never a throw, never
   * an empty 200 that clients would retry forever). No CORS header unless you add one.
   *
   * @example
   * ```ts
   * app.get("/progress/:op", (c) => progress.sse(c.req.raw, c.req.param("op"), { authorize }));
   * ```
   */
  async sse(request: Request, target: Target, options: SseOptions = {}): Promise<Response> {
    let t: WatchTarget;
    try {
      t = this.#target(target);
    } catch (error) {
      if (isProgressValidationError(error)) return badRequest(error.message, options.headers);
      throw error;
    }
    return await sseResponse(request, t, (o) => this.watch(target, o), options);
  }

  /**
   * Serve the WebSocket protocol on a socket (`ws`, a Workers `WebSocketPair`
   * end, Deno's) until it closes. The client sends `watch` / `unwatch` / `ping`;
   * the server sends `snapshot`, `event`, `reset`, `pong` and `error`.
   * A slow client's intermediate progress is coalesced; terminal events always arrive.
   *
   * @returns a promise that resolves when the socket closes.
   * @example
   * ```ts
   * wss.on("connection", (socket, request) => progress.serveWebSocket(socket, { request, authorize }));
   * ```
   */
  serveWebSocket<R = unknown>(socket: WebSocketLike, options: WebSocketOptions<R> = {}): Promise<void> {
    return serveSession(
      socket,
      (t, o) => this.watch(t.op !== undefined ? t.op : { scope: t.scope }, o),
      options,
      this.#closing.signal,
    );
  }

  /**
   * A job's lifecycle on one operation: `start`, `progress`, `advance`,
   * `event`, then `complete` or `fail`; `task.signal` aborts when the
   * operation is cancelled (learned from any publish's answer, or checked every
   * `cancelCheckMs` while the task is quiet) and the task then ends `cancelled`.
   *
   * @throws {ProgressValidationError} for a bad id or options.
   * @example
   * ```ts
   * await using task = progress.task("import-42", { total: 1000, cid: requestId });
   * await task.start();
   * for (const row of rows) { if (task.signal.aborted) return; await insert(row); task.advance(); }
   * await task.complete();
   * ```
   */
  task(op: string, options: TaskOptions = {}): Task {
    assertId(op);
    if (options.scope !== undefined) assertId(options.scope, "scope");
    if (options.total !== undefined && (!Number.isInteger(options.total) || options.total < 0)) {
      throw new ProgressValidationError("total", options.total, "must be a non-negative integer");
    }
    return new Task(
      {
        publish: (o, u, p) => this.publish(o, u, p),
        report: (o, u, p) => this.report(o, u, p),
        cancelMark: async (o) => (await this.#o.port.getState(this.#o.keys.state(o)))?.cancel ?? null,
        onCancel: (o, listener) => {
          let set = this.#cancelListeners.get(o);
          if (!set) {
            set = new Set();
            this.#cancelListeners.set(o, set);
          }
          set.add(listener);
          return () => {
            set.delete(listener);
            if (set.size === 0) this.#cancelListeners.delete(o);
          };
        },
        cancelCheckMs: this.#o.cancelCheckMs,
      },
      op,
      options,
    );
  }

  /**
   * Process a scope's events through a consumer group (write final states to a
   * database, call a webhook): yields deliveries to `ack()`. A delivery left
   * unacknowledged by a consumer that died is claimed after `claimIdleMs`.
   * At least once, in order per operation. Not for fan-out to clients: use `watch`.
   *
   * @throws {ProgressValidationError} for bad options; {@link ProgressError} when the backend has no consumer groups.
   * @example
   * ```ts
   * for await (const d of progress.consume({ group: "db", consumer: "w1", scope: "all", types: ["progress"] })) {
   *   if (d.event.status === "completed") await db.save(d.event);
   *   await d.ack();
   * }
   * ```
   */
  consume(options: ConsumeOptions): AsyncGenerator<Delivery, void, undefined> {
    checkConsumeOptions(options);
    return consumeStream(
      this.#o.port,
      this.#o.keys.scope(options.scope),
      options,
      this.#o.metrics,
      this.#closing.signal,
    );
  }

  /** Write every held report and wait for every write in flight. Never throws. */
  async flush(): Promise<void> {
    this.#coalescer.flush();
    await this.#batcher.idle();
    while (this.#reports.size > 0) await Promise.allSettled([...this.#reports]);
  }

  /**
   * Flush, stop every watcher, then close the backend (which closes only what
   * it opened, never a client you passed in). Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.flush();
      this.#closing.abort(new ConnectionClosedError("The progress manager was closed"));
      await this.#o.port.close();
    })();
    return this.#closed;
  }

  /** Alias of {@link Progress.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal Stream key of a target. */
  streamKey(target: Target): string {
    if (typeof target === "string") {
      assertId(target);
      return this.#o.keys.events(target);
    }
    assertId(target?.scope, "scope");
    return this.#o.keys.scope(target.scope);
  }

  #target(target: Target): WatchTarget {
    this.streamKey(target);
    return typeof target === "string" ? { op: target } : { scope: target.scope };
  }

  #hubFor(): Hub {
    this.#hub ??= new Hub(this.#o.port, {
      blockMs: this.#o.blockMs,
      maxReadFailures: this.#o.maxReadFailures,
      logger: this.#o.logger,
      metrics: this.#o.metrics,
      closed: this.#closing.signal,
    });
    return this.#hub;
  }

  #prepare(op: string, update: ProgressUpdate, options: PublishOptions): AppendItem {
    const now = new Date();
    const fields = encodeUpdate(op, update, now);
    if (options.scope !== undefined) assertId(options.scope, "scope");
    const terminal = isTerminal(fields.status);
    if (this.#o.estimate && fields.eta === undefined && fields.progress !== undefined && !terminal) {
      const eta = this.#estimator.sample(
        op,
        Number(fields.progress),
        update.ts === undefined ? now.getTime() : update.ts.getTime(),
      );
      if (eta !== undefined && eta <= MAX_ETA_SECONDS) fields.eta = String(eta);
    }
    if (terminal) {
      this.#estimator.forget(op);
      fields.eta ??= "0";
    } else if (options.restart === true) this.#estimator.forget(op);
    return {
      eventsKey: this.#o.keys.events(op),
      stateKey: this.#o.keys.state(op),
      scopeKey: options.scope === undefined ? undefined : this.#o.keys.scope(options.scope),
      fields,
      terminal,
      allowBackwards: options.allowBackwards ?? false,
      allowAfterTerminal: options.allowAfterTerminal ?? false,
      restart: options.restart ?? false,
    };
  }

  #writeHeld(held: Held<PublishOptions>): void {
    let item: AppendItem;
    try {
      item = this.#prepare(held.op, held.update, held.options);
    } catch (error) {
      // `update` may be anything a caller passed (null included): report() never throws.
      this.#fail(toError(error), held.op, held.update?.cid);
      return;
    }
    const sent = this.#send(item, held.update.cid);
    this.#reports.add(sent);
    void sent.finally(() => this.#reports.delete(sent));
  }

  async #send(item: AppendItem, cid: string | undefined): Promise<PublishResult> {
    const op = item.fields.op ?? "";
    if (this.#closed && this.#closing.signal.aborted) {
      const error = new ConnectionClosedError("The progress manager is closed; create a new one to publish");
      this.#fail(error, op, cid);
      return { ok: false, outcome: "failed", error };
    }
    const attempts = item.terminal ? this.#o.retry.attempts : 0;
    const timed = this.#o.metrics !== noMetrics;
    const started = timed ? performance.now() : 0;
    for (let attempt = 0; ; attempt++) {
      let result: AppendResult;
      try {
        result = await this.#batcher.append(item);
      } catch (cause) {
        const error = isProgressError(cause) ? cause : new BackendError(String(cause), { cause });
        if (attempt < attempts && !this.#closing.signal.aborted) {
          this.#o.metrics.increment("publish_retries");
          this.#o.logger.warn?.("publish failed, retrying", { op, cid, attempt: attempt + 1, error });
          await sleep(backoff(attempt, this.#o.retry.minDelayMs, this.#o.retry.maxDelayMs), this.#closing.signal);
          continue;
        }
        this.#fail(error, op, cid);
        return { ok: false, outcome: "failed", error };
      }
      if (timed) this.#o.metrics.observe("publish_latency_ms", performance.now() - started);
      if (result.cancelled !== null) {
        for (const listener of this.#cancelListeners.get(op) ?? []) listener(result.cancelled);
      }
      if (result.ok) {
        this.#o.metrics.increment("events_published");
        return {
          ok: true,
          outcome: "published",
          id: result.id,
          seq: result.seq,
          cancelled: result.cancelled,
          attempt: result.attempt,
        };
      }
      this.#o.metrics.increment("events_refused", 1, { reason: result.refused });
      this.#o.logger.debug?.("update refused", { op, cid, reason: result.refused });
      return { ok: false, outcome: "refused", reason: result.refused, seq: result.seq, cancelled: result.cancelled };
    }
  }

  #fail(error: Error, op: string, cid: string | undefined): void {
    const message = error.message;
    const e: ProgressError = isProgressError(error) ? error : new BackendError(message, { cause: error });
    this.#o.metrics.increment("publish_failures");
    this.#o.logger.error?.("publish failed", { op, cid, error: e });
    try {
      this.#o.onError?.(e, cid === undefined ? { op } : { op, cid });
    } catch {
      // onError must not break the job.
    }
  }
}
