import { isProgressValidationError, isSlowConsumerError } from "../errors.ts";
import type { Logger } from "../observe.ts";
import { isStreamId, TYPE_PATTERN } from "../wire/index.ts";
import { type Authorize, badRequest, checkAuthorize, refusal, resumeId, type WatchTarget } from "./http.ts";
import type { WatchItem, WatchOptions } from "./watch.ts";

/** Options of `progress.sse`. */
export interface SseOptions {
  /** Called before any data is sent. @default allow every request */
  readonly authorize?: Authorize | undefined;
  /**
   * Interval of heartbeat comments that keep proxies from closing an idle stream.
   * @default 15000
   */
  readonly heartbeatMs?: number | undefined;
  /**
   * Reconnection delay hint sent to the client (`retry:`).
   * @default 2000
   */
  readonly retryMs?: number | undefined;
  /** Extra response headers (e.g. an `Access-Control-Allow-Origin` you choose; none is sent by default). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /**
   * Byte budget of events held for this connection and not yet written (a
   * client that stopped reading). Past it the stream ends; the client
   * reconnects with `Last-Event-ID` and resumes where it stopped.
   * @default 1048576
   */
  readonly maxBufferedBytes?: number | undefined;
}

/**
 * Heartbeats of every open stream share one timer per interval: no timer per connection.
 */
const tickers = new Map<number, { readonly timer: ReturnType<typeof setInterval>; readonly beats: Set<Beating> }>();

/** A stream that sends heartbeats. */
interface Beating {
  beat(): void;
}

function startHeartbeat(ms: number, stream: Beating): void {
  let ticker = tickers.get(ms);
  if (!ticker) {
    const beats = new Set<Beating>();
    const timer = setInterval(() => {
      for (const b of beats) b.beat();
    }, ms);
    ticker = { timer, beats };
    tickers.set(ms, ticker);
  }
  ticker.beats.add(stream);
}

function stopHeartbeat(ms: number, stream: Beating): void {
  const current = tickers.get(ms);
  if (!current?.beats.delete(stream) || current.beats.size > 0) return;
  clearInterval(current.timer);
  tickers.delete(ms);
}

const encoder = new TextEncoder();
const PING = encoder.encode(": ping\n\n");
/** Encoded frames of live events, shared by every connection that sends the same event object. */
const frames = new WeakMap<object, Uint8Array>();

/** The bytes of one watch item's SSE message; built once per shared event. */
function frame(item: WatchItem): Uint8Array {
  if (item.kind !== "event") return encoder.encode(sseMessage(item));
  let bytes = frames.get(item.event);
  if (!bytes) {
    bytes = encoder.encode(sseMessage(item));
    frames.set(item.event, bytes);
  }
  return bytes;
}

/**
 * Encode one watch item as an SSE message. Only a stream entry id reaches
 * `id:` and only a type of the safe set ({@link TYPE_PATTERN}) reaches
 * `event:` (anything else is sent as `progress`); data is JSON, which has no
 * raw line breaks. So nothing written by someone else can add lines.
 */
export function sseMessage(item: WatchItem): string {
  if (item.kind === "event") {
    const { event } = item;
    const id = isStreamId(event.id) ? `id: ${event.id}\n` : "";
    const type = TYPE_PATTERN.test(event.type) ? event.type : "progress";
    return `${id}event: ${type}\ndata: ${JSON.stringify(event)}\n\n`;
  }
  return `event: ${item.kind}\ndata: ${JSON.stringify(item.snapshot)}\n\n`;
}

/**
 * The property of an SSE body stream (`Symbol.for("progresscast.sse.direct")`)
 * through which a server adapter (`progresscast/node`'s `writeResponse`) takes
 * the bytes directly, with its own backpressure, instead of reading the web
 * stream: no promise per chunk. Any other reader of the body sees the same bytes.
 */
export const DIRECT_BODY: unique symbol = Symbol.for("progresscast.sse.direct") as typeof DIRECT_BODY;

