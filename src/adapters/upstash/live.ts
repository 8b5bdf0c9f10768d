/**
 * Live events over Upstash's HTTP pub/sub stream, so a watcher on the edge
 * costs requests per change, not per second. The append script publishes
 * each event on a channel named like its stream key, as a JSON array
 * `[entryId, field1, value1, field2, value2, ...]`; this module holds the
 * streaming subscribe that carries those messages and hands them over
 * decoded.
 *
 * The protocol is the one `@upstash/redis` speaks in `Redis.subscribe()`:
 * `POST <url>/subscribe/<channel>[/<channel>...]` with
 * `Authorization: Bearer <token>` and `Accept: text/event-stream`, answered
 * by a stream of lines `data: subscribe,<channel>,<count>` (the subscription
 * holds) and `data: message,<channel>,<payload>`. A stream cannot change its
 * channels: following another channel takes a new stream, and unsubscribing
 * is aborting the request. Only web-standard APIs are used (`fetch`, a
 * streaming body reader, `TextDecoder`, timers), so it runs on Node, Deno
 * and workerd alike.
 *
 * Cost, in requests (the unit Upstash bills): a stream is one request however
 * long it stays open and however many messages it carries. Following keys no
 * stream carries yet costs one request: one new stream for the keys added in
 * the same tick. Following a key already carried, and leaving one, cost
 * nothing; a stream whose keys have all left is aborted, and a key left stays
 * on its stream (its messages dropped here) until then or the next reconnect.
 * A dropped stream costs one request per reconnect attempt (jittered
 * exponential backoff), and streams that are down together come back as one.
 * Nothing polls while a stream stands.
 *
 * Why not one stream for everything, reopened with every new key: the old
 * stream may still hold messages in flight when the new one confirms, and
 * aborting it would lose them. So a live stream is never replaced; only
 * streams that are down (carrying nothing) are folded into a new one. Each
 * key is carried by exactly one stream, so nothing arrives twice.
 *
 * @module
 */
import { BackendError, ConnectionClosedError } from "../../core/errors.ts";
import type { LiveHandler, LiveSubscription, StreamEntry } from "../../core/port/port.ts";
import { microtask } from "../../core/util.ts";

/** Options of {@link upstashLive}. */
export interface UpstashLiveOptions {
  /** REST URL of the database (`UPSTASH_REDIS_REST_URL`), e.g. `https://eu1-xyz.upstash.io`. */
  readonly url: string;
  /** REST token of the database (`UPSTASH_REDIS_REST_TOKEN`). */
  readonly token: string;
  /**
   * The `fetch` to open streams with (a runtime's own, or one that adds headers).
   * On Node the global `fetch` ends a response body that stayed silent for
   * 300 s (undici's `bodyTimeout`), so an idle stream is reopened every five
   * minutes: one request, and a `resumed()` that asks for a catch-up read. A
   * `fetch` whose dispatcher has `bodyTimeout: 0` keeps it open.
   * @default the global `fetch`, looked up at each call
   */
  readonly fetch?: typeof fetch | undefined;
  /**
   * Longest pause before the first reconnect of a dropped stream; the bound
   * doubles with every failed attempt in a row and the pause is drawn at
   * random below it, so isolates that lost their streams together do not
   * come back together.
   * @default 500
   */
  readonly retryMinMs?: number | undefined;
  /**
   * Cap of the reconnect pause. A stream that stayed up this long starts its
   * backoff afresh when it drops.
   * @default 15_000
   */
  readonly retryMaxMs?: number | undefined;
  /**
   * Attempts in a row that fail to bring a stream up (or that drop it again
   * within `retryMaxMs`) before the live path gives up and `failed` is called.
   * @default 12
   */
  readonly maxAttempts?: number | undefined;
  /**
   * How long a new stream may take to confirm every channel before it is
   * treated as dropped.
   * @default 10_000
   */
  readonly confirmTimeoutMs?: number | undefined;
  /**
   * Longest request path of one stream (`/subscribe/` and the encoded
   * channels); keys beyond it go to another stream.
   * @default 4000
   */
  readonly maxPathLength?: number | undefined;
  /** Called with what a handler method threw; the stream carries on. */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/** One upstream stream and its reconnects. */
interface Upstream {
  /** Channels the current (or next) request subscribes. */
  channels: string[];
  /** Channels the current request has confirmed. */
  readonly confirmed: Set<string>;
  phase: "connecting" | "live" | "waiting" | "closed";
  /** It was live and dropped: messages may have been missed until it is live again. */
  lost: boolean;
  /** Attempts in a row that did not keep a stream up. */
  attempts: number;
  liveSince: number;
  controller: AbortController | null;
  timer: ReturnType<typeof setTimeout> | null;
}

interface Waiter {
  readonly keys: readonly string[];
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** Statuses that say the endpoint will not stream, whatever we retry. */
function isRefusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/**
 * Decode a message published by the append script: a JSON array of the entry
 * id then field names and values. Null when it is not one.
 */
export function decodeLiveMessage(payload: string): StreamEntry | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return null;
  }
  if (!Array.isArray(parsed) || parsed.length % 2 !== 1) return null;
  const [id, ...flat] = parsed as unknown[];
  if (typeof id !== "string" || id === "") return null;
  const fields: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i];
    const value = flat[i + 1];
    if (typeof name !== "string") return null;
    // The script's cjson writes strings; a number is taken as its text.
    if (typeof value === "string") fields[name] = value;
    else if (typeof value === "number") fields[name] = String(value);
    else return null;
  }
  return { id, fields };
}

