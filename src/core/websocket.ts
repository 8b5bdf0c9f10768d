import { isSlowConsumerError } from "./errors.ts";
import type { Logger, Metrics } from "./observe.ts";
import { type Authorize, checkAuthorize, type WatchTarget } from "./sse.ts";
import type { WatchItem, WatchOptions } from "./watch.ts";
import { ID_PATTERN, isResumeId } from "./wire.ts";

/**
 * Any WebSocket: `ws` in Node, `WebSocketPair` in Workers, Deno's and the
 * browser's. Only what the session calls.
 */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  readonly readyState: number;
  /** Bytes queued but not yet sent, where the runtime tells. */
  readonly bufferedAmount?: number;
  addEventListener(type: "message", listener: (event: { readonly data: unknown }) => void): void;
  addEventListener(type: "close", listener: () => void): void;
  /**
   * A protocol or transport error (`ws` emits one for a malformed frame and
   * then closes the socket; with no listener, Node would end the process).
   */
  addEventListener(type: "error", listener: (event: unknown) => void): void;
}

/** What a session reports to: the manager's logger and metrics, and its closing signal. */
export interface SessionContext {
  readonly closed: AbortSignal;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/**
 * Longest client message, in characters. The protocol's messages are under
 * 300; a longer one is refused and its socket closed with 1009. Set the same
 * bound as your WebSocket server's frame limit (`ws`: `maxPayload: 4096`).
 */
export const MAX_CLIENT_MESSAGE = 4096;

/** Options of `progress.serveWebSocket`. */
export interface WebSocketOptions<R = unknown> {
  /** The upgrade request, handed to `authorize`. */
  readonly request?: R;
  /** Decides each `watch`; refusal closes the socket with 4001 (401) or 4003 (403). @default allow */
  readonly authorize?: Authorize<R> | undefined;
  /**
   * Bytes buffered in the socket past which the session stops reading events
   * for it (they are coalesced meanwhile, terminal events kept); also the byte
   * budget of events held for each watch and not yet sent. Past the budget the
   * socket is closed with code 4008 and a reason; the client reconnects and
   * resumes from its last event id.
   * @default 1048576
   */
  readonly maxBufferedBytes?: number | undefined;
  /** Most targets one socket may watch at once. @default 100 */
  readonly maxWatches?: number | undefined;
}

/**
 * The JSON protocol. Client to server:
 * `{"type":"watch","op":"job-1","after":"171-0"}` or `{"type":"watch","scope":"user-7"}`,
 * `{"type":"unwatch","op":"job-1"}`, `{"type":"ping"}`.
 * Server to client: `{"type":"snapshot","op","snapshot"}`, `{"type":"reset","op"|"scope","snapshot"}`,
 * `{"type":"event","op"|"scope","event"}`, `{"type":"pong"}`, `{"type":"error","code","message"}`.
 */
export type ServerMessage =
  | { readonly type: "snapshot" | "reset"; readonly op?: string; readonly scope?: string; readonly snapshot: unknown }
  | { readonly type: "event"; readonly op?: string; readonly scope?: string; readonly event: unknown }
  | { readonly type: "pong" }
  | {
      readonly type: "error";
      readonly code: string;
      readonly message: string;
      /** The watch this error ended, when it is about one. */
      readonly op?: string;
      readonly scope?: string;
    };

/** Close code of a socket whose client stopped reading past its byte budget. */
export const SLOW_CONSUMER_CLOSE_CODE = 4008;

/** Messages of live events, built once per shared event object and target. */
const messages = new WeakMap<object, Map<string, string>>();

function eventMessage(event: object, key: string, where: { op?: string; scope?: string }): string {
  let byTarget = messages.get(event);
  if (!byTarget) {
    byTarget = new Map();
    messages.set(event, byTarget);
  }
  let message = byTarget.get(key);
  if (message === undefined) {
    message = JSON.stringify({ type: "event", ...where, event });
    byTarget.set(key, message);
  }
  return message;
}

const OPEN = 1;

/** What a client is told when a watch fails: a short reason, never the backend's text. */
export const WATCH_FAILED = "Reading progress failed; watch again to resume from your last event id.";

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // already closed
  }
}

function targetKey(t: WatchTarget): string {
  return t.op !== undefined ? `op:${t.op}` : `scope:${t.scope}`;
}

