/**
 * Folder `port/`: the `StreamPort` contract every backend implements (this
 * file), the key strategies (`keys.ts`), and the old-format writes an append
 * item may carry (`legacy-writes.ts`).
 *
 * The one seam between the core and a backend. It speaks in the core's terms,
 * not in raw Redis commands, so each adapter can use whatever is fastest for
 * its transport. Strings cross the port: encoding and decoding of the wire
 * format happen in the core, once.
 *
 * @module
 */

import { BackendError } from "../errors.ts";
import type { LegacyWrite } from "./legacy-writes.ts";

/** Flat string fields, as stored in a stream entry or a snapshot hash. */
export type Fields = Record<string, string>;

/** One stream entry: its id (the event id clients resume from) and its fields. */
export interface StreamEntry {
  readonly id: string;
  readonly fields: Fields;
}

/** Ask the backend to apply an ordering rule or waive it. */
export interface AppendFlags {
  /** Accept an update whose `progress` is below the snapshot's. */
  readonly allowBackwards: boolean;
  /** Accept an update after the operation reached a terminal status. */
  readonly allowAfterTerminal: boolean;
  /**
   * Start a new attempt: the ordering rules are waived, the stream's history is
   * trimmed, the snapshot is replaced (not merged), `seq` keeps increasing and
   * `attempt` goes up by one (1 for an operation not known yet).
   */
  readonly restart?: boolean | undefined;
}

/** One event to append for one operation. */
export interface AppendItem extends AppendFlags {
  /** Stream key of the operation. */
  readonly eventsKey: string;
  /** Snapshot hash key of the operation. */
  readonly stateKey: string;
  /** Stream key of the operation's scope, if the event also goes there. */
  readonly scopeKey?: string | undefined;
  /**
   * Encoded fields without `seq` (the backend assigns it). Must contain `status`;
   * `progress` when present is compared with the snapshot's. The backend
   * writes `attempt` last, whatever its place here.
   */
  readonly fields: Fields;
  /** Whether `fields.status` is terminal (completed, failed, cancelled). */
  readonly terminal: boolean;
  /**
   * Writes for old readers in legacy mode, made in the same atomic call and
   * only when the event is accepted. Backends without old readers (memory) ignore them.
   */
  readonly legacy?: readonly LegacyWrite[] | undefined;
}

/** Options shared by every item of one append call. */
export interface AppendOptions {
  /**
   * TTL of both keys (and the scope key). A write refreshes it when less than
   * half is left (and on terminal events and restarts): after any write both
   * keys live at least `ttlSeconds / 2` more.
   */
  readonly ttlSeconds: number;
  /** Approximate cap of each stream (`MAXLEN ~`). */
  readonly maxLen: number;
  /** TTL given to the stream once a terminal event is written. */
  readonly terminalTtlSeconds: number;
}

/** Outcome of one appended item. */
export type AppendResult =
  | {
      readonly ok: true;
      /** Stream entry id. */
      readonly id: string;
      /** Sequence number assigned by the backend. */
      readonly seq: number;
      /** Cancellation reason if the operation was marked cancelled, else null. */
      readonly cancelled: string | null;
      /** Attempt the event belongs to (1 unless the operation was restarted). */
      readonly attempt: number;
      /** Legacy mode with a publish: how many subscribers received the old message. */
      readonly subscribers?: number;
    }
  | {
      readonly ok: false;
      /** `backwards`: progress below the snapshot's; `terminal`: operation already ended. */
      readonly refused: "backwards" | "terminal";
      /** The snapshot's current sequence number. */
      readonly seq: number;
      readonly cancelled: string | null;
    };

/** What one call to {@link StreamPort.read} returns: snapshot plus a range of history. */
export interface OperationRead {
  /** The snapshot hash, or null when the operation is unknown or expired. */
  readonly state: Fields | null;
  /** Entries strictly after `after`, oldest first, at most `limit`. */
  readonly entries: readonly StreamEntry[];
  /** Id of the oldest entry still in the stream, or null when the stream is empty or gone. */
  readonly firstId: string | null;
}

/** A key to wait on, with the last id already seen. */
export interface Cursor {
  readonly key: string;
  readonly after: string;
}

/** New entries for one key. */
export interface KeyEntries {
  readonly key: string;
  readonly entries: readonly StreamEntry[];
}

/** Options of a consumer-group read. */
export interface GroupReadOptions {
  readonly key: string;
  readonly group: string;
  readonly consumer: string;
  readonly count: number;
  readonly blockMs: number;
  readonly signal?: AbortSignal | undefined;
}

/** Options of a claim of entries left pending by another consumer. */
export interface ClaimOptions {
  readonly key: string;
  readonly group: string;
  readonly consumer: string;
  readonly minIdleMs: number;
  readonly count: number;
}

/** Receives what the backend publishes on live channels (see {@link StreamPort.live}). */
export interface LiveHandler {
  /** A message on the live channel of stream `key`: the event's stream entry id and fields. */
  message(key: string, entry: StreamEntry): void;
  /**
   * The connection was lost and is back, every channel subscribed again:
   * messages may have been missed meanwhile; the core catches up from the streams.
   */
  resumed(): void;
  /** The live path failed for good (a backend that refuses subscriptions): the core reads the streams instead. */
  failed(error: Error): void;
}

