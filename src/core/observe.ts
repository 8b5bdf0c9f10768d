/**
 * Logger and metrics sinks: small structural interfaces so any logger (pino,
 * console, a Workers `console`) and any metrics system can be plugged in.
 *
 * @module
 */

/** Structured fields of a log record. */
export type LogFields = Record<string, unknown>;

/**
 * A structured logger. Every method is optional; pino, bunyan and `console`
 * fit (console prints the fields object after the message).
 */
export interface Logger {
  debug?(message: string, fields: LogFields): void;
  info?(message: string, fields: LogFields): void;
  warn?(message: string, fields: LogFields): void;
  error?(message: string, fields: LogFields): void;
}

/** Names of the metrics progresscast reports. */
export type MetricName =
  | "events_published"
  | "events_coalesced"
  | "events_refused"
  | "publish_failures"
  | "publish_retries"
  | "publish_latency_ms"
  | "watchers_active"
  | "events_delivered"
  | "delivery_lag_ms"
  | "resets"
  | "read_failures"
  | "connection_errors"
  | "group_pending"
  | "group_delivered"
  | "group_claimed";

/** Labels of a metric sample. */
export type MetricLabels = Readonly<Record<string, string>>;

/** A metrics sink. `progresscast/prometheus` provides one for prom-client. */
export interface Metrics {
  /** Add `value` (default 1) to a counter. */
  increment(name: MetricName, value?: number, labels?: MetricLabels): void;
  /** Record one observation of a histogram (latency, lag). */
  observe(name: MetricName, value: number, labels?: MetricLabels): void;
  /** Set a gauge. */
  gauge(name: MetricName, value: number, labels?: MetricLabels): void;
}

/** A logger that writes warnings and errors to `console`, and nothing else. */
export const consoleLogger: Logger = {
  warn: (message, fields) => console.warn(`[progresscast] ${message}`, fields),
  error: (message, fields) => console.error(`[progresscast] ${message}`, fields),
};

/** A logger that writes nothing. */
export const silentLogger: Logger = {};

/** A sink that records nothing. */
export const noMetrics: Metrics = {
  increment() {},
  observe() {},
  gauge() {},
};
