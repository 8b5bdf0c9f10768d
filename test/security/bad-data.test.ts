/**
 * Bad data written by someone else (another language's publisher, a broken
 * script, an attacker with Redis access), written by hand into a real Redis:
 * it fails alone, never breaks SSE framing, never stalls other operations.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import type { WatchItem } from "../../src/core/deliver/watch.ts";
import { isProgressValidationError } from "../../src/core/errors.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { redisInspector } from "../support/redis-inspector.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

/** Collect a watch's items in the background. */
function collect(items: AsyncGenerator<WatchItem, void, undefined>): WatchItem[] {
  const seen: WatchItem[] = [];
  void (async () => {
    for await (const item of items) seen.push(item);
  })().catch(() => {});
  return seen;
}

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Read a whole SSE body (the stream ends after a terminal event). */
async function body(response: Response): Promise<string> {
  const text = await Promise.race([
    response.text(),
    new Promise<string>((_, reject) => setTimeout(() => reject(new Error("SSE body did not end")), 15_000)),
  ]);
  return text;
}

/** Every line of an SSE body is a field we sent on purpose, or a blank or comment line. */
function lines(text: string): string[] {
  return text.split(/\r\n|\r|\n/);
}

describe("bad data written by someone else", () => {
  let server: RedisServer;
  let inspector: Awaited<ReturnType<typeof redisInspector>>;
  const open: Progress[] = [];
  beforeAll(async () => {
    server = await startRedis();
    inspector = await redisInspector(server.url);
  });
  afterAll(async () => {
    for (const p of open) await p.close();
    await inspector.close();
    await server.close();
  });
  const make = (): { progress: Progress; prefix: string } => {
    const prefix = uniquePrefix();
    const progress = new Progress({ port: nodeRedis({ url: server.url }), prefix, throttle: false, logger: {} });
    open.push(progress);
    return { progress, prefix };
  };
  const raw = (...args: string[]): Promise<unknown> => inspector.client.sendCommand(args);

  it("a snapshot whose id is not a stream id fails alone: other operations' watchers keep working", async () => {
    const { progress, prefix } = make();
    await raw(
      "HSET",
      `${prefix}:{bad}:state`,
      "v",
      "1",
      "op",
      "bad",
      "seq",
      "3",
      "status",
      "running",
      "id",
      "not-an-id",
    );
    const bad = collect(progress.watch("bad"));
    const good = collect(progress.watch("good"));
    await until(() => bad.length > 0 && good.length > 0, "both snapshots");
    expect(bad[0]).toMatchObject({ kind: "snapshot", snapshot: { op: "bad", status: "running" } });
    expect(bad[0]?.kind === "snapshot" && bad[0].snapshot?.id).toBeUndefined();
    for (let i = 1; i <= 3; i++) await progress.publish("good", { progress: i * 10 });
    await until(() => good.filter((i) => i.kind === "event").length === 3, "the good operation's events");
    // The bad operation recovers as soon as a real publish rewrites its snapshot.
    await progress.publish("bad", { progress: 50 });
    await until(() => bad.some((i) => i.kind === "event"), "the bad operation's next event");
    await progress.publish("good", { status: "completed" });
    await progress.publish("bad", { status: "completed" });
  });

  it("a hostile type never adds SSE lines: it arrives as progress with rawType", async () => {
    const { progress, prefix } = make();
    const key = `${prefix}:{h}:events`;
    const hostile = 'x\nevent: admin\ndata: {"pwned":true}\nid: 9-9\n\nevent: admin';
    await raw(
      "XADD",
      key,
      "*",
      "v",
      "1",
      "op",
      "h",
      "seq",
      "1",
      "type",
      hostile,
      "status",
      "running",
      "ts",
      "bad\nid: 1-1",
    );
    await raw(
      "XADD",
      key,
      "*",
      "v",
      "1",
      "op",
      "h\r\nevent: admin",
      "seq",
      "2",
      "type",
      "ok_type",
      "status",
      "running",
    );
    await raw(
      "XADD",
      key,
      "*",
      "op",
      "h",
      "seq",
      "3",
      "type",
      "a\rb",
      "status",
      "completed",
      "message",
      "done\n\nevent: admin",
    );
    const response = await progress.sse(new Request("http://localhost/progress/h"), "h");
    expect(response.status).toBe(200);
    const text = await body(response);
    for (const line of lines(text))
      expect(line).toMatch(/^(|retry: \d+|id: \d+-\d+|event: [A-Za-z][\w.:-]*|data: .*|: .*)$/);
    const events = lines(text).filter((l) => l.startsWith("event: "));
    expect(events).toEqual(["event: snapshot", "event: progress", "event: ok_type", "event: progress"]);
    expect(text).not.toContain("admin\n");
    const data = lines(text)
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)))
      .slice(1); // after the snapshot (null: no snapshot hash was written)
    expect(data[0]).toMatchObject({ op: "h", seq: 1, type: "progress", rawType: hostile, status: "running" });
    expect(data[0].ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(data[1]).toMatchObject({ op: "h", seq: 2, type: "ok_type" });
    expect(data[2]).toMatchObject({ rawType: "a\rb", status: "completed", message: "done\n\nevent: admin" });
  });

  it("a resume id that cannot be parsed gets a 400 or a ProgressValidationError, never an empty 200", async () => {
    const { progress } = make();
    await progress.publish("r", { progress: 10 });
    for (const [headers, query, field] of [
      [{ "last-event-id": "abc" }, "", "Last-Event-ID"],
      [{ "last-event-id": "1-0\r" }, "?after=", undefined],
      [{}, "?after=1-x", "after"],
      [{}, "?after=99999999999999999999999-0", "after"],
      [{}, "?after=%0Aid:%201-1", "after"],
    ] as const) {
      const response = await progress.sse(new Request(`http://localhost/progress/r${query}`, { headers }), "r");
      if (field === undefined) {
        expect(response.status).toBe(200);
        await response.body?.cancel();
        continue;
      }
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(await response.text()).toMatch(new RegExp(`^Invalid ${field}: must be a stream entry id`));
    }
    expect(() => progress.watch("r", { after: "x" })).toThrow(/Invalid after/);
    try {
      progress.watch("r", { after: "1-0; DROP" });
      expect.unreachable();
    } catch (e) {
      expect(isProgressValidationError(e) && e.field).toBe("after");
    }
    await expect(progress.history("r", { after: "(5-0" })).rejects.toMatchObject({
      name: "ProgressValidationError",
      field: "after",
    });
    expect(await progress.history("r", { after: "0-0" })).toHaveLength(1);
  });

  it("an invalid operation id or scope gets a 400 with a plain-text reason, not a throw", async () => {
    const { progress } = make();
    for (const target of ["bad op", "a{b}", "", "x\nid: 1", { scope: "two words" }] as const) {
      const response = await progress.sse(new Request("http://localhost/progress/x"), target);
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(await response.text()).toMatch(/^Invalid (op|scope): /);
    }
  });
});
