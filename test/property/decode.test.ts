/**
 * Decoding what anyone may have written: arbitrary stream entries and
 * snapshot hashes never make the decoder throw, never yield an event that
 * breaks the wire format's rules, and never produce more SSE lines than one
 * message's own. Run on generated entries, then through a real Redis.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { sseMessage } from "../../src/core/deliver/sse.ts";
import { Progress } from "../../src/core/progress.ts";
import { decodeEvent, decodeSnapshot, isStreamId, STREAM_ID } from "../../src/core/wire/index.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { redisInspector } from "../support/redis-inspector.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { problems } from "./valid-event.ts";

const U64 = 18_446_744_073_709_551_615n;
const FIELDS = [
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
  "eta",
  "id",
  "cancel",
];

/** Values that have broken decoders: numbers out of range or shape, line breaks, JSON that is not an object. */
const nasty = fc.constantFrom(
  "",
  "1e300",
  "Infinity",
  "-Infinity",
  "NaN",
  "-0",
  "-1",
  "100.001",
  "100.00",
  "0x10",
  " 5",
  "9007199254740993",
  "18446744073709551616",
  "1".repeat(400),
  "progress",
  "completed",
  "x\nevent: admin",
  "x\r\ndata: {}",
  "a\rb",
  "\u2028",
  "null",
  "[]",
  '{"a":1}',
  '{"__proto__":{"polluted":true}}',
  "{",
  "2026-01-01T00:00:00.000Z",
  "+275760-09-13T00:00:00.000Z",
  "1-0",
  "not-an-id",
  "job-1",
  "a{b}",
);
const value = fc.oneof(nasty, fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 20 }));
const fields = fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), value, {
  maxKeys: 16,
});
const streamId = fc
  .tuple(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: U64 }))
  .map(([ms, seq]) => `${ms}-${seq}`);
const anyId = fc.oneof(streamId, fc.constantFrom("1-1", "1732890000000-0"), value);

/** One SSE message: optional `id:`, then `event:` and `data:`, then a blank line; nothing else. */
function expectOneMessage(text: string): void {
  const lines = text.split(/\r\n|\r|\n/);
  expect(lines.slice(-2)).toEqual(["", ""]);
  const body = lines.slice(0, -2);
  expect(body.length === 2 || body.length === 3).toBe(true);
  if (body.length === 3) expect(body[0]).toMatch(/^id: \d{1,20}-\d{1,20}$/);
  expect(body.at(-2)).toMatch(/^event: [A-Za-z][A-Za-z0-9_.:-]*$/);
  // SSE lines end at CR or LF only (U+2028 inside JSON is fine).
  expect(body.at(-1)).toMatch(/^data: \{[^\r\n]*\}$/);
}

describe("decoding arbitrary entries", () => {
  it("never throws, never yields an invalid event, never frames extra SSE lines", () => {
    fc.assert(
      fc.property(anyId, fields, fc.option(fc.constantFrom("job-1", "k:state"), { nil: undefined }), (id, f, op) => {
        const event = decodeEvent({ id, fields: f }, op);
        if (event === null) {
          // Only an entry no operation can own is dropped.
          const owned = /^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$/.test(f.op ?? op ?? "");
          expect(!isStreamId(id) || !owned).toBe(true);
          return;
        }
        expect(problems(event)).toEqual([]);
        expectOneMessage(sseMessage({ kind: "event", event }));
      }),
      { numRuns: 1500 },
    );
  });

  it("keeps numbers other publishers write with more decimals, drops those out of range or shape", () => {
    const event = decodeEvent({
      id: "1-0",
      fields: { op: "py", progress: "33.333333333333336", eta: "12.345", current: "1e3", total: "-5" },
    });
    expect(event).toMatchObject({ progress: 33.333333333333336, eta: 12.345 });
    expect(event?.current).toBeUndefined();
    expect(event?.total).toBeUndefined();
    for (const progress of ["100.01", "1e2", "Infinity", "-0", " 5", "0x10", ""]) {
      expect(decodeEvent({ id: "1-0", fields: { op: "py", progress } })?.progress, progress).toBeUndefined();
    }
  });

  it("keeps every valid stream id, and only those", () => {
    fc.assert(
      fc.property(streamId, (id) => {
        expect(isStreamId(id)).toBe(true);
      }),
    );
    for (const id of [
      "",
      "1",
      "1-",
      "-1",
      "1-x",
      "01-0 ",
      "18446744073709551616-0",
      "1-18446744073709551616",
      "1-0\n",
    ]) {
      expect(isStreamId(id), id).toBe(false);
    }
    expect(STREAM_ID.test("18446744073709551615-18446744073709551615")).toBe(true);
  });

  it("decodes any snapshot hash without throwing; its id is a stream id or absent", () => {
    fc.assert(
      fc.property(fields, (f) => {
        const snapshot = decodeSnapshot(f);
        if (snapshot === null) return;
        if (snapshot.id !== undefined) expect(isStreamId(snapshot.id)).toBe(true);
        expect(snapshot.type).toMatch(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/);
        expect(JSON.stringify(snapshot)).not.toMatch(/[\n\r]/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("decoding arbitrary entries written to a real Redis", () => {
  let server: RedisServer;
  let inspector: Awaited<ReturnType<typeof redisInspector>>;
  let progress: Progress;
  const prefix = uniquePrefix();
  beforeAll(async () => {
    server = await startRedis();
    inspector = await redisInspector(server.url);
    progress = new Progress({ port: nodeRedis({ url: server.url }), prefix, throttle: false, logger: {} });
  });
  afterAll(async () => {
    await progress.close();
    await inspector.close();
    await server.close();
  });

  it("history, scope history and get decode whatever was written by hand", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fields.filter((f) => Object.keys(f).length > 0),
        async (f) => {
          const op = `op-${n++}`;
          const args = Object.entries(f).flat();
          await inspector.client.sendCommand(["XADD", `${prefix}:{${op}}:events`, "*", ...args]);
          await inspector.client.sendCommand(["XADD", `${prefix}:scope:{s}:events`, "*", ...args]);
          await inspector.client.sendCommand(["HSET", `${prefix}:{${op}}:state`, ...args]);
          const history = await progress.history(op);
          expect(history).toHaveLength(1);
          for (const event of history) {
            expect(problems(event)).toEqual([]);
            expectOneMessage(sseMessage({ kind: "event", event }));
          }
          const snapshot = await progress.get(op);
          if (snapshot?.id !== undefined) expect(isStreamId(snapshot.id)).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
    const scoped = await progress.history({ scope: "s" }, { limit: 1000 });
    for (const event of scoped) expect(problems(event)).toEqual([]);
  });
});
