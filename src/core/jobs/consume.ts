import { isMissingGroupError, ProgressError, ProgressValidationError } from "../errors.ts";
import type { Metrics } from "../observe.ts";
import type { StreamEntry, StreamPort } from "../port/port.ts";
import { sleep } from "../util.ts";
import { decodeEvent, ID_PATTERN, isStreamId, type ProgressEvent } from "../wire/index.ts";

/** Options of `progress.consume`. */
export interface ConsumeOptions {
  /** Consumer group: one per purpose (`db-writer`, `webhooks`). Created on first use, from the stream's start. */
  readonly group: string;
  /** This consumer's name, unique within the group (e.g. host and pid). */
  readonly consumer: string;
  /** The scope whose stream is consumed: publish with `{ scope }` to make events consumable. */
  readonly scope: string;
  /** Only these event types are yielded; others are acknowledged and skipped. @default all */
  readonly types?: readonly string[] | undefined;
  /**
   * Deliveries left unacknowledged this long (a consumer that died) are claimed by this one.
   * @default 30000
   */
  readonly claimIdleMs?: number | undefined;
  /** Most entries read at once. @default 50 */
  readonly batch?: number | undefined;
  /** How long one read waits for new entries. @default 2000 */
  readonly blockMs?: number | undefined;
  /** Stop consuming. */
  readonly signal?: AbortSignal | undefined;
}

/** One event handed to a consumer; call `ack()` once it is processed, or it will be delivered again. */
export interface Delivery {
  /** The event, with `id` the operation's stream entry id (as clients see it). */
  readonly event: ProgressEvent;
  /** Entry id in the scope stream (what is acknowledged). */
  readonly deliveryId: string;
  /** True when this delivery was claimed from a consumer that did not acknowledge it. */
  readonly claimed: boolean;
  /** Acknowledge: the group will not deliver it again. */
  ack(): Promise<void>;
}

const NAME = /^[A-Za-z0-9_.:@-]{1,64}$/;

/** Validate consume options; the stream key is computed by the caller. */
export function checkConsumeOptions(o: ConsumeOptions): void {
  if (!o || typeof o !== "object") throw new ProgressValidationError("options", o, "must be an object");
  if (typeof o.group !== "string" || !NAME.test(o.group))
    throw new ProgressValidationError("group", o.group, "must be 1 to 64 letters, digits or _ . : @ -");
  if (typeof o.consumer !== "string" || !NAME.test(o.consumer))
    throw new ProgressValidationError("consumer", o.consumer, "must be 1 to 64 letters, digits or _ . : @ -");
  if (typeof o.scope !== "string" || !ID_PATTERN.test(o.scope))
    throw new ProgressValidationError("scope", o.scope, "must be a scope id: publish with { scope } to consume it");
  for (const [field, value, min] of [
    ["claimIdleMs", o.claimIdleMs, 1],
    ["batch", o.batch, 1],
    ["blockMs", o.blockMs, 0],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < min))
      throw new ProgressValidationError(field, value, `must be an integer >= ${min}`);
  }
}

/**
 * Consume a scope's stream through a consumer group: claimed deliveries of
 * dead consumers first, then new entries. At least once; in order per
 * operation for one consumer.
 */
export async function* consumeStream(
  port: StreamPort,
  key: string,
  o: ConsumeOptions,
  metrics: Metrics,
  closed: AbortSignal,
): AsyncGenerator<Delivery, void, undefined> {
  const { ensureGroup, groupRead, ack, claim, pending } = port;
  if (!port.capabilities.groups || !ensureGroup || !groupRead || !ack || !claim || !pending) {
    throw new ProgressError(
      `The ${port.name} backend does not support consumer groups (capabilities.groups); use a backend that does`,
    );
  }
  const claimIdleMs = o.claimIdleMs ?? 30_000;
  const batch = o.batch ?? 50;
  const blockMs = Math.min(o.blockMs ?? 2000, claimIdleMs);
  const signal = o.signal ? AbortSignal.any([o.signal, closed]) : closed;
  const types = o.types ? new Set(o.types) : undefined;
  await ensureGroup.call(port, key, o.group);
  let lastClaim = 0;

  const deliver = (entry: StreamEntry, claimed: boolean): Delivery | null => {
    const event = decodeEvent({ id: isStreamId(entry.fields.id) ? entry.fields.id : entry.id, fields: entry.fields });
    const done = async (): Promise<void> => {
      await ack.call(port, key, o.group, [entry.id]);
    };
    // An entry no operation can own (written by someone else) is acknowledged and skipped.
    if (event === null || (types && !types.has(event.type))) {
      void done().catch(() => {});
      return null;
    }
    metrics.increment(claimed ? "group_claimed" : "group_delivered", 1, { group: o.group });
    return { event, deliveryId: entry.id, claimed, ack: done };
  };

  while (!signal.aborted) {
    let entries: StreamEntry[] = [];
    let claimed = false;
    try {
      if (Date.now() - lastClaim >= claimIdleMs / 2) {
        lastClaim = Date.now();
        entries = await claim.call(port, {
          key,
          group: o.group,
          consumer: o.consumer,
          minIdleMs: claimIdleMs,
          count: batch,
        });
        claimed = entries.length > 0;
        metrics.gauge("group_pending", await pending.call(port, key, o.group), { group: o.group });
      }
      if (entries.length === 0) {
        entries = await groupRead.call(port, {
          key,
          group: o.group,
          consumer: o.consumer,
          count: batch,
          blockMs,
          signal,
        });
      }
    } catch (error) {
      if (signal.aborted) return;
      if (isMissingGroupError(error)) {
        await ensureGroup.call(port, key, o.group); // the stream expired and took the group with it
        continue;
      }
      await sleep(500, signal);
      continue;
    }
    for (const entry of entries) {
      const d = deliver(entry, claimed);
      if (d) yield d;
      if (signal.aborted) return;
    }
  }
}
