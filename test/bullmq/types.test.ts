/**
 * Types of `withProgress` under strict mode, checked by `npm run typecheck`
 * (tsc over test/): the job's data type comes from the processor or from the
 * Worker it is given to, with no type argument on `withProgress`; without
 * either it is BullMQ's default, as for a processor given to a Worker directly.
 */
import { type Job, type Processor, Worker } from "bullmq";
import { describe, expect, expectTypeOf, it } from "vitest";
import { withProgress } from "../../src/bullmq/index.ts";
import { createProgress } from "../../src/index.ts";

interface ImportData {
  readonly file: string;
  readonly rows: number;
}

const progress = createProgress();

describe("withProgress types", () => {
  it("infers the job's data from an annotated processor", () => {
    const processor = withProgress(progress, async (job: Job<ImportData>) => {
      expectTypeOf(job.data).toEqualTypeOf<ImportData>();
      return job.data.rows;
    });
    // A Worker given it is a Worker of ImportData.
    expectTypeOf<Parameters<typeof processor>[0]["data"]>().toEqualTypeOf<ImportData>();
    // The scope chooser sees the same job.
    withProgress(progress, async (job: Job<ImportData>) => job.data.file, {
      scope: (job) => `file-${job.data.file}`,
    });
    // @ts-expect-error: `ImportData` has no `user`.
    withProgress(progress, async (job: Job<ImportData>) => job.data.user);
    expect(typeof processor).toBe("function");
  });

  it("infers the job's data from the Worker it is given to", () => {
    const make = (): Worker<ImportData, number> =>
      new Worker<ImportData, number>(
        "imports",
        withProgress(progress, async (job) => {
          expectTypeOf(job.data).toEqualTypeOf<ImportData>();
          return job.data.rows;
        }),
        { autorun: false, connection: { host: "127.0.0.1", port: 1 } },
      );
    expect(typeof make).toBe("function");
  });

  it("takes BullMQ's default when nothing says otherwise, as a Worker without type arguments does", () => {
    const processor: Processor = async (job) => job.data.rows;
    withProgress(progress, async (job) => {
      expectTypeOf(job.data).toEqualTypeOf<Parameters<typeof processor>[0]["data"]>();
      return job.data.rows;
    });
  });
});
