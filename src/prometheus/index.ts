/**
 * Prometheus metrics for progresscast, backed by `prom-client` (an optional
 * peer dependency: only this entry imports it). {@link prometheusMetrics}
 * returns a `Metrics` sink to hand to the manager; {@link metricsHandler}
 * serves a registry's text exposition from any web-standard server.
 *
 * Exposed metrics (with the default prefix `progresscast_`):
 *
 * | Metric | Type | Labels |
 * | --- | --- | --- |
 * | `progresscast_events_published_total` | counter | |
 * | `progresscast_events_coalesced_total` | counter | `where`: `report` (throttled reports), `delivery` (slow watcher) |
 * | `progresscast_events_refused_total` | counter | `reason`: `backwards`, `terminal` |
 * | `progresscast_publish_failures_total` | counter | |
 * | `progresscast_publish_retries_total` | counter | |
 * | `progresscast_publish_latency_seconds` | histogram | |
 * | `progresscast_watchers_active` | gauge | |
 * | `progresscast_events_delivered_total` | counter | |
 * | `progresscast_delivery_lag_seconds` | histogram | |
 * | `progresscast_resets_total` | counter | |
 * | `progresscast_read_failures_total` | counter | |
 * | `progresscast_connection_errors_total` | counter | `transport` |
 * | `progresscast_group_pending` | gauge | `group` |
 * | `progresscast_group_delivered_total` | counter | `group` |
 * | `progresscast_group_claimed_total` | counter | `group` |
 *
 * Durations are reported in seconds, the Prometheus base unit; the core
 * measures milliseconds and this sink converts.
 *
 * @example
 * ```ts
 * import { Registry } from "prom-client";
 * import { createProgress } from "progresscast";
 * import { metricsHandler, prometheusMetrics } from "progresscast/prometheus";
 *
 * const registry = new Registry();
 * const progress = createProgress({ metrics: prometheusMetrics({ registry }) });
 * app.get("/metrics", (c) => metricsHandler(registry)(c.req.raw));
 * ```
 *
 * @module
 */
import {
  Counter,
  register as defaultRegistry,
  Gauge,
  Histogram,
  type Registry,
  type RegistryContentType,
} from "prom-client";
import { ProgressValidationError } from "../core/errors.ts";
import type { MetricLabels, MetricName, Metrics } from "../core/observe.ts";

/** Options of {@link prometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /**
   * Registry the metrics are registered in. Two sinks on one registry (two
   * managers in one process) share the same metrics; the `watchers_active`
   * gauge then shows whichever manager set it last, so give each manager its
   * own registry (and merge with `Registry.merge`) when that matters.
   * @default prom-client's global `register`
   * @example
   * ```ts
   * prometheusMetrics({ registry: new Registry() });
   * ```
   */
  readonly registry?: Registry<RegistryContentType> | undefined;
  /**
   * Prepended to every metric name. Letters, digits, `_` and `:`, not starting with a digit.
   * @default "progresscast_"
   * @example
   * ```ts
   * prometheusMetrics({ prefix: "jobs_progress_" }); // jobs_progress_events_published_total
   * ```
   */
  readonly prefix?: string | undefined;
  /**
   * Histogram bucket upper bounds, in milliseconds (converted to seconds in
   * the exposition), strictly increasing.
   * @default { latencyMs: [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000], lagMs: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000] }
   * @example
   * ```ts
   * prometheusMetrics({ buckets: { latencyMs: [1, 5, 20, 100, 500] } });
   * ```
   */
  readonly buckets?:
    | {
        /** Buckets of `publish_latency_seconds`: one publish, from the call to the backend's answer, retries included. */
        readonly latencyMs?: readonly number[] | undefined;
        /** Buckets of `delivery_lag_seconds`: from an event's timestamp to its delivery to a live watcher. */
        readonly lagMs?: readonly number[] | undefined;
      }
    | undefined;
}

/** A `Metrics` sink writing to prom-client, with the registry it writes to. */
export interface PrometheusMetrics extends Metrics {
  /**
   * The registry holding the metrics: serve `await registry.metrics()` with
   * `registry.contentType`, or pass it to {@link metricsHandler}.
   * @example
   * ```ts
   * const text = await sink.registry.metrics();
   * ```
   */
  readonly registry: Registry<RegistryContentType>;
}

/** Default buckets, in milliseconds: a publish is one round trip, retries can take seconds. */
const LATENCY_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/** Default buckets, in milliseconds: a live event reaches a watcher within a blocking read, a busy backend adds seconds. */
const LAG_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];

type Spec =
  | {
      readonly kind: "counter" | "gauge";
      readonly name: string;
      readonly help: string;
      readonly labels: Readonly<Record<string, readonly string[]>>;
    }
  | {
      readonly kind: "histogram";
      readonly name: string;
      readonly help: string;
      readonly labels: Readonly<Record<string, readonly string[]>>;
      readonly buckets: "latencyMs" | "lagMs";
    };

