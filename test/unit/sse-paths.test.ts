import { createServer, get, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { toRequest, writeResponse } from "../../src/node/index.ts";

/**
 * An SSE response leaves either as a web stream (Hono, Deno, Workers, any
 * framework that reads `Response.body`) or written straight to a Node response
 * by `progresscast/node`. A client must not be able to tell which.
 */
describe("the two ways an SSE body leaves", () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  const manager = (): Progress => {
    const progress = new Progress({ port: memory(), logger: {}, throttle: false, estimate: false });
    cleanup.push(() => progress.close().then(() => undefined));
    return progress;
  };

  /** The SSE messages of a body, without the heartbeat comments and the volatile timestamps. */
  const messages = (text: string): string[] =>
    text
      .split("\n\n")
      .filter((m) => m !== "" && !m.startsWith(":"))
      .map((m) => m.replace(/"(updatedAt|startedAt|endedAt|at|exp)":[^,}]+/g, '"$1":_'));

  const readWeb = async (response: Response): Promise<string> => {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  };

  /** Resolves when the HTTP server below has begun writing a response (so its snapshot is being read). */
  let answering: Promise<void> = Promise.resolve();

  const readHttp = async (progress: Progress, op: string, headers: Record<string, string> = {}): Promise<string> => {
    let answered = (): void => {};
    answering = new Promise((r) => {
      answered = r;
    });
    const server = createServer((req, res) => {
      void (async () => {
        const response = await progress.sse(toRequest(req, res), op);
        const written = writeResponse(res, response);
        answered();
        await written;
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(() => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    });
    const { port } = server.address() as AddressInfo;
    return await new Promise<string>((resolve, reject) => {
      get({ host: "127.0.0.1", port, path: "/", headers, agent: false }, (res: IncomingMessage) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve(text));
        res.on("error", reject);
      }).on("error", reject);
    });
  };

  it("history, live events and the end arrive the same, byte for byte, over both", async () => {
    const progress = manager();
    for (let i = 1; i <= 40; i++) await progress.publish("job-1", { current: i, total: 100, message: `step ${i}` });
    const web = progress.sse(new Request("http://x/"), "job-1").then(readWeb);
    const http = readHttp(progress, "job-1");
    // Live events after both are following (on a busy machine the HTTP request takes a while to arrive): 60 more, then the end.
    await new Promise((r) => setTimeout(r, 20));
    await answering;
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 41; i <= 100; i++) await progress.publish("job-1", { current: i, total: 100 });
    await progress.publish("job-1", { status: "completed" });
    const [a, b] = await Promise.all([web, http]);
    expect(messages(a)[0]).toBe("retry: 2000");
    expect(messages(a).filter((m) => m.startsWith("id: ")).length).toBe(101);
    expect(messages(b)).toEqual(messages(a));
    expect(a.endsWith("\n\n")).toBe(true);
  });

  it("resume with Last-Event-ID gives the same tail over both", async () => {
    const progress = manager();
    const ids: string[] = [];
    for (let i = 1; i <= 10; i++) {
      const r = await progress.publish("job-2", { current: i, total: 10 });
      ids.push(r.ok ? r.id : "");
    }
    await progress.publish("job-2", { status: "failed", message: "disk full" });
    const after = ids[6] as string;
    const web = await readWeb(
      await progress.sse(new Request("http://x/", { headers: { "last-event-id": after } }), "job-2"),
    );
    const http = await readHttp(progress, "job-2", { "last-event-id": after });
    const events = messages(web).filter((m) => m.startsWith("id: "));
    expect(events.length).toBe(4); // steps 8, 9, 10 and the failure
    expect(events[3]).toContain(`"status":"failed"`);
    expect(messages(http)).toEqual(messages(web));
  });

  it("a web reader that stops reading is ended past its byte budget, holding no more than one pull's worth", async () => {
    const progress = manager();
    await progress.publish("job-3", { status: "running", current: 1, total: 10 });
    const response = await progress.sse(new Request("http://x/"), "job-3", { maxBufferedBytes: 20_000 });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("event: snapshot")) text += decoder.decode((await reader.read()).value, { stream: true });
    // The reader stops; 200 events of 1 KB (never coalesced: a custom type) arrive meanwhile.
    const blob = "x".repeat(1000);
    for (let i = 0; i < 200; i++) await progress.publish("job-3", { type: "chunk", data: { i, blob } });
    let delivered = 0;
    const outcome = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return "closed";
        delivered += (decoder.decode(value).match(/event: chunk/g) ?? []).length;
      }
    })().catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).name).toBe("SlowConsumerError");
    // What was handed to the web stream before the budget ran out: at most one pull's worth (64 KB), not all 200.
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(80);
  });
});
