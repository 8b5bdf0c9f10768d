import { describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isProgressValidationError, type ProgressError } from "../../src/core/errors.ts";
import { Progress } from "../../src/core/progress.ts";

describe("report with an operation id no one can print", () => {
  it("never throws, with or without a throttle, and names the field", async () => {
    for (const throttle of [false, { intervalMs: 5 }] as const) {
      const errors: ProgressError[] = [];
      await using progress = new Progress({ port: memory(), throttle, logger: {}, onError: (e) => errors.push(e) });
      const op = { toString: {} } as unknown as string;
      expect(() => progress.report(op, {})).not.toThrow();
      await progress.flush();
      expect(errors).toHaveLength(1);
      expect(isProgressValidationError(errors[0]) && errors[0].field).toBe("op");
    }
  });
});
