/**
 * Redis Cluster logic shared by every cluster adapter (node-redis, ioredis).
 * An adapter implements {@link ClusterCommands} (commands routed by key with
 * the client's own MOVED/ASK handling) and gets:
 *
 * - {@link clusterAppend}: a batch split by slot into one append script per
 *   slot, sent concurrently, each followed on the same connection by a
 *   wake-up `SPUBLISH` on the slot's channel. A slot whose call fails fails
 *   only its own items ({@link PartialAppendError}). Scope copies (the scope key
 *   lives in another slot) are a second call per scope slot, carrying the op
 *   event's `id` so consumers de-duplicate; a failed copy is retried in the
 *   background by a {@link ScopeCopier}.
 * - {@link ClusterWaiter}: waiting for new entries on keys in many slots.
 *   Blocking XREAD cannot span slots and would pin a connection per slot, so
 *   the waiter subscribes (SSUBSCRIBE) to the wake-up channel of each watched
 *   slot (the client keeps one subscriber connection per shard), and on a
 *   wake-up reads the woken slots with non-blocking XREADs, one per slot, sent
 *   together so the client pipelines them per node. A slow safety poll reads
 *   every watched slot, so a lost wake-up (a failover, a writer that does not
 *   signal, such as another language's publisher) delays an event, never hangs
 *   a watcher. A process holds O(masters) connections, whatever the number of
 *   operations or watchers.
 *
 * @module
 */

import {
  type AppendItem,
  type AppendOptions,
  type AppendResult,
  type Cursor,
  type Fields,
  type KeyEntries,
  type LiveHandler,
  type LiveSubscription,
  PartialAppendError,
} from "../core/port/port.ts";
import { backoff } from "../core/util.ts";
import { decodeAppend, encodeAppend } from "./append.ts";
import { parseLiveMessage } from "./live.ts";
import { APPEND_NODE_SCRIPT, APPEND_NODE_SHA, APPEND_SCRIPT, APPEND_SHA, SCOPE_SCRIPT, SCOPE_SHA } from "./scripts.ts";
import { groupAppendsBySlot, groupBySlot, type SlotGroup, slotOf, slotTag } from "./slot.ts";

/** What a cluster adapter provides: commands routed to the master of the slot of their first key. */
export interface ClusterCommands {
  /**
   * Run a script (EVALSHA, EVAL on NOSCRIPT) on the master serving `keys[0]`;
   * every key is in that slot. Retries the client's transient cluster errors
   * (TRYAGAIN during a slot migration, CLUSTERDOWN during a failover) briefly.
   */
  script(sha: string, source: string, keys: string[], args: string[]): Promise<unknown>;
  /**
   * The master serving a slot now (any stable name, e.g. `host:port`), or
   * undefined when unknown: batches are then sent one call per slot.
   */
  nodeOf?(slot: number): string | undefined;
  /** `SPUBLISH channel message` on the master serving the channel's slot. */
  publish(channel: string, message: string): Promise<unknown>;
  /**
   * Non-blocking `XREAD COUNT count STREAMS ...` of keys in one slot, on the
   * master serving it (never a replica: a wake-up must find what woke it).
   */
  read(cursors: readonly Cursor[], count: number): Promise<KeyEntries[]>;
  /**
   * `SSUBSCRIBE` to sharded channels; `listener` hears the channel and the
   * message of each. `lost` hears channels whose subscription ended (their
   * node failed, their slot moved): the caller subscribes to them again.
   */
  subscribe(
    channels: readonly string[],
    listener: (channel: string, message: string) => void,
    lost: (channels: readonly string[]) => void,
  ): Promise<void>;
  /** `SUNSUBSCRIBE` from sharded channels. */
  unsubscribe(channels: readonly string[]): Promise<void>;
}

/** The default prefix of wake-up channels. */
export const DEFAULT_WAKE_CHANNEL = "progresscast:wake";

/**
 * The sharded channel that wakes readers of keys in `slot`: `<base>:{<tag>}`,
 * where the tag hashes to `slot`, so it is published and subscribed on the
 * master serving that slot.
 *
 * @example
 * ```ts
 * wakeChannel(slotOf("pc:{job-1}:events")); // "progresscast:wake:{...}"
 * ```
 */
