/**
 * Folder `compat/`: the seeds' old layouts. The main path reaches them
 * through one seam, `legacySeam` (called by `options.ts`): a port that reads
 * old entries, native keys moved off old ones, and the old-format writes of
 * an event. The lenient decoding of old fields is in `wire/lenient.ts`.
 *
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
 * The writes travel with each item to the port (`AppendItem.legacy`); the
 * Redis adapters run them in the legacy append script
 * (`src/redis/lua/append-legacy.lua`), only when the item's native event was accepted.
 *
 * @module
 */

import { ProgressValidationError } from "../errors.ts";
import { defaultKeys, type KeyStrategy } from "../port/keys.ts";
import { FROM_SNAPSHOT, FROM_SNAPSHOT_INT, type LegacyWrite } from "../port/legacy-writes.ts";
import type { ClaimOptions, Fields, GroupReadOptions, StreamEntry, StreamPort } from "../port/port.ts";
import { fromLegacyFields, type StatusesBack } from "../wire/lenient.ts";

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

/** What the manager uses of legacy mode: the one seam between the main path and the old layouts. */
export interface LegacySeam {
  /** The port, reading old entries with the configured status names. */
  readonly port: StreamPort;
  /** The native keys, moved off any old key. */
  readonly keys: KeyStrategy;
  /** The writes for old readers of an event; undefined when the mode only reads. */
  readonly writes: ((fields: Fields, stateKey: string) => LegacyWrite[]) | undefined;
}

/**
 * Legacy mode for a manager's options.
 * @throws {ProgressValidationError} naming `legacy` for a bad value, or for
 * old-format writes on a Redis Cluster port (legacy mode writes need a single node).
 */
export function legacySeam(
  value: LegacyLayout | LegacyOptions,
  port: StreamPort,
  keys: KeyStrategy | undefined,
  prefix: string,
): LegacySeam {
  const legacy = resolveLegacy(value);
  if (legacy.write && port.capabilities.cluster === true) {
    throw new ProgressValidationError(
      "legacy",
      value,
      "cannot write the old format on Redis Cluster (the old keys are not in the operation's slot): use a single node, or `write: false`",
    );
  }
  return {
    // Old entries are read with the configured status names.
    port: legacyReadPort(port, legacy),
    keys: legacy.write ? nativeKeys(keys, prefix, legacy) : (keys ?? defaultKeys(prefix)),
    writes: legacy.write ? (fields, stateKey) => legacyWrites(legacy, fields, stateKey) : undefined,
  };
}
