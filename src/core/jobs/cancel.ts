/**
 * Who listens for an operation's cancellation: tasks register here, and
 * every backend answer that carries a cancel mark is passed on to them.
 *
 * @module
 */

/** A listener for one operation's cancellation; gets the reason given to `cancel`. */
export type CancelListener = (reason: string) => void;

/** The cancel listeners of a manager, by operation. */
export class CancelListeners {
  readonly #byOp = new Map<string, Set<CancelListener>>();

  /** Listen for `op`'s cancellation; returns the function that stops listening. */
  on(op: string, listener: CancelListener): () => void {
    let set = this.#byOp.get(op);
    if (!set) {
      set = new Set();
      this.#byOp.set(op, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#byOp.delete(op);
    };
  }

  /** Tell `op`'s listeners it was asked to stop. */
  notify(op: string, reason: string): void {
    for (const listener of this.#byOp.get(op) ?? []) listener(reason);
  }
}
