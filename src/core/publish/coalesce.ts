import type { ProgressUpdate } from "../wire/index.ts";
import {
  CID_PATTERN,
  encodeUpdate,
  ID_PATTERN,
  isTerminal,
  MAX_MESSAGE_LENGTH,
  STATUSES,
  TYPE_PATTERN,
} from "../wire/index.ts";

const STATUS_SET: ReadonlySet<string> = new Set(STATUSES);

/**
 * Refuse a report's bad input at once, cheaply: the fields a progress loop
 * sends (`progress`, `current`, `total`, `message`, `status`, `type`, `cid`)
 * are checked here without building the wire fields; anything else, and any
 * doubt, goes through the full check of {@link encodeUpdate}, which names the
 * first bad field. Accepts exactly what `encodeUpdate` accepts.
 *
 * @throws {ProgressValidationError} naming the first bad field (from `encodeUpdate`).
 */
export function checkReport(op: string, update: ProgressUpdate): void {
  if (!quickCheck(op, update)) encodeUpdate(op, update);
}

/** True when the update is surely valid; false means "ask encodeUpdate". */
function quickCheck(op: string, update: ProgressUpdate): boolean {
  if (typeof op !== "string" || !ID_PATTERN.test(op)) return false;
  if (update === null || typeof update !== "object") return false;
  const { progress, current, total, message, status, type, cid, data, eta, ts } = update;
  if (data !== undefined || eta !== undefined || ts !== undefined) return false;
  if (progress !== undefined && !(typeof progress === "number" && progress >= 0 && progress <= 100)) return false;
  if (current !== undefined && !(Number.isSafeInteger(current) && current >= 0)) return false;
  if (total !== undefined && !(Number.isSafeInteger(total) && total >= 0)) return false;
  if (current !== undefined && total !== undefined && current > total) return false;
  if (message !== undefined && !(typeof message === "string" && message.length <= MAX_MESSAGE_LENGTH)) return false;
  if (status !== undefined && !(typeof status === "string" && STATUS_SET.has(status))) return false;
  if (type !== undefined && !(typeof type === "string" && TYPE_PATTERN.test(type))) return false;
  if (cid !== undefined && !(typeof cid === "string" && CID_PATTERN.test(cid))) return false;
  return true;
}

/** Whether `update` merged over `held` would have a `current` above its `total` (which no update may have). */
function passesTotal(held: Record<string, unknown>, update: ProgressUpdate): boolean {
  const current = update.current !== undefined ? update.current : held.current;
  const total = update.total !== undefined ? update.total : held.total;
  return typeof current === "number" && typeof total === "number" && current > total;
}

/** What the coalescer hands back for writing. */
export interface Held<O> {
  readonly op: string;
  readonly update: ProgressUpdate;
  readonly options: O;
}

/** A held update: its own merged copy of the updates offered, changed in place by later ones. */
interface Holding<O> {
  readonly op: string;
  readonly update: Record<string, unknown>;
  options: O;
}

interface Slot<O> {
  lastWriteAt: number;
  status: string | undefined;
  held: Holding<O> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * A copy of an update the coalescer may change: own enumerable fields, as
 * object spread copies them; no prototype, so no field name (not even
 * `__proto__`) can do more than set a field.
 */
function own(update: ProgressUpdate): Record<string, unknown> {
  return Object.assign(Object.create(null) as Record<string, unknown>, update);
}

const asHeld = <O>(holding: Holding<O>): Held<O> => ({
  op: holding.op,
  update: holding.update as ProgressUpdate,
  options: holding.options,
});

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
      this.#emit(op, slot, { op, update, options }, this.#now());
      if (isTerminal(status)) this.#forget(op, slot);
      return false;
    }
    const held = slot.held;
    if (held) {
      if (!passesTotal(held.update, update)) {
        // Newest over held, in place; a timer is always set while something is held.
        Object.assign(held.update, update);
        held.options = options;
        this.coalesced++;
        return true;
      }
      // Merged, `current` would pass `total` (each valid alone: the total changed): write what is held, hold this.
      this.#release(op, slot);
    }
    const now = this.#now();
    if (now - slot.lastWriteAt >= this.#intervalMs) {
      this.#emit(op, slot, { op, update, options }, now);
      return false;
    }
    slot.held = { op, update: own(update), options };
    if (!slot.timer) {
      const wait = Math.max(0, slot.lastWriteAt + this.#intervalMs - now);
      const waiting = slot;
      waiting.timer = setTimeout(() => {
        waiting.timer = undefined;
        this.#release(op, waiting);
      }, wait);
    }
    return false;
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
    this.#emit(op, slot, asHeld(held), this.#now());
  }

  #forget(op: string, slot: Slot<O>): void {
    if (slot.timer) clearTimeout(slot.timer);
    this.#slots.delete(op);
  }
}