/** Where a directly attached SSE body writes. */
export interface DirectSink {
  /** Write bytes; false when the writer's buffer is full: it calls `resume()` once drained. */
  write(bytes: Uint8Array): boolean;
  /** The stream ended normally: end the response. */
  end(): void;
  /** The stream ended abruptly (a client past its byte budget): close the connection, not as a complete response. */
  abort(): void;
}

/** The control a directly attached writer gets back. */
export interface DirectControl {
  /** The writer drained: write more. */
  resume(): void;
  /** The client went away: stop and release the watch. */
  cancel(): void;
}

/** The value at {@link DIRECT_BODY}. */
export interface DirectBody {
  /** Attach a writer; null when the body is already read as a web stream. */
  attach(sink: DirectSink): DirectControl | null;
}

/** A watch whose already-queued items can be taken without a promise (see `Watch.poll`). */
type Items = AsyncGenerator<WatchItem, void, undefined> & {
  poll?: () => IteratorResult<WatchItem, void> | undefined;
};

/** Bytes handed to a web stream reader per pull, at most, when more are ready at once. */
const PULL_BUDGET = 65_536;

/**
 * The body of one SSE response: the underlying source of its web stream, and
 * the {@link DirectBody} a server adapter may attach to instead. Items already
 * queued go out together (up to {@link PULL_BUDGET} per pull, or as long as a
 * direct writer takes them); when none is ready it waits for the next one.
 * One object per connection, its methods shared: an idle connection costs little.
 */
