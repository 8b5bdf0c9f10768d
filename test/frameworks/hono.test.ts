import { createParser, type EventSourceMessage } from "eventsource-parser";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createProgress } from "../../src/index.ts";

describe("progress.sse in Hono", () => {
  it("serves the stream from a route handler, with auth, and resumes with Last-Event-ID", async () => {
    const progress = createProgress({ logger: {}, estimate: false });
    const app = new Hono();
    app.get("/progress/:op", (c) =>
      progress.sse(c.req.raw, c.req.param("op"), { authorize: (req) => req.headers.get("x-user") === "ann" }),
    );
    const first = await progress.publish("h1", { progress: 10 });
    const read = async (
      headers: Record<string, string>,
    ): Promise<{ status: number; messages: EventSourceMessage[] }> => {
      const response = await app.request("/progress/h1", { headers });
      const messages: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (m) => messages.push(m) });
      const reader = response.body?.getReader();
      const decoder = new TextDecoder();
      while (reader && response.status === 200) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      return { status: response.status, messages };
    };
    expect((await read({})).status).toBe(403);
    const reading = read({ "x-user": "ann" });
    await new Promise((r) => setTimeout(r, 50));
    await progress.publish("h1", { progress: 60 });
    await progress.publish("h1", { status: "completed" });
    const got = await reading;
    expect(got.messages.map((m) => [m.event, m.data && JSON.parse(m.data).seq])).toEqual([
      ["snapshot", 1],
      ["progress", 1],
      ["progress", 2],
      ["progress", 3],
    ]);
    const resumed = await read({ "x-user": "ann", "last-event-id": first.ok ? first.id : "" });
    expect(resumed.messages.map((m) => JSON.parse(m.data).seq)).toEqual([3, 2, 3]);
    await progress.close();
  });
});
