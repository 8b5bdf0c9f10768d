import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isBackendError } from "../../src/core/errors.ts";
import type { MetricName } from "../../src/core/observe.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import { collect, until } from "./helpers.ts";

/** A memory backend whose reads of watched streams fail while `broken` is true. */
function flaky(): { port: StreamPort; broken: { value: boolean } } {
  const inner = memory();
  const broken = { value: true };
  const port: StreamPort = {
    ...inner,
    name: inner.name,
    capabilities: inner.capabilities,
    append: (items, o) => inner.append(items, o),
    read: (s, e, r) => inner.read(s, e, r),
    getState: (k) => inner.getState(k),
    cancel: (k, r, t) => inner.cancel(k, r, t),
    close: () => inner.close(),
    wait: async (cursors, o) => {
      if (broken.value) throw new Error("ERR simulated read failure");
      return await inner.wait(cursors, o);
    },
  };
  return { port, broken };
}

function observed() {
  const errors: string[] = [];
  const warnings: string[] = [];
  const counts = new Map<MetricName, number>();
  return {
    errors,
    warnings,
    counts,
    logger: { error: (m: string) => errors.push(m), warn: (m: string) => warnings.push(m) },
    metrics: {
      increment: (name: MetricName, value = 1) => counts.set(name, (counts.get(name) ?? 0) + value),
      observe() {},
      gauge() {},
    },
  };
}

describe("a reader that keeps failing", () => {
  it("logs each failure at error level, counts read_failures, then ends the watch with a BackendError", async () => {
    const { port } = flaky();
    const o = observed();
    const progress = new Progress({
      port,
      logger: o.logger,
      metrics: o.metrics,
      maxReadFailures: 3,
      liveChannels: false,
    });
    try {
      await progress.publish("job-1", { status: "running", progress: 10 });
      const watch = collect(progress.watch("job-1"));
      await until(() => watch.error !== undefined, "the watch to end with an error");
      expect(watch.items[0]).toMatchObject({ kind: "snapshot" });
      expect(isBackendError(watch.error)).toBe(true);
      expect(String((watch.error as Error).message)).toMatch(/failed 3 times in a row/);
      expect(o.counts.get("read_failures")).toBe(3);
      expect(o.errors.length).toBe(3);
      expect(o.warnings).toEqual([]);
    } finally {
      await progress.close();
    }
  });

  it("ends an SSE stream with `event: error` so the client reconnects; a watch after recovery works", async () => {
    const { port, broken } = flaky();
    const o = observed();
    const progress = new Progress({
      port,
      logger: o.logger,
      metrics: o.metrics,
      maxReadFailures: 2,
      liveChannels: false,
    });
    try {
      await progress.publish("job-2", { status: "running", progress: 10 });
      const response = await progress.sse(new Request("http://x/progress/job-2"), "job-2");
      const text = await response.text();
      expect(text).toContain("event: snapshot");
      // A code and a short reason; the cause (backend text) goes to the logger only.
      expect(text).toMatch(/event: error\ndata: \{"code":"watch_failed","message":"Reading progress failed; reconnect/);
      expect(text).not.toMatch(/failed 2 times/);
      expect(o.errors).toContain("an SSE watch failed");
      expect(text.trimEnd().endsWith("}")).toBe(true);

      broken.value = false;
      const watch = collect(progress.watch("job-2"));
      await until(() => watch.items.length >= 1, "a snapshot after recovery");
      await progress.publish("job-2", { status: "completed", progress: 100 });
      await watch.done;
      expect(watch.error).toBeUndefined();
      expect(watch.items.at(-1)).toMatchObject({ kind: "event", event: { status: "completed" } });
    } finally {
      await progress.close();
    }
  });
});
