/**
 * The Upstash-compatible REST server in a child process of the benchmark, so
 * its CPU does not share the benchmark's event loop (a real Upstash database
 * is another machine). Driven over IPC: `setDelay`, `stats`, `reset`, `close`.
 */
import { startUpstashServer } from "../../test/support/upstash-server.ts";

export type ToServer =
  | { readonly type: "setDelay"; readonly ms: number }
  | { readonly type: "stats" }
  | { readonly type: "reset" }
  | { readonly type: "close" };
export type FromServer =
  | { readonly type: "ready"; readonly url: string; readonly token: string }
  | { readonly type: "stats"; readonly requests: number }
  | { readonly type: "ok" };

const send = (message: FromServer): void => {
  process.send?.(message);
};

const redisUrl = process.env.REDIS_URL;
if (!redisUrl || !process.send) {
  console.error("bench/support/rest-server.ts is started by bench/publish.ts (REDIS_URL and an IPC channel).");
  process.exit(2);
}
const server = await startUpstashServer({ redisUrl, delayMs: Number(process.env.REST_DELAY_MS ?? 0) });
process.on("message", (message: ToServer) => {
  switch (message.type) {
    case "setDelay":
      server.setDelay(message.ms);
      send({ type: "ok" });
      break;
    case "stats":
      send({ type: "stats", requests: server.requests });
      break;
    case "reset":
      server.reset();
      send({ type: "ok" });
      break;
    case "close":
      void server.close().finally(() => process.exit(0));
      break;
  }
});
process.on("disconnect", () => {
  void server.close().finally(() => process.exit(0));
});
send({ type: "ready", url: server.url, token: server.token });
