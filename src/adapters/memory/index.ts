/**
 * The embedded backend: in process, no server, the same semantics as Redis
 * (atomic seq, ordering rules, approximate cap, TTL expiry, consumer groups).
 * The default of `createProgress`; also what tests of your own code can use.
 *
 * @module
 */
import { ConnectionClosedError, MissingGroupError, WrongTypeError } from "../../core/errors.ts";
import type {
  AppendItem,
  AppendOptions,
  AppendResult,
  ClaimOptions,
  Cursor,
  Fields,
  GroupReadOptions,
  KeyEntries,
  LiveHandler,
  LiveSubscription,
  OperationRead,
  StreamEntry,
  StreamPort,
} from "../../core/port/port.ts";
import { microtask } from "../../core/util.ts";

/** Options of {@link memory}. */
export interface MemoryOptions {
  /**
   * Clock in milliseconds, for stream ids and expiry.
   * @default Date.now
   */
  readonly now?: (() => number) | undefined;
}

interface StreamValue {
  readonly kind: "stream";
  entries: StreamEntry[];
  lastMs: number;
  lastSeq: number;
  groups: Map<string, Group>;
}
interface HashValue {
  readonly kind: "hash";
  fields: Fields;
}
interface Group {
  lastId: string;
  pending: Map<string, { consumer: string; at: number }>;
}
interface Slot {
  value: StreamValue | HashValue;
  expiresAt: number;
}

/** A memory port, with read access to what it holds for tests and inspection. */
export interface MemoryPort extends StreamPort {
  /** What a key holds now (a stream's entries or a hash's fields), or null. */
  inspect(key: string): { type: "stream"; entries: readonly StreamEntry[] } | { type: "hash"; fields: Fields } | null;
  /** Milliseconds a key has left to live, or -2 when it does not exist (like `PTTL`). */
  pttl(key: string): number;
  /** Every key held now. */
  keys(): string[];
}

/** A stored number, or undefined when absent or not a finite number (as the append script reads it). */
function num(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) && Math.abs(n) < 1e15 ? n : undefined;
}

function isEnded(status: string | undefined): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

function cmp(a: string, b: string): number {
  const i = a.indexOf("-");
  const j = b.indexOf("-");
  const d = Number(i < 0 ? a : a.slice(0, i)) - Number(j < 0 ? b : b.slice(0, j));
  return d !== 0 ? d : Number(i < 0 ? 0 : a.slice(i + 1)) - Number(j < 0 ? 0 : b.slice(j + 1));
}

/**
 * Create the in-process backend. Each call is a separate store: share one
 * port between managers to let them see each other's events.
 *
 * @example
 * ```ts
 * import { createProgress } from "progresscast";
 * import { memory } from "progresscast/memory";
 * const progress = createProgress({ port: memory() });
 * ```
 */
