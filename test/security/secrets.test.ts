/**
 * No secrets in logs: a Redis password or an Upstash token never appears in
 * what progresscast hands to the logger, to `onError`, or in errors it throws,
 * even when every call fails.
 */
import { describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { upstash } from "../../src/adapters/upstash/index.ts";
import type { StreamPort } from "../../src/core/port/port.ts";
import { Progress } from "../../src/core/progress.ts";
import { freePort } from "../support/redis-server.ts";

const SECRET = "s3cr3t-Pa55";

/** Everything reachable from a logged value, errors and their causes included, as text. */
function text(value: unknown, seen = new Set<unknown>()): string {
  if (value === null || typeof value !== "object") return String(value);
  if (seen.has(value)) return "";
  seen.add(value);
  const parts: string[] = [];
  if (value instanceof Error) parts.push(value.name, value.message, String(value.stack), text(value.cause, seen));
  for (const key of Object.keys(value)) parts.push(key, text((value as Record<string, unknown>)[key], seen));
  return parts.join(" ");
}

async function failEverywhere(port: StreamPort): Promise<string> {
  const seen: unknown[] = [];
  const log =
    (level: string) =>
    (...args: unknown[]): void => {
      seen.push(level, ...args);
    };
  const progress = new Progress({
    port,
    throttle: false,
    // Redis never answers here: flush() and close() give up held events quickly (and log them, which is checked too).
    closeTimeoutMs: 200,
    logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    onError: (error, context) => seen.push(error, context),
  });
  const published = await progress.publish("job-1", { progress: 10 });
  expect(published.ok).toBe(false);
  seen.push(published);
  progress.report("job-1", { progress: 20 });
  await progress.flush();
  for (const call of [() => progress.get("job-1"), () => progress.history("job-1"), () => progress.cancel("job-1")]) {
    seen.push(await call().catch((error: unknown) => error));
  }
  await progress.close();
  expect(seen.length).toBeGreaterThan(3);
  return text(seen);
}

describe("no secrets in logs", () => {
  it("a Redis password never reaches the logger, onError or a thrown error", async () => {
    const url = `redis://user:${SECRET}@127.0.0.1:${await freePort()}`;
    const logged = await failEverywhere(nodeRedis({ url, connectTimeoutMs: 500 }));
    expect(logged).toMatch(/error/i);
    expect(logged).not.toContain(SECRET);
  });

  it("an Upstash token never reaches the logger, onError or a thrown error", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const logged = await failEverywhere(upstash({ url, token: SECRET, retry: false }));
    expect(logged).toMatch(/error/i);
    expect(logged).not.toContain(SECRET);
  });
});
