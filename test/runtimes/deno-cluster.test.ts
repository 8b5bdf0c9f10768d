/**
 * Deno on Redis Cluster: starts a real cluster (3 masters, 3 replicas) here
 * and runs `deno test` on test/runtimes/deno/cluster.ts, which drives the
 * node-redis cluster path from the TypeScript sources. Deno's output is
 * printed when anything fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.ts";
import { run } from "./run.ts";
import { scenarios } from "./scenarios.ts";

const DENO = "node_modules/.bin/deno";
/** The cluster file's own tests beyond the shared scenarios. */
const OWN_TESTS = 2;

function explain(title: string, output: string): string {
  return `${title}\n----- deno output -----\n${output}\n-----------------------`;
}

describe("runtime: Deno on Redis Cluster", () => {
  let cluster: RedisCluster | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("passes deno test with node-redis on a cluster: batched publishes over many slots, watch, get, history, cancel", async () => {
    if (!cluster) throw new Error("the cluster did not start");
    const { code, output } = await run(
      DENO,
      ["test", "--allow-net", "--allow-env", "--allow-read", "--no-prompt", "test/runtimes/deno/cluster.ts"],
      {
        env: {
          DENO_NO_UPDATE_CHECK: "1",
          PROGRESSCAST_REDIS_CLUSTER: cluster.rootNodes.map((n) => n.url).join(","),
        },
        timeoutMs: 60_000,
      },
    );
    expect(code, explain(`deno test exited with ${code}`, output)).toBe(0);
    const line = output.split("\n").find((l) => /^(ok|FAILED) \| \d+ passed/.test(l.trim())) ?? "";
    expect(line, explain("no Deno summary line found", output)).toMatch(
      new RegExp(`^ok \\| ${scenarios.length + OWN_TESTS} passed \\| 0 failed`),
    );
    expect(output).toContain(
      "node-redis cluster: batched publishes to many slots reach every watcher, in order; get, history, cancel ... ok",
    );
    expect(output).toContain("node-redis cluster: a scope watcher gets the events of operations in other slots ... ok");
  }, 90_000);
});
