// WebSockets with `ws`, beside SSE on the same port, sharing one token check.
// Needs: npm install progresscast redis ws
// Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx server.ts
import { createServer, type IncomingMessage } from "node:http";
import { createProgress } from "progresscast";
import { nodeHandler, toRequest, writeResponse } from "progresscast/node";
import { nodeRedis } from "progresscast/node-redis";
import { WebSocketServer } from "ws";

const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
const validToken = (token: string | null | undefined) => token === (process.env.TOKEN ?? "dev-token");

// SSE: a web Request. WebSocket: the upgrade's IncomingMessage (browsers send the token in the query).
const authorizeSse = (request: Request) => validToken(request.headers.get("authorization")?.replace(/^Bearer /, ""));
const authorizeSocket = (request: IncomingMessage) =>
  validToken(new URL(request.url ?? "/", "http://localhost").searchParams.get("token"));

// nodeHandler: an error in the handler answers 500 instead of ending the process.
const server = createServer(
  nodeHandler(async (req, res) => {
    const op = new URL(req.url ?? "/", "http://localhost").searchParams.get("op");
    if (!op) return void res.writeHead(400).end("missing ?op=");
    await writeResponse(res, await progress.sse(toRequest(req, res), op, { authorize: authorizeSse }));
  }),
);
// The protocol's messages are under 300 bytes: refuse bigger frames before they are buffered.
const wss = new WebSocketServer({ server, maxPayload: 4096 });
wss.on("connection", (socket, request) => progress.serveWebSocket(socket, { request, authorize: authorizeSocket }));

server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  const address = server.address();
  console.log(`listening on http://127.0.0.1:${typeof address === "object" && address ? address.port : ""}`);
});
process.on("SIGTERM", () => {
  wss.close();
  server.close(() => void progress.close());
});
