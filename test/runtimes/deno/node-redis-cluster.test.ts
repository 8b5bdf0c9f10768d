import { createProgress } from "@progresscast/progresscast";
import { nodeRedis } from "@progresscast/progresscast/node-redis";
import { defineScenarios } from "./_helpers.ts";

// Seed nodes of a Redis Cluster started by test/runtimes/deno.test.ts, as host:port,host:port.
const seeds = Deno.env.get("PROGRESSCAST_REDIS_CLUSTER");
const rootNodes = (seeds ?? "").split(",").map((node) => ({ url: `redis://${node}` }));

defineScenarios(
  "node-redis-cluster",
  (prefix) => createProgress({ port: nodeRedis({ cluster: { rootNodes } }), prefix, logger: {} }),
  seeds === undefined,
);
