/**
 * The `progresscast` command on Redis Cluster: `--redis-cluster host:port,...`
 * and `redis+cluster://` URLs, run in process against a real cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../../src/cli/args.ts";
import { backendConfig, clusterNodes } from "../../src/cli/backend.ts";
import { type CliIo, main } from "../../src/cli/main.ts";
import { uniquePrefix } from "../contract/suite.ts";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.ts";

async function run(args: readonly string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env,
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

describe("progresscast command on Redis Cluster", () => {
  it("reads seed nodes from --redis-cluster and redis+cluster:// URLs, and refuses bad ones", () => {
    expect(clusterNodes("10.0.0.1:7000,10.0.0.2:7001")).toEqual(["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]);
    expect(clusterNodes("rediss+cluster://u:p%40ss@h1:7000,h2:7000")).toEqual([
      "rediss://u:p%40ss@h1:7000",
      "rediss://u:p%40ss@h2:7000",
    ]);
    expect(backendConfig({ redis: "redis+cluster://h1:1,h2:2" }, {})).toEqual({
      kind: "redis-cluster",
      nodes: ["redis://h1:1", "redis://h2:2"],
      prefix: undefined,
    });
    expect(backendConfig({}, { REDIS_URL: "redis+cluster://h:1" })).toMatchObject({ kind: "redis-cluster" });
    expect(() => clusterNodes("h1")).toThrow(UsageError);
    expect(() => clusterNodes("")).toThrow(/host:port/);
    expect(() => clusterNodes("http://h:1")).toThrow(/redis\+cluster:\/\//);
    expect(() => backendConfig({ redis: "redis://h:1", "redis-cluster": "h:1" }, {})).toThrow(/one of/);
  });

  describe("against a real cluster", () => {
    let cluster: RedisCluster;
    beforeAll(async () => {
      cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    });
    afterAll(async () => {
      await cluster?.close();
    });

    it("publishes with --redis-cluster, inspects and cancels with a redis+cluster:// URL", async () => {
      const prefix = uniquePrefix();
      const flag = ["--redis-cluster", cluster.seeds, "--prefix", prefix];
      const published = await run(["publish", "job-c", "--progress", "40", "--scope", "team-c", ...flag]);
      expect(published.stderr).toBe("");
      expect(published.code).toBe(0);
      expect(published.stdout).toMatch(/^published job-c: seq 1, id \d+-\d+\n$/);
      const env = { REDIS_URL: `redis+cluster://${cluster.seeds}` };
      const inspected = await run(["inspect", "job-c", "--json", "--prefix", prefix], env);
      expect(inspected.code).toBe(0);
      expect(JSON.parse(inspected.stdout)).toMatchObject({ snapshot: { op: "job-c", progress: 40, seq: 1 } });
      expect((await run(["cancel", "job-c", "--reason", "stop", "--prefix", prefix], env)).code).toBe(0);
      const done = await run(["publish", "job-c", "--status", "cancelled", ...flag]);
      expect(done.code).toBe(0);
      const ended = await run(["inspect", "job-c", "--json", "--prefix", prefix], env);
      expect(JSON.parse(ended.stdout)).toMatchObject({ snapshot: { status: "cancelled", cancel: "stop" } });
    });
  });
});
