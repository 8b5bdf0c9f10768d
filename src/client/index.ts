/**
 * The browser client: follow one operation (or a whole scope) over Server-Sent
 * Events (`follow`) or the WebSocket protocol (`followWebSocket`), with resume
 * from the last event id, de-duplication, jittered exponential backoff and an
 * ETA estimate.
 *
 * `follow` uses `fetch` with a streaming body rather than `EventSource`, so the
 * backoff is ours, headers (`Authorization`) can be sent and the reconnect
 * carries `Last-Event-ID`. No dependencies, no Node APIs, under 3 KB gzipped
 * for `follow` alone; it deliberately imports nothing from the server-side core.
 *
 * @example
 * ```ts
 * import { follow } from "progresscast/client";
 *
 * const job = follow(`/ops/${op}/events`, {
 *   headers: { authorization: `Bearer ${token}` },
 *   onState: (s) => render(s.progress, s.message),
 * });
 * await job.done; // resolves after `completed`, `failed` or `cancelled`
 * ```
 *
 * @module
 */

/** Lifecycle status of an operation. */
export type Status = "queued" | "running" | "completed" | "failed" | "cancelled";

/** Connection status reported by {@link FollowOptions.onStatus}. */
export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

/** The state of one operation: the merge of its events, as the server sends it in a snapshot. */
export interface ProgressState<TData = Record<string, unknown>> {
  /** Operation id. */
  readonly op: string;
  /** Stream entry id of the latest event (`1732372800000-0`). */
  readonly id?: string;
  /** Per-operation sequence number; never goes back. */
  readonly seq: number;
  /** Event type: `progress` or an application's own (`file_completed`). */
  readonly type: string;
  readonly status: Status;
  /** Percent, 0..100. */
  readonly progress?: number;
  readonly current?: number;
  readonly total?: number;
  readonly message?: string;
  /** Correlation id. */
  readonly cid?: string;
  /** ISO 8601 timestamp of the latest event. */
  readonly ts: string;
  /** Application metadata. */
  readonly data?: TData;
  /** Seconds remaining, when the server knows. */
  readonly eta?: number;
  /** Cancellation reason, when cancellation was requested. */
  readonly cancel?: string;
  /** Attempt of the operation: 1, one more each time it is restarted. A new attempt replaces the state. */
  readonly attempt?: number;
}

/**
 * What the client delivers: the state sent on each (re)connect (`kind`
 * `snapshot`, or `reset` when the resume id was older than the kept history),
 * then each event once (`kind` `event`), in order.
 */
export interface ProgressEvent<TData = Record<string, unknown>> extends ProgressState<TData> {
  readonly kind: "snapshot" | "reset" | "event";
}

/** One progress observation, for {@link estimateRemaining}. */
export interface ProgressSample {
  /** Milliseconds (`Date.now()`). */
  readonly at: number;
  /** Percent, 0..100. */
  readonly progress: number;
}

