/**
 * A real HTTP server answering with `progress.sse` through `progresscast/node`:
 * `/progress/<op>` follows one operation, `/scope/<scope>` a scope. With
 * `token`, requests without `authorization: Bearer <token>` get 403.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Progress } from "../../src/index.ts";
import { toRequest, writeResponse } from "../../src/node/index.ts";

export interface SseServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Requests received so far. */
  readonly requests: IncomingMessage[];
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

export async function startSseServer(progress: Progress, options: { token?: string } = {}): Promise<SseServer> {
  const requests: IncomingMessage[] = [];
  let open = 0;
  const server = createServer((req, res) => {
    requests.push(req);
    open++;
    res.once("close", () => open--);
    const path = new URL(req.url ?? "/", "http://localhost").pathname.split("/");
    const authorize =
      options.token === undefined
        ? undefined
        : (request: Request) => request.headers.get("authorization") === `Bearer ${options.token}`;
    const target = path[1] === "scope" ? { scope: path[2] ?? "" } : (path[2] ?? "");
    void progress
      .sse(toRequest(req, res), target, { authorize, heartbeatMs: 1000, retryMs: 50 })
      .then((response) => writeResponse(res, response))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    open: () => open,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
