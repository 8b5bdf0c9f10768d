import { createProgress } from "@progresscast/progresscast";
import { nodeRedis } from "@progresscast/progresscast/node-redis";
import { assertWireFormat, defineScenarios, defineSse, env, redisStreamIds, uniquePrefix } from "./_helpers.ts";

const url = env.redisUrl ?? "";
const ignore = env.redisUrl === undefined;

defineScenarios("node-redis", (prefix) => createProgress({ port: nodeRedis({ url }), prefix, logger: {} }), ignore);

Deno.test({
  name: "node-redis: writes the documented keys and fields",
  ignore,
  async fn() {
    const prefix = uniquePrefix();
    const progress = createProgress({ port: nodeRedis({ url }), prefix, logger: {} });
    try {
      await assertWireFormat(progress, prefix, url);
    } finally {
      await progress.close();
    }
  },
});

// Two managers on one Redis and prefix: the server's watch sees what the other publishes.
defineSse(
  "node-redis",
  (prefix) => ({
    server: createProgress({ port: nodeRedis({ url }), prefix, logger: {} }),
    publisher: createProgress({ port: nodeRedis({ url }), prefix, logger: {} }),
    streamIds: redisStreamIds(url, prefix),
  }),
  ignore,
);
