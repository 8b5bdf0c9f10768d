import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import {
  type FollowError,
  followWebSocket,
  isFollowError,
  type ProgressEvent,
  type WebSocketClass,
} from "../../src/client/index.ts";
import { createProgress, type Progress } from "../../src/index.ts";

let progress: Progress;
let wss: WebSocketServer;

async function serve(authorize?: (request: unknown) => boolean): Promise<string> {
  progress = createProgress({ logger: {}, throttle: false });
  wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  wss.on("connection", (socket, request) => {
    void progress.serveWebSocket(socket, { request, authorize });
  });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const client of wss?.clients ?? []) client.terminate();
  await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
  await progress?.close();
});

const WS = WebSocket as unknown as WebSocketClass;

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("followWebSocket", () => {
  it("follows an operation to its end, resuming after a dropped socket without duplicates", async () => {
    const url = await serve();
    await progress.publish("w1", { status: "running", progress: 10 });
    const seen: ProgressEvent[] = [];
    const statuses: string[] = [];
    const job = followWebSocket(
      url,
      { op: "w1" },
      { WebSocket: WS, minDelayMs: 20, onEvent: (e) => seen.push(e), onStatus: (s) => statuses.push(s) },
    );
    await until(() => seen.length >= 1);
    expect(seen[0]).toMatchObject({ kind: "snapshot", progress: 10 });
    await progress.publish("w1", { progress: 30 });
    await until(() => seen.some((e) => e.progress === 30));
    // The server side drops every socket: the client resumes after the last id it saw.
    for (const client of wss.clients) client.terminate();
    await until(() => statuses.includes("reconnecting"));
    await progress.publish("w1", { progress: 70 });
    await progress.publish("w1", { status: "completed", progress: 100 });
    await job.done;
    const events = seen.filter((e) => e.kind === "event").map((e) => e.progress);
    expect(events).toEqual([10, 30, 70, 100]);
    expect(new Set(seen.filter((e) => e.kind === "event").map((e) => e.id)).size).toBe(4);
    expect(job.state?.status).toBe("completed");
    expect(job.remainingSeconds()).toBe(0);
    expect(statuses.at(-1)).toBe("closed");
  });

  it("stops with a 403 error when authorize refuses", async () => {
    const url = await serve(() => false);
    const errors: FollowError[] = [];
    const job = followWebSocket(url, { op: "w2" }, { WebSocket: WS, onError: (e) => errors.push(e) });
    const failure = await job.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isFollowError(failure) && failure.status).toBe(403);
    expect(errors.map((e) => e.retrying)).toEqual([false]);
  });

  it("follows a scope until closed", async () => {
    const url = await serve();
    const states = new Map<string, number | undefined>();
    const job = followWebSocket(
      url,
      { scope: "team" },
      { WebSocket: WS, untilTerminal: false, onState: (s) => states.set(s.op, s.progress) },
    );
    await until(() => job.status === "open");
    // The watch is registered once the server has read the message: publish until it is seen.
    await until(() => {
      void progress.publish("s1", { status: "running", progress: 5 }, { scope: "team" });
      return states.has("s1");
    });
    await progress.publish("s2", { status: "completed", progress: 100 }, { scope: "team" });
    await until(() => states.get("s2") === 100);
    expect(job.status).toBe("open");
    job.close();
    await job.done;
  });
});
