/**
 * Error mapping shared by the node-redis standalone and cluster backends
 * (reply normalization is in `src/redis/calls.ts`, shared with ioredis).
 *
 * @module
 */
import { ConnectionClosedError } from "../../core/errors.ts";
import { replyError } from "../../redis/errors.ts";

const CLOSED_ERRORS = new Set([
  "ClientClosedError",
  "ClientOfflineError",
  "SocketClosedUnexpectedlyError",
  "DisconnectsClientError",
]);

export function mapError(cause: unknown, what: string): Error {
  const name = cause instanceof Error ? cause.constructor.name : "";
  const message = cause instanceof Error ? cause.message : String(cause);
  if (CLOSED_ERRORS.has(name))
    return new ConnectionClosedError(`Redis connection unavailable during ${what}: ${message}`, { cause });
  return replyError(message, `Redis failed during ${what}: ${message}`, cause);
}

export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/** An owned client's way out: a graceful close when it is open, a destroy when that fails. */
export async function closeOrDestroy(client: {
  readonly isOpen: boolean;
  close(): Promise<unknown>;
  destroy(): void;
}): Promise<void> {
  if (!client.isOpen) return;
  try {
    await client.close();
  } catch {
    client.destroy();
  }
}
