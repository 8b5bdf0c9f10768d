import type { Fields, StreamEntry, StreamPort } from "../../src/core/port.ts";

/** Read access to what a backend holds, independent of the adapter under test. */
export interface Inspector {
  hgetall(key: string): Promise<Fields | null>;
  xrange(key: string): Promise<StreamEntry[]>;
  /** Milliseconds to live; -1 without expiry; -2 missing. */
  pttl(key: string): Promise<number>;
  /** Keys starting with a prefix. */
  keys(prefix: string): Promise<string[]>;
}

/** What one adapter brings to the contract suite. */
export interface Harness {
  /** A new port on the same backend (each call a separate connection where that applies). */
  port(): StreamPort;
  inspect: Inspector;
  /** Write to the backend behind the library's back (someone else's bad data), when the backend allows it. */
  write?: {
    hset(key: string, fields: Fields): Promise<void>;
    /** Append an entry with an id chosen by the backend (`*`). */
    xadd(key: string, fields: Fields): Promise<void>;
  };
  /** Round trips to the backend so far, when the backend can count them. */
  roundTrips?: () => Promise<number>;
  /** Stop and restart the backend, when it can be. */
  down?: () => Promise<void>;
  up?: () => Promise<void>;
  /** Milliseconds after which a command to a stopped backend fails. */
  close(): Promise<void>;
}
