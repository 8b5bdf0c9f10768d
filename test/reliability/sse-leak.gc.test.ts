import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import type { MetricName } from "../../src/core/observe.ts";
import { Progress } from "../../src/core/progress.ts";
import { toRequest, writeResponse } from "../../src/node/index.ts";
import { until } from "./helpers.ts";

const gc = (globalThis as { gc?: () => void }).gc;

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 6; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().heapUsed;
}

describe("SSE connections that close abruptly", () => {
  let server: Server;
  let progress: Progress;
  let base: string;
  const gauges = new Map<MetricName, number>();
  beforeAll(async () => {
    progress = new Progress({
      port: memory(),
      logger: {},
      metrics: { increment() {}, observe() {}, gauge: (name, value) => gauges.set(name, value) },
    });
    await progress.publish("job-1", { status: "running", progress: 42, message: "working" });
    server = createServer((req, res) => {
      void (async () => writeResponse(res, await progress.sse(toRequest(req, res), "job-1")))();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await progress.close();
  });

  /** Open `n` SSE clients (`batch` at a time); each reads until its snapshot arrives, then drops the socket. */
  const churn = async (n: number, batch = 100): Promise<void> => {
    const { port } = new URL(base);
    for (let done = 0; done < n; done += batch) {
      await Promise.all(
        Array.from(
          { length: Math.min(batch, n - done) },
          () =>
            new Promise<void>((resolve, reject) => {
              const socket = connect(Number(port), "127.0.0.1", () => {
                socket.write("GET /progress HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
              });
              let text = "";
              socket.on("data", (chunk: Buffer) => {
                text += chunk.toString();
                if (text.includes("event: snapshot")) {
                  socket.destroy(); // abruptly: no FIN handshake waited for, nothing read after
                  resolve();
                }
              });
              socket.on("error", reject);
            }),
        ),
      );
    }
    await until(() => (gauges.get("watchers_active") ?? 0) === 0, "every watch to end");
  };

  it("2,000 clients opened and dropped leave the heap where it was", { timeout: 180_000 }, async () => {
    expect(gc, "run this file with --expose-gc").toBeTypeOf("function");
    await churn(300); // warm-up: code paths compiled, pools filled
    const before = await settledHeap();
    await churn(2000);
    const after = await settledHeap();
    const grownKb = (after - before) / 1024;
    console.info(
      `[sse-leak] heap after gc: ${(before / 1048576).toFixed(1)} MB before, ${(after / 1048576).toFixed(1)} MB after 2,000 closed clients (${grownKb.toFixed(0)} KB, ${((grownKb * 1024) / 2000).toFixed(0)} B per client)`,
    );
    // A leak of one response per client (about 12 KB each) would add 24 MB.
    expect(grownKb).toBeLessThan(3 * 1024);
  });
});