export function wakeChannel(slot: number, base: string = DEFAULT_WAKE_CHANNEL): string {
  return `${base}:{${slotTag(slot)}}`;
}

/** One event to copy to a scope stream. */
export interface ScopeCopy {
  readonly scopeKey: string;
  /** `id` of the operation's event first, then its fields with `seq` set. */
  readonly fields: Fields;
}

/** Options of a {@link ScopeCopier}. */
export interface ScopeCopierOptions {
  /** Wake-up channel prefix. @default "progresscast:wake" */
  readonly wakeChannel?: string | undefined;
  /** Attempts of a failed copy, first included, before it is given up. @default 30 */
  readonly attempts?: number | undefined;
  /** Most copies held for retry; the oldest are given up beyond it. @default 10000 */
  readonly maxHeld?: number | undefined;
  /** Hears each copy given up (after its attempts, or beyond `maxHeld`). @default ignore */
  readonly onGiveUp?: ((copy: ScopeCopy, error: unknown) => void) | undefined;
}

interface Held {
  readonly copy: ScopeCopy;
  readonly options: AppendOptions;
}

/**
 * Copies events to scope streams on a cluster: one script call per scope
 * slot. A copy that fails is held and retried with backoff (up to `attempts`),
 * and later copies to the same scope queue behind it, so a scope stream keeps
 * each operation's order. A copy can land twice after a retry; it carries the
 * op event's `id`, so consumers de-duplicate.
 */
export class ScopeCopier {
  readonly #commands: ClusterCommands;
  readonly #wake: string;
  readonly #attempts: number;
  readonly #maxHeld: number;
  readonly #onGiveUp: (copy: ScopeCopy, error: unknown) => void;
  /** Copies waiting for a retry, per scope key, oldest first. */
  readonly #held = new Map<string, Held[]>();
  #heldCount = 0;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(commands: ClusterCommands, options: ScopeCopierOptions = {}) {
    this.#commands = commands;
    this.#wake = options.wakeChannel ?? DEFAULT_WAKE_CHANNEL;
    this.#attempts = options.attempts ?? 30;
    this.#maxHeld = options.maxHeld ?? 10_000;
    this.#onGiveUp = options.onGiveUp ?? (() => {});
  }

  /** Copies held for a retry now. */
  get held(): number {
    return this.#heldCount;
  }

  /**
   * Copy events to their scope streams, one call per scope slot, concurrently.
   * Resolves once every copy is written or held for a retry; never rejects.
   */
  async copy(copies: readonly ScopeCopy[], options: AppendOptions): Promise<void> {
    const now: ScopeCopy[] = [];
    for (const c of copies) {
      const queue = this.#held.get(c.scopeKey);
      if (queue) this.#hold(queue, { copy: c, options });
      else now.push(c);
    }
    if (now.length === 0) return;
    const failed = await this.#send(now, options);
    for (const c of failed) this.#hold(this.#queue(c.scopeKey), { copy: c, options });
    if (failed.length > 0) this.#schedule();
  }

  /** Try every held copy now. Resolves with the number still held. */
  async retry(): Promise<number> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#heldCount === 0) return 0;
    const batch = [...this.#held.values()].flat();
    this.#held.clear();
    this.#heldCount = 0;
    // Copies of one call share options; held copies are grouped by their own.
    const byOptions = new Map<AppendOptions, ScopeCopy[]>();
    for (const h of batch) {
      const list = byOptions.get(h.options) ?? [];
      list.push(h.copy);
      byOptions.set(h.options, list);
    }
    let failedAny = false;
    for (const [options, copies] of byOptions) {
      const failed = new Set(await this.#send(copies, options));
      for (const h of batch) {
        if (h.options !== options) continue;
        if (failed.has(h.copy)) {
          failedAny = true;
          this.#hold(this.#queue(h.copy.scopeKey), h);
        }
      }
    }
    if (failedAny) {
      this.#failures++;
      if (this.#failures >= this.#attempts) this.#giveUpAll(new Error("scope copy failed on every attempt"));
      else this.#schedule();
    } else this.#failures = 0;
    return this.#heldCount;
  }

  /** Stop retrying. Held copies are given up (reported to `onGiveUp`). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#giveUpAll(new Error("the backend closed before the scope copy could be written"));
  }

  #queue(key: string): Held[] {
    let queue = this.#held.get(key);
    if (!queue) {
      queue = [];
      this.#held.set(key, queue);
    }
    return queue;
  }

  #hold(queue: Held[], held: Held): void {
    queue.push(held);
    this.#heldCount++;
    if (this.#heldCount > this.#maxHeld) {
      // Give up the oldest copy of the longest queue.
      let longest: Held[] = queue;
      for (const q of this.#held.values()) if (q.length > longest.length) longest = q;
      const dropped = longest.shift();
      this.#heldCount--;
      if (dropped) this.#onGiveUp(dropped.copy, new Error(`more than ${this.#maxHeld} scope copies held`));
      if (longest.length === 0) this.#held.delete(dropped?.copy.scopeKey ?? "");
    }
  }

  #giveUpAll(error: Error): void {
    for (const queue of this.#held.values()) for (const h of queue) this.#onGiveUp(h.copy, error);
    this.#held.clear();
    this.#heldCount = 0;
    this.#failures = 0;
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return;
    const delay = Math.max(50, backoff(this.#failures, 100, 5000));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.retry();
    }, delay);
    // A pending retry must not keep a process alive on its own (Node, Deno).
    const t = this.#timer as { unref?: () => void };
    t.unref?.();
  }

  /** Send copies grouped by scope slot; resolves with the copies that failed. */
  async #send(copies: readonly ScopeCopy[], options: AppendOptions): Promise<ScopeCopy[]> {
    const groups = groupBySlot(copies, (c) => c.scopeKey);
    const failed: ScopeCopy[] = [];
    await Promise.all(
      groups.map(async (group) => {
        const keys: string[] = [];
        const args = [String(options.ttlSeconds), String(options.maxLen)];
        for (const c of group.items) {
          keys.push(c.scopeKey);
          const at = args.length;
          args.push("");
          for (const name in c.fields) args.push(name, c.fields[name] as string);
          args[at] = String(args.length - at - 1);
        }
        const written = this.#commands.script(SCOPE_SHA, SCOPE_SCRIPT, keys, args);
        const woken = this.#commands.publish(wakeChannel(group.slot, this.#wake), "1");
        woken.catch(() => {});
        try {
          await written;
        } catch {
          failed.push(...group.items);
        }
      }),
    );
    return failed;
  }
}