/**
 * Every MetricName mapped (a name added to the core fails to compile here
 * until it is given a Prometheus shape). `labels` lists each label a metric
 * may carry with its known values: the first is the value used when the core
 * leaves the label out, and all of them are exported at zero from the start
 * so `rate()` and alerts see the series before the first event.
 */
const SPECS: { readonly [N in MetricName]: Spec } = {
  events_published: {
    kind: "counter",
    name: "events_published_total",
    help: "Progress events appended to the backend.",
    labels: {},
  },
  events_coalesced: {
    kind: "counter",
    name: "events_coalesced_total",
    help: "Progress events dropped in favour of a newer one: where=report by the report() throttle, where=delivery for a watcher that fell behind.",
    // report() coalescing is reported without a label: it is the "report" case.
    labels: { where: ["report", "delivery"] },
  },
  events_refused: {
    kind: "counter",
    name: "events_refused_total",
    help: "Progress events refused by the ordering rules: reason=backwards (progress went down) or reason=terminal (the operation had ended).",
    labels: { reason: ["backwards", "terminal"] },
  },
  publish_failures: {
    kind: "counter",
    name: "publish_failures_total",
    help: "Publishes that failed for good (bad input, backend fault after retries, closed manager).",
    labels: {},
  },
  publish_retries: {
    kind: "counter",
    name: "publish_retries_total",
    help: "Retries of terminal events after a backend fault.",
    labels: {},
  },
  publish_latency_ms: {
    kind: "histogram",
    name: "publish_latency_seconds",
    help: "Time from a publish to the backend's answer, retries included, in seconds.",
    labels: {},
    buckets: "latencyMs",
  },
  watchers_active: {
    kind: "gauge",
    name: "watchers_active",
    help: "Live watchers (SSE, WebSocket, watch()) following a stream.",
    labels: {},
  },
  events_delivered: {
    kind: "counter",
    name: "events_delivered_total",
    help: "Live events delivered to watchers (history replayed on connect not included).",
    labels: {},
  },
  delivery_lag_ms: {
    kind: "histogram",
    name: "delivery_lag_seconds",
    help: "Time from an event's timestamp to its fan-out to live watchers, in seconds.",
    labels: {},
    buckets: "lagMs",
  },
  resets: {
    kind: "counter",
    name: "resets_total",
    help: "Watchers that resumed after history they asked for was trimmed, and got a reset snapshot.",
    labels: {},
  },
  read_failures: {
    kind: "counter",
    name: "read_failures_total",
    help: "Failed reads of watched streams; after maxReadFailures in a row the watches end with an error.",
    labels: {},
  },
  connection_errors: {
    kind: "counter",
    name: "connection_errors_total",
    help: "Client connections ended by a protocol or transport error (a malformed WebSocket frame, a message over the limit).",
    labels: { transport: ["websocket", "sse"] },
  },
  group_pending: {
    kind: "gauge",
    name: "group_pending",
    help: "Deliveries read by a consumer group and not yet acknowledged.",
    labels: { group: [] },
  },
  group_delivered: {
    kind: "counter",
    name: "group_delivered_total",
    help: "New events delivered to a consumer group.",
    labels: { group: [] },
  },
  group_claimed: {
    kind: "counter",
    name: "group_claimed_total",
    help: "Events claimed by a consumer from another that left them unacknowledged.",
    labels: { group: [] },
  },
};

type Recorder =
  | { readonly kind: "counter"; readonly metric: Counter; readonly spec: Spec }
  | { readonly kind: "gauge"; readonly metric: Gauge; readonly spec: Spec }
  | { readonly kind: "histogram"; readonly metric: Histogram; readonly spec: Spec };

/** Metrics this module created, per registry: a second sink on the same registry reuses them instead of failing. */
const created = new WeakMap<Registry<RegistryContentType>, Map<string, Recorder>>();

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function checkBuckets(field: string, value: readonly number[] | undefined, fallback: readonly number[]): number[] {
  if (value === undefined) return [...fallback];
  const ok =
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((b, i) => typeof b === "number" && Number.isFinite(b) && b > 0 && (i === 0 || b > (value[i - 1] ?? 0)));
  if (!ok) {
    throw new ProgressValidationError(
      field,
      value,
      "must be a non-empty array of strictly increasing positive numbers",
    );
  }
  return [...value];
}

/**
 * The labels to record: declared ones only (anything else is dropped, so a
 * label added in the core never breaks a scrape), with the default value for
 * a declared label the core left out.
 */
function pick(spec: Spec, labels: MetricLabels | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(spec.labels)) {
    const value = labels?.[name] ?? values[0];
    if (value !== undefined) out[name] = String(value);
  }
  return out;
}

