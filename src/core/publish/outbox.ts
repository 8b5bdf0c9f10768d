import { BackendError } from "../errors.ts";
import type { AppendItem, AppendResult } from "../port/port.ts";
import { backoff } from "../util.ts";

/** What became of an event held in the outbox, as told to whoever waits for it. */
export type OutboxOutcome =
  | { readonly kind: "written"; readonly result: AppendResult }
  /** An attempt that would have written it (or an earlier event of its operation) failed. */
  | { readonly kind: "failed"; readonly error: Error }
  | { readonly kind: "dropped"; readonly error: Error };

/** One event the backend has not taken yet. */
export interface OutboxEntry {
  readonly op: string;
  /** The event; a held progress update merges newer ones into it. */
  item: AppendItem;
  cid: string | undefined;
  /** When the event was first refused by the backend (ms since epoch). */
  readonly since: number;
  /** Attempts made from the outbox so far. */
  tries: number;
  /** Set while the entry is on its way to the backend: nothing may merge into it then. */
  sending: boolean;
  readonly listeners: Set<(outcome: OutboxOutcome) => void>;
}

/** Settings of an {@link Outbox}. */
export interface OutboxSettings {
  /** Most events held, all operations together. */
  readonly maxEvents: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
}

/** What the outbox calls. */
export interface OutboxHooks {
  /**
   * Append these items; answer one result or error per item. Must not reject.
   * Items are heads of distinct operations, so they may go in one call.
   */
  send(items: readonly AppendItem[]): Promise<Array<AppendResult | Error>>;
  /** An entry was written after the backend refused it earlier. */
  written(entry: OutboxEntry, result: AppendResult): void;
  /** An entry was pushed out to make room, or refused for lack of room. */
  dropped(entry: OutboxEntry, error: Error): void;
  /** A round of attempts failed; the next comes after `delayMs`. */
  retrying(entries: readonly OutboxEntry[], error: Error, delayMs: number): void;
}

const isCoalescible = (item: AppendItem): boolean => !item.terminal && (item.fields.type ?? "progress") === "progress";

/** Whether `later` can be merged into `held` without changing what a reader sees except the newest values. */
function mergeable(held: AppendItem, later: AppendItem): boolean {
  return (
    isCoalescible(held) &&
    isCoalescible(later) &&
    held.fields.status === later.fields.status &&
    held.scopeKey === later.scopeKey &&
    held.allowBackwards === later.allowBackwards &&
    held.allowAfterTerminal === later.allowAfterTerminal
  );
}

/**
 * The events the backend refused while it was unreachable, kept in memory
 * while the process lives and written as soon as it answers again: in order
 * per operation (one operation's events one after another, each operation's
 * oldest first, many operations in one call), with progress updates coalesced
 * (the newest held per operation, never replayed one by one). Bounded: past
 * `maxEvents`, a progress update is pushed out before any terminal or
 * application event, and an event finding no room is dropped and reported.
 * Retries use full-jitter exponential backoff between `minDelayMs` and `maxDelayMs`.
 */
export class Outbox {
  readonly #queues = new Map<string, OutboxEntry[]>();
  readonly #settings: OutboxSettings;
  readonly #hooks: OutboxHooks;
  #size = 0;
  #running = false;
  #stopped = false;
  #wake: (() => void) | undefined;
  #sleepingSince = 0;
  #idle: Array<() => void> = [];

  constructor(settings: OutboxSettings, hooks: OutboxHooks) {
    this.#settings = settings;
    this.#hooks = hooks;
  }

  /** Events held, all operations together. */
  get size(): number {
    return this.#size;
  }

  /** Whether events of this operation are waiting: later events of it must queue behind them. */
  has(op: string): boolean {
    return this.#queues.has(op);
  }

  /**
   * Hold an event for writing later, behind the operation's earlier events.
   * A progress update merges into a held one not yet on its way.
   * @returns the entry that holds it, or undefined when there was no room (then `dropped` was called).
   */
  put(op: string, item: AppendItem, cid: string | undefined, now: number = Date.now()): OutboxEntry | undefined {
    if (this.#stopped) return undefined;
    const queue = this.#queues.get(op);
    const last = queue?.[queue.length - 1];
    if (last && !last.sending && mergeable(last.item, item)) {
      last.item = { ...item, fields: { ...last.item.fields, ...item.fields } };
      if (cid !== undefined) last.cid = cid;
      return last;
    }
    const entry: OutboxEntry = { op, item, cid, since: now, tries: 0, sending: false, listeners: new Set() };
    if (this.#size >= this.#settings.maxEvents && !this.#evict(isCoalescible(item))) {
      this.#hooks.dropped(
        entry,
        new BackendError(`The outbox holds ${this.#settings.maxEvents} events already (outboxMaxEvents)`),
      );
      return undefined;
    }
    if (queue) queue.push(entry);
    else this.#queues.set(op, [entry]);
    this.#size++;
    this.#start();
    return entry;
  }

