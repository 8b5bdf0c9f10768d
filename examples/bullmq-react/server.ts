// BullMQ + ioredis + React: every user follows all of their imports in one live list, a scope.
// Needs: npm install progresscast bullmq ioredis hono @hono/node-server react react-dom esbuild
// Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx server.ts (and worker.ts beside it), then open http://127.0.0.1:3000/?user=7
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { Queue } from "bullmq";
import { build } from "esbuild";
import { Hono } from "hono";
import { createProgress } from "progresscast";
import { bridgeQueue } from "progresscast/bullmq";
import { ioredis } from "progresscast/ioredis";

const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const progress = createProgress({ port: ioredis({ url: url.href }) });

// A job's id starts with its user's scope (`user-7.<n>`): the bridge publishes `queued`, `completed` and
// `failed` to that scope too; the worker does the same for the rest (worker.ts).
const scopeOf = (jobId?: string) => jobId?.match(/^(user-\d+)\./)?.[1];
const bridge = await bridgeQueue("imports", { connection, progress, forwardProgress: false, scope: scopeOf });
const queue = new Queue("imports", { connection });

// The page (main.tsx and Imports.tsx), bundled once at start.
const bundle = await build({
  entryPoints: [fileURLToPath(new URL("main.tsx", import.meta.url))],
  bundle: true,
  minify: true,
  write: false,
  format: "esm",
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
});
const script = bundle.outputFiles[0]?.text ?? "";

const app = new Hono();
app.get("/", (c) => c.html('<!doctype html><title>Imports</title><div id="root"></div><script src="/app.js" type="module"></script>'));
app.get("/app.js", (c) => c.body(script, 200, { "content-type": "text/javascript; charset=utf-8" }));

// A real app takes the user from its session, not from the path, and checks who may follow what (`authorize`).
let added = 0;
app.post("/users/:user/imports", async (c) => {
  const user = c.req.param("user");
  if (!/^\d+$/.test(user)) return c.text("user must be a number", 400);
  const job = await queue.add("import", {}, { jobId: `user-${user}.${Date.now()}-${++added}`, attempts: 2 });
  return c.json({ id: job.id }, 201);
});
// Every job of the user: the snapshot of each first, then live events; the stream stays open.
app.get("/users/:user/progress", (c) => progress.sse(c.req.raw, { scope: `user-${c.req.param("user")}` }));
// One job.
app.get("/progress/:op", (c) => progress.sse(c.req.raw, c.req.param("op")));

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: "127.0.0.1" }, (info) =>
  console.log(`listening on http://127.0.0.1:${info.port}`),
);
process.on("SIGTERM", () =>
  server.close(() => void Promise.all([bridge.close(), queue.close()]).then(() => progress.close())),
);
