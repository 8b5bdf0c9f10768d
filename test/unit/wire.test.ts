import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isProgressValidationError, type ProgressValidationError } from "../../src/core/errors.ts";
import { Progress } from "../../src/core/progress.ts";
import {
  decodeEvent,
  encodeUpdate,
  formatDecimal,
  MAX_DATA_BYTES,
  MAX_MESSAGE_LENGTH,
  type ProgressUpdate,
} from "../../src/core/wire/index.ts";
import { ProgressUpdateSchema, WireEventSchema } from "../../src/schema/index.ts";

const now = new Date("2026-11-22T14:30:00.000Z");

function rejects(op: string, update: ProgressUpdate, field: string): ProgressValidationError {
  try {
    encodeUpdate(op, update, now);
  } catch (error) {
    expect(isProgressValidationError(error)).toBe(true);
    const e = error as ProgressValidationError;
    expect(e.field).toBe(field);
    expect(e.message).toContain(field);
    return e;
  }
  throw new Error(`expected ${JSON.stringify(update)} to be refused`);
}

describe("wire format v1", () => {
  it("normalizes: defaults, derived progress, 2 decimals, ISO timestamp", () => {
    expect(encodeUpdate("op-1", { current: 1, total: 3 }, now)).toEqual({
      v: "1",
      op: "op-1",
      seq: "0",
      type: "progress",
      status: "running",
      progress: "33.33",
      current: "1",
      total: "3",
      ts: "2026-11-22T14:30:00.000Z",
      attempt: "1",
    });
    expect(encodeUpdate("op", { progress: 42.005 }, now).progress).toBe("42.01");
    expect(encodeUpdate("op", { progress: 0 }, now).progress).toBe("0");
    expect(encodeUpdate("op", { progress: 100 }, now).progress).toBe("100");
    expect(encodeUpdate("op", { current: 0, total: 0 }, now).progress).toBe("100");
    expect(encodeUpdate("op", { status: "completed" }, now).progress).toBe("100");
    expect(encodeUpdate("op", { status: "failed" }, now).progress).toBeUndefined();
    expect(encodeUpdate("op", { type: "file_completed", data: { file: "a" } }, now)).toMatchObject({
      type: "file_completed",
      data: '{"file":"a"}',
    });
  });

  it("formats numbers one way: no exponent, no -0, at most 2 decimals", () => {
    expect(formatDecimal(1e-7)).toBe("0");
    expect(formatDecimal(-0)).toBe("0");
    expect(formatDecimal(12.5)).toBe("12.5");
    expect(formatDecimal(99.999)).toBe("100");
    fc.assert(
      fc.property(fc.double({ min: 0, max: 100, noNaN: true }), (p) => {
        const s = formatDecimal(p);
        expect(s).toMatch(/^(0|[1-9]\d*)(\.\d{1,2})?$/);
        expect(Math.abs(Number(s) - p)).toBeLessThanOrEqual(0.005 + 1e-9);
      }),
    );
  });

  it("every encoded update satisfies the wire schema and decodes back", () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            current: fc.nat(1000),
            message: fc.string({ maxLength: 50 }),
            cid: fc.stringMatching(/^[a-z0-9-]{1,20}$/),
            data: fc.dictionary(fc.string({ maxLength: 5 }), fc.integer()),
          },
          { requiredKeys: [] },
        ),
        (u) => {
          const update = { ...u, ...(u.current !== undefined ? { total: 1000 } : {}) };
          const fields = encodeUpdate("job-1", update, now);
          expect(WireEventSchema.safeParse(fields).success).toBe(true);
          const event = decodeEvent({ id: "1-0", fields });
          expect(event?.message).toBe(u.message);
          expect(event?.current).toBe(u.current);
          expect(event?.data).toEqual(u.data);
        },
      ),
    );
  });

  it("refuses bad input with a typed error naming the field and the value", () => {
    expect(rejects("op", { progress: Number.NaN }, "progress").value).toBeNaN();
    rejects("op", { progress: Number.POSITIVE_INFINITY }, "progress");
    rejects("op", { progress: -1 }, "progress");
    rejects("op", { progress: 100.5 }, "progress");
    rejects("op", { current: -1 }, "current");
    rejects("op", { current: 1.5 }, "current");
    rejects("op", { total: -3 }, "total");
    const over = rejects("op", { current: 11, total: 10 }, "current");
    expect(over.message).toContain("total (10)");
    rejects("op", { status: "done" as never }, "status");
    rejects("op", { message: "x".repeat(MAX_MESSAGE_LENGTH + 1) }, "message");
    rejects("op", { data: [1, 2] as never }, "data");
    rejects("op", { data: "text" as never }, "data");
    rejects("op", { data: { big: "x".repeat(MAX_DATA_BYTES) } }, "data");
    rejects("op", { type: "has space" }, "type");
    rejects("op", { cid: "two words" }, "cid");
    rejects("op", { ts: new Date(Number.NaN) }, "ts");
  });

  it("refuses operation ids that could reach other keys", () => {
    for (const op of ["", "a{b}", "a}b", "a b", "a\nb", "a\u0000b", "-lead", "x".repeat(129), "ü"]) {
      const e = rejects(op, { progress: 1 }, "op");
      expect(e.value).toBe(op);
    }
    for (const op of ["550e8400-e29b-41d4-a716-446655440000", "import:42", "user@x/job.1", "x".repeat(128)]) {
      expect(() => encodeUpdate(op, {}, now)).not.toThrow();
    }
  });

  it("decodes leniently what another language wrote", () => {
    const event = decodeEvent({
      id: "5-1",
      fields: {
        v: "1",
        op: "py",
        seq: "7",
        status: "weird",
        progress: "abc",
        data: "not json",
        ts: "2026-01-01T00:00:00.000Z",
      },
    });
    expect(event).toEqual({
      id: "5-1",
      op: "py",
      seq: 7,
      type: "progress",
      status: "running",
      ts: "2026-01-01T00:00:00.000Z",
      attempt: 1,
    });
  });
});

