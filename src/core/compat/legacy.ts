/**
 * Legacy mode: while a deployment moves over, every native event is also
 * written the way the old consumers read it, in the same atomic script call.
 * Three layouts from hand-rolled Redis progress stacks are known:
 *
 * - `chunking`: entries on the streams `stream:chunking:<op>` and
 *   `chunking:progress:<op>` with the fields `operation_id`, `correlation_id`,
 *   `status`, `progress`, `message`, `timestamp` (plus `current`, `total`,
 *   `type`, `metadata` when known).
 * - `importProgress`: the hash `<namespace>:hash:<op>` with JSON-encoded values
 *   and `updated_at`, and a `PUBLISH` of the JSON message on
 *   `<namespace>:channel:<op>` (the publish answers the subscriber count).
 * - `operations`: entries on the stream `operations:<op>` with `type`
 *   `OPERATION_PROGRESS` / `OPERATION_COMPLETED` / `OPERATION_FAILED`,
 *   `operation_id`, `status`, `progress` (an integer), `message`, `collection_id`.
 *
 * The legacy script is the append script with the legacy writes composed in
 * before its reply; an item's writes run only when its native event was accepted.
 *
 * @module
 */

import { APPEND_SCRIPT, APPEND_SHA, decodeAppend, encodeAppend, type ScriptCall } from "../../redis/scripts.ts";
import { ProgressValidationError } from "../errors.ts";
import { defaultKeys, type KeyStrategy } from "../port/keys.ts";
import type {
  AppendItem,
  AppendOptions,
  AppendResult,
  ClaimOptions,
  Fields,
  GroupReadOptions,
  StreamEntry,
  StreamPort,
} from "../port/port.ts";

/** The old layouts legacy mode can write. */
export type LegacyLayout = "chunking" | "importProgress" | "operations";

/** Native statuses, as the legacy writes name them. */
type NativeStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

/** Options of legacy mode (`createProgress({ legacy })`). */
export interface LegacyOptions {
  /** Which old layout to write. */
  readonly layout: LegacyLayout;
  /**
   * Status names written for old readers, by native status; merged over the
   * layout's defaults. Reading maps them back (`done` -> `completed`).
   * @default chunking and operations: { queued: "pending", running: "processing" };
   * importProgress: { running: "importing", completed: "done" }
   * @example
   * ```ts
   * createProgress({ port, legacy: { layout: "importProgress", statuses: { running: "parsing" } } });
   * ```
   */
  readonly statuses?: Readonly<Partial<Record<NativeStatus, string>>> | undefined;
  /**
   * Namespace of the `importProgress` layout (the old `ProgressManager(namespace=...)`).
   * @default "import_progress"
   */
  readonly namespace?: string | undefined;
  /**
   * Write the old format for old readers. `false` writes nothing old and moves
   * no key: the manager only reads old entries with these status names (a
   * reader of the old streams, with the layout's `keys` preset).
   * @default true
   * @example
   * ```ts
   * createProgress({ port, keys: keyPresets.operations, legacy: { layout: "operations", statuses: { completed: "finished" }, write: false } });
   * ```
   */
  readonly write?: boolean | undefined;
}

/** Legacy mode after parsing. */
export interface ResolvedLegacy {
  readonly layout: LegacyLayout;
  readonly statuses: Readonly<Record<NativeStatus, string>>;
  readonly namespace: string;
  /** Whether old-format writes are made (else the mode only reads). */
  readonly write: boolean;
}

/** One write for old readers: a hash merge, a stream entry, or a publish. */
export type LegacyWrite =
  | { readonly kind: "hash"; readonly key: string; readonly fields: Fields }
  | {
      readonly kind: "stream";
      readonly key: string;
      /** Values equal to {@link FROM_SNAPSHOT_INT} take the snapshot's progress, rounded to an integer. */
      readonly fields: Fields;
      /** The operation's snapshot key, read for values taken from the snapshot. */
      readonly stateKey: string;
    }
  | { readonly kind: "publish"; readonly channel: string; readonly message: string };

/** A stream field value the script replaces with the snapshot's progress, rounded to an integer. */
export const FROM_SNAPSHOT_INT = "\u0001p";
/** A stream field value the script replaces with the snapshot's progress as stored. */
export const FROM_SNAPSHOT = "\u0001P";

