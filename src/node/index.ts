/**
 * Plain Node `http` and Express glue: turn an `IncomingMessage` into a web
 * `Request` (aborted when the client goes away) and write a web `Response`
 * (such as `progress.sse(...)`) to a `ServerResponse`, streaming its body.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { toRequest, writeResponse } from "progresscast/node";
 * createServer(async (req, res) => {
 *   const op = new URL(req.url ?? "/", "http://x").searchParams.get("op") ?? "";
 *   await writeResponse(res, await progress.sse(toRequest(req, res), op));
 * }).listen(3000);
 * ```
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { DirectBody, DirectControl, DirectSink } from "../core/sse.ts";

/** The part of `http.IncomingMessage` used here. */
export interface NodeRequestLike {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** The part of `http.ServerResponse` used here. */
export interface NodeResponseLike {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  flushHeaders?(): void;
  once(event: "close" | "drain", listener: () => void): unknown;
  removeListener?(event: "close" | "drain", listener: () => void): unknown;
  /** Close the connection at once (a response whose body failed must not look complete). */
  destroy?(): unknown;
  readonly writableEnded?: boolean;
}

/**
 * Build a web `Request` (without body) from a Node request. Its signal aborts
 * when the response closes (the client went away).
 *
 * Never throws on a request Node's parser accepted: a `Host` header that makes
 * no valid URL (`a b`, `x:99999`) gives way to `localhost`; a header a web
 * `Request` cannot carry is left out; a method the fetch standard forbids
 * (`TRACE`, `TRACK`, `CONNECT`) arrives as `HEAD`, which no handler of
 * progresscast answers with data.
 *
 * @throws nothing.
 * @example
 * ```ts
 * createServer((req, res) => {
 *   const request = toRequest(req, res);
 *   // request.url, request.headers, request.signal
 * });
 * ```
 */
export function toRequest(req: NodeRequestLike, res?: NodeResponseLike): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    try {
      if (typeof value === "string") headers.set(name, value);
      else for (const v of value) headers.append(name, v);
    } catch {
      // A name or value a web Request refuses: left out rather than failing the request.
    }
  }
  const controller = new AbortController();
  res?.once("close", () => controller.abort());
  const method = req.method === undefined ? "GET" : FORBIDDEN_METHODS.test(req.method) ? "HEAD" : req.method;
  try {
    return new Request(requestUrl(req), { method, headers, signal: controller.signal });
  } catch {
    // A method that is no token: nothing a handler here serves.
    return new Request(requestUrl(req), { method: "HEAD", headers, signal: controller.signal });
  }
}

/** Methods a web `Request` cannot be built with (the fetch standard forbids them). */
const FORBIDDEN_METHODS = /^(connect|trace|track)$/i;

/** The request's URL; a `Host` or target that makes no valid URL falls back to `localhost`, then to `/`. */
function requestUrl(req: NodeRequestLike): URL {
  const target = req.url ?? "/";
  const host = typeof req.headers.host === "string" && req.headers.host !== "" ? req.headers.host : "localhost";
  for (const base of [host, "localhost"]) {
    try {
      // An origin-form target ("/path?q") is appended, so "//other/x" stays a path on this host.
      return target.startsWith("/") ? new URL(`http://${base}${target}`) : new URL(target, `http://${base}`);
    } catch {
      // try the next base
    }
  }
  return new URL("http://localhost/");
}

/** The key of what an SSE body of `progress.sse()` offers (the core's `DIRECT_BODY`), found across package copies. */
const DIRECT_BODY = Symbol.for("progresscast.sse.direct");

