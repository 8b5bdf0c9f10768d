/**
 * Live events over the Upstash streaming subscribe (src/adapters/upstash/live.ts),
 * against the project's Upstash-compatible test server in front of a real
 * redis-server. Messages are published with a plain Redis client in the
 * append script's format (a JSON array of the entry id, then field names and
 * values); the server's counters witness what crossed HTTP.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { decodeLiveMessage, type UpstashLiveOptions, upstashLive } from "../../src/adapters/upstash/live.ts";
import { isBackendError, isConnectionClosedError } from "../../src/core/errors.ts";
import type { LiveHandler, LiveSubscription, StreamEntry } from "../../src/core/port/port.ts";
import { freePort, type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";

let redis: RedisServer;
let server: UpstashServer;
let raw: ReturnType<typeof createClient>;
const prefix = `pc-live-${randomUUID().slice(0, 8)}`;
const opened: LiveSubscription[] = [];
const servers: UpstashServer[] = [];

beforeAll(async () => {
  redis = await startRedis();
  server = await startUpstashServer({ redisUrl: redis.url });
  raw = createClient({ url: redis.url, RESP: 2 });
  await raw.connect();
});

afterEach(async () => {
  for (const live of opened.splice(0)) await live.close();
  for (const extra of servers.splice(0)) await extra.close();
  // Every test leaves the shared server with nothing open.
  expect(await until(() => server.openRequests, 0)).toBe(0);
  server.reset();
});

afterAll(async () => {
  await raw?.quit();
  await server?.close();
  await redis?.close();
});

const key = (name: string): string => `${prefix}:{${name}}:events`;

/** What a handler was told, in order. */
interface Recorder extends LiveHandler {
  readonly messages: { key: string; entry: StreamEntry }[];
  resumed(): void;
  readonly resumes: number;
  readonly failures: Error[];
}

function recorder(): Recorder {
  let resumes = 0;
  const messages: { key: string; entry: StreamEntry }[] = [];
  const failures: Error[] = [];
  return {
    messages,
    failures,
    get resumes() {
      return resumes;
    },
    message(key, entry) {
      messages.push({ key, entry });
    },
    resumed() {
      resumes += 1;
    },
    failed(error) {
      failures.push(error);
    },
  };
}

function live(handler: LiveHandler, options: Partial<UpstashLiveOptions> = {}, on = server): LiveSubscription {
  const subscription = upstashLive(
    { url: on.url, token: on.token, retryMinMs: 20, retryMaxMs: 200, ...options },
    handler,
  );
  opened.push(subscription);
  return subscription;
}

let sequence = 0;
/** Publish an event on `channel` as the append script does; returns its entry. */
async function publish(channel: string, fields: Record<string, string> = {}): Promise<StreamEntry> {
  sequence += 1;
  const entry: StreamEntry = {
    id: `${Date.now()}-${sequence}`,
    fields: { v: "1", op: channel, seq: String(sequence), status: "running", ...fields },
  };
  await raw.publish(channel, JSON.stringify([entry.id, ...Object.entries(entry.fields).flat()]));
  return entry;
}

async function subscribersOf(channel: string): Promise<number> {
  const reply = (await raw.sendCommand(["PUBSUB", "NUMSUB", channel])) as [string, number];
  return Number(reply[1]);
}

