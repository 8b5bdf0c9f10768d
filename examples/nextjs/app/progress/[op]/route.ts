// Next.js App Router route handler: GET /progress/<op> streams the operation's progress.
// Needs: npm install progresscast redis (in a Next.js app)
import { createProgress } from "progresscast";
import { nodeRedis } from "progresscast/node-redis";

export const dynamic = "force-dynamic"; // never cache a live stream

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });

export async function GET(request: Request, context: { params: Promise<{ op: string }> }): Promise<Response> {
  const { op } = await context.params;
  return progress.sse(request, op, { authorize: (req) => req.headers.get("authorization") !== null });
}