/** Options of {@link follow}. */
export interface FollowOptions<TData = Record<string, unknown>> extends FollowCallbacks<TData> {
  /**
   * Request headers, or a function called before every (re)connect so a
   * refreshed token is picked up.
   * @default undefined
   * @example { authorization: `Bearer ${token}` }
   * @example () => ({ authorization: `Bearer ${auth.currentToken()}` })
   */
  readonly headers?: HeadersInit | (() => HeadersInit | Promise<HeadersInit>);
  /**
   * The `fetch` to use, e.g. one that sets `credentials: "include"` or a test double.
   * @default globalThis.fetch
   * @example (url, init) => fetch(url, { ...init, credentials: "include" })
   */
  readonly fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

/**
 * What {@link follow} and {@link followWebSocket} share: resume, backoff,
 * when to stop, and the callbacks.
 */
export interface FollowCallbacks<TData = Record<string, unknown>> {
  /**
   * Stops following when aborted, like {@link Follow.close}.
   * @default undefined
   * @example AbortSignal.timeout(60_000)
   */
  readonly signal?: AbortSignal;
  /**
   * Resume from this event id on the first connect (e.g. one kept in `sessionStorage`).
   * @default undefined
   * @example sessionStorage.getItem(`last-id:${op}`) ?? undefined
   */
  readonly lastEventId?: string;
  /**
   * Base delay of the reconnect backoff. Attempt `n` waits a random time in
   * `[0, min(maxDelayMs, base * 2^n))` (full jitter); the base is the larger
   * of this and the server's `retry:` hint. The count starts over after a
   * connection that brought new events or stayed open longer than `maxDelayMs`.
   * @default 500
   * @example 1_000
   */
  readonly minDelayMs?: number;
  /**
   * Upper bound of one reconnect delay.
   * @default 15000
   * @example 30_000
   */
  readonly maxDelayMs?: number;
  /**
   * Stop after the first terminal event (`completed`, `failed`, `cancelled`).
   * Set `false` for scope streams, which carry many operations and never end.
   * @default true
   * @example false
   */
  readonly untilTerminal?: boolean;
  /**
   * Called with each snapshot, reset and (de-duplicated) event.
   * @default undefined
   * @example (e) => { if (e.type === "file_completed") list.add(e.data?.file) }
   */
  readonly onEvent?: (event: ProgressEvent<TData>) => void;
  /**
   * Called with the merged state of an operation each time it changes.
   * @default undefined
   * @example (s) => bar.set(s.progress ?? 0)
   */
  readonly onState?: (state: ProgressState<TData>) => void;
  /**
   * Called on every failure: a network error, an HTTP error, data that is not
   * a progress event (skipped). `error.retrying` says whether the client goes
   * on: it retries all of them but 401, 403 and 404, where retrying cannot
   * help (`done` then rejects with the error). A stream the server ends before
   * the terminal event is resumed without an error.
   * @default undefined
   * @example (e) => { if (!e.retrying) showLogin() }
   */
  readonly onError?: (error: FollowError) => void;
  /**
   * Called when the connection status changes.
   * @default undefined
   * @example (s) => badge.textContent = s
   */
  readonly onStatus?: (status: ConnectionStatus) => void;
  /**
   * Source of randomness for the backoff jitter; for tests.
   * @default Math.random
   * @example () => 0.5
   */
  readonly random?: () => number;
}

/** A followed stream. Also async-iterable: `for await (const e of follow(url))`. */
export interface Follow<TData = Record<string, unknown>> extends AsyncIterable<ProgressEvent<TData>> {
  /** The followed operation's state (for a scope: the one updated last); `undefined` before the snapshot. */
  readonly state: ProgressState<TData> | undefined;
  /** State of every operation seen, by op id. */
  readonly states: ReadonlyMap<string, ProgressState<TData>>;
  /** Id of the last event received; sent as `Last-Event-ID` on reconnect. */
  readonly lastEventId: string | undefined;
  readonly status: ConnectionStatus;
  /**
   * Every delivered snapshot, reset and event from the moment of iteration on
   * (subscribe before your first `await`). Ends when following stops; throws
   * the error that stopped it (401, 403, 404). Breaking out does not close.
   */
  readonly events: AsyncIterable<ProgressEvent<TData>>;
  /**
   * Estimated seconds remaining for `op` (default: {@link Follow.state}'s op):
   * the server's `eta` counted down since it arrived, else {@link estimateRemaining}
   * over the progress seen; `0` once completed, `undefined` when unknown.
   */
  remainingSeconds(op?: string): number | undefined;
  /** Stops following and aborts the request. Idempotent. */
  close(): void;
  /** Resolves when following stops (terminal event, `close()`, `signal`); rejects on 401, 403, 404. */
  readonly done: Promise<void>;
}

/**
 * A failure while following. `status` is the HTTP status when the server
 * answered with one; `retrying` is false when the client has given up.
 */
export class FollowError extends Error {
  override name = "FollowError";
  readonly status: number | undefined;
  readonly retrying: boolean;
  constructor(message: string, status: number | undefined, retrying: boolean, cause?: unknown) {
    super(message, { cause });
    this.status = status;
    this.retrying = retrying;
  }
}

/** Whether a value is a {@link FollowError}, across realms and bundled copies. */
export const isFollowError = (error: unknown): error is FollowError =>
  error instanceof Error && error.name === "FollowError";

const TERMINAL = ["completed", "failed", "cancelled"];
const WINDOW_MS = 10_000;

/**
 * Estimated seconds remaining from the progress rate: the average from the
 * newest sample at least `windowMs` older than the last one (or from the first
 * sample) up to `now`, so a burst of updates does not swing it and a stall
 * makes it grow. `undefined` until progress has moved over at least a second.
 * `windowMs` defaults to 10 000, `now` to `Date.now()`.
 *
 * @example
 * ```ts
 * estimateRemaining([{ at: 0, progress: 10 }, { at: 10_000, progress: 30 }], { now: 10_000 }); // 35
 * ```
 */
export function estimateRemaining(
  samples: readonly ProgressSample[],
  options: { readonly now?: number; readonly windowMs?: number } = {},
): number | undefined {
  const last = samples[samples.length - 1];
  if (!last) return undefined;
  const now = Math.max(options.now ?? Date.now(), last.at);
  let ref = samples[0];
  // The newest sample at least a window old, so the rate spans a full window.
  for (const s of samples) if (s.at <= last.at - (options.windowMs ?? WINDOW_MS)) ref = s;
  if (!ref || now - ref.at < 1000 || last.progress <= ref.progress) return undefined;
  return Math.max(0, (100 - last.progress) / ((last.progress - ref.progress) / ((now - ref.at) / 1000)));
}

/** `ms-seq` ids compared as pairs; `undefined` when either is not a stream id. */
const compareIds = (a: string, b: string): number | undefined => {
  const x = /^(\d+)-(\d+)$/.exec(a);
  const y = /^(\d+)-(\d+)$/.exec(b);
  return x && y ? Number(x[1]) - Number(y[1]) || Number(x[2]) - Number(y[2]) : undefined;
};

/** Calls a user callback; its exceptions are rethrown outside the read loop so they cannot break it. */
const call = <T>(fn: ((arg: T) => void) | undefined, arg: T): void => {
  try {
    fn?.(arg);
  } catch (e) {
    setTimeout(() => {
      throw e;
    });
  }
};

/** Resolves a URL once, so a bad one throws at the call; `location` is read only for a relative one (Deno throws on it). */
const resolve = (url: string | URL): string => {
  try {
    return new URL(url).href;
  } catch {
    return new URL(url, globalThis.location?.href).href;
  }
};

/** What a transport gets for one connection. */
interface Link {
  /** Aborted when the connection must end. */
  readonly signal: AbortSignal;
  /** Resume after this event id. */
  readonly after: string | undefined;
  /** The connection is open. */
  open(): void;
  /** Handles one message (`name` as an SSE event name, `data` its JSON text); true when following should stop. */
  handle(name: string, data: string, id: string): boolean;
  /** The server's reconnect hint. */
  retry(ms: number): void;
  /** Whether the followed state is terminal (a stream ended after it is done, not dropped). */
  terminal(): boolean;
}

/** One connection: resolves true when following should stop, false to reconnect; throws a {@link FollowError} to report. */
type Connect = (link: Link) => Promise<boolean>;

/** The transport-independent part: state, de-duplication, backoff, `events`, `done`. */
function engine<TData>(options: FollowCallbacks<TData>, href: string, connect: Connect): Follow<TData> {
  type State = ProgressState<TData>;
  type Event = ProgressEvent<TData>;
  interface Sub {
    q: Event[];
    wake?: (() => void) | undefined;
  }
  const { untilTerminal = true, random = Math.random, minDelayMs = 500, maxDelayMs = 15_000 } = options;
  const states = new Map<string, State>();
  const lastByOp = new Map<string, string>();
  const seen = new Set<string>();
  const samples = new Map<string, ProgressSample[]>();
  const etas = new Map<string, { eta: number; at: number }>();
  const subs = new Set<Sub>();
  const controller = new AbortController();
  const { signal } = controller;
  let conn: AbortController | undefined;
  let current: State | undefined;
  let lastEventId = options.lastEventId;
  let status: ConnectionStatus = "connecting";
  let retryMs = 0;
  let failure: FollowError | undefined;
  let ended = false;

  const setStatus = (s: ConnectionStatus): void => {
    if (s === status) return;
    status = s;
    call(options.onStatus, s);
  };
  const stop = (error?: FollowError): void => {
    if (ended) return;
    ended = true;
    failure = error;
    options.signal?.removeEventListener("abort", close);
    conn?.abort();
    controller.abort();
    for (const s of subs) s.wake?.();
    setStatus("closed");
  };
  const close = (): void => stop();
  if (options.signal?.aborted) close();
  options.signal?.addEventListener("abort", close, { once: true });

  /** Handles one message; returns true when following should stop (terminal event). */
  const handle = (name: string, data: string, id: string): boolean => {
    let e: Event;
    // An operation not known yet (or a scope's reset) has no snapshot: nothing to merge.
    if (data === "null") return false;
    try {
      const kind = name === "snapshot" || name === "reset" ? name : "event";
      e = { ...JSON.parse(data), kind };
      if (typeof e.op !== "string") throw new TypeError("no op");
      if (kind === "event" && id) e = { ...e, id };
    } catch (cause) {
      call(
        options.onError,
        new FollowError(`Ignored data that is not a progress event: ${data}`, undefined, true, cause),
      );
      return false;
    }
    const { op, kind } = e;
    const prev = states.get(op);
    if (kind === "event" && e.id) {
      const last = lastByOp.get(op);
      const order = last === undefined ? undefined : compareIds(e.id, last);
      if (seen.has(e.id) || (order !== undefined && order <= 0)) return false;
      seen.add(e.id);
      // Bounded: older duplicates are still caught by the per-op id order.
      if (seen.size > 1000) for (const old of seen) if (seen.delete(old)) break;
      lastByOp.set(op, e.id);
      lastEventId = e.id;
    }
    if (kind === "reset") lastByOp.delete(op);
    // History that follows a snapshot is delivered but must not move the state back.
    const apply = kind === "reset" || !prev || e.seq > prev.seq || (kind === "snapshot" && e.seq === prev.seq);
    if (apply) {
      const { kind: _kind, ...fields } = e;
      // The first event of a new attempt (a restarted job) replaces the state: nothing of the old attempt holds.
      const attempt =
        kind === "event" && prev?.attempt !== undefined && e.attempt !== undefined && e.attempt > prev.attempt;
      if (attempt) samples.delete(op);
      let next: State = kind === "event" && prev && !attempt ? { ...prev, ...fields } : fields;
      // As the server's snapshot: a terminal event without a message of its own drops the last step's.
      if (next !== fields && TERMINAL.includes(e.status) && e.message === undefined && next.message !== undefined) {
        const { message: _message, ...rest } = next;
        next = rest;
      }
      states.set(op, next);
      current = next;
      const now = Date.now();
      if (typeof e.eta === "number") etas.set(op, { eta: e.eta, at: now });
      else if (e.progress !== undefined) etas.delete(op);
      if (typeof next.progress === "number") {
        const list = samples.get(op) ?? [];
        list.push({ at: now, progress: next.progress });
        // Keep the window and one sample before it: enough for estimateRemaining.
        while (list.length > 2 && (list[1]?.at ?? now) <= now - WINDOW_MS) list.shift();
        samples.set(op, list);
      }
    }
    call(options.onEvent, e);
    for (const s of subs) {
      s.q.push(e);
      s.wake?.();
    }
    if (apply) call(options.onState, states.get(op) as State);
    return untilTerminal && kind === "event" && TERMINAL.includes(e.status);
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      signal.addEventListener("abort", wake);
    });

