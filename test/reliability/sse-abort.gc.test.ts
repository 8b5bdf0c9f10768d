/**
 * A viewer that leaves ends its SSE body even when nothing but the library
 * holds the `Request`: on Node a `Request`'s signal follows the caller's
 * through a weak reference, so a request collected by the garbage collector
 * would otherwise never hear the abort, and its watch (an upstream stream on
 * the Upstash adapter) would stay open.
 */
import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { Progress } from "../../src/core/progress.ts";

const gc = (globalThis as { gc?: () => void }).gc;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Open a viewer whose `Request` only the library holds; resolves with its abort controller and end of body. */
async function openViewer(progress: Progress, op: string) {
  const leave = new AbortController();
  const response = await progress.sse(new Request(`http://127.0.0.1/progress/${op}`, { signal: leave.signal }), op);
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no body");
  const first = await reader.read();
  const ended = (async () => {
    for (;;) if ((await reader.read()).done) return "ended" as const;
  })();
  return { leave, first, ended };
}

describe("an SSE body after its Request was collected", () => {
  it("ends when the caller's signal aborts", async () => {
    expect(gc, "run in the gc project (--expose-gc)").toBeTypeOf("function");
    const progress = new Progress({ port: memory(), logger: {} });
    try {
      await progress.publish("job-1", { status: "running", progress: 1 });
      const viewer = await openViewer(progress, "job-1");
      expect(viewer.first.done).toBe(false);
      for (let i = 0; i < 6; i++) {
        gc?.();
        await sleep(20);
      }
      viewer.leave.abort();
      const outcome = await Promise.race([viewer.ended, sleep(3_000).then(() => "still open" as const)]);
      expect(outcome).toBe("ended");
    } finally {
      await progress.close();
    }
  });
});