/** Writes an SSE body straight to a Node response, with the response's own backpressure. */
class DirectWriter implements DirectSink {
  readonly #res: NodeResponseLike;
  readonly #finish: () => void;
  #control: DirectControl | null = null;
  #draining = false;
  readonly #onDrain = (): void => {
    this.#draining = false;
    this.#control?.resume();
  };
  readonly #onClose = (): void => {
    this.#control?.cancel();
    this.#finish();
  };

  constructor(res: NodeResponseLike, finish: () => void) {
    this.#res = res;
    this.#finish = finish;
  }

  /** Attach to `body`; false when it is being read already. */
  start(body: DirectBody): boolean {
    this.#control = body.attach(this);
    if (this.#control === null) return false;
    this.#res.once("close", this.#onClose);
    return true;
  }

  write(bytes: Uint8Array): boolean {
    const ok = this.#res.write(bytes);
    if (!ok && !this.#draining) {
      this.#draining = true;
      this.#res.once("drain", this.#onDrain);
    }
    return ok;
  }

  end(): void {
    if (!this.#res.writableEnded) this.#res.end();
    this.#finish();
  }

  abort(): void {
    if (this.#res.destroy) this.#res.destroy();
    else if (!this.#res.writableEnded) this.#res.end();
    this.#finish();
  }
}

/**
 * Write an SSE body of `progress.sse()` straight to `res` (no web stream read
 * per chunk): undefined when the body is not one, or is already being read.
 * Resolves when the stream ends or the client goes away.
 */
function directWriter(res: NodeResponseLike, body: ReadableStream<Uint8Array>): Promise<void> | undefined {
  const direct: unknown = (body as unknown as Record<symbol, unknown>)[DIRECT_BODY];
  if (typeof direct !== "object" || direct === null || !("attach" in direct) || body.locked) return undefined;
  let writer: DirectWriter | undefined;
  const finished = new Promise<void>((resolve) => {
    writer = new DirectWriter(res, resolve);
  });
  return writer?.start(direct as DirectBody) ? finished : undefined;
}

/**
 * Write a web `Response` to a Node response, streaming the body with
 * backpressure; stops reading (cancelling the body, which frees a watch) when
 * the client goes away. A body that fails (such as an SSE stream whose client
 * stopped reading past its byte budget) destroys the connection at once, even
 * while waiting for the client to drain, so the client reconnects. Resolves
 * when done.
 *
 * @throws nothing: failures of the body end the response.
 * @example
 * ```ts
 * createServer(async (req, res) => {
 *   await writeResponse(res, await progress.sse(toRequest(req, res), "job-1"));
 * }).listen(3000);
 * ```
 */
export function writeResponse(res: NodeResponseLike, response: Response): Promise<void> {
  try {
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name] = value;
    });
    res.writeHead(response.status, headers);
    res.flushHeaders?.();
    const body = response.body;
    if (!body) {
      res.end();
      return Promise.resolve();
    }
    // Nothing waits here holding the Response: a long-lived stream keeps only what it writes with.
    return directWriter(res, body) ?? pipeBody(res, body);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Stream a web body to `res` with backpressure (see {@link writeResponse}). */
async function pipeBody(res: NodeResponseLike, body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  let gone = false;
  let failed = false;
  res.once("close", () => {
    gone = true;
    void reader.cancel().catch(() => {});
  });
  // Settles (never rejects) when the body ends or fails, so a wait for "drain" can give up.
  const ended = reader.closed.then(
    () => "done" as const,
    () => "failed" as const,
  );
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || gone) break;
      if (!res.write(value)) {
        let onDrain: (() => void) | undefined;
        const drained = new Promise<"drained">((resolve) => {
          onDrain = () => resolve("drained");
          res.once("drain", onDrain);
        });
        const outcome = await Promise.race([drained, ended]);
        if (onDrain) res.removeListener?.("drain", onDrain);
        if (outcome === "failed") {
          failed = true;
          break;
        }
      }
    }
  } catch {
    failed = !gone;
  } finally {
    if (failed && res.destroy) res.destroy();
    else if (!res.writableEnded) res.end();
  }
}

/** Options of {@link nodeHandler}. */
export interface NodeHandlerOptions {
  /**
   * Hears every error a handler threw or rejected with (after the answer was
   * ended). @default console.error
   */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/**
 * Wrap an async `(req, res)` handler for `http.createServer`: an error it
 * throws or rejects with never becomes an unhandled rejection (which ends a
 * Node 20 process). It is passed to `onError`, and the client gets a 500, or,
 * when the answer had started, a closed connection.
 *
 * @throws nothing: the returned function never throws and its promise never rejects.
 * @example
 * ```ts
 * createServer(nodeHandler(async (req, res) => {
 *   await writeResponse(res, await progress.sse(toRequest(req, res), "job-1"));
 * })).listen(3000);
 * ```
 */
export function nodeHandler(
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
  options: NodeHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const onError = options.onError ?? ((error: unknown) => console.error("[progresscast] request failed", error));
  return async (req, res) => {
    try {
      await handler(req, res);
    } catch (error) {
      try {
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
          res.end();
        } else res.destroy();
      } catch {
        // the connection is gone already
      }
      try {
        onError(error);
      } catch {
        // a failing error hook must not end the process either
      }
    }
  };
}