  const run = async (): Promise<void> => {
    call(options.onStatus, status);
    let attempt = 0;
    while (!ended) {
      const before = lastEventId;
      const started = Date.now();
      const ac = new AbortController();
      conn = ac;
      try {
        const link: Link = {
          signal: ac.signal,
          after: lastEventId,
          open: () => setStatus("open"),
          handle,
          retry: (ms) => {
            retryMs = ms;
          },
          terminal: () => untilTerminal && !!current && TERMINAL.includes(current.status),
        };
        if (await connect(link)) return stop();
      } catch (cause) {
        if (ended) return;
        const error = isFollowError(cause)
          ? cause
          : new FollowError(`Connection to ${href} failed: ${String(cause)}`, undefined, true, cause);
        call(options.onError, error);
        if (!error.retrying) return stop(error);
      } finally {
        // Releases the connection whichever way it ended.
        ac.abort();
      }
      if (ended) return;
      // A connection that brought new events, or lasted, was healthy: start the backoff over.
      if (lastEventId !== before || Date.now() - started > maxDelayMs) attempt = 0;
      setStatus("reconnecting");
      await sleep(random() * Math.min(maxDelayMs, Math.max(minDelayMs, retryMs) * 2 ** attempt++));
    }
  };

  const done = new Promise<void>((resolve, reject) => {
    const finish = (): void => (failure ? reject(failure) : resolve());
    signal.addEventListener("abort", finish, { once: true });
    if (signal.aborted) finish();
  });
  // `done` is for those who await it; nobody else should see an unhandled rejection.
  done.catch(() => {});
  if (!ended) queueMicrotask(() => void run());

