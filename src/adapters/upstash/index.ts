/**
 * The Upstash adapter: progresscast over `@upstash/redis` (REST), for edge
 * functions, Deno Deploy and Cloudflare Workers. A publish is one HTTP
 * request (the append script by EVALSHA); a read is one pipeline request;
 * waits poll, since REST cannot block.
 *
 * `@upstash/redis` is an optional peer dependency, needed only by this entry.
 *
 * @example
 * ```ts
 * import { createProgress } from "progresscast";
 * import { upstash } from "progresscast/upstash";
 *
 * const progress = createProgress({
 *   port: upstash({ url: process.env.UPSTASH_REDIS_REST_URL, token: process.env.UPSTASH_REDIS_REST_TOKEN }),
 * });
 * ```
 *
 * @module
 */
import { Redis } from "@upstash/redis";
import { ProgressValidationError } from "../../core/errors.ts";
import type { UpstashClient } from "./client.ts";
import { createUpstashPort, type UpstashPollOptions, type UpstashPort } from "./port.ts";

export type { UpstashClient, UpstashGroupCreate, UpstashPipeline } from "./client.ts";
export { createUpstashPort, type UpstashPollOptions, type UpstashPort } from "./port.ts";

/** Retries of a failed HTTP request, as `@upstash/redis` takes them. */
export type UpstashRetry =
  | false
  | {
      /** Attempts after the first. */
      readonly retries?: number;
      /** Pause before retry number `retryCount` (0-based), in milliseconds. */
      readonly backoff?: (retryCount: number) => number;
    };

/** Connect with the REST URL and token of a database: the adapter builds the client. */
export interface UpstashUrlOptions extends UpstashPollOptions {
  /** REST URL of the database (`UPSTASH_REDIS_REST_URL`), e.g. `https://eu1-xyz.upstash.io`. */
  readonly url: string;
  /** REST token of the database (`UPSTASH_REDIS_REST_TOKEN`). */
  readonly token: string;
  /**
   * Retries of a request that failed to reach the server (not of Redis errors).
   * `false` fails at once.
   * @default the client's: 5 retries, exponential backoff from 50 ms
   */
  readonly retry?: UpstashRetry | undefined;
  readonly client?: undefined;
}

/** Use a client you built (see {@link UpstashClient}); `close()` leaves it alone. */
export interface UpstashClientOptions extends UpstashPollOptions {
  /** An `@upstash/redis` client, ideally created with `automaticDeserialization: false`. */
  readonly client: UpstashClient;
  readonly url?: undefined;
  readonly token?: undefined;
}

/** Options of {@link upstash}: a URL and token, or a client. */
export type UpstashOptions = UpstashUrlOptions | UpstashClientOptions;

/**
 * A `StreamPort` over Upstash Redis REST (name `upstash`, capabilities
 * `{ groups: true, blocking: false }`).
 *
 * @example
 * ```ts
 * const port = upstash({ url: "https://eu1-xyz.upstash.io", token: "AX..." });
 * ```
 *
 * @example
 * ```ts
 * import { Redis } from "@upstash/redis";
 * const port = upstash({ client: new Redis({ url, token, automaticDeserialization: false }), pollMaxMs: 2000 });
 * ```
 */
export function upstash(options: UpstashOptions): UpstashPort {
  const poll: UpstashPollOptions = { pollMinMs: options.pollMinMs, pollMaxMs: options.pollMaxMs };
  if (options.client !== undefined) return createUpstashPort(options.client, { ...poll, live: options.live });
  if (typeof options.url !== "string" || !/^https?:\/\//.test(options.url)) {
    throw new ProgressValidationError(
      "url",
      options.url,
      "expected the REST URL of an Upstash database (UPSTASH_REDIS_REST_URL, starting with https://), or pass { client }",
    );
  }
  if (typeof options.token !== "string" || options.token === "") {
    throw new ProgressValidationError(
      "token",
      options.token,
      "expected the REST token of the database (UPSTASH_REDIS_REST_TOKEN)",
    );
  }
  const client = new Redis({
    url: options.url,
    token: options.token,
    // Fields cross the port as strings: no JSON parsing of values.
    automaticDeserialization: false,
    ...(options.retry !== undefined ? { retry: options.retry } : {}),
  });
  // Live events through the same endpoint's streaming subscribe, unless turned off.
  const live = options.live === false ? false : { url: options.url, token: options.token, ...options.live };
  return createUpstashPort(client, { ...poll, live });
}
