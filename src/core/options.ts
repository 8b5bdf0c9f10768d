import { type LegacyLayout, type LegacyOptions, legacySeam } from "./compat/legacy.ts";
import type { ProgressError } from "./errors.ts";
import { ProgressValidationError } from "./errors.ts";
import { consoleLogger, type Logger, type Metrics, noMetrics } from "./observe.ts";
import { defaultKeys, type KeyStrategy } from "./port/keys.ts";
import type { LegacyWrite } from "./port/legacy-writes.ts";
import type { Fields, StreamPort } from "./port/port.ts";

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** The backend. `createProgress` from `progresscast` defaults to the memory backend. */
  readonly port: StreamPort;
  /**
   * Key prefix of the default key strategy.
   * @default "pc"
   */
  readonly prefix?: string | undefined;
  /**
   * Where keys live; overrides `prefix`. See `keyPresets` for older layouts.
   * @default defaultKeys(prefix)
   */
  readonly keys?: KeyStrategy | undefined;
  /**
   * Time to live of an operation's keys. Writes refresh it when less than half
   * is left (and at the end, and on a restart): after any write the keys live
   * at least `ttlSeconds / 2` more, and an operation left alone expires at most
   * `ttlSeconds` after its last write.
   * @default 86400
   */
  readonly ttlSeconds?: number | undefined;
  /**
   * Time to live of an operation's stream once a terminal event is written;
   * its snapshot keeps `ttlSeconds`, so late joiners still see the end.
   * @default 3600
   */
  readonly terminalTtlSeconds?: number | undefined;
  /**
   * Approximate cap of each operation's stream (`MAXLEN ~`).
   * @default 1000
   */
  readonly maxLen?: number | undefined;
  /**
   * Coalescing of `report`: at most one write per operation per interval, the
   * newest update held and written when the interval ends. `false` writes every report.
   * @default { intervalMs: 250 }
   */
  readonly throttle?: { readonly intervalMs: number } | false | undefined;
  /**
   * What happens to an event the backend refuses (Redis restarting, unreachable).
   * It is held in the outbox (see `outboxMaxEvents`) and retried with full-jitter
   * exponential backoff between `minDelayMs` and `maxDelayMs` until the backend
   * answers, for as long as the process lives (until `close()`).
   *
   * A terminal `publish` (`completed`, `failed`, `cancelled`; `task.complete()`,
   * `task.fail()`) waits for its event to be written for up to `deadlineMs`
   * (or `attempts` retries, when given, whichever ends first) and then resolves
   * `published`; past that it resolves `failed` with `queued: true` and the
   * event is still written when the backend returns. Other publishes and every
   * `report` resolve (or return) at once: `failed` with `queued: true`, the
   * newest update per operation written when the backend returns.
   *
   * @default { deadlineMs: 60000, minDelayMs: 100, maxDelayMs: 2000 }
   * @example
   * ```ts
   * createProgress({ port, retry: { deadlineMs: 10_000, maxDelayMs: 500 } });
   * ```
   */
  readonly retry?:
    | {
        /** Longest a terminal publish waits for its event to be written. @default 60000 */
        readonly deadlineMs?: number | undefined;
        /** Retries a terminal publish waits for (at most 20), when given; else only `deadlineMs` bounds it. @default undefined */
        readonly attempts?: number | undefined;
        /** Base of the backoff. @default 100 */
        readonly minDelayMs?: number | undefined;
        /** Longest wait between two retries. @default 2000 */
        readonly maxDelayMs?: number | undefined;
      }
    | undefined;
  /**
   * Most events held in memory, all operations together, while the backend
   * is unreachable. Progress updates take one slot per operation (the newest
   * wins); terminal and application events one each. When full, a held
   * progress update is pushed out to make room for a terminal or application
   * event; an event finding no room is dropped, logged at error and passed to `onError`.
   * `0` holds nothing: a refused event is only reported.
   * @default 10000
   */
  readonly outboxMaxEvents?: number | undefined;
  /**
   * Longest `close()` (and, by default, `flush()`) waits for held and
   * in-flight events to be written. What is still unwritten then is logged at
   * error, passed to `onError`, and listed in what `close()` resolves with.
   * @default 10000
   */
  readonly closeTimeoutMs?: number | undefined;
  /**
   * Most events sent to the backend in one call when many are pending at once.
   * @default 200
   */
  readonly maxBatch?: number | undefined;
  /**
   * Structured logger for failures (fields: op, cid, error).
   * @default warnings and errors to console
   */
  readonly logger?: Logger | undefined;
  /** Metrics sink. @default none */
  readonly metrics?: Metrics | undefined;
  /** Called with every backend failure of a publish or report. */
  readonly onError?:
    | ((error: ProgressError, context: { readonly op: string; readonly cid?: string }) => void)
    | undefined;
  /**
   * How long a blocking read waits before it is renewed, on backends that block.
   * @default 5000
   */
  readonly blockMs?: number | undefined;
  /**
   * Deliver live events over the backend's live channels (the append script
   * publishes each event it writes; Redis pub/sub, Upstash's streaming
   * subscribe) and read streams only to catch up. With `false`, or on a
   * backend that cannot subscribe, or in legacy mode (old writers do not
   * publish), watchers are fed by one blocking read (or poll) over every
   * watched stream.
   * @default true
   */
  readonly liveChannels?: boolean | undefined;
  /**
   * Consecutive failed reads of watched streams after which every affected
   * watch ends: `watch()` throws a `BackendError`, an SSE stream sends
   * `event: error` and closes (the client reconnects), a WebSocket gets an
   * `error` message for that watch. Each failure is logged at `error` level and
   * counted (`read_failures`); reads are retried with jittered backoff meanwhile.
   * @default 10
   */
  readonly maxReadFailures?: number | undefined;
  /**
   * How often a task that has not published checks whether it was cancelled.
   * @default 2000
   */
  readonly cancelCheckMs?: number | undefined;
  /**
   * Add an estimate of seconds remaining (`eta`) to events with progress, from
   * the progress rate over a sliding window.
   * @default true
   */
  readonly estimate?: boolean | undefined;
  /**
   * Legacy mode while moving over from an older layout: every event is also
   * written the way that layout's readers expect it (`chunking`,
   * `importProgress`, `operations`), in the same atomic call. Native keys that
   * would collide with the old ones move to the default strategy's names.
   * Old entries already in a stream are read with the configured status
   * names; `write: false` only reads them (a reader of the old streams).
   * Redis backends only (the memory backend ignores it). See docs/migrating.md.
   * @default none
   * @example
   * ```ts
   * createProgress({ port, legacy: { layout: "importProgress", statuses: { completed: "done" } } });
   * ```
   */
  readonly legacy?: LegacyLayout | LegacyOptions | undefined;
}