const STATUS_DEFAULTS: Record<LegacyLayout, Record<NativeStatus, string>> = {
  chunking: {
    queued: "pending",
    running: "processing",
    completed: "completed",
    failed: "failed",
    cancelled: "cancelled",
  },
  importProgress: {
    queued: "queued",
    running: "importing",
    completed: "done",
    failed: "failed",
    cancelled: "cancelled",
  },
  operations: {
    queued: "pending",
    running: "processing",
    completed: "completed",
    failed: "failed",
    cancelled: "cancelled",
  },
};

const LAYOUTS: readonly string[] = ["chunking", "importProgress", "operations"];
const NATIVE: readonly string[] = ["queued", "running", "completed", "failed", "cancelled"];

/**
 * Parse the `legacy` option.
 * @throws {ProgressValidationError} naming the bad field.
 */
export function resolveLegacy(value: LegacyLayout | LegacyOptions): ResolvedLegacy {
  const o: LegacyOptions = typeof value === "string" ? { layout: value } : value;
  if (o === null || typeof o !== "object" || !LAYOUTS.includes(o.layout)) {
    throw new ProgressValidationError(
      "legacy.layout",
      typeof value === "string" ? value : o?.layout,
      `must be one of ${LAYOUTS.join(", ")}`,
    );
  }
  const statuses = { ...STATUS_DEFAULTS[o.layout] };
  if (o.statuses !== undefined) {
    if (o.statuses === null || typeof o.statuses !== "object") {
      throw new ProgressValidationError("legacy.statuses", o.statuses, "must be an object of status names");
    }
    for (const [native, old] of Object.entries(o.statuses)) {
      if (!NATIVE.includes(native) || typeof old !== "string" || !/^[A-Za-z0-9_.:-]{1,64}$/.test(old)) {
        throw new ProgressValidationError(
          `legacy.statuses.${native}`,
          old,
          `must map one of ${NATIVE.join(", ")} to 1 to 64 of A-Z a-z 0-9 _ . : -`,
        );
      }
      statuses[native as NativeStatus] = old;
    }
  }
  const namespace = o.namespace ?? "import_progress";
  if (typeof namespace !== "string" || !/^[A-Za-z0-9_.:-]{1,64}$/.test(namespace)) {
    throw new ProgressValidationError("legacy.namespace", namespace, "must be 1 to 64 of A-Z a-z 0-9 _ . : -");
  }
  if (o.write !== undefined && typeof o.write !== "boolean") {
    throw new ProgressValidationError("legacy.write", o.write, "must be a boolean");
  }
  return { layout: o.layout, statuses, namespace, write: o.write ?? true };
}

/** The old keys (and channel) of an operation in a layout. */
export function legacyKeys(legacy: ResolvedLegacy, op: string): string[] {
  switch (legacy.layout) {
    case "chunking":
      return [`stream:chunking:${op}`, `chunking:progress:${op}`];
    case "importProgress":
      return [`${legacy.namespace}:hash:${op}`, `${legacy.namespace}:channel:${op}`];
    case "operations":
      return [`operations:${op}`];
  }
}

/**
 * The native keys in legacy mode: the given strategy, except that an
 * operation's native key that is also one of its old keys moves to the
 * default strategy's name, so old readers never meet a native key (no
 * WRONGTYPE, no foreign fields).
 */
export function nativeKeys(keys: KeyStrategy | undefined, prefix: string, legacy: ResolvedLegacy): KeyStrategy {
  const fallback = defaultKeys(prefix);
  if (keys === undefined) return fallback;
  const clash = (key: string, op: string): boolean => legacyKeys(legacy, op).includes(key);
  return {
    events: (op) => {
      const key = keys.events(op);
      return clash(key, op) ? fallback.events(op) : key;
    },
    state: (op) => {
      const key = keys.state(op);
      return clash(key, op) ? fallback.state(op) : key;
    },
    scope: (scope) => keys.scope(scope),
  };
}

/** `2026-11-22T14:30:00.123Z` as Python's `datetime.isoformat()` of an aware UTC time writes it. */
function pythonIso(ts: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)\.(\d{3})Z$/.exec(ts);
  return m ? `${m[1]}.${m[2]}000+00:00` : ts;
}

function jsonValue(value: string | undefined, kind: "number" | "string"): unknown {
  if (value === undefined) return undefined;
  return kind === "number" ? Number(value) : value;
}

