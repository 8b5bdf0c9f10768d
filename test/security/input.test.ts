/**
 * Bad input from callers and clients: out-of-range numbers are refused by
 * name, `report` never throws, and the WebSocket protocol answers a bad
 * target or resume id with an `error` message, keeping the socket open.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isProgressValidationError, type ProgressError } from "../../src/core/errors.ts";
import { Progress } from "../../src/core/progress.ts";
import type { WebSocketLike } from "../../src/core/websocket.ts";
import type { ProgressUpdate } from "../../src/core/wire.ts";
import { toRequest, writeResponse } from "../../src/node/index.ts";

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("out-of-range numbers", () => {
  it.each([
    ["eta", { eta: Number.MAX_VALUE }],
    ["eta", { eta: 1e300 }],
    ["eta", { eta: 1e13 }],
    ["progress", { progress: 1e300 }],
    ["current", { current: 2 ** 60 }],
    ["total", { total: 2 ** 60 }],
    ["ts", { ts: new Date(8.64e15) }],
    ["ts", { ts: new Date(Date.UTC(10_000, 0, 1)) }],
  ] as const)("%s of %o is refused by name and nothing is written", async (field, update) => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    const error = await progress.publish("job", update as ProgressUpdate).catch((e: unknown) => e);
    expect(isProgressValidationError(error) && error.field).toBe(field);
    expect(await progress.get("job")).toBeNull();
  });

  it("a large but printable eta is written as a plain decimal", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    await progress.publish("job", { eta: 1e12 });
    expect((await progress.history("job"))[0]?.eta).toBe(1e12);
  });
});

describe("report never throws", () => {
  it.each([false, { intervalMs: 0 }, { intervalMs: 50 }] as const)(
    "report(op, null) with throttle %o",
    async (throttle) => {
      const errors: ProgressError[] = [];
      await using progress = new Progress({ port: memory(), throttle, logger: {}, onError: (e) => errors.push(e) });
      expect(() => progress.report("job", null as unknown as ProgressUpdate)).not.toThrow();
      expect(() => progress.report("bad op", { progress: 1 })).not.toThrow();
      expect(() => progress.report("job", { eta: Number.MAX_VALUE })).not.toThrow();
      await progress.flush();
      expect(errors.map((e) => isProgressValidationError(e) && e.field)).toEqual(["update", "op", "eta"]);
      expect(await progress.get("job")).toBeNull();
    },
  );
});

/** A socket as a runtime would hand it over, recording what the server sends. */
function fakeSocket(): WebSocketLike & {
  sent: Array<Record<string, unknown>>;
  closed: boolean;
  receive(m: unknown): void;
} {
  const listeners: {
    message: Array<(e: { data: unknown }) => void>;
    close: Array<() => void>;
    error: Array<(e: unknown) => void>;
  } = {
    message: [],
    close: [],
    error: [],
  };
  const socket = {
    sent: [] as Array<Record<string, unknown>>,
    closed: false,
    readyState: 1,
    send(data: string) {
      socket.sent.push(JSON.parse(data) as Record<string, unknown>);
    },
    close() {
      socket.closed = true;
      socket.readyState = 3;
      for (const l of listeners.close) l();
    },
    addEventListener(type: "message" | "close" | "error", listener: never) {
      listeners[type].push(listener);
    },
    receive(m: unknown) {
      for (const l of listeners.message) l({ data: typeof m === "string" ? m : JSON.stringify(m) });
    },
  };
  return socket;
}

describe("WebSocket protocol", () => {
  it("answers a bad target or resume id with an error and keeps the socket open", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    await progress.publish("job-1", { progress: 10 });
    const socket = fakeSocket();
    const served = progress.serveWebSocket(socket);
    socket.receive({ type: "watch", op: "bad op" });
    socket.receive({ type: "watch", scope: "a{b}" });
    socket.receive({ type: "watch", op: "job-1", after: "not-an-id" });
    socket.receive({ type: "watch", op: "job-1", after: "1-0\nx" });
    await until(() => socket.sent.length >= 4, "four errors");
    expect(socket.sent.map((m) => [m.type, m.code])).toEqual([
      ["error", "bad_target"],
      ["error", "bad_target"],
      ["error", "bad_after"],
      ["error", "bad_after"],
    ]);
    expect(socket.closed).toBe(false);
    socket.receive({ type: "watch", op: "job-1" });
    await until(() => socket.sent.length >= 6, "snapshot and event");
    expect(socket.sent.slice(4).map((m) => m.type)).toEqual(["snapshot", "event"]);
    socket.close();
    await served;
  });
});

describe("the README's plain Node server", () => {
  it("answers an invalid operation id or resume id with 400 and keeps serving", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    await progress.publish("job-1", { status: "completed" });
    const server = createServer(async (req, res) => {
      const op = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.slice("/progress/".length));
      await writeResponse(res, await progress.sse(toRequest(req, res), op));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/progress/`;
    try {
      for (const path of ["bad%20op", "a%7Bb%7D", "job-1?after=yesterday"]) {
        const response = await fetch(base + path);
        expect(response.status, path).toBe(400);
        expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
        expect(await response.text()).toMatch(/^Invalid (op|after): /);
      }
      const ok = await fetch(`${base}job-1`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("event: snapshot");
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
