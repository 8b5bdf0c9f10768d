/**
 * progresscast: carry the progress of background jobs to the people waiting
 * on them. A worker reports progress; Redis Streams (or the embedded memory
 * backend) carry it; every server hands it to browsers over Server-Sent Events
 * or WebSockets.
 *
 * @example
 * ```ts
 * import { createProgress } from "progresscast";
 * const progress = createProgress(); // memory backend
 * await progress.publish("job-1", { progress: 42, message: "Chunked 420 of 1000" });
 * console.log(await progress.get("job-1"));
 * ```
 *
 * @module
 */
import { memory } from "./adapters/memory/index.ts";
import type { ProgressOptions } from "./core/options.ts";
import { Progress } from "./core/progress.ts";

export * from "./core/index.ts";

/** Options of {@link createProgress}: those of the core, with `port` optional (memory by default). */
export type CreateProgressOptions = Omit<ProgressOptions, "port"> & { readonly port?: ProgressOptions["port"] };

/**
 * Create a progress manager. Without `port` it runs on the embedded memory backend.
 *
 * @throws {ProgressValidationError} naming the bad option.
 * @example
 * ```ts
 * import { createProgress } from "progresscast";
 * import { nodeRedis } from "progresscast/node-redis";
 * const progress = createProgress({ port: nodeRedis({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" }) });
 * ```
 */
export function createProgress(options: CreateProgressOptions = {}): Progress {
  return new Progress({ ...options, port: options.port ?? memory() });
}
