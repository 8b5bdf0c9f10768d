import { isProgressValidationError, isSlowConsumerError, isUnauthorizedError } from "./errors.ts";
import type { WatchItem, WatchOptions } from "./watch.ts";
import { assertStreamId, isStreamId, TYPE_PATTERN } from "./wire.ts";

/** What a watcher asks to follow: one operation, or every operation of a scope. */
export type WatchTarget =
  | { readonly op: string; readonly scope?: undefined }
  | { readonly scope: string; readonly op?: undefined };

/**
 * Decides whether a request may follow a target. Return true to allow, false
 * to forbid (403 / WebSocket 4003); throw an `UnauthorizedError` with status
 * 401 when credentials are missing (401 / WebSocket 4001).
 */
export type Authorize<R = Request> = (request: R, target: WatchTarget) => boolean | Promise<boolean>;

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
const tickers = new Map<number, { readonly timer: ReturnType<typeof setInterval>; readonly beats: Set<() => void> }>();

function onHeartbeat(ms: number, beat: () => void): () => void {
  let ticker = tickers.get(ms);
  if (!ticker) {
    const beats = new Set<() => void>();
    const timer = setInterval(() => {
      for (const b of beats) b();
    }, ms);
    ticker = { timer, beats };
    tickers.set(ms, ticker);
  }
  ticker.beats.add(beat);
  return () => {
    const current = tickers.get(ms);
    if (!current?.beats.delete(beat) || current.beats.size > 0) return;
    clearInterval(current.timer);
    tickers.delete(ms);
  };
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
 * The id to resume after: the `Last-Event-ID` header, else the `after` query
 * parameter; undefined when neither is given (or both are empty).
 *
 * @throws {ProgressValidationError} naming `Last-Event-ID` or `after` when it is not a stream entry id.
 * @example
 * ```ts
 * resumeId(new Request("https://x/progress/job-1?after=1732890000000-0")); // "1732890000000-0"
 * ```
 */
export function resumeId(request: Request): string | undefined {
  const header = request.headers.get("last-event-id")?.trim();
  if (header) {
    assertStreamId(header, "Last-Event-ID");
    return header;
  }
  const after = new URL(request.url, "http://localhost").searchParams.get("after");
  if (after === null || after === "") return undefined;
  assertStreamId(after, "after");
  return after;
}

/**
 * A 400 answer with a short plain-text reason, for a request that names an
 * invalid operation, scope or resume id: a client that gets it should not retry.
 */
export function badRequest(reason: string, headers?: Readonly<Record<string, string>>): Response {
  return new Response(`${reason}\n`, {
    status: 400,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function refusal(status: 401 | 403, message: string, headers: Readonly<Record<string, string>> | undefined): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Run the `authorize` hook; a Response when refused, else null. */
export async function checkAuthorize<R>(
  authorize: Authorize<R> | undefined,
  request: R,
  target: WatchTarget,
): Promise<{ status: 401 | 403; message: string } | null> {
  if (!authorize) return null;
  try {
    return (await authorize(request, target)) === true ? null : { status: 403, message: "forbidden" };
  } catch (error) {
    if (isUnauthorizedError(error)) return { status: error.status, message: error.message };
    return { status: 403, message: "forbidden" };
  }
}

/**
 * Build the SSE Response for a watch. `start` opens the watch once authorized.
 */
export async function sseResponse(
  request: Request,
  target: WatchTarget,
  start: (options: WatchOptions) => AsyncGenerator<WatchItem, void, undefined>,
  options: SseOptions,
): Promise<Response> {
  let after: string | undefined;
  try {
    after = resumeId(request);
  } catch (error) {
    if (isProgressValidationError(error)) return badRequest(error.message, options.headers);
    throw error;
  }
  const refused = await checkAuthorize(options.authorize, request, target);
  if (refused) return refusal(refused.status, refused.message, options.headers);
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const retryMs = options.retryMs ?? 2000;
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, request.signal]);
  const items = start({ after, signal, maxQueueBytes: options.maxBufferedBytes ?? 1_048_576 });
  let stopHeartbeat: (() => void) | undefined;
  let onAbort: (() => void) | undefined;
  const cleanup = (): void => {
    stopHeartbeat?.();
    stopHeartbeat = undefined;
    // Nothing may stay registered on the combined signal: on Node 20 its listeners keep the whole stream alive.
    if (onAbort) signal.removeEventListener("abort", onAbort);
    onAbort = undefined;
    stop.abort();
    void items.return(undefined);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: ${retryMs}\n\n`));
      stopHeartbeat = onHeartbeat(heartbeatMs, () => {
        try {
          controller.enqueue(PING);
        } catch {
          cleanup();
        }
      });
      onAbort = () => {
        cleanup();
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      signal.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      try {
        const next = await items.next();
        if (next.done) {
          cleanup();
          controller.close();
          return;
        }
        controller.enqueue(frame(next.value));
      } catch (error) {
        cleanup();
        if (isSlowConsumerError(error)) {
          // The client stopped reading: drop what is buffered and end the connection now.
          controller.error(error);
          return;
        }
        // Tell the client why, then end: it reconnects and resumes from its last event id.
        const message = error instanceof Error ? error.message : String(error);
        try {
          controller.enqueue(
            encoder.encode(`event: error\ndata: ${JSON.stringify({ code: "watch_failed", message })}\n\n`),
          );
          controller.close();
        } catch {
          // already closed
        }
      }
    },
    cancel() {
      cleanup();
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      ...options.headers,
    },
  });
}
