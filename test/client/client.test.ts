import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ConnectionStatus,
  estimateRemaining,
  type FollowError,
  follow,
  isFollowError,
  type ProgressEvent,
  type ProgressState,
} from "../../src/client/index.ts";

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

interface TestServer {
  readonly url: string;
  readonly requests: IncomingMessage[];
  /** Resolves when the n-th request's connection is closed (by either side). */
  closed(n: number): Promise<void>;
}

const servers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((close) => close()));
});

/** A real HTTP server speaking the SSE format of the spec; `handler` scripts each connection. */
async function serve(handler: Handler): Promise<TestServer> {
  const requests: IncomingMessage[] = [];
  const closes: Array<Promise<void>> = [];
  const server = createServer((req, res) => {
    const n = requests.length;
    requests.push(req);
    closes[n] = new Promise((resolve) => res.on("close", () => resolve()));
    handler(req, res, n);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/ops/job-1/events`,
    requests,
    closed: async (n) => {
      await until(() => closes[n] !== undefined);
      await closes[n];
    },
  };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const TS = "2026-11-22T14:30:00.000Z";
const idOf = (seq: number): string => `1732372800000-${seq}`;

/** The JSON of event number `seq` of an operation. */
function ev(seq: number, extra: Partial<ProgressState> = {}, op = "job-1"): ProgressState {
  return { op, id: idOf(seq), seq, type: "progress", status: "running", progress: seq * 10, ts: TS, ...extra };
}

function open(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.write("retry: 10\n\n");
}

function snapshot(res: ServerResponse, state: ProgressState, event = "snapshot"): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(state)}\n\n`);
}

function send(res: ServerResponse, e: ProgressState): void {
  res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
}

const FAST = { minDelayMs: 10, maxDelayMs: 50 } as const;

describe("follow", () => {
  it("delivers the snapshot, then each event, and stops after the terminal one", async () => {
    const server = await serve((_req, res) => {
      open(res);
      res.write(": ping\n\n");
      snapshot(res, { ...ev(0, { status: "queued" }), id: idOf(0) });
      send(res, ev(1));
      send(res, ev(2, { type: "file_completed", data: { file: "a.csv" } }));
      send(res, ev(3, { status: "completed", progress: 100, message: "done" }));
      res.end();
    });
    const events: ProgressEvent[] = [];
    const states: ProgressState[] = [];
    const statuses: ConnectionStatus[] = [];
    const job = follow(server.url, {
      onEvent: (e) => events.push(e),
      onState: (s) => states.push(s),
      onStatus: (s) => statuses.push(s),
    });
    await job.done;

    expect(events.map((e) => [e.kind, e.type, e.id])).toEqual([
      ["snapshot", "progress", idOf(0)],
      ["event", "progress", idOf(1)],
      ["event", "file_completed", idOf(2)],
      ["event", "progress", idOf(3)],
    ]);
    expect(states.map((s) => s.progress)).toEqual([0, 10, 20, 100]);
    // Merged: the file_completed data survives the later event that has none.
    expect(job.state).toMatchObject({ status: "completed", seq: 3, data: { file: "a.csv" }, message: "done" });
    expect(job.states.get("job-1")).toBe(job.state);
    expect(job.lastEventId).toBe(idOf(3));
    expect(statuses).toEqual(["connecting", "open", "closed"]);
    expect(job.status).toBe("closed");
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.headers.accept).toBe("text/event-stream");
    expect(server.requests[0]?.headers["last-event-id"]).toBeUndefined();
  });

  it("parses \\r\\n, \\r, multi-line data, comments, fields without a space, and lines split across chunks", async () => {
    const body = [
      "\uFEFF: hello\r\n\r\n",
      "event:snapshot\r\ndata:",
      JSON.stringify(ev(0, { status: "queued" })),
      "\r\n\r",
      "\n",
      `id:${idOf(1)}\revent: progress\rdata: {"op":"job-1","seq":1,\rdata: "type":"progress","status":"running",\r\n`,
      `data:"progress":10,"ts":"${TS}"}\r\r`,
      `: ping\n\nid: ${idOf(2)}\nevent: progress\nunknown: field\ndata\ndata: `,
      `${JSON.stringify(ev(2, { status: "completed", message: "a: b" }))}\n\n`,
    ];
    const server = await serve(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const chunk of body) {
        res.write(chunk);
        await sleep(5);
      }
      res.end();
    });
    const events: ProgressEvent[] = [];
    const errors: FollowError[] = [];
    const job = follow(server.url, { onEvent: (e) => events.push(e), onError: (e) => errors.push(e) });
    await job.done;
    expect(events.map((e) => [e.kind, e.seq, e.id])).toEqual([
      ["snapshot", 0, idOf(0)],
      ["event", 1, idOf(1)],
      ["event", 2, idOf(2)],
    ]);
    // The third event's data starts with an empty `data` line: "\n{...}" is still JSON.
    expect(errors).toEqual([]);
    expect(job.state).toMatchObject({ seq: 2, status: "completed", message: "a: b" });
    expect(job.lastEventId).toBe(idOf(2));
  });

  it("resumes with Last-Event-ID after drops, drops re-sent duplicates, and misses nothing", async () => {
    const server = await serve((_req, res, n) => {
      open(res);
      if (n === 0) {
        snapshot(res, ev(0, { status: "queued" }));
        for (const seq of [1, 2, 3]) send(res, ev(seq));
        // An abrupt drop mid-stream, half an event in flight.
        res.write(`id: ${idOf(4)}\ndata: {"op"`);
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (n === 1) {
        snapshot(res, ev(4));
        for (const seq of [2, 3, 4, 4, 5]) send(res, ev(seq));
        // A clean close before the terminal event: still a reason to resume.
        res.end();
      } else {
        snapshot(res, ev(5));
        send(res, ev(5));
        send(res, ev(6, { status: "completed", progress: 100 }));
        // Left open: the client must stop by itself after the terminal event.
      }
    });
    const events: ProgressEvent[] = [];
    const errors: FollowError[] = [];
    const job = follow(server.url, { ...FAST, onEvent: (e) => events.push(e), onError: (e) => errors.push(e) });
    await job.done;

    expect(events.filter((e) => e.kind === "event").map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6].map(idOf));
    expect(events.filter((e) => e.kind === "snapshot")).toHaveLength(3);
    expect(server.requests).toHaveLength(3);
    const resumedFrom = server.requests.map((r) => [
      r.headers["last-event-id"],
      new URL(r.url ?? "", "http://x").searchParams.get("after"),
    ]);
    expect(resumedFrom).toEqual([
      [undefined, null],
      [idOf(3), idOf(3)],
      [idOf(5), idOf(5)],
    ]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.retrying).toBe(true);
    expect(job.state).toMatchObject({ seq: 6, status: "completed", progress: 100 });
    await server.closed(2);
  });

  it("on reset replaces the state, then delivers the history without moving the state back", async () => {
    const server = await serve((_req, res, n) => {
      open(res);
      if (n === 0) {
        snapshot(res, ev(0, { status: "queued" }));
        send(res, ev(1));
        res.end();
      } else {
        snapshot(res, ev(10, { progress: 80 }), "reset");
        send(res, ev(9, { progress: 70 }));
        send(res, ev(10, { progress: 80 }));
        send(res, ev(11, { status: "completed", progress: 100 }));
        res.end();
      }
    });
    const events: ProgressEvent[] = [];
    const progress: Array<number | undefined> = [];
    const job = follow(server.url, {
      ...FAST,
      onEvent: (e) => events.push(e),
      onState: (s) => progress.push(s.progress),
    });
    await job.done;
    expect(events.map((e) => `${e.kind}:${e.seq}`)).toEqual([
      "snapshot:0",
      "event:1",
      "reset:10",
      "event:9",
      "event:10",
      "event:11",
    ]);
    expect(progress).toEqual([0, 10, 80, 100]);
  });

  it("replaces the state at the first event of a new attempt: nothing of the old attempt is merged in", async () => {
    const server = await serve((_req, res) => {
      open(res);
      snapshot(res, ev(1, { attempt: 1, current: 4, total: 10, message: "Rows", data: { file: "a.csv" } }));
      send(res, ev(2, { attempt: 1, current: 5, total: 10 }));
      // The job was restarted: the new attempt's first event carries only what it knows.
      send(res, ev(3, { attempt: 2, progress: 1 }));
      send(res, ev(4, { attempt: 2, progress: 60, message: "Copying" }));
      send(res, ev(5, { attempt: 2, status: "completed", progress: 100 }));
      res.end();
    });
    const states: ProgressState[] = [];
    const job = follow(server.url, { onState: (s) => states.push(s) });
    await job.done;
    expect(states[1]).toMatchObject({ attempt: 1, current: 5, total: 10, message: "Rows", data: { file: "a.csv" } });
    expect(states[2]).toEqual(ev(3, { attempt: 2, progress: 1 }));
    // As the server's snapshot: the completed event, saying nothing, drops the last step's message.
    expect(job.state).toEqual(ev(5, { attempt: 2, status: "completed", progress: 100 }));
  });

  it("grows the backoff exponentially up to maxDelayMs, scaled by the jitter", async () => {
    const failures = 6;
    const times: number[] = [];
    const handler: Handler = (_req, res, n) => {
      times.push(performance.now());
      if (n < failures) {
        res.writeHead(503).end("busy");
        return;
      }
      open(res);
      snapshot(res, ev(1, { status: "completed" }));
      res.end();
    };

    // random() -> 1: the full delay, 20 * 2^n capped at 160.
    const full = await serve(handler);
    const errors: FollowError[] = [];
    let draws = 0;
    const job = follow(full.url, {
      minDelayMs: 20,
      maxDelayMs: 160,
      random: () => {
        draws++;
        return 1;
      },
      onError: (e) => errors.push(e),
    });
    await job.done;
    expect(full.requests).toHaveLength(failures + 1);
    expect(draws).toBe(failures);
    expect(errors.map((e) => [e.status, e.retrying])).toEqual(Array(failures).fill([503, true]));
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    const expected = [20, 40, 80, 160, 160, 160];
    gaps.forEach((gap, i) => {
      const want = expected[i] ?? 0;
      expect(gap).toBeGreaterThanOrEqual(want - 2);
      expect(gap).toBeLessThan(want + 250); // generous: the machine is shared; the lower bound proves the growth
    });

    // random() -> 0.05: a twentieth of it, so the delay really is drawn from [0, cap).
    times.length = 0;
    const jittered = await serve(handler);
    const start = performance.now();
    await follow(jittered.url, { minDelayMs: 20, maxDelayMs: 160, random: () => 0.05 }).done;
    const total = expected.reduce((a, b) => a + b, 0);
    expect(performance.now() - start).toBeLessThan(450); // the full delays alone would take 620 ms
    expect(performance.now() - start).toBeLessThan(total);
  });

  it("honours a server retry: hint larger than minDelayMs", async () => {
    const times: number[] = [];
    const server = await serve((_req, res, n) => {
      times.push(performance.now());
      res.writeHead(200, { "content-type": "text/event-stream" });
      if (n === 0) {
        res.end("retry: 300\n\n");
        return;
      }
      snapshot(res, ev(1, { status: "completed" }));
      res.end();
    });
    await follow(server.url, { minDelayMs: 10, random: () => 1 }).done;
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(298);
  });

  it.each([401, 403, 404])("stops on %i without retrying, with an error", async (status) => {
    const server = await serve((_req, res) => res.writeHead(status).end("no"));
    const errors: FollowError[] = [];
    const statuses: ConnectionStatus[] = [];
    const job = follow(server.url, {
      ...FAST,
      onError: (e) => errors.push(e),
      onStatus: (s) => statuses.push(s),
    });
    const failure = await job.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isFollowError(failure)).toBe(true);
    expect(failure).toMatchObject({ name: "FollowError", status, retrying: false });
    expect(errors).toEqual([failure]);
    expect(statuses).toEqual(["connecting", "closed"]);
    const iterate = async (): Promise<void> => {
      for await (const _ of job.events) {
        // nothing arrives
      }
    };
    await expect(iterate()).rejects.toBe(failure);
    await sleep(100);
    expect(server.requests).toHaveLength(1);
  });

  it("stops on a terminal snapshot when the server then closes, and on 204", async () => {
    const terminal = await serve((_req, res) => {
      open(res);
      snapshot(res, ev(7, { status: "failed", message: "boom" }));
      res.end();
    });
    const job = follow(terminal.url, FAST);
    await job.done;
    expect(job.state).toMatchObject({ status: "failed", message: "boom" });
    expect(job.remainingSeconds()).toBeUndefined();
    const gone = await serve((_req, res) => res.writeHead(204).end());
    await follow(gone.url, FAST).done;
    await sleep(50);
    expect(terminal.requests).toHaveLength(1);
    expect(gone.requests).toHaveLength(1);
  });

  it("close() aborts the request, ends the iterator and resolves done", async () => {
    const server = await serve((_req, res) => {
      open(res);
      snapshot(res, ev(1));
      const ping = setInterval(() => res.write(": ping\n\n"), 20);
      res.on("close", () => clearInterval(ping));
    });
    const job = follow(server.url, FAST);
    const seen: ProgressEvent[] = [];
    const iterating = (async () => {
      for await (const e of job) {
        seen.push(e);
        job.close();
        job.close(); // idempotent
      }
    })();
    await iterating;
    await job.done;
    await server.closed(0);
    expect(seen.map((e) => e.kind)).toEqual(["snapshot"]);
    expect(job.status).toBe("closed");
    await sleep(50);
    expect(server.requests).toHaveLength(1);
  });

  it("stops when the caller's signal aborts, even while waiting to reconnect", async () => {
    const server = await serve((_req, res) => res.writeHead(500).end());
    const controller = new AbortController();
    const job = follow(server.url, {
      minDelayMs: 10_000,
      maxDelayMs: 10_000,
      random: () => 1,
      signal: controller.signal,
    });
    await until(() => job.status === "reconnecting");
    controller.abort();
    await job.done;
    expect(job.status).toBe("closed");
    expect(server.requests).toHaveLength(1);
  });

  it("follows a scope: many ops, no stop on terminal events, per-op id order", async () => {
    const server = await serve((_req, res, n) => {
      open(res);
      if (n === 0) {
        snapshot(res, ev(0, { op: "scope" }, "scope"));
        send(res, ev(1, {}, "a"));
        send(res, ev(2, {}, "b"));
        send(res, ev(3, { status: "completed" }, "a"));
        // Unseen, but older than op a's last id: dropped.
        send(res, { ...ev(4, {}, "a"), id: "1732372799999-9" });
        res.end();
      } else {
        send(res, ev(5, { status: "failed" }, "b"));
      }
    });
    const events: ProgressEvent[] = [];
    const job = follow(server.url, { ...FAST, untilTerminal: false, onEvent: (e) => events.push(e) });
    await until(() => events.length === 5);
    await sleep(50);
    expect(job.status).toBe("open");
    expect(events.map((e) => `${e.op}:${e.seq}`)).toEqual(["scope:0", "a:1", "b:2", "a:3", "b:5"]);
    expect([...job.states.keys()]).toEqual(["scope", "a", "b"]);
    expect(job.states.get("a")?.status).toBe("completed");
    expect(job.state).toMatchObject({ op: "b", status: "failed" });
    expect(server.requests[1]?.headers["last-event-id"]).toBe(idOf(3));
    job.close();
    await job.done;
    await server.closed(1);
  });

  it("sends the caller's headers (a function is called on every connect) and starts from lastEventId", async () => {
    let calls = 0;
    const server = await serve((_req, res) => {
      open(res);
      send(res, ev(4, { status: "completed" }));
      res.end();
    });
    await follow(new URL(server.url), {
      lastEventId: idOf(3),
      headers: () => ({ authorization: `Bearer t${++calls}` }),
    }).done;
    expect(server.requests[0]?.headers.authorization).toBe("Bearer t1");
    expect(server.requests[0]?.headers["last-event-id"]).toBe(idOf(3));
  });

  it("throws at once for a relative URL where there is no location to resolve it against", () => {
    expect(() => follow("/ops/x/events")).toThrow(TypeError);
  });

  it("uses an injected fetch", async () => {
    const urls: string[] = [];
    const body = `event: snapshot\ndata: ${JSON.stringify(ev(1, { status: "completed" }))}\n\n`;
    const job = follow("http://example.invalid/ops/x", {
      fetch: async (url) => {
        urls.push(url);
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      },
    });
    await job.done;
    expect(urls).toEqual(["http://example.invalid/ops/x"]);
    expect(job.state?.status).toBe("completed");
  });

  it("remainingSeconds() counts down the server's eta, then estimates from the rate", async () => {
    const server = await serve((_req, res) => {
      open(res);
      snapshot(res, ev(1, { progress: 40, eta: 120 }));
      setTimeout(() => send(res, ev(2, { progress: 50 })), 100);
    });
    const job = follow(server.url, FAST);
    await until(() => job.state !== undefined);
    const eta = job.remainingSeconds();
    expect(eta).toBeGreaterThan(119);
    expect(eta).toBeLessThanOrEqual(120);
    await until(() => job.state?.seq === 2);
    // No eta on the newer update, and less than a second of samples: unknown.
    expect(job.remainingSeconds()).toBeUndefined();
    expect(job.remainingSeconds("other-op")).toBeUndefined();
    job.close();
  });
});

