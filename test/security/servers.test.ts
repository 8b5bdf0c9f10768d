/**
 * The README's own server shapes (plain Node http with `ws`, Hono, Express),
 * each run as its own process against a real redis-server, fed hostile input
 * over real sockets: malformed WebSocket frames, bad `Host` headers, the
 * largest stream id as a resume id, other methods, and random bytes. After
 * each, the process is still up and still serves a well-behaved client.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";
import { type Running, startExample } from "../examples/support.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const TOKEN = "dev-token";
const MAX_ID = "18446744073709551615-18446744073709551615";

let redis: RedisServer;
let progress: Progress;
const servers: Record<"node" | "hono" | "express", Running> = {} as Record<"node" | "hono" | "express", Running>;

/** Where each shape serves an operation's SSE stream. */
const ssePath: Record<keyof typeof servers, (op: string) => string> = {
  node: (op) => `/?op=${op}`,
  hono: (op) => `/progress/${op}`,
  express: (op) => `/progress/${op}`,
};

beforeAll(async () => {
  redis = await startRedis();
  progress = createProgress({ port: nodeRedis({ url: redis.url }), throttle: false, logger: {} });
  await progress.publish("alice-1", { status: "running", progress: 10, message: "working" });
  const env = { REDIS_URL: redis.url, TOKEN };
  const [node, hono, express] = await Promise.all([
    startExample("examples/websocket/server.ts", env),
    startExample("examples/hono/server.ts", env),
    startExample("examples/express/server.ts", env),
  ]);
  Object.assign(servers, { node, hono, express });
}, 180_000);

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  await progress?.close();
  await redis?.close();
});

function address(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

/** Send raw bytes over TCP; resolves with what came back until the server closed or `ms` passed. */
function raw(url: string, bytes: Buffer | string, ms = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(address(url));
    let got = "";
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (d) => {
      got += d.toString("latin1");
    });
    socket.on("error", done);
    socket.on("close", done);
    socket.write(bytes);
  });
}

/** The status code of the first response line, or 0 when none came. */
function statusOf(response: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);
}

