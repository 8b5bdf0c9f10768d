/**
 * The HTTP server of `progresscast serve`: SSE of operations and scopes, the
 * WebSocket protocol, health and metrics, CORS, and a graceful shutdown.
 * Every handler is wrapped: a bad request gets an answer (or a closed
 * connection), never a crash.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { Authorize, Logger, Progress, Target } from "../index.ts";
import { writeResponse } from "../node/index.ts";
import { type TokenVerifier, tokenOf } from "./token.ts";

/**
 * Largest WebSocket message a client may send. The protocol's messages
 * (`watch`, `unwatch`, `ping`) are a few hundred bytes at most.
 */
export const MAX_WS_PAYLOAD = 4096;

/** How often a WebSocket is pinged; one that did not answer the previous ping is closed. */
const WS_PING_MS = 30_000;

/** How long `/healthz` waits for the backend. */
const HEALTH_TIMEOUT_MS = 2000;

/** Headers a browser may send on a cross-origin stream request. */
const ALLOWED_HEADERS = "authorization, last-event-id, accept, cache-control";

/** What the gateway serves with. */
export interface GatewayOptions {
  readonly progress: Progress;
  /** Checks tokens; undefined serves without authorization (loopback only, checked by the command). */
  readonly verifier: TokenVerifier | undefined;
  /** Origins whose pages may read the streams (`*` for any). */
  readonly corsOrigins: readonly string[];
  /** Serves `/metrics`; undefined answers 501 with how to enable it. */
  readonly metrics: ((request: Request) => Promise<Response>) | undefined;
  /** Told when a stream or socket opens (+1) or closes (-1). */
  readonly onConnection?: ((transport: "sse" | "ws", delta: 1 | -1) => void) | undefined;
  readonly logger: Logger;
}

/** A running gateway. */
export interface Gateway {
  readonly server: Server;
  /** Open streams and sockets right now. */
  readonly open: () => { readonly sse: number; readonly ws: number };
  /** Listen; resolves with the bound address. @throws the server's error (e.g. EADDRINUSE). */
  listen(port: number, host: string): Promise<AddressInfo>;
  /**
   * Stop accepting, end every open stream (SSE clients see the stream end and
   * resume elsewhere; sockets are closed with 1001), wait up to `drainMs` for
   * them to go, then close every connection left. Never rejects.
   */
  shutdown(drainMs: number): Promise<void>;
}

const noop = (): void => {};