  /** Try again soon instead of after the current backoff (the backend just answered a publish). */
  kick(): void {
    // At most one extra round per minDelayMs, however many publishes succeed meanwhile.
    if (Date.now() - this.#sleepingSince >= this.#settings.minDelayMs) this.#wake?.();
  }

  /** Resolves when nothing is held, or when `signal` aborts. */
  async idle(signal?: AbortSignal): Promise<void> {
    while (this.#size > 0 && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener("abort", done);
          resolve();
        };
        this.#idle.push(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Every event still held, oldest first per operation. */
  entries(): OutboxEntry[] {
    return [...this.#queues.values()].flat();
  }

  /**
   * Stop for good: give up every held event (its waiters hear `dropped` with `error`).
   * @returns the events given up.
   */
  stop(error: Error): OutboxEntry[] {
    this.#stopped = true;
    const left = this.entries();
    this.#queues.clear();
    this.#size = 0;
    for (const entry of left) this.#tell(entry, { kind: "dropped", error });
    this.#wake?.();
    this.#wakeIdle();
    return left;
  }

  /** Make room for one event: push out the oldest progress update not on its way (any for a non-progress event). */
  #evict(incomingIsProgress: boolean): boolean {
    if (incomingIsProgress) return false;
    for (const [op, queue] of this.#queues) {
      const i = queue.findIndex((e) => !e.sending && isCoalescible(e.item));
      const victim = queue[i];
      if (victim === undefined) continue;
      queue.splice(i, 1);
      if (queue.length === 0) this.#queues.delete(op);
      this.#size--;
      const error = new BackendError(
        `Pushed out of a full outbox (outboxMaxEvents ${this.#settings.maxEvents}) by a terminal or application event`,
      );
      this.#tell(victim, { kind: "dropped", error });
      this.#hooks.dropped(victim, error);
      return true;
    }
    return false;
  }

  #start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    void this.#run().finally(() => {
      this.#running = false;
      // Something arrived while the last round was finishing.
      if (this.#size > 0 && !this.#stopped) this.#start();
      else this.#wakeIdle();
    });
  }

  async #run(): Promise<void> {
    let attempt = 0;
    // The first round waits too: the event was refused just now.
    await this.#sleep(backoff(attempt++, this.#settings.minDelayMs, this.#settings.maxDelayMs));
    while (this.#size > 0 && !this.#stopped) {
      const heads: OutboxEntry[] = [];
      for (const queue of this.#queues.values()) if (queue[0]) heads.push(queue[0]);
      for (const head of heads) {
        head.sending = true;
        head.tries++;
      }
      const results = await this.#hooks.send(heads.map((h) => h.item));
      const failed: OutboxEntry[] = [];
      let lastError: Error | undefined;
      heads.forEach((head, i) => {
        head.sending = false;
        const result = results[i] ?? new Error("The backend gave no answer for this event");
        if (this.#stopped) return;
        if (result instanceof Error) {
          failed.push(head);
          lastError = result;
          // Everything queued behind the head waited through this attempt too.
          for (const entry of this.#queues.get(head.op) ?? []) this.#tell(entry, { kind: "failed", error: result });
          return;
        }
        this.#remove(head);
        this.#hooks.written(head, result);
        this.#tell(head, { kind: "written", result });
      });
      if (this.#size === 0) this.#wakeIdle();
      if (failed.length === 0 || failed.length < heads.length) {
        // Progress made: the backend answers; go on at once with what is left.
        attempt = 0;
        continue;
      }
      const delay = backoff(attempt++, this.#settings.minDelayMs, this.#settings.maxDelayMs);
      this.#hooks.retrying(failed, lastError ?? new Error("unknown"), delay);
      await this.#sleep(delay);
    }
  }

  #remove(entry: OutboxEntry): void {
    const queue = this.#queues.get(entry.op);
    if (!queue || queue[0] !== entry) return;
    queue.shift();
    if (queue.length === 0) this.#queues.delete(entry.op);
    this.#size--;
  }

  #tell(entry: OutboxEntry, outcome: OutboxOutcome): void {
    for (const listener of [...entry.listeners]) listener(outcome);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      this.#sleepingSince = Date.now();
    });
  }

  #wakeIdle(): void {
    for (const wake of this.#idle.splice(0)) wake();
  }
}
