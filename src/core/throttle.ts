import type { ProgressUpdate } from "./wire.ts";
import { isTerminal } from "./wire.ts";

/** What the coalescer hands back for writing. */
export interface Held<O> {
  readonly op: string;
  readonly update: ProgressUpdate;
  readonly options: O;
}

interface Slot<O> {
  lastWriteAt: number;
  status: string | undefined;
  held: Held<O> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Coalesces, never drops: per operation, at most one write per `intervalMs`.
 * Inside the interval the newest update is merged over the held one and
 * written when the interval ends. Status changes, other event types and
 * terminal events are written at once, after any held update, so order is kept.
 */
export class Coalescer<O> {
  readonly #slots = new Map<string, Slot<O>>();
  readonly #intervalMs: number;
  readonly #write: (held: Held<O>) => void;
  readonly #now: () => number;
  /** Count of updates merged into a held one instead of written. */
  coalesced = 0;

  constructor(intervalMs: number, write: (held: Held<O>) => void, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#write = write;
    this.#now = now;
  }

  /** Offer an update; it is written now or held. Returns true when it was merged into a held one. */
  offer(op: string, update: ProgressUpdate, options: O): boolean {
    const now = this.#now();
    let slot = this.#slots.get(op);
    if (!slot) {
      slot = { lastWriteAt: Number.NEGATIVE_INFINITY, status: undefined, held: undefined, timer: undefined };
      this.#slots.set(op, slot);
    }
    const status = update.status ?? "running";
    const urgent =
      isTerminal(status) ||
      (slot.status !== undefined && status !== slot.status) ||
      (update.type !== undefined && update.type !== "progress");
    if (urgent) {
      this.#release(op, slot);
      this.#emit(op, slot, { op, update, options }, now);
      if (isTerminal(status)) this.#forget(op, slot);
      return false;
    }
    if (!slot.held && now - slot.lastWriteAt >= this.#intervalMs) {
      this.#emit(op, slot, { op, update, options }, now);
      return false;
    }
    const merged = slot.held !== undefined;
    slot.held =
      merged && slot.held ? { op, update: { ...slot.held.update, ...update }, options } : { op, update, options };
    if (merged) this.coalesced++;
    if (!slot.timer) {
      const wait = Math.max(0, slot.lastWriteAt + this.#intervalMs - now);
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        this.#release(op, slot);
      }, wait);
    }
    return merged;
  }

  /** Write everything held, now. */
  flush(): void {
    for (const [op, slot] of this.#slots) this.#release(op, slot);
  }

  /** Write what is held for one operation, now (before a publish that must come after it). */
  flushOp(op: string): void {
    const slot = this.#slots.get(op);
    if (slot) this.#release(op, slot);
  }

  /** Number of operations with an update held. */
  get pending(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.held) n++;
    return n;
  }

  #emit(op: string, slot: Slot<O>, held: Held<O>, now: number): void {
    slot.lastWriteAt = now;
    slot.status = held.update.status ?? "running";
    this.#write(held);
    if (!slot.timer) {
      // Forget idle operations one interval after their last write.
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        if (slot.held) this.#release(op, slot);
        else this.#forget(op, slot);
      }, this.#intervalMs);
    }
  }

  #release(op: string, slot: Slot<O>): void {
    if (slot.timer) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    const held = slot.held;
    if (!held) return;
    slot.held = undefined;
    this.#emit(op, slot, held, this.#now());
  }

  #forget(op: string, slot: Slot<O>): void {
    if (slot.timer) clearTimeout(slot.timer);
    this.#slots.delete(op);
  }
}
