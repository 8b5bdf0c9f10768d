import { Batcher } from "./batcher.ts";
import { type ConsumeOptions, checkConsumeOptions, consumeStream, type Delivery } from "./consume.ts";
import {
  BackendError,
  ConnectionClosedError,
  isConnectionClosedError,
  isProgressError,
  isProgressValidationError,
  isTimeoutError,
  type ProgressError,
  ProgressValidationError,
} from "./errors.ts";
import { Estimator } from "./estimate.ts";
import { Hub, type Reader } from "./hub.ts";
import { legacyWrites } from "./legacy.ts";
import { LiveReader } from "./live.ts";
import { noMetrics } from "./observe.ts";
import { type ProgressOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import { Outbox, type OutboxEntry, type OutboxOutcome } from "./outbox.ts";
import { type AppendItem, type AppendResult, PartialAppendError } from "./port.ts";
import { badRequest, type SseOptions, sseResponse, type WatchTarget } from "./sse.ts";
import { Task, type TaskOptions } from "./task.ts";
import { Coalescer, checkReport, type Held } from "./throttle.ts";
import { toError } from "./util.ts";
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

/** What `flush()` and `close()` resolve with. */
export interface FlushResult {
  /**
   * Events still not written when the wait ended: empty when everything was
   * written. After `flush()` they are still held and retried; after `close()` they are lost.
   */
  readonly unwritten: readonly UnwrittenEvent[];
}

/** Options of {@link Progress.flush}. */
export interface FlushOptions {
  /** Longest wait for held and in-flight events. @default the manager's `closeTimeoutMs` (10000) */
  readonly timeoutMs?: number | undefined;
  /** Stop waiting when this aborts. */
  readonly signal?: AbortSignal | undefined;
}

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
  readonly #outbox: Outbox;
  /** Errors the batcher gave appends it sent behind their operation's held events (not refusals). */
  readonly #behind = new WeakSet<Error>();
  readonly #coalescer: Coalescer<PublishOptions>;
  readonly #estimator = new Estimator();
  readonly #reports = new Set<Promise<unknown>>();
  readonly #closing = new AbortController();
  #closed: Promise<FlushResult> | undefined;
  #hub: Reader | undefined;
  readonly #cancelListeners = new Map<string, Set<(reason: string) => void>>();

  /** @throws {ProgressValidationError} for bad options. */
  constructor(options: ProgressOptions) {
    const o = resolveOptions(options);
    this.#o = o;
    this.#batcher = new Batcher(
      o.port,
      { ttlSeconds: o.ttlSeconds, maxLen: o.maxLen, terminalTtlSeconds: o.terminalTtlSeconds },
      o.maxBatch,
      (item) => {
        // Its operation's earlier call failed while this one waited: it goes behind what is held.
        const op = item.fields.op ?? "";
        if (!this.#outbox.has(op)) return undefined;
        const error = this.#heldBehind(op);
        this.#behind.add(error);
        return error;
      },
    );
    this.#coalescer = new Coalescer<PublishOptions>(o.intervalMs, (held) => this.#writeHeld(held));
    this.#outbox = new Outbox(
      { maxEvents: o.outboxMaxEvents, minDelayMs: o.retry.minDelayMs, maxDelayMs: o.retry.maxDelayMs },
      {
        send: (items) => this.#sendHeld(items),
        written: (entry, result) => {
          this.#o.logger.info?.("held event written", {
            op: entry.op,
            cid: entry.cid,
            heldMs: Date.now() - entry.since,
            tries: entry.tries,
          });
          this.#settle(entry.op, entry.cid, result);
        },
        dropped: (entry, error) => this.#fail(error, entry.op, entry.cid, "event dropped"),
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
   * When the backend cannot be reached, the event is held in memory (the
   * outbox) and written as soon as it answers again, in order per operation.
   * A terminal event (`completed`, `failed`, `cancelled`) waits for that, up to
   * `retry.deadlineMs` (60 s by default), and resolves `published`; past the
   * deadline it resolves `failed` with `queued: true` and is still written
   * later. Any other event resolves `failed` with `queued: true` at once, and
   * the newest held update of its operation is written later. An event of an
   * operation whose earlier events are held queues behind them.
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
    // What is held of this operation goes first, stamped before this event, so time never goes back in its history.
    this.#coalescer.flushOp(op);
    const item = this.#prepare(op, update, options ?? {});
    return await this.#send(item, update.cid, true);
  }

  /**
   * Report progress without waiting: coalesced per operation (see `throttle`),
   * never throws, whatever it is given. Bad input goes to `logger` and
   * `onError` as a {@link ProgressValidationError}; a backend failure too, and
   * the newest update per operation is held and written when the backend answers again.
   *
   * @example
   * ```ts
   * for (const row of rows) { insert(row); progress.report(op, { current: ++done, total: rows.length }); }
   * await progress.flush();
   * ```
   */
  report(op: string, update: ProgressUpdate, options: PublishOptions = {}): void {
    try {
      const o: PublishOptions = options ?? {};
      if (this.#o.intervalMs === 0 || o.restart === true) {
        // A restart is never coalesced away: what is held of the previous attempt goes first.
        this.#coalescer.flushOp(op);
        this.#writeHeld({ op, update, options: o });
        return;
      }
      // Refuse bad input now, while the caller's stack is there; the held update is encoded
      // (and sampled for the estimate) once, when it is written.
      checkReport(op, update);
      if (o.scope !== undefined) assertId(o.scope, "scope");
      if (this.#coalescer.offer(op, update, o)) this.#o.metrics.increment("events_coalesced");
    } catch (error) {
      this.#fail(asValidationError(error, update), printable(op), cidOf(update));
    }
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
      { events, state, op, scope: op === undefined },
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
    return await sseResponse(request, t, (o) => this.watch(target, o), options, this.#o.logger);
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
    return serveSession(socket, (t, o) => this.watch(t.op !== undefined ? t.op : { scope: t.scope }, o), options, {
      closed: this.#closing.signal,
      logger: this.#o.logger,
      metrics: this.#o.metrics,
    });
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

  /**
   * Write every held report, and wait for every write in flight and every
   * event held while the backend was unreachable, for at most `timeoutMs`
   * (the manager's `closeTimeoutMs`, 10 s by default). Never throws.
   *
   * @returns the events still unwritten when the wait ended (still held, still retried).
   * @example
   * ```ts
   * const { unwritten } = await progress.flush({ timeoutMs: 5000 });
   * if (unwritten.length > 0) console.warn("Redis is still away", unwritten);
   * ```
   */
  async flush(options: FlushOptions = {}): Promise<FlushResult> {
    const timeoutMs =
      Number.isFinite(options?.timeoutMs) && (options?.timeoutMs ?? -1) >= 0
        ? (options?.timeoutMs ?? 0)
        : this.#o.closeTimeoutMs;
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), timeoutMs);
    const outer = options?.signal;
    const onAbort = (): void => stop.abort();
    if (outer?.aborted) stop.abort();
    outer?.addEventListener("abort", onAbort, { once: true });
    const stopped = new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    try {
      this.#coalescer.flush();
      await Promise.race([this.#drain(stop.signal), stopped]);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
      stop.abort();
    }
    return { unwritten: this.#outbox.entries().map(describeHeld) };
  }

  /**
   * Flush (waiting at most `closeTimeoutMs`), stop every watcher, then close
   * the backend (which closes only what it opened, never a client you passed
   * in). Events the backend still had not taken are given up: each is logged
   * at error and passed to `onError`, and listed in the result. Idempotent:
   * every call resolves with the same result. Never throws.
   *
   * @returns `{ unwritten }`: the events that could not be written (empty when all were).
   * @example
   * ```ts
   * const { unwritten } = await progress.close();
   * for (const e of unwritten) console.error(`lost: ${e.op} ${e.status}`);
   * ```
   */
  close(): Promise<FlushResult> {
    this.#closed ??= (async () => {
      await this.flush({ timeoutMs: this.#o.closeTimeoutMs });
      const error = new ConnectionClosedError(
        `Not written: the backend did not take it within closeTimeoutMs (${this.#o.closeTimeoutMs} ms) of close()`,
      );
      const left = this.#outbox.stop(error);
      const unwritten = left.map(describeHeld);
      for (const entry of left) this.#fail(error, entry.op, entry.cid, "event not written before close");
      this.#closing.abort(new ConnectionClosedError("The progress manager was closed"));
      try {
        await this.#o.port.close();
      } catch (cause) {
        this.#o.logger.warn?.("closing the backend failed", { error: toError(cause) });
      }
      return { unwritten };
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

  /** The manager's reader: live channels where the backend has them, else one blocking read (or poll). */
  #hubFor(): Reader {
    if (this.#hub) return this.#hub;
    const blocking = (): Hub =>
      new Hub(this.#o.port, {
        blockMs: this.#o.blockMs,
        maxReadFailures: this.#o.maxReadFailures,
        logger: this.#o.logger,
        metrics: this.#o.metrics,
        closed: this.#closing.signal,
      });
    const live = this.#o.port.live?.bind(this.#o.port);
    this.#hub =
      live && this.#o.liveChannels
        ? new LiveReader(this.#o.port, live, {
            logger: this.#o.logger,
            metrics: this.#o.metrics,
            closed: this.#closing.signal,
            maxReadFailures: this.#o.maxReadFailures,
            fallback: blocking,
          })
        : blocking();
    return this.#hub;
  }

  #prepare(op: string, update: ProgressUpdate, options: PublishOptions): AppendItem {
    const now = new Date();
    const fields = encodeUpdate(op, update, now);
    if (options.scope !== undefined) assertId(options.scope, "scope");
    const terminal = isTerminal(fields.status);
    // A new attempt estimates from its own rate only.
    if (options.restart === true) this.#estimator.forget(op);
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
    }
    const stateKey = this.#o.keys.state(op);
    return {
      eventsKey: this.#o.keys.events(op),
      stateKey,
      legacy: this.#o.legacy === undefined ? undefined : legacyWrites(this.#o.legacy, fields, stateKey),
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
      this.#fail(asValidationError(error, held.update), held.op, cidOf(held.update));
      return;
    }
    const sent = this.#send(item, held.update.cid, false);
    this.#reports.add(sent);
    void sent.finally(() => this.#reports.delete(sent));
  }

  /** Wait for reports, batches and held events until none is left or `signal` aborts. */
  async #drain(signal: AbortSignal): Promise<void> {
    do {
      await this.#batcher.idle();
      while (this.#reports.size > 0 && !signal.aborted) await Promise.allSettled([...this.#reports]);
      await this.#outbox.idle(signal);
    } while (!signal.aborted && (this.#reports.size > 0 || this.#outbox.size > 0));
  }

  /**
   * Send one event. `waits`: a terminal event waits for a backend that is
   * away (up to the retry deadline); a report does not.
   */
  async #send(item: AppendItem, cid: string | undefined, waits: boolean): Promise<PublishResult> {
    const op = item.fields.op ?? "";
    if (this.#closing.signal.aborted) {
      const error = new ConnectionClosedError("The progress manager is closed; create a new one to publish");
      this.#fail(error, op, cid);
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
        this.#fail(error, op, cid);
        return { ok: false, outcome: "failed", error, queued: false };
      }
      return await this.#hold(item, cid, waits, error, started, !this.#behind.has(error));
    }
    if (timed) this.#o.metrics.observe("publish_latency_ms", performance.now() - t0);
    // The backend answers: write what it refused earlier now rather than after the backoff.
    if (this.#outbox.size > 0) this.#outbox.kick();
    return this.#settle(op, cid, result);
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
    if (this.#closing.signal.aborted) {
      this.#fail(error, op, cid);
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
      this.#fail(error, op, cid, "publish failed, event held for retry");
      return { ok: false, outcome: "failed", error, queued: true };
    }
    this.#o.logger.warn?.("publish failed, retrying", { op, cid, error });
    const outcome = await this.#waitFor(entry, started + deadlineMs, attempts);
    if (outcome.kind === "written") return toPublishResult(outcome.result);
    if (outcome.kind === "dropped") {
      return { ok: false, outcome: "failed", error: asProgressError(outcome.error), queued: false };
    }
    const last = outcome.error === undefined ? error : asProgressError(outcome.error);
    this.#fail(last, op, cid, "publish failed, event held for retry");
    return { ok: false, outcome: "failed", error: last, queued: true };
  }

  /** Wait until a held entry is written or given up, `deadline` passes, or `attempts` retries failed. */
  #waitFor(
    entry: OutboxEntry,
    deadline: number,
    attempts: number | undefined,
  ): Promise<OutboxOutcome | { readonly kind: "late"; readonly error: Error | undefined }> {
    return new Promise((resolve) => {
      let lastError: Error | undefined;
      let failures = 0;
      const done = (outcome: OutboxOutcome | { readonly kind: "late"; readonly error: Error | undefined }): void => {
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

  /** Send held events (heads of distinct operations); a bad one fails alone. Never rejects. */
  async #sendHeld(items: readonly AppendItem[]): Promise<Array<AppendResult | Error>> {
    const options = {
      ttlSeconds: this.#o.ttlSeconds,
      maxLen: this.#o.maxLen,
      terminalTtlSeconds: this.#o.terminalTtlSeconds,
    };
    const call = async (chunk: readonly AppendItem[]): Promise<Array<AppendResult | Error>> => {
      try {
        const results = await this.#o.port.append(chunk, options);
        return chunk.map(
          (_, i) =>
            results[i] ??
            new BackendError(`The ${this.#o.port.name} backend answered ${results.length} of ${chunk.length}`),
        );
      } catch (cause) {
        if (cause instanceof PartialAppendError) {
          // Other cluster slots were written: their results stand; a failed event goes on alone unless its node is away.
          const { results } = cause;
          return await Promise.all(
            chunk.map(async (item, i) => {
              const r = results[i] ?? cause;
              const alone = r instanceof Error && !isConnectionClosedError(r) && !isTimeoutError(r);
              return alone ? ((await call([item]))[0] ?? r) : r;
            }),
          );
        }
        const error = toError(cause);
        // One event the backend rejects (a key of the wrong type) must not hold back the others:
        // unless the connection itself is down, try each alone.
        if (chunk.length > 1 && !isConnectionClosedError(error) && !isTimeoutError(error)) {
          return await Promise.all(chunk.map(async (item) => (await call([item]))[0] ?? error));
        }
        return chunk.map(() => error);
      }
    };
    const out: Array<AppendResult | Error> = [];
    for (let i = 0; i < items.length; i += this.#o.maxBatch) {
      for (const r of await call(items.slice(i, i + this.#o.maxBatch))) out.push(r);
    }
    return out;
  }

  /** Count, log and tell cancel listeners about a backend answer. */
  #settle(op: string, cid: string | undefined, result: AppendResult): PublishResult {
    if (result.cancelled !== null) {
      for (const listener of this.#cancelListeners.get(op) ?? []) listener(result.cancelled);
    }
    if (result.ok) this.#o.metrics.increment("events_published");
    else {
      this.#o.metrics.increment("events_refused", 1, { reason: result.refused });
      this.#o.logger.debug?.("update refused", { op, cid, reason: result.refused });
    }
    return toPublishResult(result);
  }

  #fail(error: Error, op: string, cid: string | undefined, what = "publish failed"): void {
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
}

function asProgressError(error: Error): ProgressError {
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

/** Anything thrown while reading a caller's input, as the validation error it is. */
function asValidationError(error: unknown, update: unknown): ProgressValidationError {
  if (isProgressValidationError(error)) return error;
  return new ProgressValidationError("update", update, `could not be read (${toError(error).message})`);
}

/** An operation id as given, for logs, without throwing (an object's `toString` may throw). */
function printable(op: unknown): string {
  if (typeof op === "string") return op;
  try {
    return String(op);
  } catch {
    return Object.prototype.toString.call(op);
  }
}

/** The correlation id of anything given as an update, without throwing. */
function cidOf(update: unknown): string | undefined {
  try {
    const cid = update !== null && typeof update === "object" ? (update as { cid?: unknown }).cid : undefined;
    return typeof cid === "string" ? cid : undefined;
  } catch {
    return undefined;
  }
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
