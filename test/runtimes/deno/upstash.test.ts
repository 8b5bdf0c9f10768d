import { createProgress } from "@progresscast/progresscast";
import { upstash } from "@progresscast/progresscast/upstash";
import { assertWireFormat, defineScenarios, defineSse, env, redisStreamIds, uniquePrefix } from "./_helpers.ts";

const url = env.upstashUrl ?? "";
const token = env.upstashToken ?? "";
const ignore = env.upstashUrl === undefined || env.upstashToken === undefined || env.redisUrl === undefined;

// No retries: a fault should fail the test at once, not after backoff.
const port = () => upstash({ url, token, retry: false, pollMinMs: 20, pollMaxMs: 200 });

defineScenarios("upstash", (prefix) => createProgress({ port: port(), prefix, logger: {} }), ignore);

Deno.test({
  name: "upstash: writes the documented keys and fields (read back from Redis)",
  ignore,
  async fn() {
    const prefix = uniquePrefix();
    const progress = createProgress({ port: port(), prefix, logger: {} });
    try {
      await assertWireFormat(progress, prefix, env.redisUrl ?? "");
    } finally {
      await progress.close();
    }
  },
});

// Served over REST (the watch polls), published over REST by another manager, read back from Redis.
defineSse(
  "upstash",
  (prefix) => ({
    server: createProgress({ port: port(), prefix, logger: {} }),
    publisher: createProgress({ port: port(), prefix, logger: {} }),
    streamIds: redisStreamIds(env.redisUrl ?? "", prefix),
  }),
  ignore,
);
