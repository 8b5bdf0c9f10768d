/**
 * What a watch hands out, and the entries behind it: each live entry is
 * decoded and sized once per process, however many watchers it reaches, and a
 * consumer that fell behind has superseded progress events coalesced.
 *
 * @module
 */
import type { StreamEntry } from "../port/port.ts";
import { decodeEvent, isTerminal, type ProgressEvent, type ProgressSnapshot } from "../wire/index.ts";

/** One item of a watch: the snapshot first (or a reset), then events. */
export type WatchItem =
  | {
      /** The state when the watch began; null when the operation is not known yet. */
      readonly kind: "snapshot";
      readonly snapshot: ProgressSnapshot | null;
    }
  | {
      /** `after` was older than the kept history: replace local state with this snapshot; history follows. */
      readonly kind: "reset";
      readonly snapshot: ProgressSnapshot | null;
    }
  | { readonly kind: "event"; readonly event: ProgressEvent };

/**
 * Live entries are shared by every watcher of a key (the hub hands the same
 * objects to all): each is decoded, and sized, once per process. A decoded
 * entry: its event, and the iterator result every watcher of it is handed (frozen, shared).
 */
interface Shared {
  readonly event: ProgressEvent;
  readonly result: IteratorResult<WatchItem, void>;
}

/** What is worked out once per entry: its size, and its decoding (null: not an event; undefined: not yet). */
interface EntryCache {
  readonly size: number;
  decoded: Shared | null | undefined;
}

/**
 * The cache rides on the entry itself (a symbol-keyed property: no weak map to
 * sweep per event); entries a port froze fall back to a weak map.
 */
const CACHE: unique symbol = Symbol("progresscast.entry");
type CachedEntry = StreamEntry & { [CACHE]?: EntryCache };
const frozenEntries = new WeakMap<StreamEntry, EntryCache>();

function cacheOf(entry: StreamEntry): EntryCache {
  const cached: CachedEntry = entry;
  let cache = cached[CACHE] ?? frozenEntries.get(entry);
  if (cache === undefined) {
    cache = { size: sizeOf(entry), decoded: undefined };
    if (Object.isExtensible(entry)) cached[CACHE] = cache;
    else frozenEntries.set(entry, cache);
  }
  return cache;
}

export function shared(entry: StreamEntry, op: string | undefined): Shared | null {
  const cache = cacheOf(entry);
  let decoded = cache.decoded;
  if (decoded === undefined) {
    const event = decodeEvent(entry, op);
    if (event === null) decoded = null;
    else {
      const frozen = Object.freeze(event);
      decoded = {
        event: frozen,
        result: Object.freeze({ done: false, value: Object.freeze({ kind: "event", event: frozen }) }),
      };
    }
    cache.decoded = decoded;
  }
  return decoded;
}

/** Approximate bytes an entry holds: its id, field names and values. */
function sizeOf(entry: StreamEntry): number {
  let size = 64 + entry.id.length;
  for (const key in entry.fields) size += key.length + (entry.fields[key]?.length ?? 0);
  return size;
}

export function entrySize(entry: StreamEntry): number {
  return cacheOf(entry).size;
}

function removable(entry: StreamEntry): boolean {
  const type = entry.fields.type;
  return (type === undefined || type === "progress") && !isTerminal(entry.fields.status);
}

/** Keep at most `max` entries: drop progress events superseded by a later one for the same operation, oldest first. */
export function compact(queue: StreamEntry[], max: number): number {
  if (queue.length <= max) return 0;
  const latest = new Map<string, number>();
  queue.forEach((e, i) => {
    if (removable(e)) latest.set(e.fields.op ?? "", i);
  });
  let excess = queue.length - max;
  let dropped = 0;
  const kept: StreamEntry[] = [];
  queue.forEach((e, i) => {
    if (excess > 0 && removable(e) && latest.get(e.fields.op ?? "") !== i) {
      excess--;
      dropped++;
    } else kept.push(e);
  });
  queue.splice(0, queue.length, ...kept);
  return dropped;
}
