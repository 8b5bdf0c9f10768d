/**
 * What the publisher and the servers of `fanin.ts` agree on: the progresscast
 * options of a variant, and the keys, channels and script of the raw baseline.
 */
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { defaultKeys } from "../../src/core/port/keys.ts";
import type { ProgressOptions } from "../../src/index.ts";
import type { FaninVariant } from "./children.ts";

/** Stream length the publishers keep (`MAXLEN ~`). */
export const FANIN_MAX_LEN = 1000;

/** Options of `createProgress` for a progresscast variant: live channels, or the blocking XREAD reader. */
export function progressOptions(
  variant: FaninVariant,
  redisUrl: string,
  prefix: string,
  publisher: boolean,
): ProgressOptions {
  return {
    port: nodeRedis({ url: redisUrl }),
    prefix,
    maxLen: FANIN_MAX_LEN,
    logger: {},
    ...(publisher ? { throttle: false, estimate: false } : {}),
    liveChannels: variant === "live",
  };
}

/** Keys of the raw baseline: progresscast's default layout; the channel of an operation is its stream key. */
export function rawKeys(prefix: string, op: string): { readonly stream: string; readonly state: string } {
  const keys = defaultKeys(prefix);
  return { stream: keys.events(op), state: keys.state(op) };
}

/**
 * The raw baseline's write: append, update the snapshot, publish the entry on
 * the operation's channel as a JSON array `[id, field, value, ...]`.
 *
 * KEYS[1] the operation's stream (also its channel), KEYS[2] its snapshot hash.
 * ARGV[1] the approximate MAXLEN, ARGV[2..] field, value, ...
 * Reply: the new entry's id.
 */
export const RAW_SCRIPT = `
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('HSET', KEYS[2], unpack(fields))
table.insert(fields, 1, id)
redis.call('PUBLISH', KEYS[1], cjson.encode(fields))
return id
`;