/**
 * Append a batch on a cluster: one append script per slot (items without
 * their scope key), sent concurrently, each with a wake-up `SPUBLISH` of its
 * slot pipelined right behind it; then the scope copies of the events
 * written, through `copier`. Round trips: one per slot touched, plus one per
 * scope slot touched for scoped events.
 *
 * @throws {PartialAppendError} when some slots' scripts failed and others
 *   were written, after every slot has answered: each item's result or its
 *   slot's error (the scope copies of the slots written are still made).
 * @throws the failure of the first slot when every slot's script failed.
 * @example
 * ```ts
 * const results = await clusterAppend(commands, copier, items, options);
 * ```
 */
export async function clusterAppend(
  commands: ClusterCommands,
  copier: ScopeCopier,
  items: readonly AppendItem[],
  options: AppendOptions,
  wakeBase: string = DEFAULT_WAKE_CHANNEL,
): Promise<AppendResult[]> {
  const groups = groupAppendsBySlot(items);
  const results = new Array<AppendResult | undefined>(items.length);
  const plainOf = (group: SlotGroup<AppendItem>): AppendItem[] =>
    group.items.map((item) => (item.scopeKey === undefined ? item : { ...item, scopeKey: undefined }));
  const fill = (group: SlotGroup<AppendItem>, decoded: readonly AppendResult[], from: number): void => {
    group.items.forEach((_, i) => {
      results[group.indices[i] ?? -1] = decoded[from + i];
    });
  };
  /** One call for one slot, its wake-up pipelined behind it. */
  const sendSlot = async (group: SlotGroup<AppendItem>): Promise<void> => {
    // SPUBLISH: a live channel is named like its stream, in the same slot; PUBLISH would go to every node.
    const { keys, args } = encodeAppend(plainOf(group), options, true);
    const written = commands.script(APPEND_SHA, APPEND_SCRIPT, keys, args);
    const woken = commands.publish(wakeChannel(group.slot, wakeBase), "1");
    woken.catch(() => {});
    fill(group, decodeAppend(await written, group.items.length), 0);
  };
  /**
   * One call for every slot a master serves (append-node.lua), wake-ups sent
   * by the script; a slot that moved meanwhile makes the script write nothing
   * and answer 'moved': the slots then go one call each.
   */
  const sendNode = async (node: readonly SlotGroup<AppendItem>[]): Promise<void> => {
    const plain = node.flatMap(plainOf);
    const { keys, args } = encodeAppend(plain, options, true);
    const wakes = node.map((g) => wakeChannel(g.slot, wakeBase));
    const call = [String(keys.length), ...keys, String(wakes.length), ...wakes, ...args];
    const reply = await commands.script(APPEND_NODE_SHA, APPEND_NODE_SCRIPT, [keys[0] ?? ""], call);
    if (reply === "moved") {
      await Promise.all(node.map(sendSlot));
      return;
    }
    const decoded = decodeAppend(reply, plain.length);
    let from = 0;
    for (const group of node) {
      fill(group, decoded, from);
      from += group.items.length;
    }
  };
  // Slots grouped by the master serving them: one call per master.
  const byNode = new Map<string, SlotGroup<AppendItem>[]>();
  for (const group of groups) {
    const node = commands.nodeOf?.(group.slot) ?? `slot:${group.slot}`;
    const list = byNode.get(node);
    if (list) list.push(group);
    else byNode.set(node, [group]);
  }
  const tasks = [...byNode.values()];
  const settled = await Promise.allSettled(
    tasks.map((node) => (node.length === 1 ? sendSlot(node[0] as SlotGroup<AppendItem>) : sendNode(node))),
  );
  const copies: ScopeCopy[] = [];
  items.forEach((item, i) => {
    const r = results[i];
    if (item.scopeKey === undefined || !r?.ok) return;
    copies.push({ scopeKey: item.scopeKey, fields: { id: r.id, ...item.fields, seq: String(r.seq) } });
  });
  if (copies.length > 0) await copier.copy(copies, options);
  const failures = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected");
  const first = failures[0];
  if (!first) {
    return results.map((r) => {
      if (!r) throw new TypeError("a slot's append answered fewer items than sent");
      return r;
    });
  }
  // Every call failed: the batch failed as a whole, as on a single node.
  if (failures.length === tasks.length) throw first.reason;
  const answers: Array<AppendResult | Error> = results.map(
    (r) => r ?? new TypeError("a slot's append answered fewer items than sent"),
  );
  settled.forEach((s, t) => {
    if (s.status === "fulfilled") return;
    const error = s.reason instanceof Error ? s.reason : new Error(String(s.reason));
    for (const group of tasks[t] ?? []) for (const i of group.indices) answers[i] = error;
  });
  throw new PartialAppendError(answers, first.reason instanceof Error ? first.reason : new Error(String(first.reason)));
}