/** The path and query of a request, on a fixed origin (the Host header is never trusted); null when unusable. */
function requestUrl(req: IncomingMessage): URL | null {
  const raw = req.url ?? "";
  if (!raw.startsWith("/")) return null;
  try {
    return new URL(`http://gateway${raw}`);
  } catch {
    return null;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * The operation or scope of `/ops/<op>/events` or `/scopes/<scope>/events`
 * (percent-decoded; an id may hold `/`, plain or as `%2F`); null for another path.
 */
function eventsTarget(pathname: string): Target | null {
  const m = /^\/(ops|scopes)\/(.+)\/events$/.exec(pathname);
  if (!m?.[2]) return null;
  let id: string;
  try {
    id = decodeURIComponent(m[2]);
  } catch {
    // Not valid percent-encoding: let the manager answer 400 for the raw text.
    id = m[2];
  }
  return m[1] === "ops" ? id : { scope: id };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = typeof body === "string" ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(text);
}

/** Answer an upgrade request with a plain HTTP status and close the socket. */
function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = `${JSON.stringify({ error: message })}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Build the gateway's server (not yet listening).
 *
 * @example
 * ```ts
 * const gateway = createGateway({ progress, verifier, corsOrigins: [], metrics: undefined, logger });
 * await gateway.listen(8080, "127.0.0.1");
 * process.once("SIGTERM", () => void gateway.shutdown(10_000));
 * ```
 */
export function createGateway(options: GatewayOptions): Gateway {
  const { progress, verifier, corsOrigins, logger } = options;
  const onConnection = options.onConnection ?? noop;
  /** Open SSE requests, each with the controller that ends it. */
  const streams = new Set<AbortController>();
  let draining = false;
  let drained: (() => void) | undefined;
  const checkDrained = (): void => {
    if (drained && streams.size === 0 && wss.clients.size === 0) drained();
  };

  const authorizeRequest: Authorize<Request> | undefined = verifier?.authorize((request: Request) =>
    tokenOf(request.headers.get("authorization"), new URL(request.url)),
  );
  const authorizeSocket: Authorize<{ readonly token: string | undefined }> | undefined = verifier?.authorize(
    (request: { readonly token: string | undefined }) => request.token,
  );

  const anyOrigin = corsOrigins.includes("*");
  const allowedOrigin = (origin: string | undefined): boolean =>
    origin !== undefined && (anyOrigin || corsOrigins.includes(origin));
  const cors = (origin: string | undefined): Record<string, string> => {
    if (corsOrigins.length === 0) return {};
    if (anyOrigin) return { "access-control-allow-origin": "*" };
    return allowedOrigin(origin) && origin !== undefined
      ? { "access-control-allow-origin": origin, vary: "Origin" }
      : { vary: "Origin" };
  };

  const health = async (): Promise<{ status: number; body: unknown }> => {
    if (draining) return { status: 503, body: { status: "draining" } };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        progress.get("healthz"),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
        }),
      ]);
      return { status: 200, body: { status: "ok" } };
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      return { status: 503, body: { status: "unavailable", error: `the backend failed: ${why}` } };
    } finally {
      clearTimeout(timer);
    }
  };

  const stream = async (req: IncomingMessage, res: ServerResponse, url: URL, target: Target): Promise<void> => {
    const controller = new AbortController();
    streams.add(controller);
    onConnection("sse", 1);
    const gone = (): void => {
      controller.abort();
      if (streams.delete(controller)) onConnection("sse", -1);
      checkDrained();
    };
    res.once("close", gone);
    const headers = new Headers();
    const lastEventId = header(req, "last-event-id");
    const authorization = header(req, "authorization");
    if (lastEventId !== undefined) headers.set("last-event-id", lastEventId);
    if (authorization !== undefined) headers.set("authorization", authorization);
    const request = new Request(url, { headers, signal: controller.signal });
    const response = await progress.sse(request, target, {
      authorize: authorizeRequest,
      headers: cors(header(req, "origin")),
    });
    if (res.destroyed) {
      await response.body?.cancel().catch(noop);
      return;
    }
    await writeResponse(res, response);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    req.on("error", noop);
    const url = requestUrl(req);
    if (url === null) return send(res, 400, "Bad request target\n");
    const origin = header(req, "origin");
    if (draining) return send(res, 503, { error: "shutting down" }, { connection: "close", ...cors(origin) });
    const target = eventsTarget(url.pathname);
    const known = target !== null || url.pathname === "/healthz" || url.pathname === "/metrics";
    if (!known) return send(res, 404, { error: "not found" }, cors(origin));
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        ...cors(origin),
        "access-control-allow-methods": "GET, OPTIONS",
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": "600",
      });
      res.end();
      return;
    }
    const allow = target !== null ? ["GET"] : ["GET", "HEAD"];
    if (!allow.includes(req.method ?? "")) {
      return send(res, 405, { error: "method not allowed" }, { allow: allow.join(", "), ...cors(origin) });
    }
    if (target !== null) return await stream(req, res, url, target);
    if (url.pathname === "/healthz") {
      const { status, body } = await health();
      return send(res, status, req.method === "HEAD" ? "" : body);
    }
    if (options.metrics === undefined) {
      return send(res, 501, "Metrics need the prom-client package: npm install prom-client\n");
    }
    await writeResponse(res, await options.metrics(new Request(url, { method: req.method ?? "GET" })));
  };

  const failed = (res: ServerResponse, error: unknown): void => {
    logger.error?.("gateway request failed", { error });
    try {
      if (res.headersSent) res.destroy();
      else send(res, 500, { error: "internal error" });
    } catch {
      res.destroy();
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => failed(res, error));
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_PAYLOAD, clientTracking: true });
  wss.on("error", (error) => logger.error?.("WebSocket server error", { error }));
  const alive = new WeakSet<WebSocket>();
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      try {
        ws.ping();
      } catch {
        ws.terminate();
      }
    }
  }, WS_PING_MS);
  pinger.unref();

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on("error", noop);
    const url = requestUrl(req);
    if (url === null) return refuseUpgrade(socket, 400, "bad request target");
    if (url.pathname !== "/ws") return refuseUpgrade(socket, 404, "not found");
    if (draining) return refuseUpgrade(socket, 503, "shutting down");
    const origin = header(req, "origin");
    if (origin !== undefined && corsOrigins.length > 0 && !allowedOrigin(origin)) {
      return refuseUpgrade(socket, 403, "origin not allowed");
    }
    const token = tokenOf(header(req, "authorization"), url);
    if (verifier !== undefined) {
      try {
        await verifier.verify(token);
      } catch (error) {
        return refuseUpgrade(socket, 401, error instanceof Error ? error.message : "unauthorized");
      }
    }
    if (socket.destroyed || draining) return refuseUpgrade(socket, 503, "shutting down");
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("error", (error) => logger.warn?.("WebSocket error", { error }));
      alive.add(ws);
      ws.on("pong", () => alive.add(ws));
      onConnection("ws", 1);
      ws.once("close", () => {
        onConnection("ws", -1);
        // ws removes the client from wss.clients on the same event; look after it has.
        setImmediate(checkDrained);
      });
      progress.serveWebSocket(ws, { request: { token }, authorize: authorizeSocket }).catch((error: unknown) => {
        logger.error?.("WebSocket session failed", { error });
        ws.terminate();
      });
    });
  };

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrade(req, socket, head).catch((error: unknown) => {
      logger.error?.("WebSocket upgrade failed", { error });
      socket.destroy();
    });
  });

  return {
    server,
    open: () => ({ sse: streams.size, ws: wss.clients.size }),
    listen: (port, host) =>
      new Promise<AddressInfo>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          server.on("error", (error) => logger.error?.("gateway server error", { error }));
          resolve(server.address() as AddressInfo);
        });
      }),
    shutdown: async (drainMs) => {
      draining = true;
      clearInterval(pinger);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const done = new Promise<void>((resolve) => {
        drained = resolve;
      });
      for (const controller of streams) controller.abort();
      for (const ws of wss.clients) ws.close(1001, "server shutting down");
      checkDrained();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, drainMs)))]);
      clearTimeout(timer);
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await closed;
      wss.close();
    },
  };
}