describe("JSON Schema", () => {
  it("schema/wire-v1.json is generated from the zod schema and up to date", async () => {
    const { readFileSync } = await import("node:fs");
    const { wireSchemaJson } = await import("../../scripts/wire-schema.ts");
    expect(readFileSync(new URL("../../schema/wire-v1.json", import.meta.url), "utf8")).toBe(wireSchemaJson());
    const schema = JSON.parse(wireSchemaJson());
    expect(schema.required).toEqual(["v", "op", "seq", "type", "status", "ts"]);
    expect(schema.properties.status.enum).toEqual(["queued", "running", "completed", "failed", "cancelled"]);
  });
});

describe("validation fast path", () => {
  it("accepts exactly what the zod schema accepts", () => {
    const value = fc.oneof(
      fc.constant(undefined),
      fc.double(),
      fc.integer({ min: -5, max: 200 }),
      fc.string({ maxLength: 4 }),
      fc.constantFrom("running", "completed", "failed", "queued", "cancelled", "progress", "file_done", "x y"),
      fc.constant(null),
      fc.dictionary(fc.string({ maxLength: 3 }), fc.integer()),
      fc.array(fc.integer(), { maxLength: 2 }),
      fc.date({ noInvalidDate: false }),
    );
    fc.assert(
      fc.property(
        fc.record(
          {
            progress: value,
            current: value,
            total: value,
            message: value,
            status: value,
            type: value,
            cid: value,
            data: value,
            eta: value,
            ts: value,
          },
          { requiredKeys: [] },
        ),
        (update) => {
          const zodOk = ProgressUpdateSchema.safeParse(update).success;
          let ours = true;
          try {
            encodeUpdate("op", update as ProgressUpdate, now);
          } catch (error) {
            if (!isProgressValidationError(error)) throw error;
            const e = error as ProgressValidationError;
            ours = false;
            // Only the cross-field rules may refuse what zod accepts.
            if (zodOk) expect(["current", "ts"]).toContain(e.field);
          }
          if (!zodOk) expect(ours).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("options", () => {
  it("bad options get a typed error naming the option", () => {
    const port = memory();
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ ttlSeconds: 0 }, "ttlSeconds"],
      [{ maxLen: 1.5 }, "maxLen"],
      [{ prefix: "a b" }, "prefix"],
      [{ throttle: { intervalMs: -1 } }, "throttle"],
      [{ retry: { attempts: 99 } }, "retry.attempts"],
      [{ estimate: "yes" }, "estimate"],
    ];
    for (const [options, field] of bad) {
      expect(() => new Progress({ port, ...options })).toThrow(
        expect.objectContaining({ name: "ProgressValidationError", field }),
      );
    }
    expect(() => new Progress({ port: {} as never })).toThrow(expect.objectContaining({ field: "port" }));
    expect(() => new Progress({ port, throttle: false, retry: { attempts: 0 } })).not.toThrow();
  });
});