  const events: AsyncIterable<Event> = {
    [Symbol.asyncIterator]: () => {
      const sub: Sub = { q: [] };
      subs.add(sub);
      return (async function* () {
        try {
          for (;;) {
            const e = sub.q.shift();
            if (e) yield e;
            else if (ended) {
              if (failure) throw failure;
              return;
            } else await new Promise<void>((r) => (sub.wake = r));
          }
        } finally {
          subs.delete(sub);
        }
      })();
    },
  };

  return {
    get state() {
      return current;
    },
    states,
    get lastEventId() {
      return lastEventId;
    },
    get status() {
      return status;
    },
    events,
    [Symbol.asyncIterator]: events[Symbol.asyncIterator],
    remainingSeconds(op = current?.op) {
      const s = op === undefined ? undefined : states.get(op);
      if (!s || op === undefined) return undefined;
      if (s.status === "completed") return 0;
      if (TERMINAL.includes(s.status)) return undefined;
      const eta = etas.get(op);
      if (eta) return Math.max(0, eta.eta - (Date.now() - eta.at) / 1000);
      return estimateRemaining(samples.get(op) ?? []);
    },
    close,
    done,
  };
}

/**
 * Follows an SSE progress stream: the snapshot first, then each event once,
 * resuming from the last event id after any disconnect and reconnecting with
 * jittered exponential backoff until a terminal event, `close()` or `signal`.
 * It never gives up on its own except on 401, 403 and 404, where retrying
 * cannot help: those call `onError`, reject `done` and end `events` with the error.
 * A `204 No Content` answer stops it quietly.
 *
 * @throws {TypeError} synchronously when `url` is not a valid URL.
 * @example
 * ```ts
 * const job = follow(`/ops/${op}/events`);
 * for await (const e of job) {
 *   bar.value = e.progress ?? 0;
 *   eta.textContent = `${Math.round(job.remainingSeconds() ?? 0)} s`;
 * }
 * ```
 * @example
 * ```ts
 * // All of a user's operations; never ends until closed.
 * const all = follow("/me/ops/events", { untilTerminal: false, onState: (s) => rows.update(s.op, s) });
 * all.close();
 * ```
 */
