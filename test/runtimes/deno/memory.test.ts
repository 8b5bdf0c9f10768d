import assert from "node:assert/strict";
import { createProgress, isProgressValidationError } from "@progresscast/progresscast";
import { memory } from "@progresscast/progresscast/memory";
import { defineScenarios, defineSse } from "./_helpers.ts";

defineScenarios("memory", (prefix) => createProgress({ port: memory(), prefix, logger: {} }));

defineSse("memory", (prefix) => {
  // One process, one memory backend: the serving manager publishes too.
  const progress = createProgress({ port: memory(), prefix, logger: {} });
  return {
    server: progress,
    publisher: progress,
    streamIds: async (op) => (await progress.history(op)).map((e) => e.id),
  };
});

Deno.test("memory: createProgress() runs on the memory backend by default and supports await using", async () => {
  let op: string | null;
  {
    await using progress = createProgress({ logger: {} });
    assert.equal(progress.backend, "memory");
    const r = await progress.publish("deno-1", { progress: 5 });
    assert.equal(r.ok, true);
    op = (await progress.get("deno-1"))?.op ?? null;
  }
  assert.equal(op, "deno-1");
});

Deno.test("memory: validation errors are typed and name the field and value", async () => {
  const progress = createProgress({ logger: {} });
  try {
    await assert.rejects(
      () => progress.publish("deno-2", { status: "done" as "completed" }),
      (error: unknown) => {
        assert.ok(isProgressValidationError(error));
        assert.equal(error.field, "status");
        assert.equal(error.value, "done");
        assert.match(error.message, /status/);
        return true;
      },
    );
  } finally {
    await progress.close();
  }
});
