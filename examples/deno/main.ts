// Deno: `deno add npm:progresscast npm:redis`, then REDIS_URL=redis://127.0.0.1:6379 deno run -A main.ts
import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";

const progress = createProgress({ port: nodeRedis({ url: Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379" }) });

Deno.serve({ port: Number(Deno.env.get("PORT") ?? 3000), hostname: "127.0.0.1" }, (request) => {
  const op = new URL(request.url).searchParams.get("op");
  if (!op) return new Response("missing ?op=", { status: 400 });
  return progress.sse(request, op);
});
