/**
 * The test server's streaming subscribe endpoint, checked with the real
 * `@upstash/redis` client's own `subscribe()` and `psubscribe()`: what the
 * client reads is what a message published with a plain Redis client carries,
 * so the server and Upstash's protocol cannot drift apart unnoticed. Also the
 * server's test controls: dropping streams, refusing streaming, closing the
 * Redis subscription when the HTTP client leaves.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";

let redis: RedisServer;
let server: UpstashServer;
let raw: ReturnType<typeof createClient>;
const prefix = `pc-sub-${randomUUID().slice(0, 8)}`;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  server = await startUpstashServer({ redisUrl: redis.url });
  raw = createClient({ url: redis.url, RESP: 2 });
  await raw.connect();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await raw?.quit();
  await server?.close();
  await redis?.close();
});

/** Subscribers Redis counts on `channel` right now. */
async function subscribersOf(channel: string): Promise<number> {
  const reply = (await raw.sendCommand(["PUBSUB", "NUMSUB", channel])) as [string, number];
  return Number(reply[1]);
}

/** Poll `read` until it returns `want` (bounded). */
async function until<T>(read: () => T | Promise<T>, want: T, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (value !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    value = await read();
  }
  return value;
}

function client(): Redis {
  return new Redis({ url: server.url, token: server.token, automaticDeserialization: false, enableTelemetry: false });
}

describe("@upstash/redis subscribe() through the test server", () => {
  it("receives a message published with a plain Redis client, in the client's own shapes", async () => {
    const channel = `${prefix}:{job-1}:events`;
    const subscriber = client().subscribe<string>(channel);
    cleanups.push(() => subscriber.unsubscribe());
    const counts: number[] = [];
    const messages: { channel: string; message: string }[] = [];
    subscriber.on("subscribe", (count) => counts.push(count));
    subscriber.on("message", (data) => messages.push(data));

    // The server answers `subscribe` only once Redis holds the subscription.
    expect(await until(() => counts.length, 1)).toBe(1);
    expect(counts).toEqual([1]);
    expect(await subscribersOf(channel)).toBe(1);

    const payload = JSON.stringify(["1700000000000-0", "v", "1", "op", "job-1", "message", 'a, b: "c" ✓']);
    expect(await raw.publish(channel, payload)).toBe(1);
    expect(await until(() => messages.length, 1)).toBe(1);
    expect(messages[0]).toEqual({ channel, message: payload });
  });

  it("delivers messages in order, each channel of several to its own listener", async () => {
    const a = `${prefix}:{a}:events`;
    const b = `${prefix}:{b}:events`;
    const subscriber = client().subscribe<string>([a, b]);
    cleanups.push(() => subscriber.unsubscribe());
    const onA: string[] = [];
    const onB: string[] = [];
    subscriber.on(`message:${a}`, (data) => onA.push(data.message));
    subscriber.on(`message:${b}`, (data) => onB.push(data.message));
    expect(await until(() => subscribersOf(a), 1)).toBe(1);
    expect(await until(() => subscribersOf(b), 1)).toBe(1);

    for (let i = 0; i < 20; i += 1) await raw.publish(i % 2 === 0 ? a : b, `m${i}`);
    expect(await until(() => onA.length + onB.length, 20)).toBe(20);
    expect(onA).toEqual(["m0", "m2", "m4", "m6", "m8", "m10", "m12", "m14", "m16", "m18"]);
    expect(onB).toEqual(["m1", "m3", "m5", "m7", "m9", "m11", "m13", "m15", "m17", "m19"]);
  });

  it("psubscribe() receives pmessage lines with the pattern and the channel", async () => {
    const pattern = `${prefix}:{p-*}:events`;
    const channel = `${prefix}:{p-7}:events`;
    const subscriber = client().psubscribe<string>(pattern);
    cleanups.push(() => subscriber.unsubscribe());
    const got: { pattern: string; channel: string; message: string }[] = [];
    subscriber.on("pmessage", (data) => got.push(data));
    expect(await until(async () => Number(await raw.sendCommand(["PUBSUB", "NUMPAT"])), 1)).toBe(1);

    await raw.publish(channel, "hello");
    expect(await until(() => got.length, 1)).toBe(1);
    expect(got[0]).toEqual({ pattern, channel, message: "hello" });
  });

  it("unsubscribe() ends the HTTP request and the Redis subscription behind it", async () => {
    const channel = `${prefix}:{leave}:events`;
    const subscriber = client().subscribe<string>(channel);
    expect(await until(() => subscribersOf(channel), 1)).toBe(1);
    expect(server.openStreams).toBe(1);
    expect(server.openRequests).toBe(1);

    await subscriber.unsubscribe();
    expect(await until(() => server.openStreams, 0)).toBe(0);
    expect(await until(() => server.openRequests, 0)).toBe(0);
    expect(await until(() => subscribersOf(channel), 0)).toBe(0);
  });

  it("refuses a wrong token with 401", async () => {
    const response = await fetch(`${server.url}/subscribe/x`, {
      method: "POST",
      headers: { authorization: "Bearer wrong", accept: "text/event-stream" },
      body: "[]",
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: expect.stringContaining("Unauthorized") });
    expect(server.openStreams).toBe(0);
  });
});

describe("test server controls", () => {
  it("dropStreams() cuts every open stream and its Redis subscription", async () => {
    const channel = `${prefix}:{drop}:events`;
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const response = await fetch(`${server.url}/subscribe/${encodeURIComponent(channel)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}`, accept: "text/event-stream" },
      body: "[]",
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const reader = response.body?.getReader();
    if (!reader) throw new Error("no body");
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe(`data: subscribe,${channel},1\n\n`);
    expect(server.openStreams).toBe(1);

    expect(server.dropStreams()).toBe(1);
    // The client sees its stream cut, not a clean end.
    await expect(reader.read()).rejects.toThrow();
    expect(await until(() => server.openStreams, 0)).toBe(0);
    expect(await until(() => subscribersOf(channel), 0)).toBe(0);
  });

  it("subscribe: false refuses streaming with 405 and still serves commands", async () => {
    const refusing = await startUpstashServer({ redisUrl: redis.url, subscribe: false });
    cleanups.push(() => refusing.close());
    const response = await fetch(`${refusing.url}/subscribe/x`, {
      method: "POST",
      headers: { authorization: `Bearer ${refusing.token}`, accept: "text/event-stream" },
      body: "[]",
    });
    expect(response.status).toBe(405);
    expect(await response.json()).toEqual({ error: expect.stringContaining("not supported") });
    expect(refusing.openStreams).toBe(0);
    const redisClient = new Redis({ url: refusing.url, token: refusing.token, enableTelemetry: false });
    expect(await redisClient.echo("still here")).toBe("still here");
  });

  it("ends the stream when Redis drops the subscriber connection", async () => {
    const channel = `${prefix}:{killed}:events`;
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const response = await fetch(`${server.url}/subscribe/${encodeURIComponent(channel)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}` },
      signal: controller.signal,
    });
    const text = response.text();
    expect(await until(() => subscribersOf(channel), 1)).toBe(1);
    await raw.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"]);
    expect(await text).toBe(`data: subscribe,${channel},1\n\n`);
    expect(await until(() => server.openStreams, 0)).toBe(0);
  });
});
