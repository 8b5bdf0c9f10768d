import { isProgressValidationError, isUnauthorizedError } from "./errors.ts";
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
  const items = start({ after, signal });
  const encoder = new TextEncoder();
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const cleanup = (): void => {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
    stop.abort();
    void items.return(undefined);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: ${retryMs}\n\n`));
      heartbeat = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": ping\n\n"));
        } catch {
          cleanup();
        }
      }, heartbeatMs);
      signal.addEventListener("abort", () => {
        cleanup();
        try {
          controller.close();
        } catch {
          // already closed
        }
      });
    },
    async pull(controller) {
      try {
        const next = await items.next();
        if (next.done) {
          cleanup();
          controller.close();
          return;
        }
        controller.enqueue(encoder.encode(sseMessage(next.value)));
      } catch (error) {
        cleanup();
        controller.error(error);
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
