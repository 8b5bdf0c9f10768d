/**
 * A loopback TCP proxy in front of a real redis-server, for faults a clean
 * shutdown never shows: `silence()` makes every connection open now a black
 * hole (bytes are accepted and dropped, nothing is closed), as a NAT or a
 * load balancer that forgot a flow does. Connections opened afterwards are
 * forwarded normally (a new route).
 */
import { createServer, type Server, Socket } from "node:net";

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Stop forwarding on every connection open now, in both directions, without closing any. */
  silence(): void;
  /** Close the proxy and every connection through it. */
  close(): Promise<void>;
}

/** Start a proxy on a free loopback port that forwards to `127.0.0.1:targetPort`. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<{ client: Socket; upstream: Socket; silent: boolean }>();
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = new Socket();
    const pair = { client, upstream, silent: false };
    open.add(pair);
    client.on("data", (chunk) => {
      if (!pair.silent) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!pair.silent) client.write(chunk);
    });
    const end = (): void => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // A silenced flow never tells either side anything, not even that the other end went away.
    client.on("close", () => (pair.silent ? upstream.destroy() : end()));
    upstream.on("close", () => (pair.silent ? undefined : end()));
    client.on("error", () => {});
    upstream.on("error", () => {});
    upstream.connect(targetPort, "127.0.0.1");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    silence() {
      for (const pair of open) pair.silent = true;
    },
    async close() {
      for (const { client, upstream } of open) {
        client.destroy();
        upstream.destroy();
      }
      open.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