/** Options of a {@link ClusterWaiter}. */
export interface ClusterWaiterOptions {
  /** Wake-up channel prefix. @default "progresscast:wake" */
  readonly wakeChannel?: string | undefined;
  /**
   * Every watched slot is read at least this often, whether or not a wake-up
   * came (a lost wake-up delays an event by at most this). Capped by the
   * caller's `blockMs`.
   * @default 2000
   */
  readonly pollMs?: number | undefined;
}

/**
 * Waits for new entries on keys spread over many slots (see the module
 * comment for the design). Meant for one reader per port (the manager's hub):
 * a second concurrent reader still gets everything, but may learn of some
 * entries only at the next safety poll.
 */
export class ClusterWaiter {
  readonly #commands: ClusterCommands;
  readonly #base: string;
  readonly #pollMs: number;
  /** Slots whose wake-up channel is subscribed (or being subscribed). */
  readonly #subscribed = new Map<number, Promise<void>>();
  readonly #channelSlot = new Map<string, number>();
  /** Slots that may have entries not read yet. */
  readonly #dirty = new Set<number>();
  /** Per key, the position after the last read (what the caller passes back when nothing changed). */
  #known = new Map<string, string>();
  readonly #wakers = new Set<() => void>();
  #suspect = false;
  /** A subscription ended during a wait: return so the next wait subscribes again. */
  #lost = false;
  #closed = false;

