/**
 * The Upstash adapter and the local Upstash-compatible REST server it is
 * tested against, both over a real redis-server. A plain node-redis client is
 * the independent witness of what was written.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { createClient } from "redis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { upstash } from "../../src/adapters/upstash/index.ts";
import { isBackendError, isConnectionClosedError, isProgressValidationError } from "../../src/core/errors.ts";
import type { AppendItem, AppendOptions, Fields, StreamPort } from "../../src/core/port/port.ts";
import { APPEND_SHA, CANCEL_SHA } from "../../src/redis/scripts.ts";
import { freePort, type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";

let redis: RedisServer;
let server: UpstashServer;
let raw: ReturnType<typeof createClient>;
const ports: StreamPort[] = [];
const prefix = `pc-test-${randomUUID().slice(0, 8)}`;

const OPTIONS: AppendOptions = { ttlSeconds: 3600, maxLen: 1000, terminalTtlSeconds: 600 };

function keysOf(op: string): { eventsKey: string; stateKey: string } {
  return { eventsKey: `${prefix}:{${op}}:events`, stateKey: `${prefix}:{${op}}:state` };
}

/** An append item for `op`, fields in wire order (`v`, `op`, `seq` first). */
function item(op: string, fields: Fields = {}, extra: Partial<AppendItem> = {}): AppendItem {
  const status = fields.status ?? "running";
  return {
    ...keysOf(op),
    fields: { v: "1", op, seq: "0", status, ts: new Date().toISOString(), ...fields },
    terminal: status === "completed" || status === "failed" || status === "cancelled",
    allowBackwards: false,
    allowAfterTerminal: false,
    ...extra,
  };
}

function port(options: { pollMinMs?: number; pollMaxMs?: number } = {}): StreamPort {
  const created = upstash({ url: server.url, token: server.token, ...options });
  ports.push(created);
  return created;
}