describe("estimateRemaining", () => {
  it("divides what is left by the observed rate", () => {
    expect(estimateRemaining([], { now: 0 })).toBeUndefined();
    expect(estimateRemaining([{ at: 0, progress: 10 }], { now: 5_000 })).toBeUndefined();
    const samples = [
      { at: 0, progress: 10 },
      { at: 10_000, progress: 30 },
    ];
    expect(estimateRemaining(samples, { now: 10_000 })).toBe(35);
  });

  it("is stable under a burst of updates", () => {
    const samples = [{ at: 0, progress: 10 }];
    for (let i = 0; i <= 20; i++) samples.push({ at: 10_000 + i, progress: 30 + i });
    const eta = estimateRemaining(samples, { now: 10_020 });
    // 40 points in ~10 s: ~12.5 s left, not the 0.05 s the burst's own rate would say.
    expect(eta).toBeGreaterThan(12);
    expect(eta).toBeLessThan(13);
  });

  it("uses a sliding window, and grows while progress stalls", () => {
    const samples = [
      { at: 0, progress: 0 },
      { at: 20_000, progress: 10 },
      { at: 30_000, progress: 30 },
    ];
    // The first 20 s were slow; the last 10 s (the window) count: 2 %/s.
    expect(estimateRemaining(samples, { now: 30_000 })).toBe(35);
    expect(estimateRemaining(samples, { now: 30_000, windowMs: 60_000 })).toBe(70);
    expect(estimateRemaining(samples, { now: 50_000 })).toBeCloseTo(105, 6);
  });
});

