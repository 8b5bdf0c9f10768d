/**
 * The runtime-agnostic core: wire format, validation, keys, coalescing and the
 * progress manager. No Node, Deno or client-library imports.
 *
 * @module
 */

export type { Authorize, WatchTarget } from "./deliver/http.ts";
export type { SseOptions } from "./deliver/sse.ts";
export type { WatchItem, WatchOptions } from "./deliver/watch.ts";
export type { ServerMessage, WebSocketLike, WebSocketOptions } from "./deliver/websocket.ts";
export * from "./errors.ts";
export type { ConsumeOptions, Delivery } from "./jobs/consume.ts";
export { Task, type TaskEventFields, type TaskOptions } from "./jobs/task.ts";
export {
  consoleLogger,
  type LogFields,
  type Logger,
  type MetricLabels,
  type MetricName,
  type Metrics,
  noMetrics,
  silentLogger,
} from "./observe.ts";
export type { ProgressOptions } from "./options.ts";
export { defaultKeys, type KeyStrategy, keyPresets } from "./port/keys.ts";
export type * from "./port/port.ts";
export {
  type FlushOptions,
  type FlushResult,
  type HistoryOptions,
  Progress,
  type PublishOptions,
  type PublishResult,
  type Target,
  type UnwrittenEvent,
} from "./progress.ts";
export {
  assertStreamId,
  compareIds,
  decodeEvent,
  decodeSnapshot,
  encodeUpdate,
  isStreamId,
  isTerminal,
  MAX_DATA_BYTES,
  MAX_ETA_SECONDS,
  MAX_ID_LENGTH,
  MAX_MESSAGE_LENGTH,
  type ProgressEvent,
  type ProgressSnapshot,
  type ProgressStatus,
  type ProgressUpdate,
  STATUSES,
  STREAM_ID,
  TERMINAL_STATUSES,
  WIRE_VERSION,
  type WireEvent,
} from "./wire/index.ts";