/**
 * Follow the live channels of stream keys through Upstash's streaming
 * subscribe. Each key rides on one upstream stream, shared by everything in
 * this isolate that follows it; keys added in the same tick share one stream
 * (as many as fit one request path), and streams that are down are folded
 * into one. See the module comment for what each call costs.
 *
 * `add()` resolves once the server confirmed every channel, so a catch-up
 * read started after it misses nothing. Keys are counted: a key added twice
 * is followed until it was removed twice. A dropped stream is reopened with
 * jittered backoff and `handler.resumed()` is called once it is back; a
 * refused one (a 4xx answer such as 404, 405 or 401, or one JSON reply instead
 * of a stream) calls `handler.failed()` once and ends everything, as does
 * `maxAttempts` failed reconnects in a row.
 *
 * @throws nothing itself. `add()` rejects with the error `handler.failed()`
 *   got once the live path failed, and with a `ConnectionClosedError` after
 *   `close()`.
 *
 * @example
 * ```ts
 * const live = upstashLive({ url, token }, {
 *   message: (key, entry) => deliver(key, entry),
 *   resumed: () => catchUpEverything(),
 *   failed: () => startPolling(),
 * });
 * await live.add(["pc:{job-1}:events"]);   // confirmed: now read what was missed
 * await live.close();
 * ```
 */