export function memory(options: MemoryOptions = {}): MemoryPort {
  const now = options.now ?? Date.now;
  const store = new Map<string, Slot>();
  const waiters = new Set<() => void>();
  /** Live channels: stream key -> handlers following it, as Redis pub/sub (each message is handed over asynchronously). */
  const channels = new Map<string, Set<LiveHandler>>();
  let closed = false;
  let writes = 0;

  const live = (key: string): Slot | undefined => {
    const slot = store.get(key);
    if (slot && slot.expiresAt <= now()) {
      store.delete(key);
      return undefined;
    }
    return slot;
  };
  const stream = (key: string, create: boolean): StreamValue | undefined => {
    const slot = live(key);
    if (slot?.value.kind === "stream") return slot.value;
    if (!create) return undefined;
    const value: StreamValue = { kind: "stream", entries: [], lastMs: 0, lastSeq: 0, groups: new Map() };
    store.set(key, { value, expiresAt: Number.POSITIVE_INFINITY });
    return value;
  };
  const hash = (key: string): Fields | undefined => {
    const slot = live(key);
    return slot?.value.kind === "hash" ? slot.value.fields : undefined;
  };
  const expire = (key: string, seconds: number): void => {
    const slot = store.get(key);
    if (slot) slot.expiresAt = now() + seconds * 1000;
  };
  const xadd = (key: string, fields: Fields, maxLen: number): string => {
    const s = stream(key, true) as StreamValue;
    const ms = now();
    if (ms > s.lastMs) {
      s.lastMs = ms;
      s.lastSeq = 0;
    } else s.lastSeq++;
    const id = `${s.lastMs}-${s.lastSeq}`;
    s.entries.push({ id, fields });
    if (s.entries.length > maxLen) s.entries.splice(0, s.entries.length - maxLen);
    const handlers = channels.get(key);
    if (handlers !== undefined) {
      const message: StreamEntry = { id, fields: { ...fields } };
      microtask(() => {
        for (const h of handlers) h.message(key, message);
      });
    }
    return id;
  };
  const after = (entries: readonly StreamEntry[], id: string): number => {
    // Binary search: index of the first entry with an id greater than `id`.
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp((entries[mid] as StreamEntry).id, id) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const check = (): void => {
    if (closed) throw new ConnectionClosedError("The memory backend is closed");
  };
  const sweep = (): void => {
    const t = now();
    for (const [key, slot] of store) if (slot.expiresAt <= t) store.delete(key);
  };
  const notify = (): void => {
    for (const wake of [...waiters]) wake();
  };

  // The same rules as the append script of the Redis adapters (src/redis/lua/append.lua), step for step.
  const appendOne = (item: AppendItem, o: AppendOptions): AppendResult => {
    const state = hash(item.stateKey);
    let seq = Math.floor(Math.max(0, num(state?.seq) ?? 0));
    let attempt = Math.floor(Math.max(1, num(state?.attempt) ?? 1));
    let cancelled = state?.cancel ?? null;
    const ended = isEnded(state?.status);
    if (!item.restart) {
      if (!item.allowAfterTerminal && ended) return { ok: false, refused: "terminal", seq, cancelled };
      const p = num(item.fields.progress);
      const stored = num(state?.progress);
      const statusBack = item.fields.status === "queued" && state?.status === "running";
      if (!item.allowBackwards && ((p !== undefined && stored !== undefined && p < stored) || statusBack)) {
        return { ok: false, refused: "backwards", seq, cancelled };
      }
    }
    seq++;
    if (item.restart) {
      attempt = state && (state.status !== undefined || state.seq !== undefined) ? attempt + 1 : 1;
      if (ended) cancelled = null;
      const s = stream(item.eventsKey, false);
      if (s) s.entries.length = 0;
      store.delete(item.stateKey);
    }
    const fields: Fields = {};
    for (const name in item.fields) if (name !== "attempt") fields[name] = item.fields[name] as string;
    // Within an attempt time never goes back: an event stamped before the snapshot's latest takes its time.
    const latest = state?.ts;
    if (!item.restart && latest !== undefined && fields.ts !== undefined && fields.ts < latest) fields.ts = latest;
    fields.seq = String(seq);
    fields.attempt = String(attempt);
    let clear = false;
    if (item.terminal) {
      if (fields.status === "completed") {
        fields.progress = "100";
        let total = fields.total;
        if (total === undefined && !item.restart) {
          const t = num(state?.total);
          if (t !== undefined && t >= 0 && Number.isInteger(t)) total = String(t);
        }
        if (total !== undefined) {
          fields.current = total;
          fields.total = total;
        }
      }
      fields.eta = "0";
      clear = fields.message === undefined && !item.restart;
    }
    const id = xadd(item.eventsKey, fields, o.maxLen);
    const at = Number(id.slice(0, id.indexOf("-")));
    const exp = item.restart ? undefined : num(state?.exp);
    const due = item.restart || ended || item.terminal || exp === undefined || exp - at < o.ttlSeconds * 500;
    const head: Fields = due ? { id, exp: String(at + o.ttlSeconds * 1000) } : { id };
    if (item.restart && cancelled !== null) head.cancel = cancelled;
    let snapshot = item.restart ? undefined : hash(item.stateKey);
    if (snapshot) Object.assign(snapshot, head, fields);
    else {
      snapshot = { ...head, ...fields };
      store.set(item.stateKey, { value: { kind: "hash", fields: snapshot }, expiresAt: Number.POSITIVE_INFINITY });
    }
    if (due) {
      expire(item.eventsKey, item.terminal ? o.terminalTtlSeconds : o.ttlSeconds);
      expire(item.stateKey, o.ttlSeconds);
    }
    if (clear) delete snapshot.message;
    if (item.scopeKey) {
      xadd(item.scopeKey, { id, ...fields }, o.maxLen);
      expire(item.scopeKey, o.ttlSeconds);
    }
    return { ok: true, id, seq, cancelled, attempt };
  };

  const port: MemoryPort = {
    name: "memory",
    capabilities: { groups: true, blocking: true },

    async append(items, o) {
      check();
      const results = items.map((item) => appendOne(item, o));
      if (++writes % 1024 === 0) sweep();
      notify();
      return results;
    },

    async read(stateKey, eventsKey, range): Promise<OperationRead> {
      check();
      const state = stateKey === null ? null : hash(stateKey);
      const entries = stream(eventsKey, false)?.entries ?? [];
      const from = range.after === undefined ? 0 : after(entries, range.after);
      return {
        state: state ? { ...state } : null,
        entries: entries.slice(from, from + range.limit),
        firstId: entries[0]?.id ?? null,
      };
    },

    live(handler: LiveHandler): LiveSubscription {
      const mine = new Set<string>();
      return {
        async add(keys) {
          check();
          for (const key of keys) {
            mine.add(key);
            let set = channels.get(key);
            if (!set) {
              set = new Set();
              channels.set(key, set);
            }
            set.add(handler);
          }
        },
        async remove(keys) {
          for (const key of keys) {
            mine.delete(key);
            const set = channels.get(key);
            set?.delete(handler);
            if (set?.size === 0) channels.delete(key);
          }
        },
        async close() {
          await this.remove([...mine]);
        },
      };
    },

    async getState(stateKey) {
      check();
      const state = hash(stateKey);
      return state ? { ...state } : null;
    },

    async wait(cursors: readonly Cursor[], o): Promise<KeyEntries[]> {
      check();
      const collect = (): KeyEntries[] => {
        const out: KeyEntries[] = [];
        for (const c of cursors) {
          const entries = stream(c.key, false)?.entries ?? [];
          const from = c.after === "$" ? entries.length : after(entries, c.after);
          if (from < entries.length) out.push({ key: c.key, entries: entries.slice(from, from + o.count) });
        }
        return out;
      };
      // As Redis answers WRONGTYPE for the read, naming the keys that hold a hash.
      const wrongType = (): WrongTypeError | undefined => {
        const keys = cursors.filter((c) => hash(c.key) !== undefined).map((c) => c.key);
        if (keys.length === 0) return undefined;
        return new WrongTypeError(`WRONGTYPE: ${keys.join(", ")} holds a hash, not a stream (wait)`, keys);
      };
      const failed = wrongType();
      if (failed) throw failed;
      const ready = collect();
      if (ready.length > 0 || o.signal?.aborted) return ready;
      return await new Promise<KeyEntries[]>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(wake);
          o.signal?.removeEventListener("abort", done);
          const error = closed ? undefined : wrongType();
          if (error) reject(error);
          else resolve(closed ? [] : collect());
        };
        const wake = (): void => {
          if (closed || wrongType() !== undefined || collect().length > 0) done();
        };
        const timer = setTimeout(done, o.blockMs);
        waiters.add(wake);
        o.signal?.addEventListener("abort", done, { once: true });
      });
    },

    async delete(stateKey, eventsKey) {
      check();
      const existed = live(stateKey) !== undefined || live(eventsKey) !== undefined;
      store.delete(stateKey);
      store.delete(eventsKey);
      return existed;
    },

    async cancel(stateKey, reason, ttlSeconds) {
      check();
      const state = hash(stateKey);
      const status = state?.status;
      // An unknown operation gets no mark: a typo must not stop a later job with that id.
      if (!state || status === "completed" || status === "failed" || status === "cancelled") return false;
      state.cancel = reason;
      expire(stateKey, ttlSeconds);
      return true;
    },

    async ensureGroup(key, group) {
      check();
      const s = stream(key, true) as StreamValue;
      if (!store.get(key) || (store.get(key) as Slot).expiresAt === 0) expire(key, 86_400);
      if (!s.groups.has(group)) s.groups.set(group, { lastId: "0-0", pending: new Map() });
    },

    async groupRead(o: GroupReadOptions): Promise<StreamEntry[]> {
      check();
      const take = (): StreamEntry[] => {
        const s = stream(o.key, false);
        const g = s?.groups.get(o.group);
        if (!s || !g) throw new MissingGroupError(`NOGROUP No such key '${o.key}' or consumer group '${o.group}'`);
        const from = after(s.entries, g.lastId);
        const batch = s.entries.slice(from, from + o.count);
        const last = batch[batch.length - 1];
        if (last) g.lastId = last.id;
        for (const e of batch) g.pending.set(e.id, { consumer: o.consumer, at: now() });
        return batch;
      };
      const first = take();
      if (first.length > 0 || o.blockMs <= 0) return first;
      const key = o.key;
      await port.wait([{ key, after: stream(key, false)?.groups.get(o.group)?.lastId ?? "0-0" }], {
        blockMs: o.blockMs,
        count: 1,
        signal: o.signal,
      });
      return closed ? [] : take();
    },

    async ack(key, group, ids) {
      check();
      const g = stream(key, false)?.groups.get(group);
      let n = 0;
      for (const id of ids) if (g?.pending.delete(id)) n++;
      return n;
    },

    async claim(o: ClaimOptions): Promise<StreamEntry[]> {
      check();
      const s = stream(o.key, false);
      const g = s?.groups.get(o.group);
      if (!s || !g) return [];
      const out: StreamEntry[] = [];
      const t = now();
      for (const [id, p] of g.pending) {
        if (out.length >= o.count) break;
        if (t - p.at < o.minIdleMs) continue;
        const entry = s.entries[after(s.entries, id) - 1];
        if (!entry || entry.id !== id) {
          g.pending.delete(id); // trimmed away, as XAUTOCLAIM does
          continue;
        }
        g.pending.set(id, { consumer: o.consumer, at: t });
        out.push(entry);
      }
      return out;
    },

    async pending(key, group) {
      check();
      return stream(key, false)?.groups.get(group)?.pending.size ?? 0;
    },

    async close() {
      closed = true;
      notify();
    },

    inspect(key) {
      const slot = live(key);
      if (!slot) return null;
      return slot.value.kind === "stream"
        ? { type: "stream", entries: [...slot.value.entries] }
        : { type: "hash", fields: { ...slot.value.fields } };
    },
    pttl(key) {
      const slot = live(key);
      if (!slot) return -2;
      return Number.isFinite(slot.expiresAt) ? slot.expiresAt - now() : -1;
    },
    keys() {
      sweep();
      return [...store.keys()];
    },
  };
  return port;
}