/** Options after parsing: every default applied. */
export interface ResolvedOptions {
  readonly port: StreamPort;
  readonly keys: KeyStrategy;
  readonly ttlSeconds: number;
  readonly terminalTtlSeconds: number;
  readonly maxLen: number;
  readonly intervalMs: number;
  readonly retry: {
    readonly deadlineMs: number;
    readonly attempts: number | undefined;
    readonly minDelayMs: number;
    readonly maxDelayMs: number;
  };
  readonly outboxMaxEvents: number;
  readonly closeTimeoutMs: number;
  readonly maxBatch: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly onError: ProgressOptions["onError"];
  readonly blockMs: number;
  readonly liveChannels: boolean;
  readonly maxReadFailures: number;
  readonly cancelCheckMs: number;
  readonly estimate: boolean;
  /** Legacy mode's writes for old readers of an event, when it writes them. */
  readonly legacyWrites: ((fields: Fields, stateKey: string) => LegacyWrite[]) | undefined;
}

type Rule = readonly [path: string, check: (v: unknown) => boolean, expected: string];
const int =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (v: unknown) =>
    Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const RULES: readonly Rule[] = [
  ["prefix", (v) => typeof v === "string" && /^[A-Za-z0-9_.:-]{1,64}$/.test(v), "1 to 64 of A-Z a-z 0-9 _ . : -"],
  ["ttlSeconds", int(1), "a positive integer"],
  ["terminalTtlSeconds", int(1), "a positive integer"],
  ["maxLen", int(1), "a positive integer"],
  [
    "throttle",
    (v) => v === false || (v !== null && typeof v === "object" && int(0)((v as { intervalMs?: unknown }).intervalMs)),
    "false or { intervalMs: a non-negative integer }",
  ],
  ["retry", (v) => v !== null && typeof v === "object", "an object"],
  ["retry.deadlineMs", int(0), "a non-negative integer"],
  ["retry.attempts", int(0, 20), "an integer from 0 to 20"],
  ["retry.minDelayMs", int(0), "a non-negative integer"],
  ["retry.maxDelayMs", int(0), "a non-negative integer"],
  ["outboxMaxEvents", int(0, 10_000_000), "an integer from 0 to 10000000"],
  ["closeTimeoutMs", int(0), "a non-negative integer"],
  ["maxBatch", int(1, 10_000), "an integer from 1 to 10000"],
  ["blockMs", int(10), "an integer of at least 10"],
  ["liveChannels", (v) => typeof v === "boolean", "true or false"],
  ["maxReadFailures", int(1, 1000), "an integer from 1 to 1000"],
  ["cancelCheckMs", int(10), "an integer of at least 10"],
  ["estimate", (v) => typeof v === "boolean", "true or false"],
];

