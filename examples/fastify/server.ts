// Fastify 5: progress as Server-Sent Events. Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx server.ts
// Needs: npm install progresscast redis fastify
import Fastify from "fastify";
import { createProgress } from "progresscast";
import { toRequest, writeResponse } from "progresscast/node";
import { nodeRedis } from "progresscast/node-redis";

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
const app = Fastify();

app.get<{ Params: { op: string } }>("/progress/:op", async (req, reply) => {
  reply.hijack(); // the stream is written to the raw response
  await writeResponse(reply.raw, await progress.sse(toRequest(req.raw, reply.raw), req.params.op));
});
app.addHook("onClose", () => progress.close());

const url = await app.listen({ port: Number(process.env.PORT ?? 3000), host: "127.0.0.1" });
console.log(`listening on ${url}`);
process.on("SIGTERM", () => void app.close());