/**
 * What the old consumers of `legacy.layout` read for one native event.
 * `fields` are the encoded wire fields of the event; `stateKey` its snapshot.
 */
export function legacyWrites(legacy: ResolvedLegacy, fields: Fields, stateKey: string): LegacyWrite[] {
  const op = fields.op ?? "";
  const native = (fields.status ?? "running") as NativeStatus;
  const status = legacy.statuses[native] ?? native;
  let data: Record<string, unknown> | undefined;
  if (fields.data !== undefined) {
    try {
      data = JSON.parse(fields.data) as Record<string, unknown>;
    } catch {
      data = undefined;
    }
  }
  switch (legacy.layout) {
    case "chunking": {
      const entry: Fields = {
        operation_id: op,
        correlation_id: fields.cid ?? "",
        type: fields.type ?? "progress",
        status,
        progress: fields.progress ?? FROM_SNAPSHOT,
        message: fields.message ?? "",
        timestamp: fields.ts ?? "",
      };
      if (fields.current !== undefined) entry.current = fields.current;
      if (fields.total !== undefined) entry.total = fields.total;
      if (fields.data !== undefined) entry.metadata = fields.data;
      const [stream = "", progress = ""] = legacyKeys(legacy, op);
      return [
        { kind: "stream", key: stream, fields: entry, stateKey },
        { kind: "stream", key: progress, fields: entry, stateKey },
      ];
    }
    case "importProgress": {
      const payload: Record<string, unknown> = { status };
      if (fields.type !== undefined && fields.type !== "progress") payload.event = fields.type;
      if (fields.progress !== undefined) payload.progress = jsonValue(fields.progress, "number");
      if (fields.current !== undefined) payload.processed_rows = jsonValue(fields.current, "number");
      if (fields.total !== undefined) payload.total_rows = jsonValue(fields.total, "number");
      if (fields.message !== undefined) {
        if (native === "failed") payload.error_message = fields.message;
        else payload.message = fields.message;
      }
      if (fields.cid !== undefined) payload.correlation_id = fields.cid;
      if (data !== undefined) {
        for (const [k, v] of Object.entries(data)) if (!(k in payload)) payload[k] = v;
      }
      payload.updated_at = pythonIso(fields.ts ?? "");
      const hash: Fields = {};
      for (const [k, v] of Object.entries(payload)) hash[k] = JSON.stringify(v);
      const [hashKey = "", channel = ""] = legacyKeys(legacy, op);
      return [
        { kind: "hash", key: hashKey, fields: hash },
        { kind: "publish", channel, message: JSON.stringify(payload) },
      ];
    }
    case "operations": {
      const type =
        native === "completed"
          ? "OPERATION_COMPLETED"
          : native === "running" || native === "queued"
            ? "OPERATION_PROGRESS"
            : "OPERATION_FAILED";
      const entry: Fields = {
        type,
        operation_id: op,
        status,
        progress: fields.progress === undefined ? FROM_SNAPSHOT_INT : String(Math.round(Number(fields.progress))),
        message: fields.message ?? "",
      };
      const collection = data?.collection_id;
      if (typeof collection === "string" || typeof collection === "number") entry.collection_id = String(collection);
      if (fields.type !== undefined && fields.type !== "progress") entry.event = fields.type;
      if (fields.data !== undefined) entry.metadata = fields.data;
      const [stream = ""] = legacyKeys(legacy, op);
      return [{ kind: "stream", key: stream, fields: entry, stateKey }];
    }
  }
}

/**
 * The legacy writes composed into the append script, before its reply. The
 * legacy section sits after the main script's arguments (which it ignores);
 * the last argument holds the section's length, so the section is found from
 * the end whatever the main layout. Per item: the number of writes, then per
 * write: kind (H, X, P), target (a KEYS index; the channel for P), ttl (H) or
 * maxlen (X), argument count, arguments (X: the snapshot's KEYS index, ttl, fields). An item's writes run only when its
 * native event was accepted (`out[i][1]=='ok'`). A publish's subscriber
 * count is the sixth element (after code, id, seq, cancel, attempt) of the item's reply row.
 */
