import { createClient } from "redis";
import { afterEach, describe, expect, it } from "vitest";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { isBackendError } from "../../src/core/errors.ts";
import { Progress } from "../../src/core/progress.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { startRedis } from "../support/redis-server.ts";
import { collect, seqs, until } from "./helpers.ts";

describe("a watched key overwritten with another type", () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  it("ends only the watches of that key, at once and with the reason; the others go on", async () => {
    const server = await startRedis();
    open.push(server);
    const prefix = uniquePrefix();
    // The blocking reader: a shared XREAD over every watched key, which one bad key would fail.
    const options = { prefix, logger: {}, throttle: false as const, blockMs: 200, liveChannels: false };
    const publisher = new Progress({ port: nodeRedis({ url: server.url }), ...options });
    const watching = new Progress({ port: nodeRedis({ url: server.url }), ...options });
    open.push(publisher, watching);
    const raw = createClient({ url: server.url });
    await raw.connect();
    open.push({ close: () => raw.quit() });

    await publisher.publish("job-1", { status: "running", progress: 1 });
    await publisher.publish("job-2", { status: "running", progress: 1 });
    const one = collect(watching.watch("job-1"));
    const two = collect(watching.watch("job-2"));
    const twoAgain = collect(watching.watch("job-2"));
    await until(() => one.items.length > 0 && two.items.length > 0 && twoAgain.items.length > 0, "both snapshots");

    // Someone replaces job-2's stream with a string while the reader blocks on both keys.
    const key = watching.streamKey("job-2");
    await raw.del(key);
    await raw.set(key, "not a stream");
    const started = Date.now();
    await Promise.all([two.done, twoAgain.done]);
    const ended = Date.now() - started;
    for (const w of [two, twoAgain]) {
      expect(isBackendError(w.error)).toBe(true);
      expect(String((w.error as Error).message)).toContain(key);
    }
    // Ended at the first failed read, not after maxReadFailures retries with backoff (10 by default, seconds).
    expect(ended).toBeLessThan(5000);

    // job-1's watcher never noticed.
    for (let p = 2; p <= 5; p++) await publisher.publish("job-1", { progress: p });
    await publisher.publish("job-1", { status: "completed" });
    await one.done;
    expect(one.error).toBeUndefined();
    expect(seqs(one.items)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