  constructor(commands: ClusterCommands, options: ClusterWaiterOptions = {}) {
    this.#commands = commands;
    this.#base = options.wakeChannel ?? DEFAULT_WAKE_CHANNEL;
    this.#pollMs = options.pollMs ?? 2000;
  }

  /** Number of slots subscribed now. */
  get slots(): number {
    return this.#subscribed.size;
  }

  readonly #onLost = (channels: readonly string[]): void => {
    for (const channel of channels) {
      const slot = this.#channelSlot.get(channel);
      if (slot === undefined) continue;
      this.#subscribed.delete(slot);
      this.#channelSlot.delete(channel);
    }
    // Wake-ups may have been missed: read every watched slot again, and resubscribe.
    this.#suspect = true;
    this.#lost = true;
    for (const wake of this.#wakers) wake();
  };

  readonly #onWake = (channel: string): void => {
    const slot = this.#channelSlot.get(channel) ?? slotOf(channel);
    this.#dirty.add(slot);
    for (const wake of this.#wakers) wake();
  };

  /**
   * Wait for entries after the given ids. Resolves with the keys that have new
   * entries, possibly none after `blockMs`, or at once (empty) when `signal`
   * aborts. Round trips: one non-blocking read per slot woken, pipelined per node.
   *
   * @throws what the client throws when a read fails (a failed subscription only
   *   leaves the slot to the safety poll until the next wait subscribes again).
   */
  async wait(
    cursors: readonly Cursor[],
    options: { readonly blockMs: number; readonly count: number; readonly signal?: AbortSignal | undefined },
  ): Promise<KeyEntries[]> {
    const { signal } = options;
    if (cursors.length === 0 || signal?.aborted || this.#closed) return [];
    const started = Date.now();
    const groups = groupBySlot(cursors, (c) => c.key);
    const watched = new Map(groups.map((g) => [g.slot, g.items]));
    await this.#follow(watched);
    if (this.#suspect) {
      this.#suspect = false;
      for (const slot of watched.keys()) this.#dirty.add(slot);
    }
    const known = new Map<string, string>();
    for (const c of cursors) {
      const was = this.#known.get(c.key);
      if (was === undefined || was !== c.after) this.#dirty.add(slotOf(c.key));
      known.set(c.key, c.after);
    }
    this.#known = known;
    const pollMs = Math.max(10, Math.min(this.#pollMs, options.blockMs));
    let lastPoll = started;
    for (;;) {
      const due = [...watched.keys()].filter((s) => this.#dirty.has(s));
      if (due.length > 0) {
        const found = await this.#read(due, watched, options.count);
        if (found.length > 0) return found;
      }
      if (signal?.aborted || this.#closed) return [];
      // A subscription was lost: return, so the caller's next wait subscribes again and reads everything.
      if (this.#lost) {
        this.#lost = false;
        return [];
      }
      const now = Date.now();
      const left = started + options.blockMs - now;
      if (left <= 0) return [];
      const nextPoll = lastPoll + pollMs - now;
      const woke = await this.#sleep(Math.max(0, Math.min(left, nextPoll)), signal);
      if (!woke && Date.now() >= lastPoll + pollMs) {
        lastPoll = Date.now();
        for (const slot of watched.keys()) this.#dirty.add(slot);
      }
    }
  }

  /** Stop waiting and drop subscriptions. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of this.#wakers) wake();
    const channels = [...this.#subscribed.keys()].map((s) => wakeChannel(s, this.#base));
    this.#subscribed.clear();
    if (channels.length > 0) await this.#commands.unsubscribe(channels).catch(() => {});
  }

  /** Subscribe to the slots watched now, drop the others. */
  async #follow(watched: ReadonlyMap<number, unknown>): Promise<void> {
    const added: number[] = [];
    for (const slot of watched.keys()) if (!this.#subscribed.has(slot)) added.push(slot);
    const dropped = [...this.#subscribed.keys()].filter((s) => !watched.has(s));
    if (dropped.length > 0) {
      for (const s of dropped) this.#subscribed.delete(s);
      const channels = dropped.map((s) => wakeChannel(s, this.#base));
      for (const ch of channels) this.#channelSlot.delete(ch);
      this.#commands.unsubscribe(channels).catch(() => {});
    }
    if (added.length > 0) {
      const channels = added.map((s) => wakeChannel(s, this.#base));
      added.forEach((s, i) => {
        this.#channelSlot.set(channels[i] as string, s);
      });
      const subscribing = this.#commands.subscribe(channels, this.#onWake, this.#onLost);
      for (const s of added) this.#subscribed.set(s, subscribing);
      // Entries written before the subscription took hold are found by the first read.
      for (const s of added) this.#dirty.add(s);
    }
    try {
      await Promise.all([...watched.keys()].map((s) => this.#subscribed.get(s)));
    } catch {
      // No wake-ups for now (a node down, a slot moving): the reads below still run, poll every
      // watched slot, and let the client learn the new topology; the next wait subscribes again.
      for (const s of added) this.#subscribed.delete(s);
      this.#suspect = true;
    }
  }

  async #read(
    slots: readonly number[],
    watched: ReadonlyMap<number, readonly Cursor[]>,
    count: number,
  ): Promise<KeyEntries[]> {
    for (const s of slots) this.#dirty.delete(s);
    let replies: KeyEntries[][];
    try {
      // Sent in one tick: the client writes the reads for one node as one pipeline.
      replies = await Promise.all(slots.map((s) => this.#commands.read(watched.get(s) ?? [], count)));
    } catch (error) {
      for (const s of slots) this.#dirty.add(s);
      this.#suspect = true;
      throw error;
    }
    const out: KeyEntries[] = [];
    for (const reply of replies) {
      for (const k of reply) {
        const last = k.entries[k.entries.length - 1];
        if (!last) continue;
        this.#known.set(k.key, last.id);
        out.push(k);
        // More may wait behind a full page: read the slot again next time.
        if (k.entries.length >= count) this.#dirty.add(slotOf(k.key));
      }
    }
    return out;
  }

  /** Sleep until a wake-up, `ms`, or abort. Resolves true when woken or aborted. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (woken: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#wakers.delete(wake);
        signal?.removeEventListener("abort", abort);
        resolve(woken);
      };
      const wake = (): void => finish(true);
      const abort = (): void => finish(true);
      const timer = setTimeout(() => finish(false), ms);
      this.#wakers.add(wake);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }
}

/**
 * Live channels on a cluster: SSUBSCRIBE to the channel of each watched
 * stream on the master serving its slot (one subscriber connection per
 * master, shared with the wake-ups). A channel whose subscription was lost
 * (failover, slot moved) is subscribed again where its slot lives now, then
 * the core is told to catch up.
 *
 * @throws nothing itself; `add` rejects when a master cannot be reached (the core retries).
 */
export function clusterLive(commands: ClusterCommands, handler: LiveHandler): LiveSubscription {
  const keys = new Set<string>();
  let closed = false;
  const onMessage = (channel: string, message: string): void => {
    if (!keys.has(channel)) return;
    const entry = parseLiveMessage(message);
    if (entry) handler.message(channel, entry);
  };
  const lost = (channels: readonly string[]): void => {
    void (async () => {
      for (let attempt = 0; !closed; attempt++) {
        const again = channels.filter((c) => keys.has(c));
        if (again.length === 0) return;
        try {
          // A read of each channel's stream follows a MOVED, so the client learns where the slot lives now.
          await Promise.all(again.map((c) => commands.read([{ key: c, after: "0-0" }], 1).catch(() => {})));
          await commands.subscribe(again, onMessage, lost);
          handler.resumed();
          return;
        } catch (error) {
          if (attempt >= 5) {
            // The core goes on by reading the streams (the wake-up reader) rather than waiting here.
            handler.failed(error instanceof Error ? error : new Error(String(error)));
            return;
          }
          await new Promise((r) => setTimeout(r, backoff(attempt, 100, 2000)));
        }
      }
    })();
  };
  return {
    async add(added) {
      for (const k of added) keys.add(k);
      await commands.subscribe(added, onMessage, lost);
    },
    async remove(removed) {
      for (const k of removed) keys.delete(k);
      await commands.unsubscribe(removed);
    },
    async close() {
      closed = true;
      const all = [...keys];
      keys.clear();
      await commands.unsubscribe(all).catch(() => {});
    },
  };
}