async function rawCall(args: string[]): Promise<unknown> {
  return await raw.sendCommand(args);
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.token}`, ...headers },
    body: JSON.stringify(body),
  });
}

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

beforeAll(async () => {
  redis = await startRedis();
  server = await startUpstashServer({ redisUrl: redis.url });
  raw = createClient({ url: redis.url, RESP: 2 });
  raw.on("error", () => {});
  await raw.connect();
});

afterAll(async () => {
  await Promise.all(ports.map((p) => p.close()));
  raw?.destroy();
  await server?.close();
  await redis?.close();
});

beforeEach(() => {
  server.setDelay(0);
  server.reset();
});

describe("upstash-compatible REST server", () => {
  it("refuses a wrong or missing token with 401", async () => {
    const wrong = await fetch(server.url, {
      method: "POST",
      headers: { authorization: "Bearer nope" },
      body: JSON.stringify(["PING"]),
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toHaveProperty("error");
    const missing = await fetch(server.url, { method: "POST", body: JSON.stringify(["PING"]) });
    expect(missing.status).toBe(401);
    expect(server.commands).toEqual([]);
    expect(server.requests).toBe(2);
  });

  it("answers one command with {result}, stringifying number arguments", async () => {
    const key = `${prefix}:plain`;
    const set = await post("/", ["SET", key, 42]);
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ result: "OK" });
    expect(await (await post("/", ["GET", key])).json()).toEqual({ result: "42" });
    expect(await (await post("/", ["INCRBY", key, 8])).json()).toEqual({ result: 50 });
    expect(await (await post("/", ["GET", `${key}:missing`])).json()).toEqual({ result: null });
    expect(server.commands).toEqual([
      ["SET", key, "42"],
      ["GET", key],
      ["INCRBY", key, "8"],
      ["GET", `${key}:missing`],
    ]);
  });

  it("base64-encodes every string, nested ones included, but not numbers, null or a top-level OK", async () => {
    const key = `${prefix}:b64`;
    const text = 'héllo ✓ {"a": 1}';
    const headers = { "upstash-encoding": "base64" };
    expect(await (await post("/", ["SET", key, text], headers)).json()).toEqual({ result: "OK" });
    expect(await (await post("/", ["GET", key], headers)).json()).toEqual({ result: b64(text) });
    expect(await (await post("/", ["STRLEN", key], headers)).json()).toEqual({ result: Buffer.byteLength(text) });
    expect(await (await post("/", ["PING"], headers)).json()).toEqual({ result: b64("PONG") });
    const stream = `${prefix}:b64s`;
    const id = String(await rawCall(["XADD", stream, "*", "f", text, "n", "7"]));
    expect(await (await post("/", ["XRANGE", stream, "-", "+"], headers)).json()).toEqual({
      result: [[b64(id), [b64("f"), b64(text), b64("n"), b64("7")]]],
    });
    expect(await (await post("/", ["HMGET", `${prefix}:none`, "a"], headers)).json()).toEqual({ result: [null] });

    // What @upstash/redis itself decodes from these answers.
    const client = new Redis({ url: server.url, token: server.token, automaticDeserialization: false });
    expect(await client.get(key)).toBe(text);
    expect(await client.set(`${key}:ok`, "OK")).toBe("OK");
    expect(await client.get(`${key}:ok`)).toBe("OK");
    expect(await client.ping()).toBe("PONG");
    expect(await client.xrange(stream, "-", "+")).toEqual([[id, ["f", text, "n", "7"]]]);
    expect(await client.hgetall(`${prefix}:none`)).toEqual([]);
  });

  it("answers without encoding when the client does not ask for base64", async () => {
    const key = `${prefix}:utf8`;
    await rawCall(["SET", key, "héllo ✓"]);
    expect(await (await post("/", ["GET", key])).json()).toEqual({ result: "héllo ✓" });
    const client = new Redis({
      url: server.url,
      token: server.token,
      automaticDeserialization: false,
      responseEncoding: false,
    });
    expect(await client.get(key)).toBe("héllo ✓");
  });

  it("answers a Redis error with 400 {error}, keeping the NOSCRIPT text", async () => {
    const unknown = await post("/", ["NOSUCHCOMMAND", "x"]);
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/^ERR unknown command/);
    const noscript = await post("/", ["EVALSHA", "0".repeat(40), 0]);
    expect(noscript.status).toBe(400);
    expect(((await noscript.json()) as { error: string }).error).toMatch(/^NOSCRIPT/);
    const bad = await fetch(server.url, {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}` },
      body: "{not json",
    });
    expect(bad.status).toBe(400);
  });

  it("runs a pipeline in order, one {result} or {error} per command", async () => {
    const key = `${prefix}:pipe`;
    const res = await post(
      "/pipeline",
      [
        ["SET", key, "a"],
        ["INCR", key],
        ["APPEND", key, "b"],
        ["GET", key],
      ],
      { "upstash-encoding": "base64" },
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result?: unknown; error?: string }[];
    expect(body).toHaveLength(4);
    expect(body[0]).toEqual({ result: "OK" });
    expect(body[1]?.error).toMatch(/not an integer/);
    expect(body[2]).toEqual({ result: 2 });
    expect(body[3]).toEqual({ result: b64("ab") });
    expect(server.requests).toBe(1);
    expect(server.commands).toHaveLength(4);
  });

  it("runs multi-exec atomically, with per-command runtime errors and EXECABORT as 400", async () => {
    const key = `${prefix}:multi`;
    const res = await post("/multi-exec", [
      ["INCR", key],
      ["HGET", key, "f"],
      ["INCR", key],
    ]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result?: unknown; error?: string }[];
    expect(body[0]).toEqual({ result: 1 });
    expect(body[1]?.error).toMatch(/^WRONGTYPE/);
    expect(body[2]).toEqual({ result: 2 });

    const aborted = await post("/multi-exec", [["INCR", key], ["NOSUCHCOMMAND"]]);
    expect(aborted.status).toBe(400);
    expect(((await aborted.json()) as { error: string }).error).toMatch(/^EXECABORT/);
    expect(await rawCall(["GET", key])).toBe("2");

    const client = new Redis({ url: server.url, token: server.token, automaticDeserialization: false });
    const tx = client.multi();
    tx.incr(key);
    tx.get(key);
    expect(await tx.exec()).toEqual([3, "3"]);
  });

  it("gives a blocking command its own connection, so others are not held up", async () => {
    const list = `${prefix}:list`;
    const started = Date.now();
    const blocked = post("/", ["BLPOP", list, 5]);
    await new Promise((r) => setTimeout(r, 100));
    const pushed = await post("/", ["RPUSH", list, "x"]);
    expect(await pushed.json()).toEqual({ result: 1 });
    expect(await (await blocked).json()).toEqual({ result: [list, "x"] });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("adds the configured delay before every answer", async () => {
    server.setDelay(150);
    const started = Date.now();
    await post("/", ["PING"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });
});

describe("upstash adapter", () => {
  it("is named upstash, can group, cannot block", () => {
    const p = port();
    expect(p.name).toBe("upstash");
    expect(p.capabilities).toEqual({ groups: true, blocking: false });
  });

  it("validates its options", () => {
    const noUrl = (): unknown => upstash({ url: "", token: "t" });
    expect(noUrl).toThrow(/url/);
    try {
      noUrl();
    } catch (error) {
      expect(isProgressValidationError(error)).toBe(true);
    }
    expect(() => upstash({ url: server.url, token: "" })).toThrow(/token/);
    expect(() => upstash({ url: server.url, token: "t", pollMinMs: 0 })).toThrow(/pollMinMs/);
    expect(() => upstash({ url: server.url, token: "t", pollMinMs: 500, pollMaxMs: 100 })).toThrow(/pollMaxMs/);
  });

  it("appends in exactly one HTTP request, and writes the wire format a plain client reads", async () => {
    const p = port();
    await p.append([item("warm")], OPTIONS); // the script is cached from here on
    server.reset();
    const [result] = await p.append([item("one", { progress: "42", message: "Chunked 420 of 1000" })], OPTIONS);
    expect(server.requests).toBe(1);
    expect(server.commands).toHaveLength(1);
    expect(server.commands[0]?.[0]?.toUpperCase()).toBe("EVALSHA");
    expect(server.commands[0]?.[1]).toBe(APPEND_SHA);
    expect(result).toMatchObject({ ok: true, seq: 1, cancelled: null });
    const id = result?.ok ? result.id : "";

    const { eventsKey, stateKey } = keysOf("one");
    const state = (await rawCall(["HGETALL", stateKey])) as string[];
    const stateFields = Object.fromEntries(
      Array.from({ length: state.length / 2 }, (_, i) => [state[i * 2], state[i * 2 + 1]]),
    );
    expect(stateFields).toMatchObject({
      v: "1",
      op: "one",
      seq: "1",
      status: "running",
      progress: "42",
      message: "Chunked 420 of 1000",
      id,
    });
    const entries = (await rawCall(["XRANGE", eventsKey, "-", "+"])) as [string, string[]][];
    expect(entries).toHaveLength(1);
    expect(entries[0]?.[0]).toBe(id);
    expect(entries[0]?.[1].slice(0, 8)).toEqual(["v", "1", "op", "one", "seq", "1", "status", "running"]);
    expect(Number(await rawCall(["TTL", stateKey]))).toBeGreaterThan(3000);
  });

  it("sends a batch of many operations as one request", async () => {
    const p = port();
    await p.append([item("warm")], OPTIONS);
    server.reset();
    const results = await p.append(
      Array.from({ length: 20 }, (_, i) => item(`batch-${i}`, { progress: String(i) })),
      OPTIONS,
    );
    expect(server.requests).toBe(1);
    expect(results.map((r) => r.ok && r.seq)).toEqual(Array.from({ length: 20 }, () => 1));
  });

  it("sends appends made in the same tick as one request (the client's auto-pipelining)", async () => {
    const p = port();
    await p.append([item("warm")], OPTIONS);
    server.reset();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => p.append([item(`tick-${i}`, { progress: "1" })], OPTIONS)),
    );
    expect(results.every(([r]) => r?.ok)).toBe(true);
    expect(server.requests).toBe(1);
    expect(server.commands).toHaveLength(10);
  });

  it("still appends after SCRIPT FLUSH: EVALSHA, then EVAL once", async () => {
    const p = port();
    await rawCall(["SCRIPT", "FLUSH"]);
    server.reset();
    const [first] = await p.append([item("flushed", { progress: "1" })], OPTIONS);
    expect(first).toMatchObject({ ok: true, seq: 1 });
    expect(server.requests).toBe(2);
    expect(server.commands.map((c) => c[0]?.toUpperCase())).toEqual(["EVALSHA", "EVAL"]);
    server.reset();
    const [second] = await p.append([item("flushed", { progress: "2" })], OPTIONS);
    expect(second).toMatchObject({ ok: true, seq: 2 });
    expect(server.requests).toBe(1);
  });

  it("reports refusals: backwards progress and updates after the end", async () => {
    const p = port();
    await p.append([item("order", { progress: "50" })], OPTIONS);
    const [back] = await p.append([item("order", { progress: "40" })], OPTIONS);
    expect(back).toEqual({ ok: false, refused: "backwards", seq: 1, cancelled: null });
    const [forced] = await p.append([item("order", { progress: "40" }, { allowBackwards: true })], OPTIONS);
    expect(forced).toMatchObject({ ok: true, seq: 2 });
    await p.append([item("order", { status: "completed", progress: "100" })], OPTIONS);
    const [late] = await p.append([item("order", { progress: "100" })], OPTIONS);
    expect(late).toMatchObject({ ok: false, refused: "terminal", seq: 3 });
  });

  it("reads snapshot, history after an id (exclusive) with a limit, and the first id, in one request", async () => {
    const p = port();
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const [r] = await p.append([item("hist", { progress: String(i * 10) })], OPTIONS);
      if (r?.ok) ids.push(r.id);
    }
    const { eventsKey, stateKey } = keysOf("hist");
    server.reset();
    const all = await p.read(stateKey, eventsKey, { limit: 100 });
    expect(server.requests).toBe(1);
    expect(all.state).toMatchObject({ seq: "5", progress: "50", id: ids[4] });
    expect(all.entries.map((e) => e.id)).toEqual(ids);
    expect(all.entries[0]?.fields).toMatchObject({ v: "1", op: "hist", seq: "1", progress: "10" });
    expect(all.firstId).toBe(ids[0]);

    const page = await p.read(stateKey, eventsKey, { after: ids[1], limit: 2 });
    expect(page.entries.map((e) => e.id)).toEqual([ids[2], ids[3]]);
    expect(page.firstId).toBe(ids[0]);
    expect((await p.read(stateKey, eventsKey, { after: "0", limit: 1 })).entries.map((e) => e.id)).toEqual([ids[0]]);

    const streamOnly = await p.read(null, eventsKey, { after: ids[3], limit: 10 });
    expect(streamOnly).toEqual({ state: null, entries: [all.entries[4]], firstId: ids[0] });

    const unknown = keysOf("never");
    expect(await p.read(unknown.stateKey, unknown.eventsKey, { limit: 10 })).toEqual({
      state: null,
      entries: [],
      firstId: null,
    });
  });

  it("shares one request among reads made in the same turn; a failing one fails alone", async () => {
    const p = port();
    for (let i = 0; i < 3; i++) await p.append([item(`many-${i}`, { progress: String(i) })], OPTIONS);
    const wrongType = `${prefix}:not-a-hash`;
    await rawCall(["SET", wrongType, "x"]);
    server.reset();
    const reads = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        p.read(keysOf(`many-${i % 3}`).stateKey, keysOf(`many-${i % 3}`).eventsKey, { limit: 10 }),
      ),
    );
    const states = await Promise.all([p.getState(keysOf("many-1").stateKey), p.getState(keysOf("none").stateKey)]);
    expect(server.requests).toBe(2);
    reads.forEach((read, i) => {
      expect(read.state?.progress).toBe(String(i % 3));
      expect(read.entries).toHaveLength(1);
    });
    expect(states[0]?.progress).toBe("1");
    expect(states[1]).toBeNull();

    server.reset();
    const mixed = await Promise.allSettled([
      p.read(keysOf("many-0").stateKey, keysOf("many-0").eventsKey, { limit: 10 }),
      p.getState(wrongType),
      p.getState(keysOf("many-2").stateKey),
    ]);
    expect(mixed[0]).toMatchObject({ status: "fulfilled", value: { state: { progress: "0" } } });
    expect(mixed[1].status).toBe("rejected");
    expect(isBackendError(mixed[1].status === "rejected" ? mixed[1].reason : null)).toBe(true);
    expect(mixed[2]).toMatchObject({ status: "fulfilled", value: { progress: "2" } });
    expect(server.requests).toBe(4); // the shared one, then each on its own to find whose command failed
  });

  it("gets a snapshot, or null when there is none", async () => {
    const p = port();
    await p.append([item("snap", { progress: "7", data: '{"rows": 1}' })], OPTIONS);
    server.reset();
    expect(await p.getState(keysOf("snap").stateKey)).toMatchObject({ progress: "7", data: '{"rows": 1}' });
    expect(server.requests).toBe(1);
    expect(await p.getState(keysOf("nothing").stateKey)).toBeNull();
  });

  it("keeps fields as strings with a client of the user's that JSON-parses replies", async () => {
    const p = upstash({ client: new Redis({ url: server.url, token: server.token }) });
    ports.push(p);
    await p.append([item("parsed", { progress: "42", current: "7", data: '{"a":[1,2]}' })], OPTIONS);
    const { stateKey, eventsKey } = keysOf("parsed");
    const state = await p.getState(stateKey);
    expect(state).toMatchObject({ v: "1", seq: "1", progress: "42", current: "7", data: '{"a":[1,2]}' });
    const read = await p.read(stateKey, eventsKey, { limit: 10 });
    expect(read.entries[0]?.fields).toMatchObject({ seq: "1", progress: "42", data: '{"a":[1,2]}' });
    expect(typeof read.entries[0]?.fields.v).toBe("string");
  });

  it("cancels: marks the snapshot, reported on the next append; refuses after the end", async () => {
    const p = port();
    await p.append([item("stop", { progress: "1" })], OPTIONS);
    const { stateKey } = keysOf("stop");
    expect(await p.cancel(stateKey, "user pressed cancel", 3600)).toBe(true);
    expect(server.commands.some((c) => c[1] === CANCEL_SHA)).toBe(true);
    expect(await rawCall(["HGET", stateKey, "cancel"])).toBe("user pressed cancel");
    const [next] = await p.append([item("stop", { progress: "2" })], OPTIONS);
    expect(next).toMatchObject({ ok: true, cancelled: "user pressed cancel" });
    await p.append([item("stop", { status: "cancelled" })], OPTIONS);
    expect(await p.cancel(stateKey, "again", 3600)).toBe(false);
  });

  it("cancels after SCRIPT FLUSH too", async () => {
    const p = port();
    await p.append([item("stop2")], OPTIONS);
    await rawCall(["SCRIPT", "FLUSH"]);
    expect(await p.cancel(keysOf("stop2").stateKey, "why", 60)).toBe(true);
  });

  it("waits on many keys and returns promptly when another client adds an entry", async () => {
    const p = port({ pollMinMs: 20, pollMaxMs: 200 });
    const a = keysOf("wa").eventsKey;
    const b = keysOf("wb").eventsKey;
    const first = String(await rawCall(["XADD", a, "*", "n", "1"]));
    const started = Date.now();
    const waiting = p.wait(
      [
        { key: a, after: first },
        { key: b, after: "0" },
      ],
      { blockMs: 10_000, count: 10 },
    );
    await new Promise((r) => setTimeout(r, 300));
    const added = String(await rawCall(["XADD", b, "*", "n", "2"]));
    const got = await waiting;
    const elapsed = Date.now() - started;
    expect(got).toEqual([{ key: b, entries: [{ id: added, fields: { n: "2" } }] }]);
    expect(elapsed).toBeLessThan(300 + 200 + 500);
    // One XREAD per poll, over all keys.
    expect(server.commands.every((c) => c[0]?.toUpperCase() === "XREAD" && c.includes(a) && c.includes(b))).toBe(true);
  });

  it("returns entries already there in one request, at most count per key", async () => {
    const p = port();
    const key = keysOf("wc").eventsKey;
    for (let i = 0; i < 5; i++) await rawCall(["XADD", key, "*", "i", String(i)]);
    server.reset();
    const got = await p.wait([{ key, after: "0" }], { blockMs: 1000, count: 3 });
    expect(got[0]?.entries.map((e) => e.fields.i)).toEqual(["0", "1", "2"]);
    expect(server.requests).toBe(1);
  });

  it("waits for entries after $ only", async () => {
    const p = port({ pollMinMs: 20, pollMaxMs: 50 });
    const key = keysOf("wd").eventsKey;
    await rawCall(["XADD", key, "*", "old", "1"]);
    const waiting = p.wait([{ key, after: "$" }], { blockMs: 5000, count: 10 });
    await new Promise((r) => setTimeout(r, 100));
    await rawCall(["XADD", key, "*", "new", "1"]);
    const got = await waiting;
    expect(got[0]?.entries.map((e) => e.fields)).toEqual([{ new: "1" }]);
  });

  it("returns [] when blockMs elapses, backing off while idle", async () => {
    const p = port({ pollMinMs: 20, pollMaxMs: 80 });
    const started = Date.now();
    const got = await p.wait([{ key: keysOf("idle").eventsKey, after: "0" }], { blockMs: 600, count: 10 });
    const elapsed = Date.now() - started;
    expect(got).toEqual([]);
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(2000);
    // 20, 40, 80, 80, ... : far fewer polls than 600 / 20.
    expect(server.requests).toBeGreaterThanOrEqual(4);
    expect(server.requests).toBeLessThanOrEqual(12);
    expect(await p.wait([{ key: keysOf("idle").eventsKey, after: "0" }], { blockMs: 0, count: 10 })).toEqual([]);
  });

  it("returns [] at once on abort, even with a slow server, and makes no request when already aborted", async () => {
    const p = port();
    server.setDelay(2000);
    const controller = new AbortController();
    const started = Date.now();
    const waiting = p.wait([{ key: keysOf("ab").eventsKey, after: "0" }], {
      blockMs: 30_000,
      count: 10,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    expect(await waiting).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
    server.setDelay(0);
    server.reset();
    expect(
      await p.wait([{ key: keysOf("ab").eventsKey, after: "0" }], {
        blockMs: 5000,
        count: 10,
        signal: AbortSignal.abort(),
      }),
    ).toEqual([]);
    expect(server.requests).toBe(0);
  });

  it("runs consumer groups: ensure, read, ack, pending, claim", async () => {
    const p = port({ pollMinMs: 20, pollMaxMs: 100 });
    const key = `${prefix}:scope:{g}:events`;
    expect(await p.pending?.(key, "db")).toBe(0);
    await p.ensureGroup?.(key, "db");
    await p.ensureGroup?.(key, "db"); // BUSYGROUP is fine
    expect(await p.pending?.(key, "other")).toBe(0);
    for (let i = 1; i <= 3; i++) await rawCall(["XADD", key, "*", "op", `g${i}`]);

    const a = (await p.groupRead?.({ key, group: "db", consumer: "a", count: 2, blockMs: 0 })) ?? [];
    expect(a.map((e) => e.fields.op)).toEqual(["g1", "g2"]);
    expect(await p.ack?.(key, "db", [a[0]?.id ?? ""])).toBe(1);
    expect(await p.ack?.(key, "db", [])).toBe(0);
    expect(await p.pending?.(key, "db")).toBe(1);
    const b = (await p.groupRead?.({ key, group: "db", consumer: "b", count: 10, blockMs: 0 })) ?? [];
    expect(b.map((e) => e.fields.op)).toEqual(["g3"]);
    expect(await p.pending?.(key, "db")).toBe(2);

    await new Promise((r) => setTimeout(r, 60));
    const claimed = (await p.claim?.({ key, group: "db", consumer: "c", minIdleMs: 50, count: 10 })) ?? [];
    expect(claimed.map((e) => e.fields.op)).toEqual(["g2", "g3"]);
    const owners = (await rawCall(["XPENDING", key, "db", "-", "+", "10"])) as [string, string][];
    expect(owners.map((row) => row[1])).toEqual(["c", "c"]);
    expect(
      await p.ack?.(
        key,
        "db",
        claimed.map((e) => e.id),
      ),
    ).toBe(2);
    expect(await p.pending?.(key, "db")).toBe(0);

    // A group read polls until an entry arrives.
    const started = Date.now();
    const reading = p.groupRead?.({ key, group: "db", consumer: "a", count: 10, blockMs: 5000 });
    await new Promise((r) => setTimeout(r, 150));
    await rawCall(["XADD", key, "*", "op", "g4"]);
    expect(((await reading) ?? []).map((e) => e.fields.op)).toEqual(["g4"]);
    expect(Date.now() - started).toBeLessThan(1500);

    const controller = new AbortController();
    const idle = p.groupRead?.({
      key,
      group: "db",
      consumer: "a",
      count: 10,
      blockMs: 30_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    expect(await idle).toEqual([]);
  });

  it("maps Redis errors, HTTP errors and network failures to BackendError with a cause", async () => {
    const p = port();
    const wrongType = `${prefix}:string`;
    await rawCall(["SET", wrongType, "x"]);
    const redisError = await p.getState(wrongType).catch((e: unknown) => e);
    expect(isBackendError(redisError)).toBe(true);
    expect(String((redisError as Error).message)).toMatch(/WRONGTYPE/);
    expect((redisError as Error).cause).toBeInstanceOf(Error);

    const unauthorized = upstash({ url: server.url, token: "wrong", retry: false });
    ports.push(unauthorized);
    const authError = await unauthorized.getState(keysOf("x").stateKey).catch((e: unknown) => e);
    expect(isBackendError(authError)).toBe(true);

    const nowhere = upstash({ url: `http://127.0.0.1:${await freePort()}`, token: "t", retry: false });
    ports.push(nowhere);
    const networkError = await nowhere.append([item("lost")], OPTIONS).catch((e: unknown) => e);
    expect(isBackendError(networkError)).toBe(true);
    expect(isConnectionClosedError(networkError)).toBe(false);
    expect((networkError as Error).cause).toBeDefined();
  });

  it("fails fast while Redis behind the REST server is down, and recovers when it is back", async () => {
    const p = port();
    await p.append([item("down", { progress: "1" })], OPTIONS);
    await redis.stop();
    try {
      const started = Date.now();
      const error = await p.append([item("down", { progress: "2" })], OPTIONS).catch((e: unknown) => e);
      expect(isBackendError(error)).toBe(true);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await redis.start();
    }
    let result = await p.getState(keysOf("down").stateKey).catch((e: unknown) => e);
    for (let i = 0; i < 50 && isBackendError(result); i++) {
      await new Promise((r) => setTimeout(r, 100));
      result = await p.getState(keysOf("down").stateKey).catch((e: unknown) => e);
    }
    expect(result).toBeNull(); // a restarted redis-server is empty
    const [after] = await p.append([item("down", { progress: "3" })], OPTIONS);
    expect(after).toMatchObject({ ok: true, seq: 1 });
  });

  it("closes idempotently: pending waits end, later calls reject with ConnectionClosedError", async () => {
    const p = port();
    const started = Date.now();
    const waiting = p.wait([{ key: keysOf("cl").eventsKey, after: "0" }], { blockMs: 30_000, count: 10 });
    await new Promise((r) => setTimeout(r, 50));
    await Promise.all([p.close(), p.close()]);
    await p.close();
    expect(await waiting).toEqual([]);
    expect(Date.now() - started).toBeLessThan(2000);
    server.reset();
    for (const call of [
      () => p.append([item("cl")], OPTIONS),
      () => p.getState(keysOf("cl").stateKey),
      () => p.read(null, keysOf("cl").eventsKey, { limit: 1 }),
      () => p.wait([{ key: keysOf("cl").eventsKey, after: "0" }], { blockMs: 10, count: 1 }),
      () => p.cancel(keysOf("cl").stateKey, "x", 1),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(isConnectionClosedError(error)).toBe(true);
    }
    expect(server.requests).toBe(0);
  });

  it("leaves a client passed in usable after close", async () => {
    const client = new Redis({ url: server.url, token: server.token, automaticDeserialization: false });
    const p = upstash({ client });
    await p.close();
    expect(await client.ping()).toBe("PONG");
  });
});
