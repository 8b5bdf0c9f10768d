/**
 * A plain node-redis cluster client reading what an adapter wrote to a Redis
 * Cluster: the independent witness of the contract suite's cluster rows.
 */
import { createCluster } from "redis";
import type { Fields, StreamEntry } from "../../src/core/port/port.ts";
import type { Inspector } from "../contract/harness.ts";

export interface ClusterInspector extends Inspector {
  /** A command routed by the slot of `key`. */
  send(key: string, args: string[]): Promise<unknown>;
  /** A command on every master; the replies in master order. */
  each(args: string[]): Promise<unknown[]>;
  /** Calls of the named commands (lower case) summed over every master, from INFO commandstats. */
  calls(names: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

export async function clusterInspector(rootNodes: Array<{ url: string }>): Promise<ClusterInspector> {
  const cluster = createCluster({ rootNodes, RESP: 2 });
  cluster.on("error", () => {});
  await cluster.connect();
  const flat = (reply: unknown): Fields => {
    const out: Fields = {};
    if (Array.isArray(reply))
      for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  };
  const send = async (key: string, args: string[]): Promise<unknown> => await cluster.sendCommand(key, false, args);
  const each = async (args: string[]): Promise<unknown[]> =>
    await Promise.all(cluster.masters.map(async (m) => (await cluster.nodeClient(m)).sendCommand(args)));
  return {
    send,
    each,
    async calls(names) {
      let n = 0;
      for (const info of await each(["INFO", "commandstats"])) {
        for (const m of String(info).matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g))
          if (names.includes(m[1] ?? "")) n += Number(m[2]);
      }
      return n;
    },
    async hgetall(key) {
      const f = flat(await send(key, ["HGETALL", key]));
      return Object.keys(f).length > 0 ? f : null;
    },
    async xrange(key) {
      const reply = (await send(key, ["XRANGE", key, "-", "+"])) as unknown[];
      return reply.map((row): StreamEntry => {
        const [id, fields] = row as [string, unknown];
        return { id: String(id), fields: flat(fields) };
      });
    },
    async pttl(key) {
      return Number(await send(key, ["PTTL", key]));
    },
    async keys(prefix) {
      return (await each(["KEYS", `${prefix}*`])).flatMap((r) => (r as unknown[]).map(String));
    },
    async close() {
      cluster.destroy();
    },
  };
}