const LEGACY_BLOCK = `local la=#ARGV-tonumber(ARGV[#ARGV])+1
for i=1,#out do
local n=tonumber(ARGV[la])
la=la+1
for c=1,n do
local kind=ARGV[la]
local tg=ARGV[la+1]
local x=ARGV[la+2]
local s=la+4
local e=s+tonumber(ARGV[la+3])-1
la=e+1
if out[i][1]=='ok' then
if kind=='H' then
local k=KEYS[tonumber(tg)]
redis.call('HSET',k,unpack(ARGV,s,e))
redis.call('EXPIRE',k,x)
elseif kind=='X' then
local k=KEYS[tonumber(tg)]
local sp=nil
local f={}
for j=s+2,e do
local v=ARGV[j]
if v=='\\1p' or v=='\\1P' then
sp=sp or redis.call('HGET',KEYS[tonumber(ARGV[s])],'progress') or '0'
if v=='\\1p' then v=tostring(math.floor(tonumber(sp)+0.5)) else v=sp end
end
f[#f+1]=v
end
redis.call('XADD',k,'MAXLEN','~',x,'*',unpack(f))
redis.call('EXPIRE',k,ARGV[s+1])
elseif kind=='P' then
out[i][6]=redis.call('PUBLISH',tg,ARGV[s])
end
end
end
end
return out`;

function compose(main: string): string {
  const at = main.lastIndexOf("return out");
  if (at < 0 || main.slice(at).trim() !== "return out") {
    throw new Error("The append script no longer ends with `return out`: legacy mode cannot be composed into it");
  }
  return main.slice(0, at) + LEGACY_BLOCK;
}

/** The append script with the legacy writes composed in. */
export const LEGACY_APPEND_SCRIPT: string = compose(APPEND_SCRIPT);
/** SHA1 of {@link LEGACY_APPEND_SCRIPT}, as `SCRIPT LOAD` answers it. */
export const LEGACY_APPEND_SHA: string = sha1Hex(LEGACY_APPEND_SCRIPT);

/** A script call ready for EVALSHA (EVAL `source` on NOSCRIPT). */
export interface AppendCall extends ScriptCall {
  readonly sha: string;
  readonly source: string;
}

/**
 * The call that appends `items`: the append script, or its legacy variant
 * when any item carries legacy writes.
 */
export function appendCall(items: readonly AppendItem[], options: AppendOptions): AppendCall {
  const main = encodeAppend(items, options);
  if (!items.some((item) => item.legacy !== undefined && item.legacy.length > 0)) {
    return { ...main, sha: APPEND_SHA, source: APPEND_SCRIPT };
  }
  const keys = [...main.keys];
  const section: string[] = [];
  const keyIndex = (key: string): string => {
    keys.push(key);
    return String(keys.length);
  };
  for (const item of items) {
    const writes = item.legacy ?? [];
    section.push(String(writes.length));
    for (const w of writes) {
      if (w.kind === "hash") {
        const args = Object.entries(w.fields).flat();
        section.push("H", keyIndex(w.key), String(options.ttlSeconds), String(args.length), ...args);
      } else if (w.kind === "stream") {
        const args = [keyIndex(w.stateKey), String(options.ttlSeconds), ...Object.entries(w.fields).flat()];
        section.push("X", keyIndex(w.key), String(options.maxLen), String(args.length), ...args);
      } else {
        section.push("P", w.channel, "0", "1", w.message);
      }
    }
  }
  section.push(String(section.length + 1));
  return { keys, args: [...main.args, ...section], sha: LEGACY_APPEND_SHA, source: LEGACY_APPEND_SCRIPT };
}

/** Decode the reply of {@link appendCall}, with the subscriber count of a legacy publish. */
export function decodeAppendCall(reply: unknown, count: number): AppendResult[] {
  const results = decodeAppend(reply, count);
  if (!Array.isArray(reply)) return results;
  return results.map((result, i) => {
    const row: unknown = reply[i];
    // After code, id, seq, cancel and attempt: only a legacy publish adds it.
    const subscribers = Array.isArray(row) ? row[5] : undefined;
    return result.ok && subscribers !== undefined && subscribers !== null
      ? { ...result, subscribers: Number(subscribers) }
      : result;
  });
}

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

/** The reading side of a legacy mode's status names: old name -> native status. */
export function statusesBack(legacy: ResolvedLegacy): StatusesBack {
  const back: Record<string, string> = Object.create(null);
  for (const native of NATIVE) {
    const old = legacy.statuses[native as NativeStatus];
    back[old] = native;
    back[old.toLowerCase()] ??= native;
  }
  return back;
}

