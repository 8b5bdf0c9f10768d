// Hono on Node: progress as Server-Sent Events. Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx server.ts
// Needs: npm install progresscast redis hono @hono/node-server
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
const app = new Hono();

app.get("/progress/:op", (c) => progress.sse(c.req.raw, c.req.param("op")));

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: "127.0.0.1" }, (info) =>
  console.log(`listening on http://127.0.0.1:${info.port}`),
);
process.on("SIGTERM", () => server.close(() => void progress.close()));
