/**
 * `report` refuses bad input at the call, on a cheaper path than `publish`:
 * it must refuse exactly what `publish` refuses, naming the same field.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isProgressValidationError, type ProgressError } from "../../src/core/errors.ts";
import { Progress } from "../../src/core/progress.ts";
import type { ProgressUpdate } from "../../src/core/wire/index.ts";

const id = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,20}$/) },
  { weight: 1, arbitrary: fc.constantFrom("", "bad op", "a{b}", "-lead", "x".repeat(128), "x".repeat(129)) },
  { weight: 1, arbitrary: fc.anything() },
);
/** Valid updates as a progress loop sends them (current may exceed total). */
const valid = fc.record(
  {
    progress: fc.double({ min: 0, max: 100, noNaN: true }),
    current: fc.integer({ min: 0, max: 200 }),
    total: fc.integer({ min: 0, max: 200 }),
    message: fc.string({ maxLength: 20 }),
    status: fc.constantFrom("running", "running", "queued"),
    type: fc.constant("progress"),
    cid: fc.constantFrom("req-1", "c".repeat(128)),
  },
  { requiredKeys: [] },
);
/** Values at and across each field's limits. */
const count = [-1, 0, 2 ** 53 - 1, 2 ** 53, 1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, "5", null];
const edges: Record<string, readonly unknown[]> = {
  progress: [-0.01, 0, 100, 100.01, -0, Number.NaN, Number.POSITIVE_INFINITY, "50", null],
  current: count,
  total: count,
  message: ["m".repeat(2048), "m".repeat(2049), 5, ""],
  status: ["completed", "failed", "cancelled", "done", "", 1],
  type: ["file_completed", "x\nevent: admin", "1abc", `a${"b".repeat(63)}`, `a${"b".repeat(64)}`, 7],
  cid: ["", "two words", "c".repeat(129), 3],
  data: [{ a: 1 }, [1], null, { big: "x".repeat(20_000) }],
  eta: [0, 5, -1, 1e13],
  ts: [new Date(0), new Date(Number.NaN)],
  other: [1],
};
const update = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(valid, fc.constantFrom(...Object.keys(edges)), fc.nat()).map(([base, field, i]) => {
      const values = edges[field] ?? [];
      return { ...base, [field]: values[i % values.length] };
    }),
  },
  { weight: 1, arbitrary: valid },
  { weight: 1, arbitrary: fc.anything() },
) as fc.Arbitrary<ProgressUpdate>;

describe("report's check at the call", () => {
  it("refuses exactly what publish refuses, naming the same field", async () => {
    const errors: ProgressError[] = [];
    await using reporter = new Progress({
      port: memory(),
      throttle: { intervalMs: 60_000 },
      logger: {},
      onError: (e) => errors.push(e),
    });
    await using publisher = new Progress({ port: memory(), throttle: false, logger: {} });
    await fc.assert(
      fc.asyncProperty(id, update, async (op, u) => {
        // A report right after another one of the same operation is held, not written: only the check at the call runs.
        reporter.report(op as string, {});
        errors.length = 0;
        reporter.report(op as string, u);
        const refused = errors[0];
        let thrown: unknown;
        try {
          await publisher.publish(op as string, u, { allowBackwards: true, allowAfterTerminal: true });
        } catch (error) {
          thrown = error;
        }
        expect(isProgressValidationError(thrown) ? thrown.field : null).toBe(
          isProgressValidationError(refused) ? refused.field : null,
        );
      }),
      { numRuns: 1000 },
    );
  });
});
