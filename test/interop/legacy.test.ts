/**
 * Legacy mode against consumers written the old way (raw Redis commands
 * mirroring the old Python code): an XREAD loop on `stream:chunking:<op>`, a
 * pub/sub subscriber on `import_progress:channel:<op>` that stops on
 * done/failed, and the WebSocket manager's reader loop on `operations:<op>`
 * (COUNT 1, BLOCK 5000, from 0). Each receives every event of a job published
 * by progresscast, while a progresscast watcher of the same op gets native events.
 */
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import {
  createProgress,
  keyPresets,
  type Progress,
  type ProgressOptions,
  type PublishResult,
  silentLogger,
} from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { DRIVER, findPython, PYTHONPATH, run } from "./support.ts";

const python = findPython();

type Raw = ReturnType<typeof createClient>;
type Entry = [id: string, fields: Record<string, string>];

function pairs(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = flat as string[];
  for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = String(list[i + 1]);
  return out;
}

/** `XREAD COUNT n BLOCK ms STREAMS key id`, RESP2 reply as [id, fields] pairs. */
async function xread(client: Raw, key: string, id: string, count: number, blockMs: number): Promise<Entry[]> {
  const reply = (await client.sendCommand([
    "XREAD",
    "COUNT",
    String(count),
    "BLOCK",
    String(blockMs),
    "STREAMS",
    key,
    id,
  ])) as [string, [string, string[]][]][] | null;
  if (!reply) return [];
  return reply.flatMap(([, entries]) => entries.map(([entryId, flat]): Entry => [entryId, pairs(flat)]));
}

/** A job as a worker reports it: start, three steps, an application event, then completed (or failed). */
async function job(
  progress: Progress,
  op: string,
  end: "completed" | "failed" = "completed",
): Promise<PublishResult[]> {
  const results = [await progress.publish(op, { status: "running", progress: 0, cid: "req-7", message: "starting" })];
  for (let i = 1; i <= 3; i++) {
    results.push(await progress.publish(op, { current: i, total: 4, message: `batch ${i}`, cid: "req-7" }));
  }
  results.push(
    await progress.publish(op, { type: "file_completed", data: { collection_id: "col-1", stage: "batch_3" } }),
  );
  results.push(
    end === "completed"
      ? await progress.publish(op, { status: "completed", current: 4, total: 4, cid: "req-7" })
      : await progress.publish(op, { status: "failed", message: "disk full", cid: "req-7" }),
  );
  return results;
}

async function nativeEvents(progress: Progress, op: string): Promise<{ type: string; status: string }[]> {
  const out: { type: string; status: string }[] = [];
  for await (const item of progress.watch(op)) {
    if (item.kind === "event") out.push({ type: item.event.type, status: item.event.status });
  }
  return out;
}

const NATIVE = [
  { type: "progress", status: "running" },
  { type: "progress", status: "running" },
  { type: "progress", status: "running" },
  { type: "progress", status: "running" },
  { type: "file_completed", status: "running" },
  { type: "progress", status: "completed" },
];

