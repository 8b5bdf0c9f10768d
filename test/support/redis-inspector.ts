import { createClient } from "redis";
import type { Fields, StreamEntry } from "../../src/core/port/port.ts";

/** The calls the tests make on a plain client. */
export interface RawRedis {
  sendCommand(args: string[]): Promise<unknown>;
}

import type { Inspector } from "../contract/harness.ts";

/** A plain node-redis client reading what an adapter wrote: the independent witness of the contract suite. */
export async function redisInspector(url: string): Promise<Inspector & { client: RawRedis; close(): Promise<void> }> {
  const client = createClient({ url, RESP: 2 });
  client.on("error", () => {});
  await client.connect();
  const flat = (reply: unknown): Fields => {
    const out: Fields = {};
    if (Array.isArray(reply))
      for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  };
  return {
    client,
    async hgetall(key) {
      const f = flat(await client.sendCommand(["HGETALL", key]));
      return Object.keys(f).length > 0 ? f : null;
    },
    async xrange(key) {
      const reply = (await client.sendCommand(["XRANGE", key, "-", "+"])) as unknown[];
      return reply.map((row): StreamEntry => {
        const [id, fields] = row as [string, unknown];
        return { id: String(id), fields: flat(fields) };
      });
    },
    async pttl(key) {
      return Number(await client.sendCommand(["PTTL", key]));
    },
    async keys(prefix) {
      return ((await client.sendCommand(["KEYS", `${prefix}*`])) as unknown[]).map(String);
    },
    async close() {
      if (client.isOpen) client.destroy();
    },
  };
}

/** Total commands the server has processed (INFO commandstats), less the INFO calls themselves. */
export async function commandCount(client: RawRedis): Promise<number> {
  const info = String(await client.sendCommand(["INFO", "commandstats"]));
  let total = 0;
  for (const line of info.split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m && m[1] !== "info") total += Number(m[2]);
  }
  return total;
}
