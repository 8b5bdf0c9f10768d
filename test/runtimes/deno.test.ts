/**
 * Deno: `deno check` on every deno.json entry, then `deno test` on the
 * TypeScript sources (test/runtimes/deno/) against a Redis and an Upstash
 * REST server started here. Deno's output is printed when anything fails.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { startUpstashServer, type UpstashServer } from "../support/upstash-server.ts";
import { run } from "./run.ts";
import { scenarios } from "./scenarios.ts";

const DENO = "node_modules/.bin/deno";
const BACKENDS = ["memory", "node-redis", "upstash"] as const;
/** Deno tests beyond the shared scenarios: memory 2 + SSE, node-redis 1 + SSE, upstash 2 + SSE. */
const EXTRA_TESTS = 5 + BACKENDS.length;

/** Parse Deno's summary line: `ok | 22 passed | 0 failed (1s)`, maybe with `| 2 ignored`, `| 1 filtered out`. */
function summary(output: string): { passed: number; failed: number; ignored: number } | null {
  const line = output.split("\n").find((l) => /^(ok|FAILED) \| \d+ passed/.test(l.trim()));
  if (line === undefined) return null;
  const count = (word: string): number => Number(new RegExp(`(\\d+) ${word}`).exec(line)?.[1] ?? 0);
  return { passed: count("passed"), failed: count("failed"), ignored: count("ignored") };
}

function explain(title: string, output: string): string {
  return `${title}\n----- deno output -----\n${output}\n-----------------------`;
}

describe("runtime: Deno", () => {
  let redis: RedisServer | undefined;
  let rest: UpstashServer | undefined;
  /** Answers the REST server's counters to the Deno tests, which run in another process. */
  let stats: Server | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    rest = await startUpstashServer({ redisUrl: redis.url });
    const counters = rest;
    stats = createServer((_req, res) => {
      const { requests, openStreams, openRequests } = counters;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ requests, openStreams, openRequests }));
    });
    const listening = stats;
    await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    const open = stats;
    if (open) {
      open.closeAllConnections();
      await new Promise((resolve) => open.close(resolve));
    }
    await rest?.close();
    await redis?.close();
  });

  it("type-checks every deno.json entry with deno check", async () => {
    const deno = JSON.parse(readFileSync("deno.json", "utf8")) as { exports: Record<string, string> };
    const entries = Object.values(deno.exports);
    expect(entries.length).toBeGreaterThan(0);
    const { code, output } = await run(DENO, ["check", ...entries], {
      env: { DENO_NO_UPDATE_CHECK: "1" },
      timeoutMs: 60_000,
    });
    expect(code, explain(`deno check ${entries.join(" ")} exited with ${code}`, output)).toBe(0);
  }, 90_000);

  it("passes deno test on the TypeScript sources, on memory, node-redis and upstash", async () => {
    if (!redis || !rest || !stats) throw new Error("backends did not start");
    const { code, output } = await run(
      DENO,
      ["test", "--allow-net", "--allow-env", "--allow-read", "--no-prompt", "test/runtimes/deno/"],
      {
        env: {
          DENO_NO_UPDATE_CHECK: "1",
          PROGRESSCAST_REDIS_URL: redis.url,
          PROGRESSCAST_UPSTASH_URL: rest.url,
          PROGRESSCAST_UPSTASH_TOKEN: rest.token,
          PROGRESSCAST_UPSTASH_STATS_URL: `http://127.0.0.1:${(stats.address() as AddressInfo).port}/`,
        },
        timeoutMs: 60_000,
      },
    );
    expect(code, explain(`deno test exited with ${code}`, output)).toBe(0);
    const counts = summary(output);
    const expected = scenarios.length * BACKENDS.length + EXTRA_TESTS;
    expect(counts, explain("no Deno summary line found", output)).toEqual({ passed: expected, failed: 0, ignored: 0 });
    const live =
      "upstash: an SSE viewer gets live events over the streaming subscribe, no request while idle or per event ... ok";
    expect(output, explain(`"${live}" did not pass`, output)).toContain(live);
    for (const backend of BACKENDS) {
      expect(output, explain(`"${backend}: serves SSE ..." did not pass`, output)).toContain(
        `${backend}: serves SSE with Deno.serve: snapshot, history, live events, resume ... ok`,
      );
      for (const scenario of scenarios) {
        expect(output, explain(`"${backend}: ${scenario.name}" did not pass`, output)).toContain(
          `${backend}: ${scenario.name} ... ok`,
        );
      }
    }
  }, 90_000);
});
