/**
 * The slice of `@upstash/redis` the adapter calls, typed structurally (as
 * `@upstash/ratelimit` does) so these types never require the package.
 * A `Redis` instance from `@upstash/redis` satisfies it.
 *
 * @module
 */

/** Options of a `XGROUP CREATE`, in the shape `@upstash/redis` takes them. */
export interface UpstashGroupCreate {
  readonly type: "CREATE";
  readonly group: string;
  readonly id: string;
  readonly options?: { readonly MKSTREAM?: boolean };
}

/**
 * A pipeline of `@upstash/redis`: commands queued locally, sent in one
 * request to `/pipeline` by `exec()`.
 */
export interface UpstashPipeline {
  hgetall(key: string): unknown;
  xrange(key: string, start: string, end: string): unknown;
  xrange(key: string, start: string, end: string, count: number): unknown;
  xrevrange(key: string, end: string, start: string, count: number): unknown;
  /**
   * `TYPE key`: names the key at fault when a read of many streams answers
   * `WRONGTYPE`. Without it, the reader finds that key by reading each alone.
   */
  type?(key: string): unknown;
  exec(): Promise<unknown[]>;
}

/**
 * What the adapter needs of an `@upstash/redis` client. Create it with
 * `automaticDeserialization: false`: otherwise the client JSON-parses every
 * field and the adapter can only turn the values back into strings
 * approximately (`'{"a": 1}'` would come back as `'{"a":1}'`).
 *
 * @example
 * ```ts
 * import { Redis } from "@upstash/redis";
 * import { upstash } from "progresscast/upstash";
 *
 * const client: UpstashClient = new Redis({ url, token, automaticDeserialization: false });
 * const port = upstash({ client });
 * ```
 */
export interface UpstashClient {
  evalsha(sha1: string, keys: string[], args: string[]): Promise<unknown>;
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;
  pipeline(): UpstashPipeline;
  xread(key: string[], id: string[], options: { count: number }): Promise<unknown>;
  xreadgroup(group: string, consumer: string, key: string, id: string, options: { count: number }): Promise<unknown>;
  xack(key: string, group: string, id: string[]): Promise<unknown>;
  xautoclaim(
    key: string,
    group: string,
    consumer: string,
    minIdleTime: number,
    start: string,
    options: { count: number },
  ): Promise<unknown>;
  xgroup(key: string, options: UpstashGroupCreate): Promise<unknown>;
  xinfo(key: string, options: { type: "GROUPS" }): Promise<unknown>;
}
