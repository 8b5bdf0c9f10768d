/**
 * The public surface under any input (on the memory backend): `publish`,
 * `report`, `task`, `watch`, `sse`, `cancel` and `consume` either work or fail
 * with a ProgressValidationError naming the field; `report` and `sse` never
 * throw at all.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isProgressValidationError, type ProgressError } from "../../src/core/errors.ts";
import { Progress, type PublishOptions, type Target } from "../../src/core/progress.ts";
import type { ProgressUpdate } from "../../src/core/wire/index.ts";
import { problems } from "./valid-event.ts";

const FIELDS = new Set([
  "op",
  "update",
  "options",
  "progress",
  "current",
  "total",
  "message",
  "status",
  "type",
  "cid",
  "data",
  "eta",
  "ts",
  "scope",
  "after",
  "limit",
  "reason",
  "group",
  "consumer",
  "claimIdleMs",
  "batch",
  "blockMs",
]);

/** Ids: valid ones, near misses, and anything at all. */
const id = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,20}$/),
  fc.constantFrom("", "bad op", "a{b}", "x\nid: 1", "-lead", "ü", "x".repeat(129), "k:state"),
  fc.string({ maxLength: 10 }),
  fc.anything(),
);
const number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(Number.MAX_VALUE, 1e300, 2 ** 60, -0, Number.NaN, Number.POSITIVE_INFINITY, 1e12, 1e13),
  fc.anything(),
);
const update = fc.oneof(
  fc.record(
    {
      progress: number,
      current: number,
      total: number,
      message: fc.oneof(fc.string(), fc.constant("m".repeat(2049)), fc.anything()),
      status: fc.oneof(fc.constantFrom("queued", "running", "completed", "failed", "cancelled", "done"), fc.anything()),
      type: fc.oneof(
        fc.constantFrom("progress", "file_completed", "x\nevent: admin", "1abc"),
        fc.string(),
        fc.anything(),
      ),
      cid: fc.oneof(fc.constantFrom("req-1", "two words", ""), fc.anything()),
      data: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.constantFrom([1], "text", null), fc.anything()),
      eta: number,
      ts: fc.oneof(fc.date(), fc.constantFrom(new Date(Number.NaN), new Date(8.64e15)), fc.anything()),
    },
    { requiredKeys: [] },
  ),
  fc.anything(),
) as fc.Arbitrary<ProgressUpdate>;
const publishOptions = fc.record(
  { scope: id, allowBackwards: fc.anything(), allowAfterTerminal: fc.anything() },
  { requiredKeys: [] },
) as fc.Arbitrary<PublishOptions>;
const resume = fc.oneof(
  fc.constantFrom("0-0", "1-0", "1732890000000-5", "1-x", "(1-0", "", "-"),
  fc.string({ maxLength: 25 }),
);
const target = fc.oneof(id, fc.record({ scope: id }), fc.anything()) as fc.Arbitrary<Target>;

/** Run `f`; a failure must be a ProgressValidationError naming a known field. */
async function worksOrRefuses(f: () => unknown): Promise<unknown> {
  try {
    return await f();
  } catch (error) {
    expect(isProgressValidationError(error), String(error)).toBe(true);
    if (isProgressValidationError(error)) expect(FIELDS.has(error.field), error.field).toBe(true);
    return undefined;
  }
}

const runs = { numRuns: 300 };

describe("any input to the public surface", () => {
  it("publish works or refuses by field; what it writes reads back valid", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    await fc.assert(
      fc.asyncProperty(id, update, publishOptions, async (op, u, o) => {
        const r = await worksOrRefuses(() => progress.publish(op as string, u, o));
        if (r !== undefined) {
          expect(r).toMatchObject({ ok: expect.any(Boolean) });
          for (const event of await progress.history(op as string)) expect(problems(event)).toEqual([]);
        }
      }),
      runs,
    );
  });

  it("report never throws; what it refuses reaches onError by field", async () => {
    const errors: ProgressError[] = [];
    await using progress = new Progress({
      port: memory(),
      throttle: { intervalMs: 5 },
      logger: {},
      onError: (e) => errors.push(e),
    });
    await fc.assert(
      fc.asyncProperty(id, update, publishOptions, async (op, u, o) => {
        expect(() => progress.report(op as string, u, o)).not.toThrow();
        await progress.flush();
      }),
      runs,
    );
    for (const e of errors) expect(isProgressValidationError(e) && FIELDS.has(e.field), String(e)).toBe(true);
  });

  it("task works or refuses by field, at creation or at its first publish", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    const taskOptions = fc.record(
      {
        cid: fc.oneof(fc.constantFrom("req-1", "two words"), fc.anything()),
        scope: id,
        total: number,
        data: fc.anything(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(id, taskOptions, async (op, o) => {
        const task = await worksOrRefuses(() => progress.task(op as string, o as never));
        if (task instanceof Object && "start" in task) {
          const t = task as ReturnType<Progress["task"]>;
          await worksOrRefuses(() => t.start());
          await worksOrRefuses(() => t.complete());
        }
      }),
      { numRuns: 200 },
    );
  });

  it("watch and history refuse a bad target or resume id at once, by field", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    await progress.publish("job-1", { progress: 1 });
    await fc.assert(
      fc.asyncProperty(target, fc.option(resume, { nil: undefined }), async (t, after) => {
        const items = await worksOrRefuses(() => progress.watch(t, { after }));
        if (items !== undefined) await (items as AsyncGenerator).return(undefined);
        await worksOrRefuses(() => progress.history(t, { after }));
      }),
      runs,
    );
  });

  it("sse never throws: a bad target or resume id is a 400 with a plain-text reason", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    await progress.publish("job-1", { progress: 1 });
    const header = fc.stringMatching(/^[\x20-\x7e]{0,30}$/);
    await fc.assert(
      fc.asyncProperty(
        target,
        fc.option(header, { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        async (t, lastEventId, after) => {
          const url = new URL("http://localhost/progress");
          if (after !== undefined) url.searchParams.set("after", after);
          const headers: Record<string, string> = lastEventId === undefined ? {} : { "last-event-id": lastEventId };
          const response = await progress.sse(new Request(url, { headers }), t);
          expect([200, 400]).toContain(response.status);
          if (response.status === 400) {
            expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
            expect(await response.text()).toMatch(/^Invalid [\w-]+: /);
          } else {
            await response.body?.cancel();
          }
        },
      ),
      runs,
    );
  });

  it("cancel works (false for an unknown operation, writing nothing) or refuses by field", async () => {
    const port = memory();
    await using progress = new Progress({ port, throttle: false, logger: {} });
    await fc.assert(
      fc.asyncProperty(id, fc.oneof(fc.string(), fc.constant("r".repeat(513)), fc.anything()), async (op, reason) => {
        const r = await worksOrRefuses(() => progress.cancel(op as string, reason as string));
        if (r !== undefined) {
          expect(r).toBe(false);
          expect(await progress.get(op as string)).toBeNull();
        }
      }),
      runs,
    );
  });

  it("consume works or refuses by field", async () => {
    await using progress = new Progress({ port: memory(), throttle: false, logger: {} });
    const options = fc.oneof(
      fc.record(
        { group: id, consumer: id, scope: id, claimIdleMs: number, batch: number, blockMs: number },
        { requiredKeys: [] },
      ),
      fc.anything(),
    );
    await fc.assert(
      fc.asyncProperty(options, async (o) => {
        const deliveries = await worksOrRefuses(() => progress.consume(o as never));
        if (deliveries !== undefined) await (deliveries as AsyncGenerator).return(undefined);
      }),
      runs,
    );
  });
});