export function follow<TData = Record<string, unknown>>(
  url: string | URL,
  options: FollowOptions<TData> = {},
): Follow<TData> {
  const href = resolve(url);
  return engine(options, href, async (link) => {
    const target = new URL(href);
    const headers = new Headers(typeof options.headers === "function" ? await options.headers() : options.headers);
    headers.set("accept", "text/event-stream");
    if (link.after) {
      headers.set("last-event-id", link.after);
      target.searchParams.set("after", link.after);
    }
    const res = await (options.fetch ?? fetch)(target.href, { headers, signal: link.signal });
    if (res.status === 204) return true;
    if (!res.ok || !res.body) {
      const fatal = res.status === 401 || res.status === 403 || res.status === 404;
      res.body?.cancel().catch(() => {});
      throw new FollowError(`${target.href} answered ${res.status} ${res.statusText}`, res.status, !fatal);
    }
    link.open();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let data: string[] = [];
    let name = "";
    let id = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return link.terminal();
      buf += value;
      // A line ends at \r\n, \n or \r; a trailing \r may be half of a \r\n still in flight.
      let m: RegExpExecArray | null;
      // biome-ignore lint/suspicious/noAssignInExpressions: the usual exec loop
      while ((m = /\r\n|\n|\r(?=[\s\S])/.exec(buf))) {
        const line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (!line) {
          if (data.length && link.handle(name || "message", data.join("\n"), id)) {
            reader.cancel().catch(() => {});
            return true;
          }
          data = [];
          name = id = "";
          continue;
        }
        const colon = line.indexOf(":");
        if (colon === 0) continue; // comment, e.g. `: ping`
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + (line[colon + 1] === " " ? 2 : 1));
        if (field === "data") data.push(val);
        else if (field === "event") name = val;
        else if (field === "id" && !val.includes("\0")) id = val;
        else if (field === "retry" && /^\d+$/.test(val)) link.retry(Number(val));
      }
    }
  });
}