/**
 * Parse options once into their resolved form.
 * @throws {ProgressValidationError} naming the bad option.
 */
export function resolveOptions(options: ProgressOptions): ResolvedOptions {
  if (!options || typeof options !== "object" || !options.port || typeof options.port.append !== "function") {
    throw new ProgressValidationError(
      "port",
      options?.port,
      "must be a StreamPort, e.g. memory() or nodeRedis({ url })",
    );
  }
  for (const [path, check, expected] of RULES) {
    let value: unknown = options;
    for (const key of path.split(".")) value = (value as Record<string, unknown> | undefined)?.[key];
    if (value !== undefined && !check(value)) throw new ProgressValidationError(path, value, `must be ${expected}`);
  }
  const o = options;
  const legacy =
    o.legacy === undefined ? undefined : legacySeam(o.legacy, options.port, options.keys, o.prefix ?? "pc");
  return {
    port: legacy?.port ?? options.port,
    keys: legacy?.keys ?? options.keys ?? defaultKeys(o.prefix ?? "pc"),
    ttlSeconds: o.ttlSeconds ?? 86_400,
    terminalTtlSeconds: Math.min(o.terminalTtlSeconds ?? 3600, o.ttlSeconds ?? 86_400),
    maxLen: o.maxLen ?? 1000,
    intervalMs: o.throttle === false ? 0 : (o.throttle?.intervalMs ?? 250),
    retry: {
      deadlineMs: o.retry?.deadlineMs ?? 60_000,
      attempts: o.retry?.attempts,
      minDelayMs: o.retry?.minDelayMs ?? 100,
      maxDelayMs: Math.max(o.retry?.maxDelayMs ?? 2000, o.retry?.minDelayMs ?? 0),
    },
    outboxMaxEvents: o.outboxMaxEvents ?? 10_000,
    closeTimeoutMs: o.closeTimeoutMs ?? 10_000,
    maxBatch: o.maxBatch ?? 200,
    logger: options.logger ?? consoleLogger,
    metrics: options.metrics ?? noMetrics,
    onError: options.onError,
    blockMs: o.blockMs ?? 5000,
    liveChannels: (o.liveChannels ?? true) && legacy === undefined,
    maxReadFailures: o.maxReadFailures ?? 10,
    cancelCheckMs: o.cancelCheckMs ?? 2000,
    estimate: o.estimate ?? true,
    legacyWrites: legacy?.writes,
  };
}