/**
 * A port that reads old-format entries and snapshots with a legacy mode's
 * status names (`legacy.statuses`), so an old stream whose status is, say,
 * `finished` ends when its job ends. Everything else goes to `port` unchanged.
 */
export function legacyReadPort(port: StreamPort, legacy: ResolvedLegacy): StreamPort {
  const back = statusesBack(legacy);
  const fields = (f: Fields): Fields => fromLegacyFields(f, back);
  const state = (f: Fields | null): Fields | null => (f === null ? null : fields(f));
  const entries = (list: readonly StreamEntry[]): StreamEntry[] =>
    list.map((e) => ({ ...e, fields: fields(e.fields) }));
  const wrapped: StreamPort = {
    name: port.name,
    capabilities: port.capabilities,
    append: (items, options) => port.append(items, options),
    read: async (stateKey, eventsKey, range) => {
      const r = await port.read(stateKey, eventsKey, range);
      return { ...r, state: state(r.state), entries: entries(r.entries) };
    },
    getState: async (stateKey) => state(await port.getState(stateKey)),
    wait: async (cursors, options) =>
      (await port.wait(cursors, options)).map((k) => ({ ...k, entries: entries(k.entries) })),
    cancel: (stateKey, reason, ttlSeconds) => port.cancel(stateKey, reason, ttlSeconds),
    delete: (stateKey, eventsKey) => port.delete(stateKey, eventsKey),
    close: () => port.close(),
  };
  const { ensureGroup, groupRead, ack, claim, pending } = port;
  return {
    ...wrapped,
    ...(ensureGroup ? { ensureGroup: (key: string, group: string) => ensureGroup.call(port, key, group) } : {}),
    ...(groupRead ? { groupRead: async (o: GroupReadOptions) => entries(await groupRead.call(port, o)) } : {}),
    ...(ack ? { ack: (key: string, group: string, ids: readonly string[]) => ack.call(port, key, group, ids) } : {}),
    ...(claim ? { claim: async (o: ClaimOptions) => entries(await claim.call(port, o)) } : {}),
    ...(pending ? { pending: (key: string, group: string) => pending.call(port, key, group) } : {}),
  };
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

/** SHA1 in hex of a string's UTF-8 bytes (synchronous: no Web Crypto needed). */
export function sha1Hex(text: string): string {
  const bytes = new TextEncoder().encode(text);
  const length = bytes.length;
  const words = new Uint32Array((((length + 8) >> 6) + 1) * 16);
  for (let i = 0; i < length; i++) words[i >> 2] = (words[i >> 2] ?? 0) | ((bytes[i] ?? 0) << (24 - (i % 4) * 8));
  words[length >> 2] = (words[length >> 2] ?? 0) | (0x80 << (24 - (length % 4) * 8));
  words[words.length - 1] = length * 8;
  let h0 = 0x67452301;
  let h1 = 0xefcdab89;
  let h2 = 0x98badcfe;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0;
  const w = new Uint32Array(80);
  for (let block = 0; block < words.length; block += 16) {
    for (let t = 0; t < 16; t++) w[t] = words[block + t] ?? 0;
    for (let t = 16; t < 80; t++) {
      const x = (w[t - 3] ?? 0) ^ (w[t - 8] ?? 0) ^ (w[t - 14] ?? 0) ^ (w[t - 16] ?? 0);
      w[t] = (x << 1) | (x >>> 31);
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let t = 0; t < 80; t++) {
      const f = t < 20 ? (b & c) | (~b & d) : t < 40 ? b ^ c ^ d : t < 60 ? (b & c) | (b & d) | (c & d) : b ^ c ^ d;
      const k = t < 20 ? 0x5a827999 : t < 40 ? 0x6ed9eba1 : t < 60 ? 0x8f1bbcdc : 0xca62c1d6;
      const temp = (((a << 5) | (a >>> 27)) + f + e + k + (w[t] ?? 0)) >>> 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = temp;
    }
    h0 = (h0 + a) >>> 0;
    h1 = (h1 + b) >>> 0;
    h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0;
    h4 = (h4 + e) >>> 0;
  }
  return [h0, h1, h2, h3, h4].map((h) => (h >>> 0).toString(16).padStart(8, "0")).join("");
}
