// BullMQ: the bridge forwards every job of the "imports" queue; browsers follow GET /progress/<job id>.
// Needs: npm install progresscast bullmq redis hono @hono/node-server
// Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx server.ts   (and worker.ts beside it)
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createProgress } from "progresscast";
import { bridgeQueue } from "progresscast/bullmq";
import { nodeRedis } from "progresscast/node-redis";

const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const progress = createProgress({ port: nodeRedis({ url: url.href }) });
const bridge = await bridgeQueue("imports", { connection, progress, forwardProgress: false });

const app = new Hono();
app.get("/progress/:op", (c) => progress.sse(c.req.raw, c.req.param("op")));

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: "127.0.0.1" }, (info) =>
  console.log(`listening on http://127.0.0.1:${info.port}`),
);
process.on("SIGTERM", () => server.close(() => void bridge.close().then(() => progress.close())));
