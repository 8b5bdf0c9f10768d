import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { memory } from "../../src/adapters/memory/index.ts";
import { SLOW_CONSUMER_CLOSE_CODE } from "../../src/core/deliver/websocket.ts";
import type { MetricName } from "../../src/core/observe.ts";
import { Progress } from "../../src/core/progress.ts";
import { toRequest, writeResponse } from "../../src/node/index.ts";
import { until } from "./helpers.ts";

/** Custom-type events (never coalesced), 12 KB each: 1,000 of them are 12 MB, far past any socket buffer. */
const FLOOD = 1000;
const blob = "x".repeat(12_000);

describe("a client that never reads", () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  const manager = () => {
    const gauges = new Map<MetricName, number>();
    const progress = new Progress({
      port: memory(),
      logger: {},
      throttle: false,
      maxLen: 5000,
      metrics: { increment() {}, observe() {}, gauge: (name, value) => gauges.set(name, value) },
    });
    cleanup.push(async () => {
      await progress.close();
    });
    return { progress, watchers: () => gauges.get("watchers_active") ?? 0 };
  };
  const listen = async (server: Server): Promise<number> => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(() => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    });
    return (server.address() as AddressInfo).port;
  };
  const flood = async (progress: Progress, op: string) => {
    for (let i = 0; i < FLOOD; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => progress.publish(op, { type: "chunk", data: { i: i + j, blob } })),
      );
    }
  };

  it("over SSE: past the byte budget the server ends the stream; the client resumes from its last id", async () => {
    const { progress, watchers } = manager();
    const server = createServer((req, res) => {
      void (async () => writeResponse(res, await progress.sse(toRequest(req, res), "job-1")))();
    });
    const port = await listen(server);
    await progress.publish("job-1", { status: "running", progress: 1 });

    const socket: Socket = connect(port, "127.0.0.1");
    let text = "";
    let closed = false;
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    socket.on("close", () => {
      closed = true;
    });
    socket.write("GET /progress HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => text.includes("event: snapshot"), "the snapshot");
    socket.pause(); // from here on the client reads nothing

    await flood(progress, "job-1");
    await until(() => watchers() === 0, "the server to give up on the stalled client");
    socket.resume();
    await until(() => closed, "the connection to close");
    // Only complete messages count: a message cut off by the close is not delivered by an EventSource.
    const ids = [...text.matchAll(/^id: (\S+)\nevent: [^\n]*\ndata: [^\n]*\n\n/gm)].map((m) => m[1] as string);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.length).toBeLessThan(FLOOD);

    // Reconnecting with Last-Event-ID picks up exactly after the last event it got.
    await progress.publish("job-1", { status: "completed", progress: 100 });
    const resumed = await progress.sse(
      new Request("http://x/progress", { headers: { "last-event-id": ids.at(-1) as string } }),
      "job-1",
    );
    const rest = await resumed.text();
    const restIds = [...rest.matchAll(/^id: (\S+)$/gm)].map((m) => m[1] as string);
    expect(ids.length + restIds.length).toBe(FLOOD + 2); // seq 1, the flood, the completion
    expect(rest).toContain('"status":"completed"');
  }, 120_000);

  it("over WebSocket: past the byte budget the socket closes with 4008 and a reason", async () => {
    const { progress, watchers } = manager();
    const server = createServer();
    const wss = new WebSocketServer({ server });
    wss.on("connection", (socket, request) => void progress.serveWebSocket(socket, { request }));
    const port = await listen(server);
    cleanup.push(() => new Promise<void>((r) => wss.close(() => r())));
    await progress.publish("job-2", { status: "running", progress: 1 });

    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    const messages: string[] = [];
    ws.on("message", (d) => messages.push(String(d)));
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.on("close", (code, reason) => resolve({ code, reason: String(reason) })),
    );
    await new Promise((resolve) => ws.on("open", resolve));
    ws.send(JSON.stringify({ type: "watch", op: "job-2" }));
    await until(() => messages.some((m) => m.includes('"snapshot"')), "the snapshot");
    const raw = (ws as unknown as { _socket: Socket })._socket;
    raw.pause();

    await flood(progress, "job-2");
    await until(() => watchers() === 0, "the server to give up on the stalled client");
    raw.resume();
    const { code, reason } = await closed;
    expect(code).toBe(SLOW_CONSUMER_CLOSE_CODE);
    expect(reason).toMatch(/slow consumer/);
    expect(messages.length).toBeLessThan(FLOOD);
  }, 120_000);
});
