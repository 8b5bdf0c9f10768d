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
 */
export function toRequest(req: NodeRequestLike, res?: NodeResponseLike): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (typeof value === "string") headers.set(name, value);
    else for (const v of value) headers.append(name, v);
  }
  const host = typeof req.headers.host === "string" ? req.headers.host : "localhost";
  const controller = new AbortController();
  res?.once("close", () => controller.abort());
  return new Request(new URL(req.url ?? "/", `http://${host}`), {
    method: req.method ?? "GET",
    headers,
    signal: controller.signal,
  });
}

/** What an SSE body of `progress.sse()` offers at `Symbol.for("progresscast.sse.direct")`. */
type DirectAttach = (sink: {
  write(bytes: Uint8Array): boolean;
  end(): void;
  abort(): void;
}) => { resume(): void; cancel(): void } | null;

const DIRECT_BODY = Symbol.for("progresscast.sse.direct");

/**
 * Write an SSE body of `progress.sse()` straight to `res` (no web stream read
 * per chunk): undefined when the body is not one, or is already being read.
 * Resolves when the stream ends or the client goes away.
 */
function directWriter(res: NodeResponseLike, body: ReadableStream<Uint8Array>): Promise<void> | undefined {
  const attach: unknown = (body as unknown as Record<symbol, unknown>)[DIRECT_BODY];
  if (typeof attach !== "function" || body.locked) return undefined;
  let finish = (): void => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let control: ReturnType<DirectAttach> = null;
  let draining = false;
  const resume = (): void => {
    draining = false;
    control?.resume();
  };
  control = (attach as DirectAttach)({
    write(bytes) {
      const ok = res.write(bytes);
      if (!ok && !draining) {
        draining = true;
        res.once("drain", resume);
      }
      return ok;
    },
    end() {
      if (!res.writableEnded) res.end();
      finish();
    },
    abort() {
      if (res.destroy) res.destroy();
      else if (!res.writableEnded) res.end();
      finish();
    },
  });
  if (control === null) return undefined;
  const attached = control;
  res.once("close", () => {
    attached.cancel();
    finish();
  });
  return finished;
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
export async function writeResponse(res: NodeResponseLike, response: Response): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  res.writeHead(response.status, headers);
  res.flushHeaders?.();
  if (!response.body) {
    res.end();
    return;
  }
  const direct = directWriter(res, response.body);
  if (direct) return await direct;
  const reader = response.body.getReader();
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
