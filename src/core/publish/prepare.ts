/**
 * Preparing an event for the port: its wire fields (encoded and checked),
 * its estimate of time remaining, its keys, and, in legacy mode, the writes
 * for old readers (through the seam `ResolvedOptions.legacyWrites`).
 *
 * @module
 */

import type { ResolvedOptions } from "../options.ts";
import type { AppendItem } from "../port/port.ts";
import { assertId, encodeUpdate, isTerminal, MAX_ETA_SECONDS, type ProgressUpdate } from "../wire/index.ts";
import { Estimator } from "./estimate.ts";

/** Options of one publish. */
export interface PublishOptions {
  /** Also append the event to this scope's stream (a user, a tenant), so it can be followed or consumed as a whole. */
  readonly scope?: string | undefined;
  /** Accept an update that moves progress backwards. @default false */
  readonly allowBackwards?: boolean | undefined;
  /** Accept an update after the operation ended. @default false */
  readonly allowAfterTerminal?: boolean | undefined;
  /**
   * Start a new attempt of the operation (a retried job under the same id),
   * whether or not the previous one ended: the event's `attempt` is one more
   * than the previous (1 for an operation not known yet), `seq` keeps
   * increasing, the snapshot is replaced by this event (not merged with the
   * previous attempt), the stream's history of the previous attempt is
   * dropped (a client resuming from an id of it gets a `reset`), and the
   * ordering rules are waived for this event. A cancellation asked of an
   * attempt that did not end carries over; one of an ended attempt does not.
   * @default false
   */
  readonly restart?: boolean | undefined;
}

/** What preparing needs from the manager's options (`legacyWrites`: the compat seam). */
export type PrepareOptions = Pick<ResolvedOptions, "keys" | "estimate" | "legacyWrites">;

/** Turns updates into append items; keeps the per-operation progress rates for the estimate. */
export class Preparer {
  readonly #o: PrepareOptions;
  readonly #estimator = new Estimator();

  constructor(options: PrepareOptions) {
    this.#o = options;
  }

  /**
   * The append item of one update.
   * @throws {ProgressValidationError} for a bad id, update or scope.
   */
  prepare(op: string, update: ProgressUpdate, options: PublishOptions): AppendItem {
    const now = new Date();
    const fields = encodeUpdate(op, update, now);
    if (options.scope !== undefined) assertId(options.scope, "scope");
    const terminal = isTerminal(fields.status);
    // A new attempt estimates from its own rate only.
    if (options.restart === true) this.#estimator.forget(op);
    if (this.#o.estimate && fields.eta === undefined && fields.progress !== undefined && !terminal) {
      const eta = this.#estimator.sample(
        op,
        Number(fields.progress),
        update.ts === undefined ? now.getTime() : update.ts.getTime(),
      );
      if (eta !== undefined && eta <= MAX_ETA_SECONDS) fields.eta = String(eta);
    }
    if (terminal) {
      this.#estimator.forget(op);
      fields.eta ??= "0";
    }
    const keys = this.#o.keys;
    const stateKey = keys.state(op);
    return {
      eventsKey: keys.events(op),
      stateKey,
      legacy: this.#o.legacyWrites?.(fields, stateKey),
      scopeKey: options.scope === undefined ? undefined : keys.scope(options.scope),
      fields,
      terminal,
      allowBackwards: options.allowBackwards ?? false,
      allowAfterTerminal: options.allowAfterTerminal ?? false,
      restart: options.restart ?? false,
    };
  }

  /** Forget an operation's progress rate (it was deleted). */
  forget(op: string): void {
    this.#estimator.forget(op);
  }
}
