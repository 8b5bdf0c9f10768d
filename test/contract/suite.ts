/**
 * The one contract suite: every adapter runs all of it against the real thing.
 * Tests skip by capability, never by adapter name.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProgressError } from "../../src/core/errors.ts";
import type { LogFields } from "../../src/core/observe.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import { keyPresets } from "../../src/core/port/keys.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import { attemptsTests } from "./attempts.ts";
import { deliveryTests } from "./delivery.ts";
import type { Harness } from "./harness.ts";
import { jobsTests } from "./jobs.ts";

let counter = 0;
/** A random key prefix per test, so nothing depends on another test or run. */
export function uniquePrefix(): string {
  return `t${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export function testAdapter(name: string, start: () => Promise<Harness>): void {
  describe(`contract: ${name}`, () => {
    let h: Harness;
    const open: Progress[] = [];
    beforeAll(async () => {
      h = await start();
    });
    afterAll(async () => {
      await Promise.all(open.map((p) => p.close()));
      await h?.close();
    });
    const make = (
      options: Partial<ProgressOptions> = {},
      port?: StreamPort,
    ): { progress: Progress; prefix: string; port: StreamPort } => {
      const prefix = uniquePrefix();
      const used = port ?? h.port();
      const progress = new Progress({ port: used, prefix, logger: {}, ...options });
      open.push(progress);
      return { progress, prefix, port: used };
    };

    it("writes the wire format to the documented keys and fields", async () => {
      const { progress, prefix } = make();
      const r = await progress.publish("job-1", {
        current: 1,
        total: 3,
        message: "Chunked 1 of 3",
        cid: "req-9",
        data: { file: "a.txt" },
      });
      expect(r).toMatchObject({ ok: true, outcome: "published", seq: 1, cancelled: null });
      const entries = await h.inspect.xrange(`${prefix}:{job-1}:events`);
      expect(entries).toHaveLength(1);
      const entry = entries[0];
      expect(entry?.id).toBe(r.ok ? r.id : "");
      expect(Object.keys(entry?.fields ?? {})).toEqual([
        "v",
        "op",
        "seq",
        "type",
        "status",
        "progress",
        "current",
        "total",
        "message",
        "cid",
        "ts",
        "data",
        "attempt",
      ]);
      expect(entry?.fields).toMatchObject({
        v: "1",
        op: "job-1",
        seq: "1",
        type: "progress",
        status: "running",
        progress: "33.33",
        current: "1",
        total: "3",
        message: "Chunked 1 of 3",
        cid: "req-9",
        data: '{"file":"a.txt"}',
        attempt: "1",
      });
      expect(entry?.fields.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const state = await h.inspect.hgetall(`${prefix}:{job-1}:state`);
      // The snapshot also keeps when its keys expire (`exp`, ms), so TTLs are refreshed only when due.
      expect(state).toEqual({ ...entry?.fields, id: entry?.id, exp: expect.stringMatching(/^\d{13}$/) });
      expect(await h.inspect.keys(prefix)).toEqual(
        expect.arrayContaining([`${prefix}:{job-1}:events`, `${prefix}:{job-1}:state`]),
      );
      expect((await h.inspect.keys(prefix)).length).toBe(2);
    });

    it("merges events into the snapshot, with seq and ts of the latest", async () => {
      const { progress } = make();
      await progress.publish("m", { progress: 10, message: "start", data: { a: 1 } });
      const last = await progress.publish("m", { progress: 20.456 });
      const snap = await progress.get("m");
      expect(snap).toMatchObject({
        op: "m",
        seq: 2,
        progress: 20.46,
        message: "start",
        data: { a: 1 },
        status: "running",
      });
      expect(snap?.id).toBe(last.ok ? last.id : "x");
      expect(await progress.get("unknown-op")).toBeNull();
    });

    it("reads history after an id, with a limit", async () => {
      const { progress } = make({ estimate: false });
      const ids: string[] = [];
      for (let i = 1; i <= 5; i++) {
        const r = await progress.publish("h", { progress: i * 10 });
        if (r.ok) ids.push(r.id);
      }
      const all = await progress.history("h");
      expect(all.map((e) => e.progress)).toEqual([10, 20, 30, 40, 50]);
      expect(all.map((e) => e.id)).toEqual(ids);
      expect((await progress.history("h", { after: ids[1] })).map((e) => e.seq)).toEqual([3, 4, 5]);
      expect((await progress.history("h", { after: ids[1], limit: 2 })).map((e) => e.seq)).toEqual([3, 4]);
      expect(await progress.history("nothing-here")).toEqual([]);
    });

    it("assigns seq atomically under 50 concurrent publishers to one operation", async () => {
      const { progress } = make({ estimate: false });
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => progress.publish("race", { progress: 50, message: `p${i}` })),
      );
      const seqs = results.map((r) => (r.ok ? r.seq : -1)).sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      const history = await progress.history("race");
      expect(history.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect((await progress.get("race"))?.seq).toBe(50);
    });

    it("assigns seq atomically across separate connections", async () => {
      const prefix = uniquePrefix();
      const managers = Array.from({ length: 5 }, () => {
        const p = new Progress({ port: h.port(), prefix, logger: {}, estimate: false });
        open.push(p);
        return p;
      });
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (managers[i % 5] as Progress).publish("race2", { progress: 1 })),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      const history = await (managers[0] as Progress).history("race2");
      expect(history.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it("refuses progress that goes backwards, unless asked", async () => {
      const { progress } = make();
      await progress.publish("b", { progress: 50 });
      const back = await progress.publish("b", { progress: 40 });
      expect(back).toMatchObject({ ok: false, outcome: "refused", reason: "backwards", seq: 1 });
      expect((await progress.get("b"))?.progress).toBe(50);
      expect(await progress.history("b")).toHaveLength(1);
      const forced = await progress.publish("b", { progress: 40 }, { allowBackwards: true });
      expect(forced).toMatchObject({ ok: true, seq: 2 });
      expect((await progress.get("b"))?.progress).toBe(40);
      // An event without progress never counts as going backwards.
      expect(await progress.publish("b", { message: "still here" })).toMatchObject({ ok: true, seq: 3 });
    });

    it("refuses any update after a terminal status, unless asked", async () => {
      const { progress } = make();
      await progress.publish("t", { progress: 30 });
      const done = await progress.publish("t", { status: "completed" });
      expect(done).toMatchObject({ ok: true, seq: 2 });
      expect((await progress.get("t"))?.progress).toBe(100);
      for (const update of [{ progress: 100 }, { status: "failed" as const }, { message: "late" }]) {
        expect(await progress.publish("t", update)).toMatchObject({ ok: false, reason: "terminal", seq: 2 });
      }
      expect((await progress.get("t"))?.status).toBe("completed");
      const reopened = await progress.publish(
        "t",
        { status: "running", progress: 0 },
        {
          allowAfterTerminal: true,
          allowBackwards: true,
        },
      );
      expect(reopened).toMatchObject({ ok: true, seq: 3 });
    });

    it("refreshes TTLs on every write, shortens the stream's after the end", async () => {
      const { progress, prefix } = make({ ttlSeconds: 120, terminalTtlSeconds: 30 });
      await progress.publish("ttl", { progress: 1 });
      const ev = await h.inspect.pttl(`${prefix}:{ttl}:events`);
      const st = await h.inspect.pttl(`${prefix}:{ttl}:state`);
      expect(ev).toBeGreaterThan(110_000);
      expect(ev).toBeLessThanOrEqual(120_000);
      expect(st).toBeGreaterThan(110_000);
      await progress.publish("ttl", { status: "completed" });
      const evAfter = await h.inspect.pttl(`${prefix}:{ttl}:events`);
      expect(evAfter).toBeGreaterThan(20_000);
      expect(evAfter).toBeLessThanOrEqual(30_000);
      expect(await h.inspect.pttl(`${prefix}:{ttl}:state`)).toBeGreaterThan(110_000);
    });

    it("expires an operation after its TTL", async () => {
      const { progress } = make({ ttlSeconds: 1 });
      await progress.publish("exp", { progress: 5 });
      expect(await progress.get("exp")).not.toBeNull();
      await new Promise((r) => setTimeout(r, 1300));
      expect(await progress.get("exp")).toBeNull();
      expect(await progress.history("exp")).toEqual([]);
    });

    it("caps the stream approximately at maxLen, keeping the newest", async () => {
      const { progress, prefix } = make({ maxLen: 10, estimate: false });
      await Promise.all(Array.from({ length: 400 }, (_, i) => progress.publish(`cap`, { message: `m${i}` })));
      const entries = await h.inspect.xrange(`${prefix}:{cap}:events`);
      expect(entries.length).toBeGreaterThanOrEqual(10);
      expect(entries.length).toBeLessThanOrEqual(10 + 100);
      expect(entries[entries.length - 1]?.fields.seq).toBe("400");
      expect((await progress.get("cap"))?.seq).toBe(400);
    });

    it("also writes to the scope's stream when a scope is given", async () => {
      const { progress, prefix } = make();
      const a = await progress.publish("s1", { progress: 10 }, { scope: "user-7" });
      await progress.publish("s2", { progress: 20 }, { scope: "user-7" });
      await progress.publish("s3", { progress: 30 });
      const scoped = await h.inspect.xrange(`${prefix}:scope:{user-7}:events`);
      expect(scoped.map((e) => e.fields.op)).toEqual(["s1", "s2"]);
      expect(scoped[0]?.fields.id).toBe(a.ok ? a.id : "");
      const history = await progress.history({ scope: "user-7" });
      expect(history.map((e) => [e.op, e.progress])).toEqual([
        ["s1", 10],
        ["s2", 20],
      ]);
    });

    it("reports a cancellation mark on the publish round trip", async () => {
      const { progress, prefix } = make();
      await progress.publish("c", { progress: 10 });
      expect(await progress.cancel("c", "user pressed cancel")).toBe(true);
      expect(await progress.publish("c", { progress: 20 })).toMatchObject({
        ok: true,
        cancelled: "user pressed cancel",
      });
      expect((await progress.get("c"))?.cancel).toBe("user pressed cancel");
      await progress.publish("c", { status: "cancelled" });
      expect(await progress.cancel("c", "again")).toBe(false);
      // An unknown operation (a typo) is not marked: a later job with that id must not be told to stop.
      expect(await progress.cancel("not-started", "never mind")).toBe(false);
      expect(await progress.get("not-started")).toBeNull();
      expect(await h.inspect.keys(`${prefix}:{not-started}`)).toEqual([]);
      expect(await progress.publish("not-started", { status: "queued" })).toMatchObject({ cancelled: null });
      expect(await progress.cancel("not-started", "now")).toBe(true);
    });

    it("uses a key preset's layout", async () => {
      const prefix = uniquePrefix();
      const port = h.port();
      const progress = new Progress({ port, keys: keyPresets.chunking, logger: {} });
      open.push(progress);
      const op = `${prefix}-op`;
      if (port.capabilities.cluster) {
        // Without a shared hash tag an operation's keys cannot be written atomically on a cluster: said plainly.
        const refused = await progress.publish(op, { progress: 12 });
        expect(refused.ok ? "" : refused.outcome === "failed" ? refused.error.message : "").toMatch(/hash tag/);
        return;
      }
      await progress.publish(op, { progress: 12 });
      expect(await h.inspect.xrange(`stream:chunking:${op}`)).toHaveLength(1);
      expect((await h.inspect.hgetall(`chunking:progress:${op}`))?.progress).toBe("12");
    });

    it("coalesces reports: holds the newest, writes it at the interval's end, passes terminal events at once", async () => {
      // The interval is long enough that a loaded machine still sees "only the first, then the newest".
      const { progress } = make({ throttle: { intervalMs: 1000 }, estimate: false });
      const currents = async () => (await progress.history("co")).map((e) => e.current);
      const waitFor = async (want: number) => {
        const deadline = Date.now() + 10_000;
        while ((await progress.history("co")).length < want && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      const started = Date.now();
      for (let i = 1; i <= 50; i++) progress.report("co", { current: i, total: 100 });
      await waitFor(1);
      const early = await currents();
      if (Date.now() - started < 900) expect(early).toEqual([1]);
      await waitFor(2);
      expect(await currents()).toEqual([1, 50]);
      progress.report("co", { current: 60, total: 100, message: "held" });
      progress.report("co", { current: 70, total: 100 });
      progress.report("co", { status: "completed", current: 100, total: 100 });
      await waitFor(4);
      const events = await progress.history("co");
      expect(events.map((e) => [e.current, e.status, e.message])).toEqual([
        [1, "running", undefined],
        [50, "running", undefined],
        [70, "running", "held"],
        [100, "completed", undefined],
      ]);
    });

    it("flush() writes every held report", async () => {
      const { progress } = make({ throttle: { intervalMs: 60_000 } });
      progress.report("f1", { progress: 1 });
      progress.report("f1", { progress: 2 });
      progress.report("f2", { progress: 3 });
      progress.report("f2", { progress: 4 });
      await progress.flush();
      expect((await progress.history("f1")).map((e) => e.progress)).toEqual([1, 2]);
      expect((await progress.history("f2")).map((e) => e.progress)).toEqual([3, 4]);
    });

    it("report never throws, even for bad input; onError hears of it", async () => {
      const errors: ProgressError[] = [];
      const { progress } = make({ onError: (e) => errors.push(e) });
      expect(() => progress.report("bad{op}", { progress: 1 })).not.toThrow();
      expect(() => progress.report("ok", { progress: Number.NaN })).not.toThrow();
      expect(errors.map((e) => e.name)).toEqual(["ProgressValidationError", "ProgressValidationError"]);
      await expect(progress.publish("ok", { progress: 101 })).rejects.toMatchObject({
        name: "ProgressValidationError",
        field: "progress",
      });
    });

    it("waits for new entries on many keys and wakes at once on abort", async () => {
      const { progress, prefix } = make();
      const port = h.port();
      const first = await progress.publish("w1", { progress: 1 });
      const keys = [`${prefix}:{w1}:events`, `${prefix}:{w2}:events`];
      const waiting = port.wait(
        keys.map((key) => ({ key, after: first.ok ? first.id : "0" })),
        { blockMs: 5000, count: 100 },
      );
      await new Promise((r) => setTimeout(r, 50));
      await progress.publish("w2", { progress: 2 });
      const got = await waiting;
      expect(got.map((k) => [k.key, k.entries.map((e) => e.fields.progress)])).toEqual([[keys[1], ["2"]]]);
      const controller = new AbortController();
      const started = Date.now();
      const idle = port.wait([{ key: keys[0] as string, after: "9999999999999-0" }], {
        blockMs: 10_000,
        count: 10,
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(), 50);
      expect(await idle).toEqual([]);
      expect(Date.now() - started).toBeLessThan(3000);
      await port.close();
    });

    describe("when the backend can count round trips", () => {
      it("a publish is one round trip; concurrent publishes share batches", async (ctx) => {
        if (!h.roundTrips) return ctx.skip();
        const { progress } = make();
        await progress.publish("rt", { progress: 1 });
        const before = await h.roundTrips();
        await progress.publish("rt", { progress: 2 });
        expect((await h.roundTrips()) - before).toBe(1);
        const before2 = await h.roundTrips();
        await Promise.all(Array.from({ length: 100 }, (_, i) => progress.publish(`rt-${i}`, { progress: 3 })));
        expect((await h.roundTrips()) - before2).toBeLessThanOrEqual(2);
      });
    });

    it("a backend that is down: publish resolves with an error, logs and reports it, and recovers", async (ctx) => {
      if (!h.down || !h.up) return ctx.skip();
      const logged: LogFields[] = [];
      const errors: string[] = [];
      const port = h.port();
      const progress = new Progress({
        port,
        prefix: uniquePrefix(),
        logger: { error: (_m, fields) => logged.push(fields), warn: () => {} },
        onError: (e, c) => errors.push(`${e.name}:${c.op}`),
        retry: { attempts: 2, minDelayMs: 10, maxDelayMs: 20 },
      });
      open.push(progress);
      expect(await progress.publish("d", { progress: 1 })).toMatchObject({ ok: true });
      await h.down();
      try {
        const r = await progress.publish("d", { progress: 2, cid: "c-1" });
        expect(r.ok).toBe(false);
        expect(r).toMatchObject({ outcome: "failed", queued: true });
        expect(() => progress.report("d", { progress: 3 })).not.toThrow();
        const terminal = await progress.publish("d", { status: "completed" });
        expect(terminal).toMatchObject({ ok: false, outcome: "failed", queued: true });
        expect(logged[0]).toMatchObject({ op: "d", cid: "c-1" });
        expect(errors.length).toBeGreaterThanOrEqual(2);
      } finally {
        await h.up();
      }
      let after = await progress.publish("e", { progress: 5 });
      for (let i = 0; i < 50 && !after.ok; i++) {
        await new Promise((r) => setTimeout(r, 100));
        after = await progress.publish("e", { progress: 5 });
      }
      expect(after).toMatchObject({ ok: true });
      // What was refused while it was down is written once it is back, the terminal event last.
      expect((await progress.flush()).unwritten).toEqual([]);
      expect(await progress.get("d")).toMatchObject({ status: "completed" });
      expect((await progress.history("d")).map((e) => [e.status, e.progress])).toEqual([
        ["running", 3],
        ["completed", 100],
      ]);
    });

    it("close() flushes held reports and is idempotent", async () => {
      const port = h.port();
      const prefix = uniquePrefix();
      const progress = new Progress({ port, prefix, logger: {}, throttle: { intervalMs: 60_000 } });
      progress.report("cl", { progress: 1 });
      progress.report("cl", { progress: 2 });
      await Promise.all([progress.close(), progress.close()]);
      await progress.close();
      const reader = new Progress({ port: h.port(), prefix, logger: {} });
      open.push(reader);
      expect((await reader.history("cl")).map((e) => e.progress)).toEqual([1, 2]);
      expect(await progress.publish("cl", { progress: 3 })).toMatchObject({ ok: false, outcome: "failed" });
    });

    deliveryTests(() => h, make);
    jobsTests(make);
    attemptsTests(() => h, make);

    describe("consumer groups", () => {
      it("reads, acks and claims what a dead consumer left pending", async (ctx) => {
        const port = h.port();
        if (
          !port.capabilities.groups ||
          !port.ensureGroup ||
          !port.groupRead ||
          !port.ack ||
          !port.claim ||
          !port.pending
        )
          return ctx.skip();
        const { progress, prefix } = make();
        const key = `${prefix}:scope:{g}:events`;
        await port.ensureGroup(key, "db");
        await port.ensureGroup(key, "db");
        for (let i = 1; i <= 3; i++) await progress.publish(`g${i}`, { progress: i }, { scope: "g" });
        const a = await port.groupRead({ key, group: "db", consumer: "a", count: 2, blockMs: 0 });
        expect(a.map((e) => e.fields.op)).toEqual(["g1", "g2"]);
        expect(await port.ack(key, "db", [a[0]?.id ?? ""])).toBe(1);
        expect(await port.pending(key, "db")).toBe(1);
        const b = await port.groupRead({ key, group: "db", consumer: "b", count: 10, blockMs: 0 });
        expect(b.map((e) => e.fields.op)).toEqual(["g3"]);
        await new Promise((r) => setTimeout(r, 60));
        const claimed = await port.claim({ key, group: "db", consumer: "b", minIdleMs: 50, count: 10 });
        expect(claimed.map((e) => e.fields.op).sort()).toEqual(["g2", "g3"]);
        expect(
          await port.ack(
            key,
            "db",
            claimed.map((e) => e.id),
          ),
        ).toBe(2);
        expect(await port.pending(key, "db")).toBe(0);
        await port.close();
      });
    });
  });
}
