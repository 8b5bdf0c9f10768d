/**
 * Redis Cluster slots, computed exactly as Redis does (CRC16/XMODEM of the
 * key's hash tag, modulo 16384), with the grouping helpers a cluster adapter
 * needs: a batch of appends split by the slot of each operation's keys, and
 * scope copies grouped by the scope key's slot. Runtime-agnostic: no client
 * library, no Node or Deno APIs.
 *
 * @module
 */
import type { AppendItem } from "../core/port/port.ts";

/** Number of hash slots in a Redis Cluster. */
export const SLOTS = 16384;

const TABLE: Uint16Array = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

const encoder = new TextEncoder();

/**
 * CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster
 * uses for key slots. Strings are hashed as their UTF-8 bytes.
 *
 * @example
 * ```ts
 * crc16("123456789"); // 0x31c3
 * ```
 */
export function crc16(input: string | Uint8Array): number {
  let crc = 0;
  if (typeof input === "string") {
    let ascii = true;
    for (let i = 0; i < input.length; i++) {
      const c = input.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ c) & 0xff] ?? 0);
    }
    if (ascii) return crc;
    return crc16(encoder.encode(input));
  }
  for (const byte of input) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

/**
 * The part of a key that decides its slot: the text between the first `{` and
 * the first `}` after it when that is not empty, else the whole key.
 *
 * @example
 * ```ts
 * hashTag("pc:{job-1}:events"); // "job-1"
 * hashTag("plain");             // "plain"
 * ```
 */
export function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open < 0) return key;
  const close = key.indexOf("}", open + 1);
  if (close <= open + 1) return key;
  return key.slice(open + 1, close);
}

/**
 * The Redis Cluster slot (0..16383) of a key, as `CLUSTER KEYSLOT` answers it.
 *
 * @example
 * ```ts
 * slotOf("pc:{job-1}:events") === slotOf("pc:{job-1}:state"); // true: one hash tag, one slot
 * ```
 */
export function slotOf(key: string): number {
  return crc16(hashTag(key)) & (SLOTS - 1);
}

let tags: string[] | undefined;

/**
 * A short hash tag whose slot is `slot`: put `{<tag>}` in a key or a sharded
 * channel name to place it in that slot (wake-up channels use it). Computed
 * once for all slots on first use (a few milliseconds).
 *
 * @throws {RangeError} when `slot` is not an integer in 0..16383.
 * @example
 * ```ts
 * slotOf(`wake:{${slotTag(42)}}`); // 42
 * ```
 */
export function slotTag(slot: number): string {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) {
    throw new RangeError(`slot must be an integer in 0..${SLOTS - 1}, got ${slot}`);
  }
  if (!tags) {
    const table = new Array<string>(SLOTS);
    let found = 0;
    for (let n = 0; found < SLOTS; n++) {
      const tag = n.toString(36);
      const s = crc16(tag) & (SLOTS - 1);
      if (table[s] === undefined) {
        table[s] = tag;
        found++;
      }
    }
    tags = table;
  }
  return tags[slot] ?? String(slot);
}

/** Items of one slot, with their positions in the batch they came from. */
export interface SlotGroup<T> {
  readonly slot: number;
  /** The items, in batch order. */
  readonly items: T[];
  /** Position of each item in the original batch. */
  readonly indices: number[];
}

/**
 * Group values by the slot of a key of each, keeping batch order inside a group
 * and groups in order of first appearance.
 *
 * @example
 * ```ts
 * groupBySlot(["a", "b", "{a}x"], (k) => k); // [{ slot: slotOf("a"), items: ["a", "{a}x"], indices: [0, 2] }, ...]
 * ```
 */
export function groupBySlot<T>(values: readonly T[], keyOf: (value: T) => string): SlotGroup<T>[] {
  const bySlot = new Map<number, SlotGroup<T>>();
  values.forEach((value, index) => {
    const slot = slotOf(keyOf(value));
    let group = bySlot.get(slot);
    if (!group) {
      group = { slot, items: [], indices: [] };
      bySlot.set(slot, group);
    }
    group.items.push(value);
    group.indices.push(index);
  });
  return [...bySlot.values()];
}

/**
 * Split a batch of appends by the slot of each operation's keys (one atomic
 * script per slot). Scope keys are left on the items: a cluster adapter strips
 * them before the call and copies scope events itself, grouped with
 * {@link groupBySlot} by scope key.
 *
 * @throws {RangeError} when an item's stream and snapshot keys are in different
 *   slots (a key strategy without a shared hash tag cannot be written atomically
 *   on a cluster).
 * @example
 * ```ts
 * for (const group of groupAppendsBySlot(items)) sendScript(group.items);
 * ```
 */
export function groupAppendsBySlot(items: readonly AppendItem[]): SlotGroup<AppendItem>[] {
  for (const item of items) {
    if (slotOf(item.eventsKey) !== slotOf(item.stateKey)) {
      throw new RangeError(
        `On Redis Cluster an operation's keys must share a hash tag: "${item.eventsKey}" and "${item.stateKey}" ` +
          "are in different slots. Use the default key strategy or put `{<op>}` in both keys.",
      );
    }
  }
  return groupBySlot(items, (item) => item.eventsKey);
}
