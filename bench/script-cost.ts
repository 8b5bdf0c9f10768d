/**
 * Redis CPU per publish of the append script, from `INFO commandstats`
 * (`usec_per_call` of EVALSHA): sequential one-item calls to a few
 * operations, then 20-item batches, on a fresh redis-server.
 *
 * Run: `npx tsx bench/script-cost.ts [--calls 5000]`.
 */
import { parseArgs } from "node:util";
import { createClient } from "redis";
import type { AppendItem } from "../src/core/port/port.ts";
import { encodeUpdate } from "../src/core/wire/index.ts";
import { encodeAppend } from "../src/redis/append.ts";
import { APPEND_SCRIPT } from "../src/redis/scripts.ts";
import { startRedis } from "../test/support/redis-server.ts";
import { MAX_LEN, step, TERMINAL_TTL_SECONDS, TTL_SECONDS } from "./support/workload.ts";

const { values: flags } = parseArgs({ options: { calls: { type: "string", default: "5000" } } });
const CALLS = Number(flags.calls);

export interface ScriptCost {
  /** Redis µs per one-item call. */
  readonly single: number;
  /** Redis µs per item in 20-item calls. */
  readonly batched: number;
}

function item(op: string, i: number, total: number): AppendItem {
  return {
    eventsKey: `b:{${op}}:events`,
    stateKey: `b:{${op}}:state`,
    fields: encodeUpdate(op, step(i, total)),
    terminal: false,
    allowBackwards: false,
    allowAfterTerminal: false,
  };
}

/** Measure the append script's Redis CPU per item. */
export async function measureScriptCost(url: string, calls: number): Promise<ScriptCost> {
  const client = createClient({ url });
  await client.connect();
  try {
    const sha = String(await client.sendCommand(["SCRIPT", "LOAD", APPEND_SCRIPT]));
    const options = { ttlSeconds: TTL_SECONDS, maxLen: MAX_LEN, terminalTtlSeconds: TERMINAL_TTL_SECONDS };
    const usec = async (): Promise<number> => {
      const info = String(await client.sendCommand(["INFO", "commandstats"]));
      const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(info);
      return m ? Number(m[2]) : 0;
    };
    await client.sendCommand(["CONFIG", "RESETSTAT"]);
    for (let i = 1; i <= calls; i++) {
      const { keys, args } = encodeAppend([item(`op${i % 10}`, i, calls)], options);
      await client.sendCommand(["EVALSHA", sha, String(keys.length), ...keys, ...args]);
    }
    const single = (await usec()) / calls;
    await client.sendCommand(["CONFIG", "RESETSTAT"]);
    const batches = Math.ceil(calls / 20);
    for (let b = 0; b < batches; b++) {
      const items = Array.from({ length: 20 }, (_, j) => item(`batch${j}`, b + 1, batches));
      const { keys, args } = encodeAppend(items, options);
      await client.sendCommand(["EVALSHA", sha, String(keys.length), ...keys, ...args]);
    }
    const batched = (await usec()) / (batches * 20);
    return { single, batched };
  } finally {
    await client.quit();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startRedis();
  try {
    const cost = await measureScriptCost(server.url, CALLS);
    console.log(
      `append script, Redis CPU: ${cost.single.toFixed(1)} µs per one-item call, ${cost.batched.toFixed(1)} µs per item in 20-item calls`,
    );
  } finally {
    await server.close();
  }
}