class SseBody implements UnderlyingDefaultSource<Uint8Array>, DirectBody, DirectControl, Beating {
  readonly #logger: Logger;
  readonly #items: Items;
  /**
   * Held for the life of the body, and its signal read through it: on Node
   * (undici) a `Request`'s signal follows the caller's through a weak
   * reference to the request's own controller, so once nothing holds the
   * request, aborting the caller's signal no longer reaches ours.
   */
  readonly #request: Request;
  readonly #retryMs: number;
  readonly #heartbeatMs: number;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** How the bytes leave: not yet, a web stream reader, or a directly attached writer. */
  #mode: 0 | 1 | 2 = 0;
  #sink: DirectSink | undefined;
  #closed = false;
  /** The writer takes more now. */
  #wants = false;
  #budget = 0;
  #pumping = false;
  #waiting = false;
  #beating = false;
  readonly #onAbort = (): void => this.#end();
  readonly #onItem = (r: IteratorResult<WatchItem, void>): void => {
    this.#waiting = false;
    if (this.#closed) return;
    this.#handle(r);
    this.#pump();
  };
  readonly #onError = (error: unknown): void => {
    this.#waiting = false;
    this.#fail(error);
  };

  constructor(items: Items, request: Request, retryMs: number, heartbeatMs: number, logger: Logger) {
    this.#logger = logger;
    this.#items = items;
    this.#request = request;
    this.#retryMs = retryMs;
    this.#heartbeatMs = heartbeatMs;
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
  }

  pull(): void {
    if (this.#closed || this.#mode === 2) return;
    this.#budget = PULL_BUDGET;
    this.#wants = true;
    if (this.#mode === 0) {
      this.#mode = 1;
      this.#begin();
    }
    this.#pump();
  }

  /** The web stream was cancelled, or the directly attached client went away. */
  cancel(): void {
    if (this.#mode === 2) this.#end();
    else this.#cleanup();
  }

  attach(sink: DirectSink): DirectControl | null {
    if (this.#mode !== 0 || this.#closed) return null;
    this.#mode = 2;
    this.#sink = sink;
    // Written directly from now on: the web stream (and the Response around it) may go.
    this.#controller = undefined;
    this.#wants = true;
    this.#begin();
    this.#pump();
    return this;
  }

  resume(): void {
    this.#wants = true;
    this.#pump();
  }

  beat(): void {
    try {
      this.#out(PING);
    } catch {
      this.#cleanup();
    }
  }

  /** The first reader (web or direct) starts the stream: the retry hint, heartbeats, then items. */
  #begin(): void {
    this.#out(encoder.encode(`retry: ${this.#retryMs}\n\n`));
    startHeartbeat(this.#heartbeatMs, this);
    this.#beating = true;
    this.#request.signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  #cleanup(): void {
    this.#closed = true;
    if (this.#beating) stopHeartbeat(this.#heartbeatMs, this);
    this.#beating = false;
    // Nothing may stay registered on the request's signal: it would keep the whole stream alive.
    this.#request.signal.removeEventListener("abort", this.#onAbort);
    void this.#items.return(undefined);
  }

  /** Write bytes; returns whether the writer takes more now. */
  #out(bytes: Uint8Array): boolean {
    if (this.#sink) return this.#sink.write(bytes);
    this.#controller?.enqueue(bytes);
    this.#budget -= bytes.byteLength;
    return this.#budget > 0;
  }

  #close(): void {
    if (this.#sink) this.#sink.end();
    else {
      try {
        this.#controller?.close();
      } catch {
        // already closed
      }
    }
  }

  #end(): void {
    if (this.#closed) return;
    this.#cleanup();
    this.#close();
  }

  #fail(error: unknown): void {
    if (this.#closed) return;
    this.#cleanup();
    if (isSlowConsumerError(error)) {
      // The client stopped reading: drop what is buffered and end the connection now.
      if (this.#sink) this.#sink.abort();
      else this.#controller?.error(error);
      return;
    }
    // Tell the client that it failed (the cause, with backend text and key names, goes to the log only),
    // then end: it reconnects and resumes from its last event id.
    this.#logger.error?.("an SSE watch failed", { error });
    try {
      this.#out(encoder.encode(`event: error\ndata: ${WATCH_FAILED_FRAME}\n\n`));
    } catch {
      // already closed
    }
    this.#close();
  }

  #handle(r: IteratorResult<WatchItem, void>): void {
    if (r.done) this.#end();
    else this.#wants = this.#out(frame(r.value));
  }

  /** Hand over what is ready now; when nothing is, wait for the next item once. */
  #pump(): void {
    if (this.#pumping || this.#waiting) return;
    this.#pumping = true;
    try {
      while (this.#wants && !this.#closed) {
        const ready = this.#items.poll?.();
        if (ready === undefined) {
          this.#waiting = true;
          this.#items.next().then(this.#onItem, this.#onError);
          return;
        }
        this.#handle(ready);
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#pumping = false;
    }
  }
}

/**
 * Build the SSE Response for a watch. `start` opens the watch once authorized.
 * Items already queued go out in one pull (or straight to a directly attached
 * writer); each event's frame is encoded once and shared by every connection.
 */
export async function sseResponse(
  request: Request,
  target: WatchTarget,
  start: (options: WatchOptions) => Items,
  options: SseOptions,
  logger: Logger,
): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response(`An event stream answers GET and HEAD, not ${request.method}\n`, {
      status: 405,
      headers: { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8", ...options.headers },
    });
  }
  let after: string | undefined;
  try {
    after = resumeId(request);
  } catch (error) {
    if (isProgressValidationError(error)) return badRequest(error.message, options.headers);
    throw error;
  }
  const refused = await checkAuthorize(options.authorize, request, target);
  if (refused) return refusal(refused.status, refused.message, options.headers);
  if (request.method === "HEAD") return new Response(null, { status: 200, headers: sseHeaders(options) });
  const signal = request.signal;
  const items = start({ after, signal, maxQueueBytes: options.maxBufferedBytes ?? 1_048_576 });
  const source = new SseBody(items, request, options.retryMs ?? 2000, options.heartbeatMs ?? 15_000, logger);
  // High-water mark 0: nothing is pulled before a reader asks, so a server adapter can still attach directly.
  const body = new ReadableStream<Uint8Array>(source, { highWaterMark: 0 });
  Object.defineProperty(body, DIRECT_BODY, { value: source });
  return new Response(body, { status: 200, headers: sseHeaders(options) });
}

function sseHeaders(options: SseOptions): Record<string, string> {
  return {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    ...options.headers,
  };
}

/** The `data:` of the `error` event that ends a failed stream: a code and a short reason, never backend text. */
const WATCH_FAILED_FRAME = JSON.stringify({
  code: "watch_failed",
  message: "Reading progress failed; reconnect to resume from your last event id.",
});