function parse(data: unknown): { type?: unknown; op?: unknown; scope?: unknown; after?: unknown } | null {
  if (typeof data !== "string") return null;
  try {
    const v: unknown = JSON.parse(data);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Serve the protocol on one socket until it closes. Resolves when the socket closes.
 */
export function serveSession<R>(
  socket: WebSocketLike,
  watch: (target: WatchTarget, options: WatchOptions) => AsyncGenerator<WatchItem, void, undefined>,
  options: WebSocketOptions<R>,
  context: SessionContext,
): Promise<void> {
  const { closed, logger, metrics } = context;
  const maxBuffered = options.maxBufferedBytes ?? 1_048_576;
  const maxWatches = options.maxWatches ?? 100;
  const watches = new Map<string, AbortController>();
  const session = new AbortController();
  const send = (message: ServerMessage): void => {
    if (socket.readyState === OPEN) socket.send(JSON.stringify(message));
  };
  const error = (code: string, message: string): void => send({ type: "error", code, message });
  const drained = async (): Promise<void> => {
    while ((socket.bufferedAmount ?? 0) > maxBuffered && !session.signal.aborted) {
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const follow = async (target: WatchTarget, after: string | undefined): Promise<void> => {
    const key = targetKey(target);
    if (watches.has(key)) return;
    if (watches.size >= maxWatches) return error("too_many_watches", `At most ${maxWatches} watches per socket`);
    const controller = new AbortController();
    watches.set(key, controller);
    const refused = await checkAuthorize(options.authorize, options.request as R, target);
    if (refused) {
      socket.close(refused.status === 401 ? 4001 : 4003, refused.status === 401 ? "unauthorized" : "forbidden");
      session.abort();
      return;
    }
    const where = target.op !== undefined ? { op: target.op } : { scope: target.scope };
    try {
      // Ending the session aborts every watch's controller: no listener per watch on the session.
      const signal = controller.signal;
      for await (const item of watch(target, { after, signal, maxQueueBytes: maxBuffered })) {
        await drained();
        if (signal.aborted) break;
        if (item.kind === "event") {
          if (socket.readyState === OPEN) socket.send(eventMessage(item.event, key, where));
        } else send({ type: item.kind, ...where, snapshot: item.snapshot });
      }
    } catch (e) {
      if (isSlowConsumerError(e)) {
        closeQuietly(
          socket,
          SLOW_CONSUMER_CLOSE_CODE,
          "slow consumer: byte budget exceeded; resume from your last event id",
        );
        session.abort();
      } else {
        // The cause (backend text, key names) goes to the log, never to the client.
        logger.error?.("a WebSocket watch failed", { ...where, error: e });
        send({ type: "error", code: "watch_failed", message: WATCH_FAILED, ...where });
      }
    } finally {
      if (watches.get(key) === controller) watches.delete(key);
    }
  };

  return new Promise<void>((resolve) => {
    const end = (): void => {
      session.abort();
      for (const c of watches.values()) c.abort();
      watches.clear();
      resolve();
    };
    closed.addEventListener("abort", () => {
      closeQuietly(socket, 1001, "server closing");
      end();
    });
    socket.addEventListener("close", end);
    // A malformed frame (invalid UTF-8, a reserved bit, a frame over the limit) or a broken
    // connection: only this socket ends, with a close code; the process and other sockets go on.
    socket.addEventListener("error", (event) => {
      const cause = event instanceof Error ? event : (event as { error?: unknown } | null)?.error;
      metrics.increment("connection_errors", 1, { transport: "websocket" });
      logger.warn?.("a WebSocket failed; closing it", {
        error: cause instanceof Error ? cause.message : String(cause ?? "error"),
        code: cause instanceof Error ? (cause as Error & { code?: unknown }).code : undefined,
      });
      closeQuietly(socket, 1011, "socket error");
      end();
    });
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string" && event.data.length > MAX_CLIENT_MESSAGE) {
        metrics.increment("connection_errors", 1, { transport: "websocket" });
        closeQuietly(socket, 1009, "message too big");
        end();
        return;
      }
      const msg = parse(event.data);
      if (!msg) return error("bad_message", "Messages are JSON objects with a type: watch, unwatch or ping");
      if (msg.type === "ping") return send({ type: "pong" });
      const op = typeof msg.op === "string" ? msg.op : undefined;
      const scope = typeof msg.scope === "string" ? msg.scope : undefined;
      const id = op ?? scope;
      if (
        (msg.type === "watch" || msg.type === "unwatch") &&
        (id === undefined || !ID_PATTERN.test(id) || (op && scope))
      ) {
        return error("bad_target", "Give exactly one of op or scope, a valid id");
      }
      const target: WatchTarget = op !== undefined ? { op } : { scope: scope as string };
      if (msg.type === "watch") {
        if (msg.after !== undefined && msg.after !== null && !isResumeId(msg.after)) {
          return error(
            "bad_after",
            "after must be a stream entry id such as 1732890000000-0 (an event id already seen)",
          );
        }
        void follow(target, typeof msg.after === "string" ? msg.after : undefined);
        return;
      }
      if (msg.type === "unwatch") {
        watches.get(targetKey(target))?.abort();
        watches.delete(targetKey(target));
        return;
      }
      error("bad_message", `Unknown message type ${JSON.stringify(msg.type)}`);
    });
  });
}