/** Poll `read` until it returns `want` (bounded); returns the last value read. */
async function until<T>(read: () => T | Promise<T>, want: T, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (value !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    value = await read();
  }
  return value;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("upstashLive", () => {
  it("add() resolves once Redis holds the subscription; a message published then arrives decoded", async () => {
    const handler = recorder();
    const a = key("job-1");
    await live(handler).add([a]);
    // No waiting: the confirmation came from Redis before add() resolved.
    expect(await subscribersOf(a)).toBe(1);

    const entry = await publish(a, { progress: "42.5", message: 'Chunked 420, of "1000" ✓', data: '{"a":[1,2]}' });
    expect(await until(() => handler.messages.length, 1)).toBe(1);
    expect(handler.messages).toEqual([{ key: a, entry }]);
    expect(handler.resumes).toBe(0);
    expect(server.requests).toBe(1);
  });

  it("follows keys with commas, slashes, percent signs and braces", async () => {
    const handler = recorder();
    const odd = `${prefix}:{a,b/c%20 d}:events`;
    await live(handler).add([odd]);
    expect(await subscribersOf(odd)).toBe(1);
    const entry = await publish(odd);
    expect(await until(() => handler.messages.length, 1)).toBe(1);
    expect(handler.messages).toEqual([{ key: odd, entry }]);
  });

  it("idles with no request beyond the open stream, and delivers events without a request each", async () => {
    const handler = recorder();
    const a = key("idle");
    await live(handler).add([a]);
    server.reset();

    await sleep(3000);
    expect(server.requests).toBe(0);
    expect(server.openStreams).toBe(1);

    const sent: StreamEntry[] = [];
    for (let i = 0; i < 25; i += 1) sent.push(await publish(a));
    expect(await until(() => handler.messages.length, 25)).toBe(25);
    expect(handler.messages.map((m) => m.entry)).toEqual(sent);
    expect(server.requests).toBe(0);
  });

  it("costs one request per batch of new keys, none to follow a key again or to leave; a stream ends with its last key", async () => {
    const handler = recorder();
    const subscription = live(handler);
    const [a, b, c, d] = [key("s-a"), key("s-b"), key("s-c"), key("s-d")];

    await subscription.add([a]);
    expect(server.requests).toBe(1);
    // Keys added in the same tick share one new stream.
    await Promise.all([subscription.add([b]), subscription.add([c, d])]);
    expect(server.requests).toBe(2);
    expect(server.openStreams).toBe(2);

    // A key already carried costs nothing.
    await subscription.add([a]);
    await subscription.add([c]);
    expect(server.requests).toBe(2);

    const sent = [await publish(a), await publish(b), await publish(c), await publish(d)];
    expect(await until(() => handler.messages.length, 4)).toBe(4);
    expect(handler.messages.map((m) => m.entry)).toEqual(sent);
    expect(handler.messages.map((m) => m.key)).toEqual([a, b, c, d]);

    // `a` and `c` were added twice: one remove keeps them; `b` is no longer handed over.
    await subscription.remove([a, b, c]);
    await publish(b);
    const kept = [await publish(a), await publish(c)];
    expect(await until(() => handler.messages.length, 6)).toBe(6);
    await sleep(100);
    expect(handler.messages.slice(4).map((m) => m.entry)).toEqual(kept);
    expect(server.openStreams).toBe(2);

    // The first stream's only key leaves: it ends. The second still carries `c` and `d`.
    await subscription.remove([a]);
    expect(await until(() => server.openStreams, 1)).toBe(1);
    expect(await until(() => subscribersOf(a), 0)).toBe(0);
    await subscription.remove([c, d]);
    expect(await until(() => server.openStreams, 0)).toBe(0);
    expect(await until(() => subscribersOf(d), 0)).toBe(0);
    expect(server.requests).toBe(2);
  });

  it("splits keys that do not fit one request path over several streams", async () => {
    const handler = recorder();
    const keys = Array.from({ length: 12 }, (_, i) => key(`long-${"x".repeat(40)}-${i}`));
    await live(handler, { maxPathLength: 400 }).add(keys);
    expect(server.requests).toBeGreaterThan(1);
    expect(server.openStreams).toBe(server.requests);
    for (const k of keys) expect(await subscribersOf(k)).toBe(1);
    const sent: StreamEntry[] = [];
    for (const k of keys) sent.push(await publish(k));
    expect(await until(() => handler.messages.length, keys.length)).toBe(keys.length);
    expect(handler.messages.map((m) => m.entry)).toEqual(sent);
  });

  it("hands over each event once, in order, while streams open for other keys under a steady publisher", async () => {
    const handler = recorder();
    const subscription = live(handler);
    const a = key("steady");
    await subscription.add([a]);

    const sent: StreamEntry[] = [];
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; i < 2000 && publishing; i += 1) sent.push(await publish(a));
    })();
    for (let i = 0; i < 8; i += 1) {
      await subscription.add([key(`steady-${i}`)]);
      await sleep(15);
    }
    publishing = false;
    await publisher;
    expect(await until(() => handler.messages.length, sent.length)).toBe(sent.length);
    expect(handler.messages.map((m) => m.entry.id)).toEqual(sent.map((e) => e.id));
    expect(server.openStreams).toBe(9);
  });

  it("reconnects after the server drops the stream, calls resumed() once, and later events arrive", async () => {
    const handler = recorder();
    const a = key("drop");
    await live(handler).add([a]);
    server.reset();

    expect(server.dropStreams()).toBe(1);
    expect(await until(() => handler.resumes, 1)).toBe(1);
    // resumed() comes once the new stream is confirmed: nothing published after it is missed.
    expect(await subscribersOf(a)).toBe(1);
    expect(server.openStreams).toBe(1);
    expect(server.requests).toBe(1);

    const entry = await publish(a);
    expect(await until(() => handler.messages.length, 1)).toBe(1);
    expect(handler.messages).toEqual([{ key: a, entry }]);
    await sleep(200);
    expect(handler.resumes).toBe(1);
    expect(handler.failures).toEqual([]);
  });

  it("reconnects when Redis drops the subscriber connection behind the stream", async () => {
    const handler = recorder();
    const a = key("killed");
    await live(handler).add([a]);
    await raw.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"]);
    expect(await until(() => handler.resumes, 1)).toBe(1);
    const entry = await publish(a);
    expect(await until(() => handler.messages.length, 1)).toBe(1);
    expect(handler.messages).toEqual([{ key: a, entry }]);
  });

  it("another watch of a key whose stream is down waits until it is back", async () => {
    const handler = recorder();
    const subscription = live(handler, { retryMinMs: 400, retryMaxMs: 400 });
    const a = key("down-a");
    await subscription.add([a]);
    server.dropStreams();
    await sleep(20);
    let added = false;
    const adding = subscription.add([a]).then(() => {
      added = true;
    });
    // The reconnect waits out its backoff (200 to 400 ms here).
    await sleep(100);
    expect(added).toBe(false);
    await adding;
    expect(await subscribersOf(a)).toBe(1);
    expect(handler.resumes).toBe(1);
  });

  it("streams dropped together come back as one, with one resumed()", async () => {
    const handler = recorder();
    const subscription = live(handler, { retryMinMs: 300, retryMaxMs: 300 });
    const [a, b, c] = [key("many-a"), key("many-b"), key("many-c")];
    await subscription.add([a]);
    await subscription.add([b]);
    await subscription.add([c]);
    expect(server.openStreams).toBe(3);
    server.reset();

    expect(server.dropStreams()).toBe(3);
    expect(await until(() => handler.resumes, 1)).toBe(1);
    expect(server.requests).toBe(1);
    expect(server.openStreams).toBe(1);
    const sent = [await publish(a), await publish(b), await publish(c)];
    expect(await until(() => handler.messages.length, 3)).toBe(3);
    expect(handler.messages.map((m) => m.entry)).toEqual(sent);
    await sleep(100);
    expect(handler.resumes).toBe(1);
  });

  it("a new key while the stream is down opens a stream at once that takes over the dropped one", async () => {
    const handler = recorder();
    const subscription = live(handler, { retryMinMs: 5000, retryMaxMs: 5000 });
    const a = key("over-a");
    const b = key("over-b");
    await subscription.add([a]);
    server.dropStreams();
    await sleep(20);
    server.reset();
    const started = Date.now();
    await subscription.add([b]);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await subscribersOf(a)).toBe(1);
    expect(await subscribersOf(b)).toBe(1);
    // The dropped stream's key may have missed events while it was down.
    expect(handler.resumes).toBe(1);
    expect(server.requests).toBe(1);
    expect(server.openStreams).toBe(1);
  });

  it("a refused streaming subscribe calls failed() once, rejects add(), and leaves nothing open", async () => {
    const refusing = await startUpstashServer({ redisUrl: redis.url, subscribe: false });
    servers.push(refusing);
    const handler = recorder();
    const subscription = live(handler, {}, refusing);
    const error = await subscription.add([key("refused")]).catch((e: unknown) => e);
    expect(isBackendError(error)).toBe(true);
    expect(String(error)).toContain("405");
    expect(handler.failures).toEqual([error]);
    // Later calls fail at once, without a request.
    await expect(subscription.add([key("refused-2")])).rejects.toBe(error);
    expect(refusing.requests).toBe(1);
    expect(refusing.openRequests).toBe(0);
    await sleep(100);
    expect(handler.failures).toHaveLength(1);
  });

  it("a 404, or one JSON reply where a stream was asked for, counts as a refusal too", async () => {
    // An HTTP endpoint of its own: these are answers of REST servers other than the test server.
    const cases: [string, number, string][] = [
      ["/a", 404, "Not Found"],
      ["/b", 200, '{"result":1}'],
    ];
    const http = createServer((req, res) => {
      const [, status, body] = cases.find(([path]) => req.url?.startsWith(`${path}/subscribe/`)) ?? ["", 500, "?"];
      res.writeHead(status, { "content-type": "application/json" }).end(body);
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = http.address() as AddressInfo;
      for (const [path, status, body] of cases) {
        const handler = recorder();
        const subscription = upstashLive({ url: `http://127.0.0.1:${port}${path}`, token: "t" }, handler);
        opened.push(subscription);
        await expect(subscription.add([key("elsewhere")])).rejects.toThrow(
          `refused a streaming subscribe (${status} ${body})`,
        );
        expect(handler.failures).toHaveLength(1);
      }
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it("a wrong token fails for good (401), not in a retry loop", async () => {
    const handler = recorder();
    const subscription = upstashLive({ url: server.url, token: "wrong", retryMinMs: 10 }, handler);
    opened.push(subscription);
    await expect(subscription.add([key("unauthorized")])).rejects.toThrow(/401/);
    expect(handler.failures).toHaveLength(1);
    await sleep(100);
    expect(server.requests).toBe(1);
  });

  it("gives up after maxAttempts when the endpoint cannot be reached", async () => {
    const handler = recorder();
    const port = await freePort();
    const subscription = upstashLive(
      { url: `http://127.0.0.1:${port}`, token: "t", retryMinMs: 5, retryMaxMs: 20, maxAttempts: 3 },
      handler,
    );
    opened.push(subscription);
    await expect(subscription.add([key("unreachable")])).rejects.toThrow(/3 attempts/);
    expect(handler.failures).toHaveLength(1);
  });

  it("close() aborts every stream, rejects pending and later add(), and is idempotent", async () => {
    const handler = recorder();
    const subscription = live(handler);
    await subscription.add([key("close-a")]);
    expect(server.openStreams).toBe(1);

    server.setDelay(300);
    const pending = subscription.add([key("close-b")]);
    await sleep(50);
    await subscription.close();
    await subscription.close();
    server.setDelay(0);
    const error = await pending.catch((e: unknown) => e);
    expect(isConnectionClosedError(error)).toBe(true);
    await expect(subscription.add([key("close-c")])).rejects.toSatisfy(isConnectionClosedError);
    expect(await until(() => server.openStreams, 0)).toBe(0);
    expect(await until(() => server.openRequests, 0)).toBe(0);
    expect(await until(() => subscribersOf(key("close-a")), 0)).toBe(0);
    expect(handler.failures).toEqual([]);
  });

  it("a message in a shape it cannot read asks for a catch-up instead", async () => {
    const handler = recorder();
    const a = key("odd-shape");
    await live(handler).add([a]);
    await raw.publish(a, "not json");
    expect(await until(() => handler.resumes, 1)).toBe(1);
    expect(handler.messages).toEqual([]);
  });
});

describe("decodeLiveMessage", () => {
  it("reads the append script's JSON array", () => {
    expect(decodeLiveMessage('["1-2","seq","3","progress",50]')).toEqual({
      id: "1-2",
      fields: { seq: "3", progress: "50" },
    });
    expect(decodeLiveMessage('["1-0"]')).toEqual({ id: "1-0", fields: {} });
  });

  it("answers null for anything else", () => {
    for (const payload of ["", "x", "{}", "[]", '["1-0","odd"]', '[1,"a","b"]', '["1-0","a",null]', '["1-0",1,"b"]']) {
      expect(decodeLiveMessage(payload)).toBeNull();
    }
  });
});
