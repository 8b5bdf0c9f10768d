/**
 * Lenient reading of entries and snapshots written by old publishers (the
 * seeds' layouts, no `v` field): their fields mapped to wire fields so they
 * decode like native ones. Native fields pass through unchanged.
 *
 * @module
 */
import type { Fields } from "../port/port.ts";

const STATUS_BACK: Record<string, string> = {
  done: "completed",
  complete: "completed",
  completed: "completed",
  success: "completed",
  succeeded: "completed",
  finished: "completed",
  failed: "failed",
  failure: "failed",
  error: "failed",
  processing: "running",
  importing: "running",
  parsing: "running",
  running: "running",
  started: "running",
  progress: "running",
  in_progress: "running",
  pending: "queued",
  queued: "queued",
  received: "queued",
  cancelled: "cancelled",
  canceled: "cancelled",
  revoked: "cancelled",
};

/** Old status name -> native status, from a legacy mode's configured names. */
export type StatusesBack = Readonly<Record<string, string>>;

/**
 * Map an old status name to a native one: by the configured names when given
 * (`legacy.statuses`, exact then case-insensitive), else by the names old
 * stacks commonly used (`done` -> `completed`, `processing` -> `running`).
 */
export function nativeStatus(old: string | undefined, back?: StatusesBack): string | undefined {
  if (old === undefined) return undefined;
  if (back !== undefined) {
    const configured = back[old] ?? back[old.toLowerCase()];
    if (configured !== undefined) return configured;
  }
  return STATUS_BACK[old.toLowerCase()] ?? old;
}

function unjson(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return value;
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed === null) return undefined;
    return typeof parsed === "object" ? value : String(parsed);
  } catch {
    return value;
  }
}

/**
 * Fields of an entry or hash written by an old publisher (no `v` field),
 * mapped to wire fields so they decode like native ones: `operation_id` ->
 * `op`, `correlation_id` -> `cid`, `timestamp`/`updated_at` -> `ts`,
 * `processed_rows`/`total_rows` -> `current`/`total`, `OPERATION_*` types and
 * old status names -> native statuses (by `back`, a legacy mode's configured
 * names, first), JSON-encoded hash values decoded. Native fields come back
 * unchanged, and so do fields this returned.
 */
export function fromLegacyFields(fields: Fields, back?: StatusesBack): Fields {
  const old =
    fields.v === undefined &&
    (fields.operation_id !== undefined ||
      fields.updated_at !== undefined ||
      fields.timestamp !== undefined ||
      fields.type?.startsWith("OPERATION_") === true);
  if (!old) return fields;
  // Only the importProgress hash (the one with `updated_at`) holds JSON-encoded values.
  const encoded = fields.updated_at !== undefined;
  const get = (name: string): string | undefined => (encoded ? unjson(fields[name]) : fields[name]);
  const out: Fields = {};
  const set = (name: string, value: string | undefined): void => {
    if (value !== undefined) out[name] = value;
  };
  set("op", get("op") ?? get("operation_id"));
  set("seq", get("seq"));
  const type = get("type");
  let status = nativeStatus(get("status"), back);
  if (type === "OPERATION_COMPLETED") status ??= "completed";
  else if (type === "OPERATION_FAILED") status ??= "failed";
  set("type", type === undefined || type.startsWith("OPERATION_") ? (get("event") ?? "progress") : type);
  set("status", status);
  const progress = get("progress");
  if (progress !== undefined && Number.isFinite(Number(progress))) set("progress", String(Number(progress)));
  set("current", get("current") ?? get("processed_rows"));
  set("total", get("total") ?? get("total_rows"));
  set("message", get("message") ?? get("error_message"));
  set("cid", get("cid") ?? get("correlation_id"));
  const ts = get("ts") ?? get("timestamp") ?? get("updated_at");
  if (ts !== undefined) {
    const date = new Date(ts);
    set("ts", Number.isNaN(date.getTime()) ? ts : date.toISOString());
  }
  set("data", fields.metadata ?? fields.data);
  set("eta", get("eta"));
  set("attempt", get("attempt"));
  set("id", fields.id);
  set("cancel", fields.cancel);
  return out;
}
