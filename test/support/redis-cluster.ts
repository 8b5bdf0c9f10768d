/**
 * Starts a real Redis Cluster (3 masters, 3 replicas by default) on free
 * loopback ports, each node in its own temporary folder, and stops it. About
 * 2-3 s: start one per test file. Every port (client and cluster bus) is given
 * explicitly and stays at or below 55535, since Redis refuses a bus port above
 * 65535. Also drives the topology changes the failure tests need: a replica
 * promoted with CLUSTER FAILOVER, a master killed, a slot moved with its keys.
 */
import { type ChildProcess, execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { assertRedisInstalled, launchRedis, RedisStartError } from "./redis-server.ts";

const run = promisify(execFile);

/** One node as started (its role may change after a failover). */
export interface ClusterNode {
  readonly port: number;
  readonly busPort: number;
  /** `127.0.0.1:<port>` */
  readonly address: string;
}

/** One line of CLUSTER NODES. */
export interface NodeInfo {
  readonly id: string;
  readonly port: number;
  readonly role: "master" | "replica";
  /** Node id of its master, for a replica. */
  readonly masterId: string | null;
  /** Whether the node is marked failed or disconnected. */
  readonly failed: boolean;
  /** Slot ranges served, inclusive, for a master. */
  readonly slots: ReadonlyArray<readonly [number, number]>;
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** For node-redis `createCluster({ rootNodes })`. */
  readonly rootNodes: Array<{ url: string }>;
  /** `127.0.0.1:p1,127.0.0.1:p2,...`, the CLI's `--redis-cluster` form. */
  readonly seeds: string;
  /** Run a command on one node with redis-cli; the raw reply text. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The topology as the given node (default: the first live one) sees it. */
  topology(port?: number): Promise<NodeInfo[]>;
  /** The master serving `slot`. */
  masterOf(slot: number): Promise<NodeInfo>;
  /** Promote a replica of the master serving `slot` with CLUSTER FAILOVER; resolves once every live node agrees. */
  failover(slot: number): Promise<{ from: number; to: number }>;
  /** SIGKILL the master serving `slot`; resolves once its replica has taken over. */
  killMaster(slot: number): Promise<{ killed: number; promoted: number }>;
  /** Restart a killed node (it rejoins as a replica). */
  restart(port: number): Promise<void>;
  /**
   * Move `count` slots from the master on port `from` to the master on port `to`
   * with `redis-cli --cluster reshard` (it moves the source's lowest slots first,
   * keys included). Resolves with the slots moved.
   */
  reshard(options: { from: number; to: number; count: number }): Promise<number[]>;
  /** Stop every node and remove their folders. */
  close(): Promise<void>;
}

const MAX_PORT = 55535;
const taken = new Set<number>();

async function isFree(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A free loopback port in 20000..55535, not handed out before by this process.
 * Free when checked only: the node started on it may still find it taken.
 */
export async function freeClusterPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * (MAX_PORT - 20000));
    if (taken.has(port)) continue;
    taken.add(port); // before the check, so concurrent calls never hand out the same port
    if (await isFree(port)) return port;
    taken.delete(port);
  }
  throw new Error("no free loopback port found in 20000..55535");
}

