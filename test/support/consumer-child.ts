/**
 * A consumer in its own process, for the "killed consumer" test: prints each
 * delivery and never acknowledges, until the test kills it with SIGKILL.
 */
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { Progress } from "../../src/core/progress.ts";

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) throw new Error("usage: consumer-child.ts <redis-url> <prefix>");
const progress = new Progress({ port: nodeRedis({ url }), prefix, logger: {} });
for await (const d of progress.consume({ group: "db", consumer: "child", scope: "all", claimIdleMs: 60_000 })) {
  process.stdout.write(`got ${d.event.op}\n`);
}
