/**
 * The progress manager: the public methods, and the flush and close
 * orchestration. Preparing and writing events is in `publish/`, reading and
 * serving them in `deliver/`, tasks, cancellation and consumer groups in `jobs/`.
 *
 * @module
 */

import { badRequest, type WatchTarget } from "./deliver/http.ts";
import { LiveReader } from "./deliver/live.ts";
import { Hub, type Reader } from "./deliver/reader.ts";
import { type SseOptions, sseResponse } from "./deliver/sse.ts";
import { type WatchItem, type WatchOptions, watchStream } from "./deliver/watch.ts";
import { serveSession, type WebSocketLike, type WebSocketOptions } from "./deliver/websocket.ts";
import { ConnectionClosedError, isProgressValidationError, ProgressValidationError } from "./errors.ts";
import { CancelListeners } from "./jobs/cancel.ts";
import { type ConsumeOptions, checkConsumeOptions, consumeStream, type Delivery } from "./jobs/consume.ts";
import { Task, type TaskOptions } from "./jobs/task.ts";
import { type ProgressOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import type { AppendItem } from "./port/port.ts";
import { Coalescer, checkReport, type Held } from "./publish/coalesce.ts";
import { Preparer, type PublishOptions } from "./publish/prepare.ts";
import { type PublishResult, type UnwrittenEvent, Writer } from "./publish/writer.ts";
import { toError } from "./util.ts";
import {
  assertId,
  assertStreamId,
  decodeEvent,
  decodeSnapshot,
  type ProgressEvent,
  type ProgressSnapshot,
  type ProgressUpdate,
} from "./wire/index.ts";

export type { PublishOptions } from "./publish/prepare.ts";
export type { PublishResult, UnwrittenEvent } from "./publish/writer.ts";

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

/**
 * The progress manager: publish from jobs, read from servers.
 * Created by {@link createProgress}.
 */
export class Progress implements AsyncDisposable {
  readonly #o: ResolvedOptions;
  readonly #preparer: Preparer;
  readonly #writer: Writer;
  readonly #coalescer: Coalescer<PublishOptions>;
  readonly #cancels = new CancelListeners();
  readonly #closing = new AbortController();
  #closed: Promise<FlushResult> | undefined;
  #hub: Reader | undefined;

  /** @throws {ProgressValidationError} for bad options. */
  constructor(options: ProgressOptions) {
    const o = resolveOptions(options);
    this.#o = o;
    this.#preparer = new Preparer(o);
    this.#writer = new Writer(o, this.#cancels, this.#closing.signal);
    this.#coalescer = new Coalescer<PublishOptions>(o.intervalMs, (held) => this.#writeHeld(held));
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
    const item = this.#preparer.prepare(op, update, options ?? {});
    return await this.#writer.send(item, update.cid, true);
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
      this.#writer.fail(asValidationError(error, update), printable(op), cidOf(update));
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
    await this.#writer.idle();
    this.#preparer.forget(op);
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
        onCancel: (o, listener) => this.#cancels.on(o, listener),
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
      await Promise.race([this.#writer.drain(stop.signal), stopped]);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
      stop.abort();
    }
    return { unwritten: this.#writer.unwritten() };
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
      const unwritten = this.#writer.stop(error);
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

  #writeHeld(held: Held<PublishOptions>): void {
    let item: AppendItem;
    try {
      item = this.#preparer.prepare(held.op, held.update, held.options);
    } catch (error) {
      this.#writer.fail(asValidationError(error, held.update), held.op, cidOf(held.update));
      return;
    }
    this.#writer.sendUnawaited(item, held.update.cid);
  }
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