describe("legacy mode", () => {
  let redis: RedisServer;
  let raw: Raw;
  const managers: Progress[] = [];
  const prefix = `lg${Math.random().toString(36).slice(2, 8)}`;
  const make = (options: Omit<ProgressOptions, "port">): Progress => {
    const p = createProgress({
      port: nodeRedis({ url: redis.url }),
      prefix,
      throttle: false,
      estimate: false,
      logger: silentLogger,
      ...options,
    });
    managers.push(p);
    return p;
  };

  beforeAll(async () => {
    redis = await startRedis();
    raw = createClient({ url: redis.url, RESP: 2 });
    await raw.connect();
  });
  afterAll(async () => {
    for (const m of managers) await m.close();
    await raw?.quit();
    await redis?.close();
  });

  it("chunking: an XREAD loop on stream:chunking:<op> gets every event with the old field names", async () => {
    const progress = make({ legacy: "chunking" });
    const op = "chunk-1";
    const reader = raw.duplicate();
    await reader.connect();
    const old: Record<string, string>[] = [];
    const consuming = (async () => {
      let last = "0";
      for (;;) {
        for (const [id, fields] of await xread(reader, `stream:chunking:${op}`, last, 10, 1000)) {
          old.push(fields);
          last = id;
          if (fields.status === "completed" || fields.status === "failed") return;
        }
      }
    })();
    const watching = nativeEvents(progress, op);
    await job(progress, op);
    await consuming;
    await reader.quit();
    expect(await watching).toEqual(NATIVE);
    expect(old).toHaveLength(6);
    expect(old.map((f) => f.status)).toEqual([
      "processing",
      "processing",
      "processing",
      "processing",
      "processing",
      "completed",
    ]);
    expect(old[1]).toMatchObject({
      operation_id: op,
      correlation_id: "req-7",
      progress: "25",
      message: "batch 1",
      current: "1",
      total: "4",
    });
    expect(old[1]?.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // An event without progress carries the operation's current progress, as the old publisher did.
    expect(old[4]).toMatchObject({ type: "file_completed", progress: "75" });
    expect(JSON.parse(old[4]?.metadata ?? "null")).toEqual({ collection_id: "col-1", stage: "batch_3" });
    expect(await raw.sendCommand(["TYPE", `chunking:progress:${op}`])).toBe("stream");
    expect(await raw.sendCommand(["XLEN", `chunking:progress:${op}`])).toBe(6);
    // Native keys are progresscast's own.
    expect(await raw.sendCommand(["TYPE", `${prefix}:{${op}}:events`])).toBe("stream");
  });

  it("importProgress: a pub/sub subscriber gets every message until done; the hash holds JSON values and updated_at", async () => {
    const progress = make({ legacy: { layout: "importProgress" }, keys: keyPresets.importProgress });
    const op = "import-1";
    const subscriber = raw.duplicate();
    await subscriber.connect();
    const messages: Record<string, unknown>[] = [];
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    await subscriber.subscribe(`import_progress:channel:${op}`, (message) => {
      const data = JSON.parse(message) as Record<string, unknown>;
      messages.push(data);
      if (data.status === "done" || data.status === "failed") done();
    });
    const watching = nativeEvents(progress, op);
    const results = await job(progress, op);
    await finished;
    await subscriber.quit();
    expect(await watching).toEqual(NATIVE);
    expect(results.map((r) => (r.ok ? r.subscribers : r.outcome))).toEqual([1, 1, 1, 1, 1, 1]);
    expect(messages.map((m) => m.status)).toEqual([
      "importing",
      "importing",
      "importing",
      "importing",
      "importing",
      "done",
    ]);
    expect(messages[2]).toMatchObject({ processed_rows: 2, total_rows: 4, progress: 50, message: "batch 2" });
    expect(messages[4]).toMatchObject({ event: "file_completed", stage: "batch_3", collection_id: "col-1" });
    for (const m of messages) expect(m.updated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);

    // The old get_progress: HGETALL and json.loads of every value.
    const hash = pairs(await raw.sendCommand(["HGETALL", `import_progress:hash:${op}`]));
    const state = Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, JSON.parse(v)]));
    expect(state).toMatchObject({ status: "done", processed_rows: 4, total_rows: 4, progress: 100, stage: "batch_3" });
    expect(typeof state.updated_at).toBe("string");
    expect(Number(await raw.sendCommand(["TTL", `import_progress:hash:${op}`]))).toBeGreaterThan(0);
    // The preset's native hash would have collided with the old one: it moved to progresscast's own key.
    expect(await progress.get(op)).toMatchObject({ status: "completed", current: 4, total: 4, seq: 6 });
    expect(await raw.sendCommand(["EXISTS", `${prefix}:{${op}}:state`])).toBe(1);
  });

  it("importProgress: status names are configurable and a failure carries error_message", async () => {
    const progress = make({ legacy: { layout: "importProgress", statuses: { running: "parsing", failed: "error" } } });
    const op = "import-2";
    await job(progress, op, "failed");
    const hash = pairs(await raw.sendCommand(["HGETALL", `import_progress:hash:${op}`]));
    expect(JSON.parse(hash.status ?? "null")).toBe("error");
    expect(JSON.parse(hash.error_message ?? "null")).toBe("disk full");
    expect(await progress.get(op)).toMatchObject({ status: "failed", message: "disk full" });
  });

  it("operations: the WebSocket manager's reader loop (COUNT 1, BLOCK 5000, from 0) gets every message type", async () => {
    const progress = make({ legacy: "operations", keys: keyPresets.operations });
    const ops = ["op-ok", "op-fail"];
    const readers = await Promise.all(
      ops.map(async (op) => {
        const reader = raw.duplicate();
        await reader.connect();
        const got: Record<string, string>[] = [];
        const loop = (async () => {
          let last = "0";
          for (;;) {
            for (const [id, data] of await xread(reader, `operations:${op}`, last, 1, 5000)) {
              got.push(data);
              last = id;
              if (data.type === "OPERATION_COMPLETED" || data.type === "OPERATION_FAILED") return;
            }
          }
        })();
        return { reader, got, loop };
      }),
    );
    const watching = nativeEvents(progress, "op-ok");
    await job(progress, "op-ok");
    await job(progress, "op-fail", "failed");
    for (const r of readers) {
      await r.loop;
      await r.reader.quit();
    }
    expect(await watching).toEqual(NATIVE);
    const [ok, fail] = readers.map((r) => r.got);
    expect(ok?.map((d) => d.type)).toEqual([
      "OPERATION_PROGRESS",
      "OPERATION_PROGRESS",
      "OPERATION_PROGRESS",
      "OPERATION_PROGRESS",
      "OPERATION_PROGRESS",
      "OPERATION_COMPLETED",
    ]);
    expect(ok?.map((d) => d.progress)).toEqual(["0", "25", "50", "75", "75", "100"]);
    expect(ok?.[1]).toMatchObject({ operation_id: "op-ok", status: "processing", message: "batch 1" });
    expect(ok?.[4]).toMatchObject({ collection_id: "col-1", event: "file_completed" });
    expect(ok?.[5]).toMatchObject({ status: "completed" });
    expect(fail?.at(-1)).toMatchObject({ type: "OPERATION_FAILED", status: "failed", message: "disk full" });
  });

  it("an op whose old stream already holds history: publishing works, and a watcher reads the old entries too", async () => {
    const op = "op-old";
    // Written before the move by the old TaskContext._broadcast.
    for (const [status, p] of [
      ["pending", "0"],
      ["processing", "40"],
    ] as const) {
      await raw.sendCommand([
        "XADD",
        `operations:${op}`,
        "*",
        "type",
        "OPERATION_PROGRESS",
        "status",
        status,
        "progress",
        p,
        "message",
        `was ${status}`,
        "collection_id",
        "col-9",
      ]);
    }
    const writer = make({ legacy: "operations", keys: keyPresets.operations });
    const reader = make({ keys: keyPresets.operations });
    const seen: { status: string; progress: number | undefined; message: string | undefined }[] = [];
    const watching = (async () => {
      for await (const item of reader.watch(op)) {
        if (item.kind === "event") {
          seen.push({ status: item.event.status, progress: item.event.progress, message: item.event.message });
        }
      }
    })();
    const r1 = await writer.publish(op, { progress: 60, message: "resumed" });
    const r2 = await writer.publish(op, { status: "completed", message: "all done" });
    expect([r1.outcome, r2.outcome]).toEqual(["published", "published"]);
    await watching;
    expect(seen).toEqual([
      { status: "queued", progress: 0, message: "was pending" },
      { status: "running", progress: 40, message: "was processing" },
      { status: "running", progress: 60, message: "resumed" },
      { status: "completed", progress: 100, message: "all done" },
    ]);
    expect(await reader.history(op)).toHaveLength(4);
  });

  it("old entries already there are read with the configured status names, not a fixed table", async () => {
    const op = "op-custom";
    const statuses = { queued: "waiting", running: "crunching", completed: "all_good", failed: "kaput" } as const;
    // Written before the move by an old worker with its own status names.
    for (const [status, p] of [
      ["waiting", "0"],
      ["crunching", "40"],
      ["ALL_GOOD", "100"],
    ] as const) {
      await raw.sendCommand([
        "XADD",
        `operations:${op}`,
        "*",
        "type",
        "OPERATION_PROGRESS",
        "status",
        status,
        "progress",
        p,
      ]);
    }
    await raw.sendCommand(["XADD", `operations:${op}-2`, "*", "type", "OPERATION_PROGRESS", "status", "kaput"]);
    // A reader of the old streams: the layout's preset, reading only.
    const reader = make({ keys: keyPresets.operations, legacy: { layout: "operations", statuses, write: false } });
    const seen: string[] = [];
    for await (const item of reader.watch(op, { signal: AbortSignal.timeout(10_000) })) {
      if (item.kind === "event") seen.push(item.event.status);
    }
    // The watch ended by itself: `ALL_GOOD` is this team's `completed`.
    expect(seen).toEqual(["queued", "running", "completed"]);
    expect((await reader.history(`${op}-2`)).map((e) => e.status)).toEqual(["failed"]);
    // Without the mapping, the same names are not statuses: they read as running.
    const plain = make({ keys: keyPresets.operations });
    expect((await plain.history(op)).map((e) => e.status)).toEqual(["running", "running", "running"]);

    // The importProgress hash (JSON-encoded values) maps the same way, and a reading-only mode writes nothing old.
    await raw.sendCommand([
      "HSET",
      "import_progress:hash:imp-custom",
      "status",
      JSON.stringify("finito"),
      "progress",
      "100",
      "updated_at",
      JSON.stringify("2026-11-22T14:30:00.123000+00:00"),
    ]);
    const hashReader = make({
      keys: keyPresets.importProgress,
      legacy: { layout: "importProgress", statuses: { completed: "finito" }, write: false },
    });
    expect(await hashReader.get("imp-custom")).toMatchObject({ status: "completed", progress: 100 });
    const fresh = await hashReader.publish("imp-new", { progress: 5 });
    expect(fresh).toMatchObject({ ok: true, seq: 1 });
    expect(fresh.ok && fresh.subscribers).toBeUndefined();
    expect(await raw.sendCommand(["TYPE", "import_progress:channel:imp-new"])).toBe("stream"); // the preset's own key
    expect(await raw.sendCommand(["EXISTS", "import_progress:hash:imp-new"])).toBe(1);
    expect(pairs(await raw.sendCommand(["HGETALL", "import_progress:hash:imp-new"]))).toMatchObject({ v: "1" });

    // A writing legacy mode reads with its names too (the Python publisher's old writes, say).
    const writer = make({ legacy: { layout: "operations", statuses }, keys: keyPresets.operations });
    await raw.sendCommand(["XADD", `${prefix}:{op-w}:events`, "*", "operation_id", "op-w", "status", "all_good"]);
    expect((await writer.history("op-w")).map((e) => e.status)).toEqual(["completed"]);
  });

  it("importProgress: a publish answers both its attempt and the old channel's subscriber count", async () => {
    const progress = make({ legacy: "importProgress" });
    const op = "import-attempts";
    const listener = raw.duplicate();
    await listener.connect();
    const messages: string[] = [];
    await listener.subscribe(`import_progress:channel:${op}`, (m) => messages.push(m));
    try {
      expect(await progress.publish(op, { status: "failed", message: "disk full" })).toMatchObject({
        attempt: 1,
        subscribers: 1,
      });
      expect(await progress.publish(op, { progress: 0 }, { restart: true })).toMatchObject({
        attempt: 2,
        seq: 2,
        subscribers: 1,
      });
      expect(await progress.get(op)).toMatchObject({ attempt: 2, status: "running" });
    } finally {
      await listener.quit();
    }
    expect(messages).toHaveLength(2);
    // Without legacy mode there is no subscriber count to report.
    const plain = await make({}).publish("no-legacy", { progress: 1 });
    expect(plain).toMatchObject({ ok: true, attempt: 1 });
    expect(plain.ok && "subscribers" in plain).toBe(false);
  });

  it.skipIf(typeof python !== "object")(
    "the Python publisher's legacy mode writes the same old entries, hashes and messages",
    async () => {
      const py = typeof python === "object" ? python.path : "python3";
      const strip = (value: unknown): unknown =>
        JSON.parse(
          JSON.stringify(value)
            .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, "<ts>")
            .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00/g, "<ts>")
            .replace(/\d{10,}-\d+/g, "<id>")
            .replace(/py-|ts-/g, ""),
        );
      const oldState = async (layout: string, op: string): Promise<unknown> => {
        if (layout === "importProgress") return pairs(await raw.sendCommand(["HGETALL", `import_progress:hash:${op}`]));
        const key = layout === "chunking" ? `stream:chunking:${op}` : `operations:${op}`;
        const entries = (await raw.sendCommand(["XRANGE", key, "-", "+"])) as [string, string[]][];
        return entries.map(([, flat]) => pairs(flat));
      };
      for (const layout of ["chunking", "importProgress", "operations"] as const) {
        const progress = make({ legacy: layout });
        await job(progress, `ts-${layout}`);
        const r = await run(py, [DRIVER, redis.url, prefix, `legacy:${layout}`, `py-${layout}`], {
          env: { PYTHONPATH },
        });
        expect(r.stderr).toBe("");
        const outcomes = JSON.parse(r.stdout) as [string, number | null][];
        expect(outcomes.map(([o]) => o)).toEqual(Array(6).fill("published"));
        if (layout === "importProgress") expect(outcomes.map(([, n]) => n)).toEqual(Array(6).fill(0));
        expect(strip(await oldState(layout, `py-${layout}`))).toEqual(strip(await oldState(layout, `ts-${layout}`)));
        expect(strip(await progress.history(`py-${layout}`))).toEqual(strip(await progress.history(`ts-${layout}`)));
      }
    },
  );

  it("refuses a bad legacy option, naming it", () => {
    expect(() => make({ legacy: "nope" as "chunking" })).toThrow(/legacy\.layout/);
    expect(() => make({ legacy: { layout: "operations", statuses: { running: "has space" } } })).toThrow(
      /legacy\.statuses\.running/,
    );
    expect(() => make({ legacy: { layout: "operations", write: "no" as unknown as boolean } })).toThrow(
      /legacy\.write/,
    );
  });
});
