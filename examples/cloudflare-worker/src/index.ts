// A Cloudflare Worker on Upstash: GET /?op=<op> streams the operation's progress.
// Needs: npm install progresscast @upstash/redis (and wrangler to deploy)
import { createProgress } from "progresscast";
import { upstash } from "progresscast/upstash";

interface Env {
  readonly UPSTASH_REDIS_REST_URL: string;
  readonly UPSTASH_REDIS_REST_TOKEN: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const op = new URL(request.url).searchParams.get("op");
    if (!op) return new Response("missing ?op=", { status: 400 });
    const port = upstash({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN });
    return createProgress({ port }).sse(request, op); // live progress to the browser
  },
};