/** Poll `check` until it returns true, or fail after `timeoutMs` with `what`. */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ""}`);
}

function parseNodes(text: string): NodeInfo[] {
  const out: NodeInfo[] = [];
  for (const line of text.trim().split("\n")) {
    const parts = line.trim().split(" ");
    const [id, address, flags, master] = parts;
    if (!id || !address || !flags) continue;
    const port = Number(address.split("@")[0]?.split(":")[1]);
    const flagSet = new Set(flags.split(","));
    const slots: Array<[number, number]> = [];
    for (const s of parts.slice(8)) {
      if (s.startsWith("[")) continue; // a slot being migrated
      const [a, b] = s.split("-");
      slots.push([Number(a), Number(b ?? a)]);
    }
    out.push({
      id,
      port,
      role: flagSet.has("master") ? "master" : "replica",
      masterId: master && master !== "-" ? master : null,
      failed: flagSet.has("fail") || flagSet.has("fail?") || parts[7] === "disconnected",
      slots,
    });
  }
  return out;
}

/** Options of {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** @default 3 */
  readonly masters?: number;
  /** Replicas per master. @default 1 */
  readonly replicas?: number;
  /**
   * Picks each port to try (a node's client port, then its bus port). A node
   * that finds one of them taken is started again on two new ones.
   * @default freeClusterPort
   */
  readonly pickPort?: () => Promise<number>;
  /**
   * How many port pairs to try per node when a picked port turns out taken.
   * @default 5
   */
  readonly attempts?: number;
}

/**
 * Start a cluster of `masters` masters with `replicas` replicas each on free
 * loopback ports.
 *
 * @throws {RedisStartError} when a node exits for another reason than a taken
 *   port, is not ready within 10 s, or found every port pair it tried taken.
 * @throws {Error} when the cluster does not form or settle within 20 s.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  assertRedisInstalled();
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const pickPort = options.pickPort ?? freeClusterPort;
  const attempts = options.attempts ?? 5;
  const count = masters * (1 + replicas);
  const dir = mkdtempSync(join(tmpdir(), "progresscast-cluster-"));
  /** In the order started: the first `masters` become masters. */
  const nodes: ClusterNode[] = [];
  const children = new Map<number, ChildProcess>();

  const startNode = async (node: ClusterNode): Promise<void> => {
    const child = await launchRedis(
      [
        "--port",
        String(node.port),
        "--cluster-port",
        String(node.busPort),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `nodes-${node.port}.conf`,
        "--cluster-node-timeout",
        "1000",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        "--dbfilename",
        `dump-${node.port}.rdb`,
      ],
      node.port,
    );
    children.set(node.port, child);
  };

  /** Start a new node, on other ports while the picked ones turn out taken. */
  const startNewNode = async (): Promise<ClusterNode> => {
    const tried: string[] = [];
    for (;;) {
      const port = await pickPort();
      const busPort = await pickPort();
      const node = { port, busPort, address: `127.0.0.1:${port}` };
      tried.push(`${port}/${busPort}`);
      try {
        await startNode(node);
        return node;
      } catch (error) {
        // It may have written its config before failing to bind the bus port.
        rmSync(join(dir, `nodes-${port}.conf`), { force: true });
        if (!(error instanceof RedisStartError && error.portInUse)) throw error;
        if (tried.length >= attempts) {
          throw new RedisStartError(`a cluster node found every port pair it tried taken (${tried.join(", ")})`, true);
        }
      }
    }
  };

  const cli = async (port: number, ...args: string[]): Promise<string> => {
    const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 10_000 });
    return stdout;
  };

  const live = (): ClusterNode[] =>
    nodes.filter((n) => {
      const c = children.get(n.port);
      return c !== undefined && c.exitCode === null && c.signalCode === null;
    });

  const topology = async (port?: number): Promise<NodeInfo[]> => {
    const at = port ?? live()[0]?.port;
    if (at === undefined) throw new Error("no node of the cluster is running");
    return parseNodes(await cli(at, "CLUSTER", "NODES"));
  };

  const masterOf = async (slot: number, port?: number): Promise<NodeInfo> => {
    const found = (await topology(port)).find(
      (n) => n.role === "master" && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b),
    );
    if (!found) throw new Error(`no master serves slot ${slot}`);
    return found;
  };

  /** Every live node reports cluster_state:ok and the same master for every slot range. */
  const settled = async (): Promise<boolean> => {
    let view: string | undefined;
    for (const node of live()) {
      if (!(await cli(node.port, "CLUSTER", "INFO")).includes("cluster_state:ok")) return false;
      const masters = (await topology(node.port))
        .filter((n) => n.role === "master" && !n.failed && n.slots.length > 0)
        .map((n) => `${n.port}:${n.slots.map((s) => s.join("-")).join(",")}`)
        .sort()
        .join(" ");
      if (view !== undefined && view !== masters) return false;
      view = masters;
    }
    return true;
  };

  const replicasSynced = async (): Promise<boolean> => {
    for (const node of live()) {
      const info = await cli(node.port, "INFO", "replication");
      if (info.includes("role:slave") && !info.includes("master_link_status:up")) return false;
    }
    return true;
  };

  const close = async (): Promise<void> => {
    await Promise.all(
      [...children.values()].map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGKILL");
        await exited;
      }),
    );
    children.clear();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // Every node is settled before a failure is thrown, so close() stops them all.
    const started = await Promise.allSettled(Array.from({ length: count }, startNewNode));
    for (const result of started) {
      if (result.status === "rejected") throw result.reason;
      nodes.push(result.value);
    }
    await run(
      "redis-cli",
      ["--cluster", "create", ...nodes.map((n) => n.address), "--cluster-replicas", String(replicas), "--cluster-yes"],
      { timeout: 30_000 },
    );
    await until(settled, "the cluster to agree on its slots");
    await until(replicasSynced, "replicas to sync");
  } catch (error) {
    await close();
    throw error;
  }

  return {
    nodes,
    rootNodes: nodes.slice(0, masters).map((n) => ({ url: `redis://${n.address}` })),
    seeds: nodes
      .slice(0, masters)
      .map((n) => n.address)
      .join(","),
    cli,
    topology,
    masterOf,
    async failover(slot) {
      const master = await masterOf(slot);
      const all = await topology();
      const replica = all.find((n) => n.masterId === master.id && !n.failed);
      if (!replica) throw new Error(`master on port ${master.port} has no live replica`);
      await cli(replica.port, "CLUSTER", "FAILOVER");
      await until(async () => (await masterOf(slot, replica.port)).port === replica.port, "the failover");
      await until(settled, "the cluster to settle after the failover");
      return { from: master.port, to: replica.port };
    },
    async killMaster(slot) {
      const master = await masterOf(slot);
      const child = children.get(master.port);
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      }
      let promoted = -1;
      await until(async () => {
        const now = await masterOf(slot);
        promoted = now.port;
        return now.port !== master.port;
      }, "a replica to take over after the master was killed");
      await until(settled, "the cluster to settle after the master was killed");
      return { killed: master.port, promoted };
    },
    async restart(port) {
      const node = nodes.find((n) => n.port === port);
      if (!node) throw new Error(`no node on port ${port}`);
      await startNode(node);
      await until(settled, "the cluster to settle after a restart");
    },
    async reshard({ from, to, count: n }) {
      const all = await topology();
      const source = all.find((x) => x.port === from && x.role === "master");
      const target = all.find((x) => x.port === to && x.role === "master");
      if (!source || !target) throw new Error(`ports ${from} and ${to} must both be masters`);
      const before = new Set<number>();
      for (const [a, b] of source.slots) for (let s = a; s <= b; s++) before.add(s);
      await run(
        "redis-cli",
        [
          "--cluster",
          "reshard",
          `127.0.0.1:${from}`,
          "--cluster-from",
          source.id,
          "--cluster-to",
          target.id,
          "--cluster-slots",
          String(n),
          "--cluster-yes",
          "--cluster-pipeline",
          "10",
        ],
        { timeout: 60_000 },
      );
      await until(settled, "the cluster to settle after resharding");
      const after = new Set<number>();
      const now = (await topology()).find((x) => x.id === source.id);
      for (const [a, b] of now?.slots ?? []) for (let s = a; s <= b; s++) after.add(s);
      return [...before].filter((s) => !after.has(s));
    },
    close,
  };
}