describe("bundle", () => {
  const bundle = async (contents: string): Promise<{ code: Uint8Array; inputs: string[] }> => {
    const result = await build({
      stdin: { contents, resolveDir: fileURLToPath(new URL("../../src/client/", import.meta.url)), loader: "ts" },
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      write: false,
      metafile: true,
    });
    return { code: result.outputFiles[0]?.contents ?? new Uint8Array(), inputs: Object.keys(result.metafile.inputs) };
  };

  it("is under 3 KB minified and gzipped for follow alone, and uses no Node APIs", async () => {
    const { code, inputs } = await bundle('export { follow } from "./index.ts";');
    expect(inputs.filter((i) => i !== "<stdin>").map((i) => i.replace(/^.*src\//, "src/"))).toEqual([
      "src/client/index.ts",
    ]);
    expect(gzipSync(code).length).toBeLessThan(3072);
    const text = new TextDecoder().decode(code);
    expect(text).not.toMatch(/\bnode:|\brequire\(|\bprocess\.|\bBuffer\b/);
    // Tree-shaken: the WebSocket follower is not in a bundle that only uses follow.
    expect(text).not.toContain("No WebSocket class");
  });

  it("stays small with the WebSocket follower too", async () => {
    const { code } = await bundle('export * from "./index.ts";');
    expect(gzipSync(code).length).toBeLessThan(3584);
  });
});