/** The live channels a manager follows, on one subscriber connection (one per cluster master). */
export interface LiveSubscription {
  /**
   * Subscribe to the live channels of these stream keys. Resolves once the
   * backend confirmed, so a stream read started after it misses nothing.
   * Rejects when the backend cannot be reached (the core retries).
   */
  add(keys: readonly string[]): Promise<void>;
  /** Stop following these keys. */
  remove(keys: readonly string[]): Promise<void>;
  /** Close the subscriber connection. Idempotent. */
  close(): Promise<void>;
}

/** What a backend can do; the contract suite skips by these, never by adapter name. */
export interface PortCapabilities {
  /** Consumer groups (read/ack/claim). */
  readonly groups: boolean;
  /** Whether `wait` blocks server-side (true) or polls (false). */
  readonly blocking: boolean;
  /**
   * Keys are spread over Redis Cluster slots: an operation's keys must share a
   * hash tag (the default key strategy does; presets without one are refused),
   * and a scope's copy of an event is a second write. Legacy mode's
   * old-format writes are refused on such a port. @default false
   */
  readonly cluster?: boolean | undefined;
}

/**
 * A backend. Every method documents its round trips to the backend.
 * Methods reject with `BackendError` or `ConnectionClosedError` on failure;
 * the core decides what a failure means to the caller.
 */
export interface StreamPort {
  /** Short name for logs and metrics, e.g. `memory`, `node-redis`. */
  readonly name: string;
  readonly capabilities: PortCapabilities;

  /**
   * Append events for one or many operations and update each snapshot atomically:
   * assign `seq` and `attempt`, check the ordering rules, append to the stream
   * with the cap, merge into the snapshot (by the rules of `docs/wire-format.md`,
   * "Snapshot merge rules"), refresh TTLs when due, report a cancellation mark.
   * A value in the snapshot that is not a finite number counts as absent: one
   * operation's bad data never fails another item of the batch.
   * Round trips: one per cluster slot touched (one on a single node).
   * When some calls of a batch failed and others were written (one call per
   * cluster slot), rejects with {@link PartialAppendError}, which holds each
   * item's result or error.
   */
  append(items: readonly AppendItem[], options: AppendOptions): Promise<AppendResult[]>;

  /**
   * Read the snapshot and the history after `after` (exclusive; `"0"` or
   * undefined for all) in one round trip. Pass a null `stateKey` to read a
   * stream only (a scope).
   */
  read(
    stateKey: string | null,
    eventsKey: string,
    range: { readonly after?: string | undefined; readonly limit: number },
  ): Promise<OperationRead>;

  /**
   * Follow the live channels of streams: the backend publishes every event
   * it appends (and its scope copy) on a channel of the stream's key, and
   * hands each message to `handler`. Absent on backends that cannot
   * subscribe: the core then waits with {@link StreamPort.wait}.
   * Round trips: one subscribe per batch of keys; none per event.
   */
  live?(handler: LiveHandler): LiveSubscription;

  /** Read a snapshot hash. One round trip. */
  getState(stateKey: string): Promise<Fields | null>;

  /**
   * Wait for entries after the given ids on many keys at once. Resolves with
   * the keys that have new entries (possibly none after `blockMs`, or at once
   * when `signal` aborts). Round trips: one blocking read, or polls on REST.
   */
  wait(
    cursors: readonly Cursor[],
    options: { readonly blockMs: number; readonly count: number; readonly signal?: AbortSignal | undefined },
  ): Promise<KeyEntries[]>;

  /**
   * Mark an operation cancelled: sets the `cancel` field of its snapshot.
   * Returns false, writing nothing, when the operation is unknown or already ended. One round trip.
   */
  cancel(stateKey: string, reason: string, ttlSeconds: number): Promise<boolean>;

  /**
   * Remove an operation: its snapshot and its stream (copies in a scope's
   * stream stay). Returns false when neither existed. One round trip.
   */
  delete(stateKey: string, eventsKey: string): Promise<boolean>;

  /** Create the group if it does not exist (from the stream start). One round trip. */
  ensureGroup?(key: string, group: string): Promise<void>;
  /** Read new entries for a consumer of a group. One round trip (blocking). */
  groupRead?(options: GroupReadOptions): Promise<StreamEntry[]>;
  /** Acknowledge entries. One round trip. */
  ack?(key: string, group: string, ids: readonly string[]): Promise<number>;
  /** Claim entries idle for at least `minIdleMs` (XAUTOCLAIM). One round trip. */
  claim?(options: ClaimOptions): Promise<StreamEntry[]>;
  /** Number of entries pending in the group. One round trip. */
  pending?(key: string, group: string): Promise<number>;

  /** Release what the adapter opened (never a client the user passed in). Idempotent. */
  close(): Promise<void>;
}

/**
 * What {@link StreamPort.append} rejects with when only part of a batch was
 * written (a cluster adapter makes one script call per slot, and one slot's
 * call failed): per item, in batch order, its result or the error of the call
 * that carried it. Code that does not look at `results` sees the whole batch
 * failed, which is safe for reads and wrong only in writing the written items
 * again: the core resolves each item from `results`.
 */
export class PartialAppendError extends BackendError {
  override name = "PartialAppendError";
  readonly results: ReadonlyArray<AppendResult | Error>;

  constructor(results: ReadonlyArray<AppendResult | Error>, cause: Error) {
    const failed = results.filter((r) => r instanceof Error).length;
    super(`${failed} of ${results.length} events were not written: ${cause.message}`, { cause });
    this.results = results;
  }
}
