/**
 * Delivery part of the contract suite: watch, late joiners, resume, reset,
 * fan-out across managers, scopes, SSE over real HTTP, WebSockets over `ws`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import type { WatchItem } from "../../src/core/deliver/watch.ts";
import { UnauthorizedError } from "../../src/core/errors.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import { Progress, type Target } from "../../src/core/progress.ts";
import { toRequest, writeResponse } from "../../src/node/index.ts";
import type { Harness } from "./harness.ts";

type Make = (options?: Partial<ProgressOptions>) => { progress: Progress; prefix: string };

async function collect(it: AsyncIterable<WatchItem>, n: number, timeoutMs = 10_000): Promise<WatchItem[]> {
  const out: WatchItem[] = [];
  const deadline = setTimeout(() => {}, 0);
  clearTimeout(deadline);
  const timer = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`timed out with ${out.length} of ${n} items`)), timeoutMs),
  );
  const run = (async () => {
    for await (const item of it) {
      out.push(item);
      if (out.length >= n) break;
    }
    return out;
  })();
  return await Promise.race([run, timer]);
}

/** Every item of a watch until it ends (by itself or by its signal). */
async function drain(it: AsyncIterable<WatchItem>): Promise<WatchItem[]> {
  const out: WatchItem[] = [];
  for await (const item of it) out.push(item);
  return out;
}

function summary(items: readonly WatchItem[]): string[] {
  return items.map((i) =>
    i.kind === "event" ? `${i.event.op}:${i.event.seq}:${i.event.status}` : `${i.kind}:${i.snapshot?.seq ?? "none"}`,
  );
}