/**
 * A `Metrics` sink for prom-client: every progresscast metric as a Prometheus
 * counter (`_total`), histogram (durations in seconds) or gauge, registered
 * in `registry`. Recording never throws, so metrics can never break a publish.
 *
 * @throws {ProgressValidationError} for a bad prefix or buckets, or when the
 * registry already holds a metric of the same name that this module did not create.
 * @example
 * ```ts
 * import { Registry } from "prom-client";
 * import { createProgress } from "progresscast";
 * import { prometheusMetrics } from "progresscast/prometheus";
 *
 * const metrics = prometheusMetrics({ registry: new Registry() });
 * const progress = createProgress({ metrics });
 * // later: res.setHeader("content-type", metrics.registry.contentType); res.end(await metrics.registry.metrics());
 * ```
 */
export function prometheusMetrics(options: PrometheusMetricsOptions = {}): PrometheusMetrics {
  const registry = options.registry ?? defaultRegistry;
  const prefix = options.prefix ?? "progresscast_";
  if (typeof prefix !== "string" || (prefix !== "" && !NAME.test(prefix))) {
    throw new ProgressValidationError(
      "prefix",
      prefix,
      "must be letters, digits, '_' or ':' and not start with a digit (a Prometheus metric name prefix)",
    );
  }
  const buckets = {
    latencyMs: checkBuckets("buckets.latencyMs", options.buckets?.latencyMs, LATENCY_MS),
    lagMs: checkBuckets("buckets.lagMs", options.buckets?.lagMs, LAG_MS),
  };

  let mine = created.get(registry);
  if (mine === undefined) {
    mine = new Map();
    created.set(registry, mine);
  }
  const recorders = new Map<MetricName, Recorder>();
  for (const [key, spec] of Object.entries(SPECS) as [MetricName, Spec][]) {
    const name = prefix + spec.name;
    const existing = registry.getSingleMetric(name);
    const previous = mine.get(name);
    if (existing !== undefined) {
      if (previous === undefined || previous.metric !== existing || previous.kind !== spec.kind) {
        throw new ProgressValidationError(
          "prefix",
          prefix,
          `the registry already holds a metric named "${name}" that progresscast did not create; pass another prefix or registry`,
        );
      }
      recorders.set(key, previous);
      continue;
    }
    const labelNames = Object.keys(spec.labels);
    const config = { name, help: spec.help, labelNames, registers: [registry] };
    let recorder: Recorder;
    if (spec.kind === "histogram") {
      const metric = new Histogram({ ...config, buckets: buckets[spec.buckets].map((ms) => ms / 1000) });
      recorder = { kind: "histogram", metric, spec };
    } else if (spec.kind === "gauge") {
      recorder = { kind: "gauge", metric: new Gauge(config), spec };
    } else {
      const metric = new Counter(config);
      // Known label values start at zero so the series exist before the first event.
      const [label, values] = Object.entries(spec.labels)[0] ?? [];
      if (label === undefined) metric.inc(0);
      else for (const value of values ?? []) metric.inc({ [label]: value }, 0);
      recorder = { kind: "counter", metric, spec };
    }
    mine.set(name, recorder);
    recorders.set(key, recorder);
  }

  // Recording must never throw into the core: a wrong value or a prom-client error is dropped.
  const record = (kind: Recorder["kind"], name: MetricName, value: number, labels: MetricLabels | undefined): void => {
    const r = recorders.get(name);
    if (r === undefined || r.kind !== kind || !Number.isFinite(value)) return;
    try {
      const l = pick(r.spec, labels);
      if (r.kind === "counter") {
        if (value >= 0) r.metric.inc(l, value);
      } else if (r.kind === "gauge") {
        r.metric.set(l, value);
      } else {
        r.metric.observe(l, value / 1000);
      }
    } catch {
      // A metrics fault is not worth failing a publish or a delivery.
    }
  };

  return {
    registry,
    increment(name, value = 1, labels) {
      record("counter", name, value, labels);
    },
    observe(name, value, labels) {
      record("histogram", name, value, labels);
    },
    gauge(name, value, labels) {
      record("gauge", name, value, labels);
    },
  };
}

/**
 * A web-standard handler serving a registry in the Prometheus text format:
 * `GET` and `HEAD` only (405 otherwise), `Cache-Control: no-store`, 500 with
 * the reason when a collector fails. Works in Hono, Next.js route handlers,
 * `Deno.serve` and Node through `progresscast/node`.
 *
 * @example
 * ```ts
 * import { metricsHandler, prometheusMetrics } from "progresscast/prometheus";
 * const metrics = prometheusMetrics({ registry: new Registry() });
 * const serveMetrics = metricsHandler(metrics.registry);
 * app.get("/metrics", (c) => serveMetrics(c.req.raw));
 * ```
 */
export function metricsHandler(
  registry: Pick<Registry<RegistryContentType>, "metrics" | "contentType">,
): (request: Request) => Promise<Response> {
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method Not Allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" },
      });
    }
    let body: string;
    try {
      body = await registry.metrics();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return new Response(`Collecting metrics failed: ${message}\n`, {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      });
    }
    return new Response(request.method === "HEAD" ? null : body, {
      status: 200,
      headers: { "content-type": registry.contentType, "cache-control": "no-store" },
    });
  };
}
