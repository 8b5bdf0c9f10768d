import * as z from "zod/mini";
import type { ProgressError } from "./errors.ts";
import { ProgressValidationError } from "./errors.ts";
import { defaultKeys, type KeyStrategy } from "./keys.ts";
import { consoleLogger, type Logger, type Metrics, noMetrics } from "./observe.ts";
import type { StreamPort } from "./port.ts";

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
   * Time to live of an operation's keys, refreshed on every write.
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
   * Retries of terminal events after a backend failure, with full-jitter exponential backoff.
   * @default { attempts: 5, minDelayMs: 100, maxDelayMs: 2000 }
   */
  readonly retry?:
    | { readonly attempts?: number; readonly minDelayMs?: number; readonly maxDelayMs?: number }
    | undefined;
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
}

/** Options after parsing: every default applied. */
export interface ResolvedOptions {
  readonly port: StreamPort;
  readonly keys: KeyStrategy;
  readonly ttlSeconds: number;
  readonly terminalTtlSeconds: number;
  readonly maxLen: number;
  readonly intervalMs: number;
  readonly retry: { readonly attempts: number; readonly minDelayMs: number; readonly maxDelayMs: number };
  readonly maxBatch: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly onError: ProgressOptions["onError"];
  readonly blockMs: number;
  readonly cancelCheckMs: number;
  readonly estimate: boolean;
}

const positiveInt = z.int().check(z.positive());
const Schema = z.object({
  prefix: z.optional(z.string().check(z.regex(/^[A-Za-z0-9_.:-]{1,64}$/))),
  ttlSeconds: z.optional(positiveInt),
  terminalTtlSeconds: z.optional(positiveInt),
  maxLen: z.optional(positiveInt),
  throttle: z.optional(z.union([z.literal(false), z.object({ intervalMs: z.int().check(z.minimum(0)) })])),
  retry: z.optional(
    z.object({
      attempts: z.optional(z.int().check(z.minimum(0), z.maximum(20))),
      minDelayMs: z.optional(z.int().check(z.minimum(0))),
      maxDelayMs: z.optional(z.int().check(z.minimum(0))),
    }),
  ),
  maxBatch: z.optional(z.int().check(z.minimum(1), z.maximum(10_000))),
  blockMs: z.optional(z.int().check(z.minimum(10))),
  cancelCheckMs: z.optional(z.int().check(z.minimum(10))),
  estimate: z.optional(z.boolean()),
});

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
  const parsed = Schema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = (issue?.path ?? []).map(String);
    let value: unknown = options;
    for (const key of path) value = (value as Record<string, unknown> | undefined)?.[key];
    throw new ProgressValidationError(
      path.join(".") || "options",
      value,
      issue?.message ?? "invalid",
      parsed.error.issues.map((i) => ({ path: i.path, message: i.message })),
    );
  }
  const o = parsed.data;
  return {
    port: options.port,
    keys: options.keys ?? defaultKeys(o.prefix ?? "pc"),
    ttlSeconds: o.ttlSeconds ?? 86_400,
    terminalTtlSeconds: Math.min(o.terminalTtlSeconds ?? 3600, o.ttlSeconds ?? 86_400),
    maxLen: o.maxLen ?? 1000,
    intervalMs: o.throttle === false ? 0 : (o.throttle?.intervalMs ?? 250),
    retry: {
      attempts: o.retry?.attempts ?? 5,
      minDelayMs: o.retry?.minDelayMs ?? 100,
      maxDelayMs: o.retry?.maxDelayMs ?? 2000,
    },
    maxBatch: o.maxBatch ?? 200,
    logger: options.logger ?? consoleLogger,
    metrics: options.metrics ?? noMetrics,
    onError: options.onError,
    blockMs: o.blockMs ?? 5000,
    cancelCheckMs: o.cancelCheckMs ?? 2000,
    estimate: o.estimate ?? true,
  };
}