/** The part of a WebSocket {@link followWebSocket} uses. */
export interface WebSocketClient {
  /** Sends a text frame. */
  send(data: string): void;
  /** Closes the socket. */
  close(code?: number, reason?: string): void;
  /** Called once the socket is open. */
  onopen: ((event: never) => void) | null;
  /** Called with each message. */
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  /** Called when the socket closes, with the close code (4001 and 4003 are refusals). */
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  /** Called on a socket error (a close follows). */
  onerror: ((event: never) => void) | null;
}

/** A WebSocket class: the browser's, Deno's, or `WebSocket` from `ws` in Node 20. */
export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketClient;

/** Options of {@link followWebSocket}. */
export interface WebSocketFollowOptions<TData = Record<string, unknown>> extends FollowCallbacks<TData> {
  /**
   * The WebSocket class: the global one in browsers, Deno and Node 22; `WebSocket` from `ws` on Node 20.
   * @default globalThis.WebSocket
   * @example (await import("ws")).WebSocket
   */
  readonly WebSocket?: WebSocketClass;
  /**
   * Subprotocols to offer. Browsers cannot set headers on a WebSocket: carry a
   * token here or in the URL's query, and check it in the server's `authorize`.
   * @default undefined
   * @example ["progresscast", `token.${token}`]
   */
  readonly protocols?: string | string[];
}

/**
 * Follows one operation or a scope over the WebSocket protocol of
 * `progress.serveWebSocket`, with the same callbacks, de-duplication, resume
 * (the watch is sent again with `after` = the last event id) and backoff as
 * {@link follow}. A socket closed with 4001 or 4003 (refused by `authorize`)
 * stops it: `onError` gets a {@link FollowError} with status 401 or 403 and
 * `done` rejects. Server `error` messages and sockets that fail to open go to
 * `onError` and following goes on; a socket closed after opening is resumed quietly.
 *
 * @throws {TypeError} synchronously when `url` is not a valid URL, or when no WebSocket class is available.
 * @example
 * ```ts
 * import { followWebSocket } from "progresscast/client";
 * const job = followWebSocket("wss://api.example.com/progress", { op }, {
 *   onState: (s) => render(s.progress, s.message),
 * });
 * await job.done;
 * ```
 */
export function followWebSocket<TData = Record<string, unknown>>(
  url: string | URL,
  target: { readonly op: string } | { readonly scope: string },
  options: WebSocketFollowOptions<TData> = {},
): Follow<TData> {
  const href = resolve(url).replace(/^http/, "ws");
  const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (!WS) throw new TypeError("No WebSocket class here: pass options.WebSocket (e.g. WebSocket from the ws package)");
  return engine(
    options,
    href,
    (link) =>
      new Promise<boolean>((resolve, reject) => {
        const ws = new WS(href, options.protocols);
        const end = (stop: boolean): void => {
          ws.onclose = ws.onmessage = null;
          ws.close(1000);
          resolve(stop);
        };
        link.signal.addEventListener("abort", () => end(true));
        let opened = false;
        ws.onopen = () => {
          opened = true;
          link.open();
          ws.send(JSON.stringify({ type: "watch", ...target, ...(link.after ? { after: link.after } : {}) }));
        };
        ws.onmessage = ({ data }) => {
          let m: { type?: string; snapshot?: unknown; event?: { type?: string; id?: string }; message?: string };
          try {
            m = JSON.parse(String(data));
          } catch {
            m = {};
          }
          const { type } = m;
          if (type === "error") {
            call(options.onError, new FollowError(`${href}: ${m.message}`, undefined, true, m));
          } else if (type === "event" && m.event) {
            if (link.handle(m.event.type ?? "progress", JSON.stringify(m.event), m.event.id ?? "")) end(true);
          } else if (type === "snapshot" || type === "reset") {
            link.handle(type, JSON.stringify(m.snapshot ?? null), "");
          }
        };
        ws.onerror = () => {};
        ws.onclose = ({ code, reason }) => {
          if (code === 4001 || code === 4003) {
            const status = code === 4001 ? 401 : 403;
            reject(new FollowError(`${href} refused the watch: ${code} ${reason}`, status, false));
          } else if (opened || link.terminal()) resolve(link.terminal());
          else reject(new FollowError(`${href} closed before opening: ${code} ${reason}`, undefined, true));
        };
      }),
  );
}
