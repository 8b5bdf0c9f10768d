/**
 * The runtime scenarios: the same checks run on Deno (`deno test` on the
 * TypeScript sources) and on workerd (a Worker bundled from the built
 * package). Runtime-neutral on purpose: no `node:*`, no `Deno.*`, no runtime
 * import of the library (only types), so the one file works in every runtime,
 * whichever copy of progresscast the runtime loaded.
 *
 * Each scenario gets a fresh manager (own key prefix) and throws a
 * {@link ScenarioError} saying what differed.
 *
 * @module
 */
import type { Progress, ProgressEvent } from "../../src/index.ts";

/** One check, run the same way in every runtime. */
export interface Scenario {
  readonly name: string;
  readonly run: (progress: Progress) => Promise<void>;
}

/** A scenario's expectation did not hold. */
export class ScenarioError extends Error {
  override name = "ScenarioError";
}

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v === undefined ? "<undefined>" : v));
}

/** Deep equality on JSON-like values, key order ignored. */
function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** `actual` deep-equals `expected` (JSON-like values, key order ignored), else a {@link ScenarioError} naming `what`. */
export function equal(actual: unknown, expected: unknown, what: string): void {
  if (!same(actual, expected)) throw new ScenarioError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

/** Every key of `expected` has the same value in `actual`. */
export function matches(actual: unknown, expected: Record<string, unknown>, what: string): void {
  if (actual === null || typeof actual !== "object") {
    throw new ScenarioError(`${what}: expected an object like ${show(expected)}, got ${show(actual)}`);
  }
  for (const [k, v] of Object.entries(expected)) {
    equal((actual as Record<string, unknown>)[k], v, `${what}.${k}`);
  }
}

async function rejects(run: () => Promise<unknown>, name: string, field: string, what: string): Promise<void> {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  if (!(error instanceof Error)) throw new ScenarioError(`${what}: expected a ${name}, but it did not throw`);
  equal(error.name, name, `${what}: error name`);
  equal((error as Error & { field?: unknown }).field, field, `${what}: error field`);
}

const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The scenarios, in the order they run. Names are stable: the Deno runner counts them. */
export const scenarios: readonly Scenario[] = [
  {
    name: "publishes, reads the snapshot and the history",
    async run(progress) {
      const first = await progress.publish("job-1", {
        current: 1,
        total: 3,
        message: "Chunked 1 of 3",
        cid: "req-9",
        data: { file: "a.txt" },
      });
      matches(first, { ok: true, outcome: "published", seq: 1, cancelled: null }, "first publish");
      const second = await progress.publish("job-1", { current: 2, total: 3 });
      matches(second, { ok: true, seq: 2 }, "second publish");
      const snapshot = await progress.get("job-1");
      matches(
        snapshot,
        {
          op: "job-1",
          seq: 2,
          type: "progress",
          status: "running",
          progress: 66.67,
          current: 2,
          total: 3,
          message: "Chunked 1 of 3",
          cid: "req-9",
          data: { file: "a.txt" },
          id: second.ok ? second.id : "?",
        },
        "snapshot",
      );
      if (!TS.test(snapshot?.ts ?? "")) throw new ScenarioError(`snapshot.ts is not ISO 8601: ${snapshot?.ts}`);
      const history = await progress.history("job-1");
      equal(
        history.map((e: ProgressEvent) => [e.id, e.seq, e.progress]),
        [
          [first.ok ? first.id : "?", 1, 33.33],
          [second.ok ? second.id : "?", 2, 66.67],
        ],
        "history [id, seq, progress]",
      );
      const after = await progress.history("job-1", { after: first.ok ? first.id : "0-0", limit: 10 });
      equal(
        after.map((e: ProgressEvent) => e.seq),
        [2],
        "history after the first id",
      );
      equal(await progress.get("never-published"), null, "get of an unknown operation");
      equal(await progress.history("never-published"), [], "history of an unknown operation");
    },
  },
  {
    name: "keeps events in order under concurrent publishes",
    async run(progress) {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => progress.publish("race", { progress: 50, message: `p${i}` })),
      );
      equal(
        results.map((r) => (r.ok ? r.seq : -1)).sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 1),
        "seqs of 20 concurrent publishes",
      );
      const history = await progress.history("race");
      equal(
        history.map((e: ProgressEvent) => e.seq),
        Array.from({ length: 20 }, (_, i) => i + 1),
        "history seqs",
      );
      equal((await progress.get("race"))?.seq, 20, "snapshot seq");
    },
  },
  {
    name: "refuses progress that goes backwards, unless asked",
    async run(progress) {
      await progress.publish("b", { progress: 50 });
      matches(
        await progress.publish("b", { progress: 40 }),
        { ok: false, outcome: "refused", reason: "backwards", seq: 1 },
        "backwards publish",
      );
      equal((await progress.get("b"))?.progress, 50, "progress after a refused update");
      equal((await progress.history("b")).length, 1, "history length after a refused update");
      matches(
        await progress.publish("b", { progress: 40 }, { allowBackwards: true }),
        { ok: true, seq: 2 },
        "allowBackwards publish",
      );
      equal((await progress.get("b"))?.progress, 40, "progress after allowBackwards");
    },
  },
  {
    name: "refuses updates after a terminal event, unless asked",
    async run(progress) {
      await progress.publish("t", { progress: 30 });
      matches(await progress.publish("t", { status: "completed" }), { ok: true, seq: 2 }, "completed publish");
      matches(await progress.get("t"), { status: "completed", progress: 100 }, "snapshot after completed");
      matches(
        await progress.publish("t", { message: "late" }),
        { ok: false, outcome: "refused", reason: "terminal", seq: 2 },
        "publish after completed",
      );
      matches(
        await progress.publish(
          "t",
          { status: "running", progress: 0 },
          { allowAfterTerminal: true, allowBackwards: true },
        ),
        { ok: true, seq: 3 },
        "allowAfterTerminal publish",
      );
    },
  },
  {
    name: "rejects bad input with a ProgressValidationError naming the field",
    async run(progress) {
      await rejects(
        () => progress.publish("v", { progress: 140 }),
        "ProgressValidationError",
        "progress",
        "progress 140",
      );
      await rejects(
        () => progress.publish("v", { current: 5, total: 3 }),
        "ProgressValidationError",
        "current",
        "5 of 3",
      );
      await rejects(() => progress.publish("a b", { progress: 1 }), "ProgressValidationError", "op", "op with a space");
      await rejects(() => progress.get("{x}"), "ProgressValidationError", "op", "get of an op with braces");
      equal(await progress.get("v"), null, "nothing written by rejected publishes");
    },
  },
  {
    name: "watches: snapshot, then live events, ends after the terminal event",
    async run(progress) {
      await progress.publish("w", { progress: 10, message: "before" });
      const signal = AbortSignal.timeout(10_000);
      const seen: string[] = [];
      const watching = (async () => {
        for await (const item of progress.watch("w", { signal })) {
          if (item.kind === "event") seen.push(`event:${item.event.seq}:${item.event.status}`);
          else seen.push(`${item.kind}:${item.snapshot?.seq ?? "none"}`);
          // The watcher has caught up with what was there: now publish live.
          if (seen.length === 2) {
            await progress.publish("w", { progress: 60 });
            await progress.publish("w", { status: "completed" });
          }
        }
      })();
      await watching;
      if (signal.aborted) throw new ScenarioError(`watch did not end within 10 s (saw ${show(seen)})`);
      equal(seen, ["snapshot:1", "event:1:running", "event:2:running", "event:3:completed"], "watch items");
    },
  },
];

let counter = 0;
/** A random key prefix, so runs and scenarios never see each other's keys. */
export function uniquePrefix(): string {
  return `rt${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** What {@link runScenarios} reports for one scenario. */
export interface ScenarioResult {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
  readonly ms: number;
}

/** Run every scenario on a fresh manager from `make`, closing it after; never throws. */
export async function runScenarios(make: () => Progress): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const started = Date.now();
    const progress = make();
    try {
      await scenario.run(progress);
      results.push({ name: scenario.name, ok: true, ms: Date.now() - started });
    } catch (error) {
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      results.push({ name: scenario.name, ok: false, error: text, ms: Date.now() - started });
    } finally {
      await progress.close();
    }
  }
  return results;
}
