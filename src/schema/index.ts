/**
 * The wire format v1 and the update a job reports, as zod schemas: the
 * published definition (the JSON Schema in `schema/wire-v1.json` is generated
 * from them) for validating entries written by other languages. The runtime
 * validates with hand-written checks that a property test keeps in agreement
 * with these, so publishing carries no schema library.
 *
 * @example
 * ```ts
 * import { WireEventSchema } from "progresscast/schema";
 * const ok = WireEventSchema.safeParse(fieldsFromRedisCli).success;
 * ```
 *
 * @module
 */
import * as z from "zod/mini";
import {
  CID_PATTERN,
  DECIMAL,
  ID_PATTERN,
  INTEGER,
  MAX_DATA_BYTES,
  MAX_MESSAGE_LENGTH,
  type ProgressUpdate,
  STATUSES,
  TS,
  TYPE_PATTERN,
  type WireEvent,
} from "../core/wire/index.ts";

/** The flat string fields of a v1 stream entry, as a zod schema. */
export const WireEventSchema: z.ZodMiniType<WireEvent> = /* @__PURE__ */ z.object({
  v: z.literal("1"),
  op: z.string().check(z.regex(ID_PATTERN)),
  seq: z.string().check(z.regex(INTEGER)),
  type: z.string().check(z.regex(TYPE_PATTERN)),
  status: z.enum(STATUSES),
  progress: z.optional(z.string().check(z.regex(DECIMAL))),
  current: z.optional(z.string().check(z.regex(INTEGER))),
  total: z.optional(z.string().check(z.regex(INTEGER))),
  message: z.optional(z.string().check(z.maxLength(MAX_MESSAGE_LENGTH))),
  cid: z.optional(z.string().check(z.regex(CID_PATTERN))),
  ts: z.string().check(z.regex(TS)),
  data: z.optional(z.string().check(z.maxLength(MAX_DATA_BYTES))),
  eta: z.optional(z.string().check(z.regex(DECIMAL))),
  attempt: z.optional(z.string().check(z.regex(INTEGER))),
});

/** What a job may report, as a zod schema (the definition `encodeUpdate` validates against). */
export const ProgressUpdateSchema: z.ZodMiniType<ProgressUpdate> = z.object({
  progress: z.optional(z.number().check(z.minimum(0), z.maximum(100))),
  current: z.optional(z.int().check(z.minimum(0))),
  total: z.optional(z.int().check(z.minimum(0))),
  message: z.optional(z.string().check(z.maxLength(MAX_MESSAGE_LENGTH))),
  status: z.optional(z.enum(STATUSES)),
  type: z.optional(z.string().check(z.regex(TYPE_PATTERN))),
  cid: z.optional(z.string().check(z.regex(CID_PATTERN))),
  data: z.optional(z.record(z.string(), z.unknown())),
  eta: z.optional(z.number().check(z.minimum(0))),
  ts: z.optional(z.date()),
});