async function listen(handler: (req: Request) => Promise<Response>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    void (async () => writeResponse(res, await handler(toRequest(req, res))))();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Read an SSE response over real HTTP, parsed with eventsource-parser, until it ends or `n` messages. */
async function readSse(url: string, headers: Record<string, string> = {}, n = Number.POSITIVE_INFINITY) {
  const response = await fetch(url, { headers });
  const messages: EventSourceMessage[] = [];
  let retry: number | undefined;
  const parser = createParser({
    onEvent: (m) => messages.push(m),
    onRetry: (r) => {
      retry = r;
    },
  });
  const reader = response.body?.getReader();
  const decoder = new TextDecoder();
  while (reader && messages.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  await reader?.cancel();
  return { status: response.status, headers: response.headers, messages, retry };
}

export function deliveryTests(harness: () => Harness, make: Make): void {
  describe("delivery", () => {
    it("a late joiner gets the snapshot, the history, then live events, and the watch ends after the terminal event", async () => {
      const { progress } = make({ estimate: false });
      await progress.publish("late", { progress: 10 });
      await progress.publish("late", { progress: 20 });
      const items = collect(progress.watch("late"), 6);
      await new Promise((r) => setTimeout(r, 50));
      await progress.publish("late", { progress: 30 });
      await progress.publish("late", { progress: 40 });
      await progress.publish("late", { status: "completed" });
      await progress.publish("late", { progress: 100 }, { allowAfterTerminal: true }); // never seen: the watch ended
      expect(summary(await items)).toEqual([
        "snapshot:2",
        "late:1:running",
        "late:2:running",
        "late:3:running",
        "late:4:running",
        "late:5:completed",
      ]);
      // A watcher arriving after the end gets the whole story and stops by itself.
      const after = await collect(progress.watch("late"), 100);
      expect(summary(after).slice(0, 2)).toEqual(["snapshot:6", "late:1:running"]);
      expect(after.length).toBe(7);
    });

    it("resuming after an id yields every missed event exactly once", async () => {
      const { progress } = make({ estimate: false });
      const ids: string[] = [];
      for (let i = 1; i <= 6; i++) {
        const r = await progress.publish("resume", { progress: i * 10 });
        if (r.ok) ids.push(r.id);
      }
      const items = collect(progress.watch("resume", { after: ids[2] }), 5);
      await new Promise((r) => setTimeout(r, 50));
      await progress.publish("resume", { progress: 70 });
      expect(summary(await items)).toEqual([
        "snapshot:6",
        "resume:4:running",
        "resume:5:running",
        "resume:6:running",
        "resume:7:running",
      ]);
    });

    it("an id older than the capped history yields a reset with the snapshot first", async () => {
      const { progress } = make({ maxLen: 5, estimate: false });
      const first = await progress.publish("trim", { progress: 1 });
      for (let i = 2; i <= 300; i++) await progress.publish("trim", { progress: 1, message: `m${i}` });
      await progress.publish("trim", { status: "completed" });
      const items = await collect(progress.watch("trim", { after: first.ok ? first.id : "0-0" }), 1000);
      expect(items[0]).toMatchObject({ kind: "reset", snapshot: { seq: 301, status: "completed" } });
      const events = items.filter((i) => i.kind === "event");
      expect(events.length).toBeGreaterThan(0);
      expect(events.length).toBeLessThan(300);
      expect(summary(items).at(-1)).toBe("trim:301:completed");
    });

    it("two managers on separate connections both deliver every event published by a third", async () => {
      const h = harness();
      const { progress: worker, prefix } = make({ estimate: false });
      const apiA = new Progress({ port: h.port(), prefix, logger: {} });
      const apiB = new Progress({ port: h.port(), prefix, logger: {} });
      try {
        const a = collect(apiA.watch("fan"), 12);
        const b = collect(apiB.watch("fan"), 12);
        await new Promise((r) => setTimeout(r, 100));
        for (let i = 1; i <= 10; i++) await worker.publish("fan", { progress: i * 5 });
        await worker.publish("fan", { status: "completed" });
        const expected = [
          "snapshot:none",
          ...Array.from({ length: 10 }, (_, i) => `fan:${i + 1}:running`),
          "fan:11:completed",
        ];
        expect(summary(await a)).toEqual(expected);
        expect(summary(await b)).toEqual(expected);
      } finally {
        await Promise.all([apiA.close(), apiB.close()]);
      }
    });

    it("a scope follows all of a user's operations", async () => {
      const { progress } = make({ estimate: false });
      await progress.publish("u1", { progress: 10 }, { scope: "user-1" });
      const items = collect(progress.watch({ scope: "user-1" }), 4);
      await new Promise((r) => setTimeout(r, 50));
      await progress.publish("u2", { progress: 20 }, { scope: "user-1" });
      await progress.publish("other", { progress: 20 }, { scope: "user-2" });
      await progress.publish("u1", { status: "completed" }, { scope: "user-1" });
      await progress.publish("u2", { progress: 50 }, { scope: "user-1" });
      expect(summary(await items)).toEqual(["u1:1:running", "u2:1:running", "u1:2:completed", "u2:2:running"]);
    });

    it("a forged entry naming another operation never hands a watcher that operation's data", async (ctx) => {
      const write = harness().write;
      if (!write) return ctx.skip();
      const { progress } = make({ estimate: false });
      const secret = "bob's private message";
      await progress.publish("bob-1", { status: "running", progress: 40, message: secret, data: { card: "4242" } });
      await progress.publish("alice-1", { status: "running", progress: 10 }, { scope: "alice" });
      const live = drain(progress.watch({ scope: "alice" }, { signal: AbortSignal.timeout(3_000) }));
      const single = drain(progress.watch("alice-1", { signal: AbortSignal.timeout(3_000) }));
      await new Promise((r) => setTimeout(r, 100));
      const ts = new Date().toISOString();
      const scopeKey = progress.streamKey({ scope: "alice" });
      // A high seq, then a lower one: what a scope watcher takes for an operation that lost its data.
      await write.xadd(scopeKey, { v: "1", op: "bob-1", seq: "999999", status: "running", ts });
      await write.xadd(scopeKey, { v: "1", op: "bob-1", seq: "5", status: "running", ts });
      // An entry in alice-1's own stream naming bob-1: delivered as alice-1's, never as bob-1's.
      await write.xadd(progress.streamKey("alice-1"), { v: "1", op: "bob-1", seq: "2", status: "running", ts });
      await progress.publish("alice-1", { status: "completed" }, { scope: "alice" });
      const seen = [...(await live), ...(await single)];
      // A new connection catches up from the scope's history: the same entries again.
      seen.push(...(await drain(progress.watch({ scope: "alice" }, { signal: AbortSignal.timeout(1_000) }))));
      // A watcher saw the forged entries (and took the lower seq for lost data): a reset made of them alone.
      expect(summary(seen)).toContain("bob-1:999999:running");
      const text = JSON.stringify(seen);
      expect(text).not.toContain(secret);
      expect(text).not.toContain("4242");
      // The operation's own watch never attributes the forged entry to bob-1, and ends on alice-1's own terminal event.
      const own = await drain(progress.watch("alice-1", { signal: AbortSignal.timeout(2_000) }));
      expect(own.filter((i) => i.kind === "event").map((i) => (i.kind === "event" ? i.event.op : ""))).not.toContain(
        "bob-1",
      );
      expect(summary(own).at(-1)).toMatch(/^alice-1:\d+:completed$/);
    });

    it("many watchers: one reader per manager, every watcher gets every event", async () => {
      const { progress } = make({ estimate: false });
      const watches = Array.from({ length: 200 }, (_, i) => collect(progress.watch(`many-${i % 20}`), 3));
      await new Promise((r) => setTimeout(r, 100));
      await Promise.all(Array.from({ length: 20 }, (_, i) => progress.publish(`many-${i}`, { progress: 50 })));
      await Promise.all(Array.from({ length: 20 }, (_, i) => progress.publish(`many-${i}`, { status: "completed" })));
      const all = await Promise.all(watches);
      for (const [i, items] of all.entries()) {
        expect(summary(items)).toEqual(["snapshot:none", `many-${i % 20}:1:running`, `many-${i % 20}:2:completed`]);
      }
    });

    it("watchers joining while events stream in each get every event once, in order", async () => {
      const { progress } = make({ estimate: false });
      const total = 150;
      const watchers: Array<Promise<WatchItem[]>> = [];
      const publishing = (async () => {
        for (let i = 1; i <= total; i++) {
          await progress.publish("join", { progress: (i / total) * 99 }, { scope: "join-scope" });
          await new Promise((r) => setTimeout(r, 1));
        }
        await progress.publish("join", { status: "completed" }, { scope: "join-scope" });
      })();
      // Watchers join at their own pace while the reader is busy reading.
      for (let w = 0; w < 20; w++) {
        watchers.push(collect(progress.watch("join"), total + 2));
        watchers.push(collect(progress.watch({ scope: "join-scope" }), total + 1));
        await new Promise((r) => setTimeout(r, 7));
      }
      await publishing;
      for (const items of await Promise.all(watchers)) {
        const seqs = items.flatMap((item) => (item.kind === "event" ? [item.event.seq] : []));
        expect(seqs).toEqual(Array.from({ length: total + 1 }, (_, k) => k + 1));
      }
    });

    it("breaking out of a watch releases it; abort ends it", async () => {
      const { progress } = make();
      await progress.publish("brk", { progress: 1 });
      for await (const item of progress.watch("brk")) {
        expect(item.kind).toBe("snapshot");
        break;
      }
      const controller = new AbortController();
      const items = collect(progress.watch("brk", { signal: controller.signal }), 100);
      setTimeout(() => controller.abort(), 100);
      expect(summary(await items)).toEqual(["snapshot:1", "brk:1:running"]);
    });

    it("SSE over real HTTP: snapshot, events with ids and types, retry hint, closes after the terminal event", async () => {
      const { progress } = make({ estimate: false });
      const { url, server } = await listen((req) => progress.sse(req, new URL(req.url).searchParams.get("op") ?? ""));
      try {
        await progress.publish("sse", { progress: 10 });
        const reading = readSse(`${url}/?op=sse`);
        await new Promise((r) => setTimeout(r, 100));
        await progress.publish("sse", { type: "file_completed", data: { file: "a.txt" } });
        const done = await progress.publish("sse", { status: "completed" });
        const got = await reading;
        expect(got.status).toBe(200);
        expect(got.headers.get("content-type")).toContain("text/event-stream");
        expect(got.headers.get("access-control-allow-origin")).toBeNull();
        expect(got.retry).toBe(2000);
        expect(got.messages.map((m) => m.event)).toEqual(["snapshot", "progress", "file_completed", "progress"]);
        expect(got.messages[0]?.id).toBeUndefined();
        expect(JSON.parse(got.messages[2]?.data ?? "{}")).toMatchObject({ data: { file: "a.txt" }, seq: 2 });
        expect(got.messages[3]?.id).toBe(done.ok ? done.id : "");
        // Reconnect with Last-Event-ID: every missed event exactly once, nothing before it.
        const second = got.messages[1]?.id ?? "";
        const again = await readSse(`${url}/?op=sse`, { "last-event-id": second });
        expect(again.messages.map((m) => JSON.parse(m.data).seq)).toEqual([3, 2, 3]);
        expect(again.messages.map((m) => m.event)).toEqual(["snapshot", "file_completed", "progress"]);
        const viaQuery = await readSse(`${url}/?op=sse&after=${encodeURIComponent(second)}`);
        expect(viaQuery.messages.length).toBe(3);
      } finally {
        server.close();
      }
    });

    it("SSE refuses unauthorized clients with 401/403 and no data", async () => {
      const { progress } = make();
      await progress.publish("secret", { progress: 10, message: "top secret" });
      const { url, server } = await listen((req) =>
        progress.sse(req, "secret", {
          authorize: (r) => {
            const token = r.headers.get("authorization");
            if (!token) throw new UnauthorizedError("no credentials", 401);
            return token === "Bearer good";
          },
        }),
      );
      try {
        const none = await fetch(url);
        expect(none.status).toBe(401);
        expect(await none.text()).not.toContain("top secret");
        const bad = await fetch(url, { headers: { authorization: "Bearer bad" } });
        expect(bad.status).toBe(403);
        expect(await bad.text()).not.toContain("top secret");
        const good = await readSse(url, { authorization: "Bearer good" }, 1);
        expect(good.messages[0]?.event).toBe("snapshot");
      } finally {
        server.close();
      }
    });

    it("SSE frees the watch when the client goes away", async () => {
      const { progress } = make();
      const { url, server } = await listen((req) => progress.sse(req, "gone", { heartbeatMs: 50 }));
      try {
        const controller = new AbortController();
        const response = await fetch(url, { signal: controller.signal });
        const reader = response.body?.getReader();
        await reader?.read();
        controller.abort();
        await new Promise((r) => setTimeout(r, 200));
        // The manager still serves new watchers and publishes after the client left.
        await progress.publish("gone", { status: "completed" });
        const got = await readSse(url);
        expect(got.messages.map((m) => m.event)).toEqual(["snapshot", "progress"]);
      } finally {
        server.close();
      }
    });

    it("WebSocket over real ws: watch, events, ping, unwatch, and 4001/4003 refusals", async () => {
      const { progress } = make({ estimate: false });
      const server = createServer();
      const wss = new WebSocketServer({ server });
      wss.on("connection", (socket, request) => {
        void progress.serveWebSocket(socket, {
          request,
          authorize: (req, target) => {
            const auth = req.headers.authorization;
            if (!auth) throw new UnauthorizedError("no credentials", 401);
            return auth === "Bearer good" && target.op !== "forbidden";
          },
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const open = (headers: Record<string, string>) =>
        new Promise<{ ws: WebSocket; messages: Array<Record<string, unknown>>; closed: Promise<number> }>((resolve) => {
          const ws = new WebSocket(url, { headers });
          const messages: Array<Record<string, unknown>> = [];
          ws.on("message", (d) => messages.push(JSON.parse(String(d))));
          const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
          ws.on("open", () => resolve({ ws, messages, closed }));
        });
      const until = async (fn: () => boolean) => {
        for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 20));
        expect(fn()).toBe(true);
      };
      try {
        await progress.publish("ws-job", { progress: 10 });
        const c = await open({ authorization: "Bearer good" });
        c.ws.send(JSON.stringify({ type: "watch", op: "ws-job" }));
        c.ws.send(JSON.stringify({ type: "ping" }));
        await until(() => c.messages.length >= 3);
        await progress.publish("ws-job", { progress: 50 });
        await progress.publish("ws-job", { status: "completed" });
        await until(() => c.messages.filter((m) => m.type === "event").length >= 3);
        expect(c.messages.map((m) => m.type).sort()).toEqual(["event", "event", "event", "pong", "snapshot"]);
        const events = c.messages.filter((m) => m.type === "event").map((m) => (m.event as { seq: number }).seq);
        expect(events).toEqual([1, 2, 3]);
        c.ws.send("not json");
        await until(() => c.messages.some((m) => m.type === "error"));
        c.ws.close();

        const anon = await open({});
        anon.ws.send(JSON.stringify({ type: "watch", op: "ws-job" }));
        expect(await anon.closed).toBe(4001);
        expect(anon.messages.filter((m) => m.type !== "error")).toEqual([]);
        const forbidden = await open({ authorization: "Bearer good" });
        forbidden.ws.send(JSON.stringify({ type: "watch", op: "forbidden" }));
        expect(await forbidden.closed).toBe(4003);
        expect(forbidden.messages).toEqual([]);
      } finally {
        wss.close();
        server.close();
      }
    });

    it("a slow consumer's intermediate progress is coalesced; the terminal event always arrives", async () => {
      const { progress } = make({ estimate: false });
      const iterator = progress.watch("slow", { maxQueue: 10 });
      const first = await iterator.next();
      expect(first.value).toMatchObject({ kind: "snapshot" });
      const pending = iterator.next(); // subscribes; then nobody reads for a while
      for (let i = 1; i <= 200; i++) await progress.publish("slow", { progress: i / 2 });
      await progress.publish("slow", { status: "completed" });
      await new Promise((r) => setTimeout(r, 200));
      const got: WatchItem[] = [(await pending).value as WatchItem];
      for await (const item of { [Symbol.asyncIterator]: () => iterator }) got.push(item);
      expect(got.length).toBeLessThanOrEqual(12);
      expect(summary(got).at(-1)).toBe("slow:201:completed");
      const seqs = got.map((i) => (i.kind === "event" ? i.event.seq : 0));
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    });
  });
}

export type { Target };
