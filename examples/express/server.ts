// Express 5: progress as Server-Sent Events. Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx server.ts
// Needs: npm install progresscast redis express
import express from "express";
import { createProgress } from "progresscast";
import { toRequest, writeResponse } from "progresscast/node";
import { nodeRedis } from "progresscast/node-redis";

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
const app = express();

app.get("/progress/:op", async (req, res) => {
  const authorize = (request: Request) => request.headers.get("authorization") !== null;
  await writeResponse(res, await progress.sse(toRequest(req, res), req.params.op, { authorize }));
});

const server = app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  const address = server.address();
  console.log(`listening on http://127.0.0.1:${typeof address === "object" && address ? address.port : ""}`);
});
process.on("SIGTERM", () => server.close(() => void progress.close()));
