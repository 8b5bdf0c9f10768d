/**
 * SSE on the runtimes: read a `text/event-stream` body as it streams (with
 * eventsource-parser), and the SSE checks shared by workerd and Deno. Each
 * runtime serves `GET /sse?op=<op>` with `progress.sse(request, op)` and
 * publishes from outside the request; the checks only see HTTP and the
 * backend's stream. Runtime-neutral (no `node:*`, no `Deno.*`, no runtime
 * import of the library), like scenarios.ts.
 *
 * @module
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { ProgressUpdate } from "../../src/index.ts";
import { equal, matches, ScenarioError } from "./scenarios.ts";

/** An SSE body being read: messages so far, `retry:` values, and the end of the stream. */
export interface SseRead {
  readonly messages: EventSourceMessage[];
  readonly retries: number[];
  /** Resolves when the server closes the body; rejects if the body errors. */
  readonly closed: Promise<void>;
  /** Wait until `count` messages arrived; fails early if the stream closes first. */
  waitFor(count: number, timeoutMs: number): Promise<void>;
}

/** Read an SSE body with eventsource-parser, as it streams. */
export function readSse(body: AsyncIterable<Uint8Array>): SseRead {
  const messages: EventSourceMessage[] = [];
  const retries: number[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const parser = createParser({
    onEvent(message) {
      messages.push(message);
      wake?.();
    },
    onRetry(ms) {
      retries.push(ms);
    },
    onError(error) {
      throw error;
    },
  });
  const closed = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) parser.feed(decoder.decode(chunk, { stream: true }));
      parser.feed(decoder.decode());
    } finally {
      ended = true;
      wake?.();
    }
  })();
  closed.catch(() => {}); // observed by whoever awaits it
  const describe = (): string => JSON.stringify(messages.map((m) => [m.event, m.id]));
  return {
    messages,
    retries,
    closed,
    async waitFor(count, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (ended)
          throw new ScenarioError(`the stream closed after ${messages.length} of ${count} messages: ${describe()}`);
        const left = deadline - Date.now();
        if (left <= 0)
          throw new ScenarioError(`${messages.length} of ${count} messages after ${timeoutMs} ms: ${describe()}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    },
  };
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ScenarioError(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The parts of an SSE message a check compares: `event:`, `id:` and some of the JSON `data:`. */
export function summarize(message: EventSourceMessage): { event?: string; id?: string; data: Record<string, unknown> } {
  const data = JSON.parse(message.data) as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const key of ["id", "op", "seq", "type", "status", "current", "message"]) {
    if (data[key] !== undefined) picked[key] = data[key];
  }
  return {
    ...(message.event === undefined ? {} : { event: message.event }),
    ...(message.id === undefined ? {} : { id: message.id }),
    data: picked,
  };
}

/** The little of a fetch Response the checks use (Node's, miniflare's and Deno's all fit). */
export interface SseResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: AsyncIterable<Uint8Array> | null;
  text(): Promise<string>;
}

/** What the SSE checks need from a runtime. */
export interface SseHarness {
  /** GET `path` (e.g. `/sse?op=x`) from the server running `progress.sse`. */
  open(path: string, headers?: Record<string, string>): Promise<SseResponse>;
  /** Publish to the operation the server follows; the stream entry id. Throws when not published. */
  publish(op: string, update: ProgressUpdate): Promise<string>;
  /** The entry ids the backend holds in the operation's stream, oldest first (e.g. XRANGE). */
  streamIds(op: string): Promise<string[]>;
}

/** How long a message or the end of a stream may take (the upstash port polls). */
const WAIT_MS = 10_000;

async function openSse(h: SseHarness, path: string, headers: Record<string, string> = {}): Promise<SseRead> {
  const response = await h.open(path, headers);
  if (response.status !== 200)
    throw new ScenarioError(`GET ${path} answered ${response.status}: ${await response.text()}`);
  equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8", `GET ${path}: content-type`);
  equal(response.headers.get("cache-control"), "no-cache, no-transform", `GET ${path}: cache-control`);
  if (response.body === null) throw new ScenarioError(`GET ${path} has no body`);
  return readSse(response.body);
}

function seqs(messages: readonly EventSourceMessage[]): unknown[] {
  return messages.map((m) => (JSON.parse(m.data) as { seq?: unknown }).seq);
}

/**
 * Two events published, then the stream opened: the snapshot (no id), the
 * history, then events published while it is open, in order, each with its
 * stream entry id as `id:` and its type as `event:`; `retry: 2000` first; the
 * body closes by itself after the terminal event.
 * @returns the ids published, in order.
 */
export async function sseLive(h: SseHarness, op: string): Promise<string[]> {
  const ids: string[] = [];
  const publish = async (update: ProgressUpdate): Promise<void> => {
    ids.push(await h.publish(op, update));
  };
  await publish({ current: 1, total: 5, message: "one", cid: "sse-1" });
  await publish({ current: 2, total: 5, message: "two" });

  const sse = await openSse(h, `/sse?op=${op}`);
  // The snapshot and the history arrive before anything live is published.
  await sse.waitFor(3, WAIT_MS);
  await publish({ current: 3, total: 5, message: "three" });
  await publish({ type: "log", message: "halfway there" });
  await publish({ current: 4, total: 5, message: "four" });
  await publish({ status: "completed", message: "done" });
  await within(sse.closed, WAIT_MS, "the SSE body closing after the terminal event");

  equal(await h.streamIds(op), ids, "the backend's stream entry ids vs the ids published");
  equal(sse.retries, [2000], "retry: values");
  const running = { op, type: "progress", status: "running" };
  equal(
    sse.messages.map(summarize),
    [
      { event: "snapshot", data: { ...running, id: ids[1], seq: 2, current: 2, message: "two" } },
      { event: "progress", id: ids[0], data: { ...running, id: ids[0], seq: 1, current: 1, message: "one" } },
      { event: "progress", id: ids[1], data: { ...running, id: ids[1], seq: 2, current: 2, message: "two" } },
      { event: "progress", id: ids[2], data: { ...running, id: ids[2], seq: 3, current: 3, message: "three" } },
      { event: "log", id: ids[3], data: { ...running, type: "log", id: ids[3], seq: 4, message: "halfway there" } },
      { event: "progress", id: ids[4], data: { ...running, id: ids[4], seq: 5, current: 4, message: "four" } },
      {
        event: "progress",
        id: ids[5],
        // A completed event carries current = total (the snapshot's total, 5).
        data: { ...running, status: "completed", id: ids[5], seq: 6, current: 5, message: "done" },
      },
    ],
    "SSE messages [event, id, data]",
  );
  // data: is the whole event, as published.
  matches(JSON.parse(sse.messages[1]?.data ?? "null"), { cid: "sse-1", total: 5, progress: 20 }, "first event data");
  return ids;
}

/**
 * Resume: with `Last-Event-ID` the snapshot then only the later events, then
 * live ones until the terminal event; on the ended operation `?after=`
 * replays what follows and closes at once.
 */
export async function sseResume(h: SseHarness, op: string): Promise<void> {
  const ids: string[] = [];
  const publish = async (update: ProgressUpdate): Promise<void> => {
    ids.push(await h.publish(op, update));
  };
  await publish({ current: 1, total: 4, message: "one" });
  await publish({ current: 2, total: 4, message: "two" });
  await publish({ current: 3, total: 4, message: "three" });

  // As a reconnecting EventSource would: the header names the last event it saw.
  const resumed = await openSse(h, `/sse?op=${op}`, { "Last-Event-ID": ids[1] ?? "" });
  await resumed.waitFor(2, WAIT_MS);
  await publish({ current: 4, total: 4, message: "four" });
  await publish({ status: "completed", message: "done" });
  await within(resumed.closed, WAIT_MS, "the resumed SSE body closing after the terminal event");

  equal(await h.streamIds(op), ids, "the backend's stream entry ids vs the ids published");
  equal(
    resumed.messages.map((m) => [m.event ?? null, m.id ?? null]),
    [
      ["snapshot", null],
      ["progress", ids[2]],
      ["progress", ids[3]],
      ["progress", ids[4]],
    ],
    "resumed after Last-Event-ID [event, id]",
  );
  matches(JSON.parse(resumed.messages[0]?.data ?? "null"), { id: ids[2], seq: 3 }, "resumed snapshot");
  equal(seqs(resumed.messages.slice(1)), [3, 4, 5], "resumed seqs");

  const after = await openSse(h, `/sse?op=${op}&after=${ids[3]}`);
  await within(after.closed, WAIT_MS, "the SSE body of an ended operation closing");
  equal(
    after.messages.map((m) => [m.event ?? null, m.id ?? null]),
    [
      ["snapshot", null],
      ["progress", ids[4]],
    ],
    "after= on an ended operation [event, id]",
  );
  matches(
    JSON.parse(after.messages[0]?.data ?? "null"),
    { id: ids[4], status: "completed" },
    "snapshot of the ended operation",
  );
}