/** Upgrade a raw TCP connection to a WebSocket by hand, so the test can send frames `ws` would never build. */
async function rawWebSocket(url: string): Promise<{ socket: Socket; received: () => Buffer }> {
  const socket = connect(address(url));
  let buffer = Buffer.alloc(0);
  socket.on("data", (d) => {
    buffer = Buffer.concat([buffer, d]);
  });
  socket.on("error", () => {});
  await new Promise<void>((r) => socket.once("connect", () => r()));
  socket.write(
    `GET /?token=${TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const deadline = Date.now() + 5_000;
  while (!buffer.includes("\r\n\r\n") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const head = buffer.subarray(0, buffer.indexOf("\r\n\r\n") + 4);
  expect(head.toString("latin1")).toMatch(/^HTTP\/1\.1 101/);
  buffer = buffer.subarray(head.length);
  return { socket, received: () => buffer };
}

/** A client frame: masked, as the protocol requires. */
function frame(first: number, payload: Buffer, declaredLength = payload.length): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] ?? 0)));
  let header: Buffer;
  if (declaredLength < 126) header = Buffer.from([first, 0x80 | declaredLength]);
  else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(declaredLength), 2);
  }
  return Buffer.concat([header, mask, masked]);
}

/** Send one frame after a good upgrade; resolves with the close code the server answered, or null. */
async function closeCodeFor(bytes: Buffer): Promise<number | null> {
  const { socket, received } = await rawWebSocket(servers.node.url);
  socket.write(bytes);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const got = received();
    // A close frame from the server: 0x88, an unmasked length, then the code.
    const at = got.indexOf(0x88);
    if (at >= 0 && got.length >= at + 4) {
      socket.destroy();
      return got.readUInt16BE(at + 2);
    }
    if (Date.now() > deadline || socket.destroyed) {
      socket.destroy();
      return null;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A well-behaved WebSocket client gets the snapshot of an operation. */
async function webSocketServes(): Promise<unknown> {
  const ws = new WebSocket(`${servers.node.url.replace("http", "ws")}/?token=${TOKEN}`);
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no snapshot within 5 s")), 5_000);
      ws.on("error", reject);
      ws.on("open", () => ws.send(JSON.stringify({ type: "watch", op: "alice-1" })));
      ws.on("message", (data) => {
        const message = JSON.parse(String(data)) as { type: string; snapshot?: unknown };
        if (message.type === "snapshot") {
          clearTimeout(timer);
          resolve(message.snapshot);
        }
      });
    });
  } finally {
    ws.close();
  }
}

/** A well-behaved SSE client gets 200 and the snapshot first. */
async function sseServes(shape: keyof typeof servers): Promise<string> {
  const controller = new AbortController();
  const response = await fetch(`${servers[shape].url}${ssePath[shape]("alice-1")}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  const reader = response.body?.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (reader && !text.includes("event: snapshot")) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  controller.abort();
  return text;
}

describe("a malformed WebSocket frame closes only its own socket", () => {
  it.each([
    ["invalid UTF-8 in a text frame", frame(0x81, Buffer.from([0xff, 0xfe, 0xfd])), 1007],
    ["a reserved bit set (RSV1)", frame(0xc1, Buffer.from("hi")), 1002],
    ["a frame over the 4 KiB limit", frame(0x81, Buffer.alloc(0), 100 * 1024 * 1024), 1009],
  ])("%s: closed with a WebSocket close code; the process serves on", async (_, bytes, code) => {
    expect(await closeCodeFor(bytes)).toBe(code);
    await new Promise((r) => setTimeout(r, 100));
    expect(servers.node.alive(), servers.node.output()).toBe(true);
    expect(await webSocketServes()).toMatchObject({ op: "alice-1", progress: 10 });
    expect(await sseServes("node")).toContain("event: snapshot");
  });

  it("a message over the protocol's limit from a runtime without a frame limit closes its socket with 1009", async () => {
    const ws = new WebSocket(`${servers.node.url.replace("http", "ws")}/?token=${TOKEN}`);
    await new Promise((r) => ws.once("open", r));
    const closed = new Promise<number>((r) => ws.once("close", (c) => r(c)));
    ws.send(JSON.stringify({ type: "ping", pad: "x".repeat(5000) }));
    expect(await closed).toBe(1009);
    expect(await webSocketServes()).toMatchObject({ op: "alice-1" });
  });
});

describe.each(["node", "hono", "express"] as const)("the %s server shape", (shape) => {
  it.each(["a b", "x:99999", "[::1", "%"])("survives Host: %s (a 4xx, or served)", async (host) => {
    const answer = await raw(
      servers[shape].url,
      `GET ${ssePath[shape]("alice-1")} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
      1_000,
    );
    const status = statusOf(answer);
    expect(status === 200 || (status >= 400 && status < 500), answer).toBe(true);
    expect(servers[shape].alive(), servers[shape].output()).toBe(true);
    expect(await sseServes(shape)).toContain("event: snapshot");
  });

  it("answers the largest stream id as a resume id with 400, in Last-Event-ID and in ?after=", async () => {
    const url = `${servers[shape].url}${ssePath[shape]("alice-1")}`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const byHeader = await fetch(url, { headers: { ...auth, "last-event-id": MAX_ID } });
    expect(byHeader.status).toBe(400);
    expect(await byHeader.text()).toMatch(/Last-Event-ID/);
    const byQuery = await fetch(`${url}${url.includes("?") ? "&" : "?"}after=${MAX_ID}`, { headers: auth });
    expect(byQuery.status).toBe(400);
    const text = await byQuery.text();
    expect(text).toMatch(/after/);
    expect(text).not.toMatch(/ERR|script|@user_script|pc:/);
  });

  it("keeps serving after random bytes thrown at it for two seconds", async () => {
    let seed = 0x2545f491;
    const next = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const until = Date.now() + 2_000;
    const sent: Promise<string>[] = [];
    for (let i = 0; Date.now() < until && i < 400; i++) {
      const bytes = Buffer.alloc(1 + (next() % 600), 0).map(() => next() & 0xff);
      // Half start as a plausible request, so the parser gets past the first line.
      const prefix = i % 2 === 0 ? `GET ${ssePath[shape]("alice-1")} HTTP/1.1\r\n` : "";
      sent.push(raw(servers[shape].url, Buffer.concat([Buffer.from(prefix), bytes]), 200));
      if (sent.length >= 20) await Promise.all(sent.splice(0));
    }
    await Promise.all(sent);
    expect(servers[shape].alive(), servers[shape].output()).toBe(true);
    expect(await sseServes(shape)).toContain("event: snapshot");
  });
});

describe("the plain Node http shape", () => {
  it("answers methods other than GET and HEAD with 405 and Allow", async () => {
    const response = await fetch(`${servers.node.url}/?op=alice-1`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    const trace = await raw(
      servers.node.url,
      `TRACE /?op=alice-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
      1_000,
    );
    // TRACE reaches the handler as HEAD: headers, never a stream.
    expect(statusOf(trace)).toBe(200);
    expect(trace).not.toContain("event: snapshot");
    expect(servers.node.alive()).toBe(true);
  });

  it("answers a WebSocket watch after the largest stream id with bad_after and keeps the socket", async () => {
    const ws = new WebSocket(`${servers.node.url.replace("http", "ws")}/?token=${TOKEN}`);
    await new Promise((r) => ws.once("open", r));
    const messages: Array<{ type: string; code?: string }> = [];
    ws.on("message", (d) => messages.push(JSON.parse(String(d)) as { type: string; code?: string }));
    ws.send(JSON.stringify({ type: "watch", op: "alice-1", after: MAX_ID }));
    ws.send(JSON.stringify({ type: "ping" }));
    const deadline = Date.now() + 5_000;
    while (!messages.some((m) => m.type === "pong") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(messages[0]).toMatchObject({ type: "error", code: "bad_after" });
    expect(messages.some((m) => m.type === "pong")).toBe(true);
    ws.close();
  });

  it("keeps serving after random bytes thrown at upgraded WebSocket connections for two seconds", async () => {
    const until = Date.now() + 2_000;
    for (let i = 0; Date.now() < until && i < 60; i++) {
      const { socket } = await rawWebSocket(servers.node.url);
      socket.write(randomBytes(1 + (i % 7) * 97));
      await new Promise((r) => setTimeout(r, 10));
      socket.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(servers.node.alive(), servers.node.output()).toBe(true);
    expect(await webSocketServes()).toMatchObject({ op: "alice-1" });
  });
});
