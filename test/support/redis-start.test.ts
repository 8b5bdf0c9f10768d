/**
 * The test support starts real redis-servers on ports that were free when
 * checked. When another process takes such a port first, the server that
 * cannot bind it is noticed at once and started again on another port: two
 * servers racing for one port both come up, and a cluster node whose port
 * or bus port is held starts elsewhere.
 */
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { freeClusterPort, type RedisCluster, startRedisCluster } from "./redis-cluster.ts";
import { freePort, type RedisServer, RedisStartError, startRedis } from "./redis-server.ts";

const run = promisify(execFile);

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 10_000 });
  return stdout.trim();
}

/** A plain TCP listener holding a port, as another program would. */
async function hold(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return server;
}

/** A picker that answers `first` (in order) before falling back to `rest`. */
function picker(first: readonly number[], rest: () => Promise<number>): () => Promise<number> {
  const queue = [...first];
  return async () => queue.shift() ?? (await rest());
}

describe("starting redis-server on a port someone else takes", { timeout: 60_000 }, () => {
  const servers: RedisServer[] = [];
  const held: Server[] = [];
  let cluster: RedisCluster | undefined;
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r))));
    await cluster?.close();
    cluster = undefined;
  });

  it("two servers handed the same port both start, on different ports", async () => {
    const contested = await freePort();
    const [a, b] = await Promise.all([
      startRedis([], { pickPort: picker([contested], freePort) }),
      startRedis([], { pickPort: picker([contested], freePort) }),
    ]);
    servers.push(a, b);
    expect(a.port).not.toBe(b.port);
    expect([a.port, b.port]).toContain(contested);
    // Two servers, not one answering for both.
    await cli(a.port, "SET", "who", "a");
    expect(await cli(b.port, "EXISTS", "who")).toBe("0");
    expect(await cli(a.port, "GET", "who")).toBe("a");
  });

  it("a port held by another program is skipped", async () => {
    const port = await freePort();
    held.push(await hold(port));
    const server = await startRedis([], { pickPort: picker([port], freePort) });
    servers.push(server);
    expect(server.port).not.toBe(port);
    expect(await cli(server.port, "PING")).toBe("PONG");
  });

  it("gives up after `attempts` taken ports, naming them", async () => {
    const ports = [await freePort(), await freePort()];
    for (const port of ports) held.push(await hold(port));
    const failed = await startRedis([], { pickPort: picker(ports, freePort), attempts: 2 }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RedisStartError);
    expect((failed as RedisStartError).portInUse).toBe(true);
    expect((failed as Error).message).toContain(`${ports[0]}, ${ports[1]}`);
  });

  it("a server that exits for another reason fails at once with its log, without trying other ports", async () => {
    let picks = 0;
    const failed = await startRedis(["--no-such-option", "yes"], {
      pickPort: () => {
        picks++;
        return freePort();
      },
    }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RedisStartError);
    expect((failed as RedisStartError).portInUse).toBe(false);
    expect((failed as Error).message).toMatch(/exited with code 1[\s\S]*no-such-option/);
    expect(picks).toBe(1);
  });

  it("a restarted server whose port was taken while it was stopped fails at once", async () => {
    const server = await startRedis();
    servers.push(server);
    await server.stop();
    held.push(await hold(server.port));
    const failed = await server.start().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RedisStartError);
    expect((failed as RedisStartError).portInUse).toBe(true);
  });

  it("a cluster node whose client port or bus port is held starts on other ports", async () => {
    const port = await freeClusterPort();
    const busPort = await freeClusterPort();
    const free: number[] = [];
    for (let i = 0; i < 4; i++) free.push(await freeClusterPort());
    const [f1 = 0, f2 = 0, f3 = 0, f4 = 0] = free;
    held.push(await hold(port), await hold(busPort));
    // The three nodes pick their client ports, then their bus ports: the first node gets a held
    // bus port, the second a held client port, the third two free ones.
    cluster = await startRedisCluster({
      masters: 3,
      replicas: 0,
      pickPort: picker([f1, port, f2, busPort, f3, f4], freeClusterPort),
    });
    const used = cluster.nodes.flatMap((n) => [n.port, n.busPort]);
    expect(used).not.toContain(port);
    expect(used).not.toContain(busPort);
    for (const node of cluster.nodes) expect(await cli(node.port, "CLUSTER", "INFO")).toContain("cluster_state:ok");
  });
});
