/**
 * The job data every contender publishes, and the EVALSHA arguments a
 * hand-written publisher would send for it (the raw baseline).
 */

import type { ProgressUpdate } from "../../src/core/wire/index.ts";
import { APPEND_SHA } from "../../src/redis/scripts.ts";

/** Options every contender that writes progresscast's keys uses. */
export const TTL_SECONDS = 86_400;
export const MAX_LEN = 1000;
export const TERMINAL_TTL_SECONDS = 3600;

/** The job's own data for one step; every contender gets the same. */
export function step(current: number, total: number): ProgressUpdate {
  return { progress: (current / total) * 100, current, total, message: `Step ${current} of ${total}` };
}

/** Decimal as the wire writes it (at most 2 decimals); checked against the core's encoder at start. */
export function decimal(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/**
 * EVALSHA arguments of one publish as a hand-written publisher would build
 * them: the same KEYS/ARGV the core sends for a one-item batch, without
 * validation. `publish.ts` checks them against `encodeAppend` at start.
 */
export function rawAppendArgs(events: string, state: string, op: string, u: ProgressUpdate, ts: string): string[] {
  const progress = decimal(u.progress ?? 0);
  return [
    "EVALSHA",
    APPEND_SHA,
    "3",
    events,
    state,
    events,
    String(TTL_SECONDS),
    String(MAX_LEN),
    String(TERMINAL_TTL_SECONDS),
    "1",
    "0",
    progress,
    "22",
    "v",
    "1",
    "op",
    op,
    "seq",
    "0",
    "type",
    "progress",
    "status",
    "running",
    "progress",
    progress,
    "current",
    String(u.current),
    "total",
    String(u.total),
    "message",
    u.message ?? "",
    "ts",
    ts,
    "attempt",
    "1",
  ];
}