export function upstashLive(options: UpstashLiveOptions, handler: LiveHandler): LiveSubscription {
  const base = options.url.replace(/\/+$/, "");
  const fetchFn: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const retryMinMs = options.retryMinMs ?? 500;
  const retryMaxMs = options.retryMaxMs ?? 15_000;
  const maxAttempts = options.maxAttempts ?? 12;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 10_000;
  const maxPathLength = options.maxPathLength ?? 4000;

  /** Followed keys and how many times each was added. */
  const counts = new Map<string, number>();
  const upstreams: Upstream[] = [];
  const waiters = new Set<Waiter>();
  let failure: Error | null = null;
  let closed = false;
  let flushQueued = false;

  const safely = (call: () => void): void => {
    try {
      call();
    } catch (error) {
      options.onError?.(error);
    }
  };

  const isLive = (key: string): boolean =>
    upstreams.some((upstream) => upstream.phase === "live" && upstream.confirmed.has(key));

  const settleWaiters = (): void => {
    for (const waiter of waiters) {
      if (waiter.keys.every((key) => !counts.has(key) || isLive(key))) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };

  const stop = (upstream: Upstream): void => {
    upstream.phase = "closed";
    if (upstream.timer) clearTimeout(upstream.timer);
    upstream.timer = null;
    upstream.controller?.abort();
    upstream.controller = null;
    const index = upstreams.indexOf(upstream);
    if (index >= 0) upstreams.splice(index, 1);
  };

  const fail = (error: Error): void => {
    if (failure || closed) return;
    failure = error;
    for (const upstream of [...upstreams]) stop(upstream);
    for (const waiter of waiters) waiter.reject(error);
    waiters.clear();
    safely(() => handler.failed(error));
  };

  const goLive = (upstream: Upstream): void => {
    upstream.phase = "live";
    upstream.liveSince = Date.now();
    if (upstream.timer) clearTimeout(upstream.timer);
    upstream.timer = null;
    const missed = upstream.lost;
    upstream.lost = false;
    settleWaiters();
    if (missed) safely(() => handler.resumed());
  };

  const dropped = (upstream: Upstream, error: unknown): void => {
    if (upstream.phase === "closed" || failure || closed) return;
    upstream.controller?.abort();
    upstream.controller = null;
    if (upstream.timer) clearTimeout(upstream.timer);
    if (upstream.phase === "live") {
      upstream.lost = true;
      if (Date.now() - upstream.liveSince >= retryMaxMs) upstream.attempts = 0;
    }
    upstream.attempts += 1;
    if (upstream.attempts >= maxAttempts) {
      fail(
        new BackendError(
          `The Upstash subscribe stream could not be kept up (${upstream.attempts} attempts in a row): ${errorText(error)}. Live events fall back to polling.`,
          { cause: error },
        ),
      );
      return;
    }
    upstream.phase = "waiting";
    const bound = Math.min(retryMaxMs, retryMinMs * 2 ** (upstream.attempts - 1));
    const delay = bound / 2 + Math.random() * (bound / 2);
    upstream.timer = setTimeout(() => {
      upstream.timer = null;
      connect(upstream);
    }, delay);
  };

  const onLine = (upstream: Upstream, line: string): void => {
    if (!line.startsWith("data:")) return;
    const data = line.slice(line.startsWith("data: ") ? 6 : 5);
    if (data.startsWith("subscribe,")) {
      const channel = data.slice("subscribe,".length, data.lastIndexOf(","));
      upstream.confirmed.add(channel);
      if (upstream.phase === "connecting" && upstream.channels.every((c) => upstream.confirmed.has(c))) {
        goLive(upstream);
      }
      return;
    }
    if (!data.startsWith("message,")) return;
    const rest = data.slice("message,".length);
    // The channel ends at a comma, but a channel may hold commas: take the longest subscribed one that fits.
    let channel: string | undefined;
    for (const candidate of upstream.channels) {
      if (rest.startsWith(`${candidate},`) && (channel === undefined || candidate.length > channel.length)) {
        channel = candidate;
      }
    }
    if (channel === undefined || !counts.has(channel)) return;
    const entry = decodeLiveMessage(rest.slice(channel.length + 1));
    if (!entry) {
      // Something was appended, in a shape this version does not read: catch up from the stream instead.
      safely(() => handler.resumed());
      return;
    }
    const key = channel;
    safely(() => handler.message(key, entry));
  };

  const read = async (upstream: Upstream, controller: AbortController): Promise<void> => {
    const current = (): boolean => upstream.controller === controller && upstream.phase !== "closed";
    const path = `/subscribe/${upstream.channels.map(encodeURIComponent).join("/")}`;
    let response: Response;
    try {
      response = await fetchFn(`${base}${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${options.token}`,
          accept: "text/event-stream",
          "content-type": "application/json",
        },
        body: "[]",
        signal: controller.signal,
      });
    } catch (error) {
      if (current()) dropped(upstream, error);
      return;
    }
    if (!current()) {
      await response.body?.cancel().catch(() => {});
      return;
    }
    const refused = (detail: string): void =>
      fail(
        new BackendError(
          `The Upstash endpoint refused a streaming subscribe (${detail}): live events fall back to polling.`,
        ),
      );
    if (!response.ok || !response.body) {
      const text = await response.text().catch(() => "");
      if (!current()) return;
      const detail = `${response.status} ${text.slice(0, 200)}`.trim();
      if (response.ok || isRefusal(response.status)) refused(detail);
      else dropped(upstream, new BackendError(`The Upstash subscribe request failed: ${detail}`));
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    // A server that runs `subscribe` as an ordinary command answers one JSON reply, not a stream.
    let streaming = false;
    let head = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || !current()) break;
        const text = decoder.decode(value, { stream: true });
        if (!streaming && head.length < 200) head += text;
        buffer += text;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        if (buffer.length > 1_048_576) throw new BackendError("A line of the Upstash subscribe stream passed 1 MiB");
        for (const line of lines) {
          if (!current()) break;
          if (line.startsWith("data:")) streaming = true;
          onLine(upstream, line.endsWith("\r") ? line.slice(0, -1) : line);
        }
      }
      if (!current()) return;
      if (!streaming && /^\s*[{[]/.test(head)) refused(`${response.status} ${head.slice(0, 200).trim()}`);
      else dropped(upstream, new BackendError("The Upstash subscribe stream ended"));
    } catch (error) {
      if (current()) dropped(upstream, error);
    } finally {
      reader.cancel().catch(() => {});
    }
  };

  const connect = (upstream: Upstream): void => {
    if (upstream.phase === "closed" || failure || closed) return;
    upstream.channels = upstream.channels.filter((channel) => counts.has(channel));
    if (upstream.channels.length === 0) {
      stop(upstream);
      settleWaiters();
      return;
    }
    upstream.phase = "connecting";
    upstream.confirmed.clear();
    fold(upstream);
    const controller = new AbortController();
    upstream.controller = controller;
    upstream.timer = setTimeout(() => {
      upstream.timer = null;
      if (upstream.controller === controller && upstream.phase === "connecting") {
        dropped(
          upstream,
          new BackendError(`The Upstash subscribe stream was not confirmed within ${confirmTimeoutMs} ms`),
        );
      }
    }, confirmTimeoutMs);
    read(upstream, controller).catch((error: unknown) => {
      if (upstream.controller === controller) dropped(upstream, error);
    });
  };

  /** Take the keys of streams that are down (they carry nothing meanwhile) into `upstream`, as far as its path allows. */
  const fold = (upstream: Upstream): void => {
    for (const other of [...upstreams]) {
      if (other === upstream || other.phase !== "waiting") continue;
      const channels = [...upstream.channels, ...other.channels.filter((channel) => counts.has(channel))];
      if (pathLength(channels) > maxPathLength) continue;
      upstream.channels = channels;
      upstream.lost ||= other.lost;
      upstream.attempts = Math.max(upstream.attempts, other.attempts);
      stop(other);
    }
  };

  const open = (channels: string[]): void => {
    const upstream: Upstream = {
      channels,
      confirmed: new Set(),
      phase: "connecting",
      lost: false,
      attempts: 0,
      liveSince: 0,
      controller: null,
      timer: null,
    };
    upstreams.push(upstream);
    connect(upstream);
  };

  /** Split keys into groups whose request path fits `maxPathLength` (a key too long alone gets a stream of its own). */
  const chunk = (keys: readonly string[]): string[][] => {
    const groups: string[][] = [];
    let group: string[] = [];
    let length = pathLength([]);
    for (const key of keys) {
      const size = pathLength([key]) - pathLength([]);
      if (group.length > 0 && length + size > maxPathLength) {
        groups.push(group);
        group = [];
        length = pathLength([]);
      }
      group.push(key);
      length += size;
    }
    if (group.length > 0) groups.push(group);
    return groups;
  };

  const flush = (): void => {
    flushQueued = false;
    if (failure || closed) return;
    const carried = new Set(upstreams.flatMap((upstream) => upstream.channels));
    const uncovered = [...counts.keys()].filter((key) => !carried.has(key));
    for (const group of chunk(uncovered)) open(group);
  };

  return {
    add(keys) {
      if (closed) return Promise.reject(new ConnectionClosedError("The live subscription is closed"));
      if (failure) return Promise.reject(failure);
      for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1);
      if (!flushQueued && keys.some((key) => !isLive(key))) {
        flushQueued = true;
        microtask(flush);
      }
      return new Promise<void>((resolve, reject) => {
        waiters.add({ keys: [...keys], resolve, reject });
        settleWaiters();
      });
    },
    remove(keys) {
      for (const key of keys) {
        const count = (counts.get(key) ?? 0) - 1;
        if (count > 0) {
          counts.set(key, count);
          continue;
        }
        counts.delete(key);
      }
      for (const upstream of [...upstreams]) {
        if (!upstream.channels.some((channel) => counts.has(channel))) stop(upstream);
      }
      settleWaiters();
      return Promise.resolve();
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      for (const upstream of [...upstreams]) stop(upstream);
      const error = new ConnectionClosedError("The live subscription was closed");
      for (const waiter of waiters) waiter.reject(error);
      waiters.clear();
      return Promise.resolve();
    },
  };
}

/** Length of the request path that subscribes `channels`. */
function pathLength(channels: readonly string[]): number {
  let length = "/subscribe".length;
  for (const channel of channels) length += 1 + encodeURIComponent(channel).length;
  return length;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
