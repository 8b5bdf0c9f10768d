/**
 * What a decoded event may look like: the rules of the wire format, applied to
 * the typed event a watcher or an SSE client receives.
 */
import type { ProgressEvent } from "../../src/core/wire/index.ts";
import {
  CID_PATTERN,
  ID_PATTERN,
  MAX_ETA_SECONDS,
  MAX_MESSAGE_LENGTH,
  STATUSES,
  STREAM_ID,
  TS,
  TYPE_PATTERN,
} from "../../src/core/wire/index.ts";

const KEYS = new Set([
  "id",
  "op",
  "seq",
  "type",
  "rawType",
  "status",
  "progress",
  "current",
  "total",
  "message",
  "cid",
  "ts",
  "data",
  "eta",
  "attempt",
]);

const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/** The rules an event breaks; empty for a valid one. */
export function problems(event: ProgressEvent): string[] {
  const bad: string[] = [];
  const e = event as unknown as Record<string, unknown>;
  for (const key of Object.keys(e)) if (!KEYS.has(key)) bad.push(`unknown field ${key}`);
  if (!STREAM_ID.test(event.id)) bad.push("id");
  if (!ID_PATTERN.test(event.op)) bad.push("op");
  if (!count(event.seq)) bad.push("seq");
  if (!TYPE_PATTERN.test(event.type)) bad.push("type");
  if (!(STATUSES as readonly string[]).includes(event.status)) bad.push("status");
  if (e.progress !== undefined && !(typeof e.progress === "number" && e.progress >= 0 && e.progress <= 100)) {
    bad.push("progress");
  }
  if (e.current !== undefined && !count(e.current)) bad.push("current");
  if (e.total !== undefined && !count(e.total)) bad.push("total");
  if (event.current !== undefined && event.total !== undefined && event.current > event.total)
    bad.push("current > total");
  if (e.message !== undefined && !(typeof e.message === "string" && e.message.length <= MAX_MESSAGE_LENGTH)) {
    bad.push("message");
  }
  if (e.cid !== undefined && !(typeof e.cid === "string" && CID_PATTERN.test(e.cid))) bad.push("cid");
  if (!TS.test(event.ts)) bad.push("ts");
  if (e.data !== undefined) {
    const d = e.data;
    if (d === null || typeof d !== "object" || Array.isArray(d)) bad.push("data");
  }
  if (e.eta !== undefined && !(typeof e.eta === "number" && e.eta >= 0 && e.eta <= MAX_ETA_SECONDS)) bad.push("eta");
  if (e.rawType !== undefined && typeof e.rawType !== "string") bad.push("rawType");
  if (!(Number.isSafeInteger(event.attempt) && event.attempt >= 1)) bad.push("attempt");
  return bad;
}
