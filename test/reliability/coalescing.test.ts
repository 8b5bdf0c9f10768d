import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { Progress } from "../../src/core/progress.ts";
import { collect, seqs, until } from "./helpers.ts";

describe("delivery to watchers", () => {
  it("a watcher that keeps up sees every event even when one read returns more entries than maxQueue", async () => {
    const progress = new Progress({ port: memory(), logger: {}, throttle: false, estimate: false });
    try {
      await progress.publish("job-1", { status: "running", progress: 0 });
      const watch = collect(progress.watch("job-1", { maxQueue: 10 }));
      await until(() => watch.items.length >= 2, "the snapshot and the first event");
      // Published together: one append, so the reader gets them in one read, ten times maxQueue.
      await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish("job-1", { progress: (i + 1) * 0.5 })));
      await until(() => seqs(watch.items).includes(101), "the consumer to take the whole read");
      await progress.publish("job-1", { status: "completed", progress: 100 });
      await watch.done;
      expect(seqs(watch.items)).toEqual(Array.from({ length: 102 }, (_, i) => i + 1));
    } finally {
      await progress.close();
    }
  });

  it("a watcher that falls behind gets progress coalesced to the newest, terminal events kept", async () => {
    const progress = new Progress({ port: memory(), logger: {}, throttle: false, estimate: false });
    try {
      await progress.publish("job-2", { status: "running", progress: 0 });
      const items = progress.watch("job-2", { maxQueue: 5 });
      expect((await items.next()).value).toMatchObject({ kind: "snapshot" });
      expect((await items.next()).value).toMatchObject({ kind: "event" });
      // Not reading: separate reads pile up behind this consumer.
      for (let round = 0; round < 3; round++) {
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => progress.publish("job-2", { progress: round * 20 + i + 1 })),
        );
        await new Promise((r) => setTimeout(r, 50));
      }
      await progress.publish("job-2", { status: "completed", progress: 100 });
      const rest: number[] = [];
      for await (const item of items) if (item.kind === "event") rest.push(item.event.seq);
      expect(rest.length).toBeLessThan(62);
      expect(rest.at(-1)).toBe(62);
    } finally {
      await progress.close();
    }
  });

  it("watchers of one operation share each decoded live event and its item (decoded once per process)", async () => {
    const progress = new Progress({ port: memory(), logger: {}, throttle: false });
    try {
      await progress.publish("job-3", { status: "running", progress: 1 });
      const a = collect(progress.watch("job-3"));
      const b = collect(progress.watch("job-3"));
      await until(() => a.items.length >= 2 && b.items.length >= 2, "both watchers' history");
      await progress.publish("job-3", { status: "completed", progress: 100 });
      await Promise.all([a.done, b.done]);
      const last = (c: typeof a) => c.items.at(-1);
      expect(last(a)).toMatchObject({ kind: "event", event: { seq: 2, status: "completed" } });
      // One item object for every watcher of the entry, frozen so no watcher can change what another sees.
      expect(last(a)).toBe(last(b));
      expect(Object.isFrozen(last(a))).toBe(true);
      const ea = last(a);
      const eb = last(b);
      expect(ea?.kind === "event" && eb?.kind === "event" && ea.event === eb.event).toBe(true);
      expect(ea?.kind === "event" && Object.isFrozen(ea.event)).toBe(true);
    } finally {
      await progress.close();
    }
  });
});
