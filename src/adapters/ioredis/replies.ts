/**
 * What the ioredis backends (standalone and cluster) share: error mapping,
 * sending commands built as one array, and waiting for a client's first
 * connection (reply normalization is in `src/redis/calls.ts`, shared with
 * node-redis).
 *
 * @module
 */
import { Command } from "ioredis";
import { BackendError, ConnectionClosedError, TimeoutError } from "../../core/errors.ts";
import { replyError } from "../../redis/errors.ts";

/** Replies as strings. */
export const UTF8 = { replyEncoding: "utf8" } as const;

/** Whether Redis answered that it does not know a script's SHA. */
export function isNoScript(error: unknown): boolean {
  const cause = error instanceof BackendError ? error.cause : error;
  return cause instanceof Error && cause.message.startsWith("NOSCRIPT");
}

/**
 * ioredis rejects with `ReplyError` when Redis answered with an error, and with
 * plain errors (or `MaxRetriesPerRequestError`, `ClusterAllFailedError`) when
 * the connection is gone.
 */
export function mapError(cause: unknown, what: string): Error {
  if (cause instanceof BackendError || cause instanceof TimeoutError) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  const name = cause instanceof Error ? cause.name : "";
  if (name === "ReplyError") return replyError(message, `Redis failed during ${what}: ${message}`, cause);
  if (message === "Command timed out")
    return new TimeoutError(`Redis did not answer in time during ${what}`, { cause });
  return new ConnectionClosedError(`Redis connection unavailable during ${what}: ${message}`, { cause });
}

/**
 * Send a command given as one array, its name first (as the shared port
 * methods build them), through `send(name, args)` with the lower-case name
 * ioredis expects.
 *
 * @example
 * ```ts
 * sendArgs(["XACK", key, group, id], (name, rest) => command(name, rest, "ack"));
 * ```
 */
export function sendArgs<T>(args: readonly string[], send: (name: string, rest: string[]) => T): T {
  return send((args[0] ?? "").toLowerCase(), args.slice(1));
}

/** What readiness tracking needs of a client: ioredis `Redis` and `Cluster` both fit. */
export interface Connectable {
  readonly status: string;
  connect(): Promise<unknown>;
  on(event: "ready" | "end", listener: () => void): unknown;
  off(event: "ready" | "end", listener: () => void): unknown;
}

/** An owned client's way out: `QUIT` when it is connected, else (or when that fails) close the sockets. */
export async function quitOrDisconnect(client: {
  readonly status: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}): Promise<void> {
  if (client.status === "ready") {
    try {
      await client.quit();
      return;
    } catch {
      // fall through: close the sockets
    }
  }
  client.disconnect();
}

/**
 * Waiting for connections: a command waits for a client's first connection (up
 * to `connectTimeoutMs`); once a client was ready, a command sent while it is
 * down fails at once instead of waiting in ioredis's offline queue.
 */
export function readiness(
  connectTimeoutMs: number,
  closed: () => boolean,
  name: string,
): { watch(c: Connectable): void; ready(c: Connectable, what: string): Promise<void> } {
  const everReady = new WeakSet<Connectable>();
  const firstReady = new WeakMap<Connectable, Promise<void>>();
  const watch = (c: Connectable): void => {
    if (c.status === "ready") everReady.add(c);
    else {
      const mark = (): void => {
        everReady.add(c);
        c.off("ready", mark);
      };
      c.on("ready", mark);
    }
  };
  const ready = async (c: Connectable, what: string): Promise<void> => {
    if (closed()) throw new ConnectionClosedError(`The ${name} backend is closed (${what})`);
    if (c.status === "ready") return;
    if (everReady.has(c) || c.status === "end")
      throw new ConnectionClosedError(`Redis connection unavailable during ${what} (status ${c.status})`);
    if (c.status === "wait") c.connect().catch(() => {});
    // One wait (one pair of listeners, one timer) shared by every command that arrives meanwhile.
    let pending = firstReady.get(c);
    if (!pending) {
      pending = new Promise<void>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          c.off("ready", onReady);
          c.off("end", onEnd);
          firstReady.delete(c);
        };
        const onReady = (): void => {
          done();
          resolve();
        };
        const onEnd = (): void => {
          done();
          reject(new ConnectionClosedError("Redis connection ended before it was ready"));
        };
        const timer = setTimeout(() => {
          done();
          reject(new TimeoutError(`Redis was not reachable within ${connectTimeoutMs} ms`));
        }, connectTimeoutMs);
        c.on("ready", onReady);
        c.on("end", onEnd);
      });
      firstReady.set(c, pending);
    }
    try {
      await pending;
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw cause instanceof TimeoutError
        ? new TimeoutError(`${message} (${what})`, { cause })
        : new ConnectionClosedError(`${message} (${what})`, { cause });
    }
  };
  return { watch, ready };
}

/** What sending commands needs of a client: ioredis `Redis` and `Cluster` both fit. */
export interface Callable extends Connectable {
  call(command: string, args: (string | number)[]): Promise<unknown>;
}

/** How the ioredis backends send: `exec` as is, `command` mapped to the port's errors, `script` with EVAL on NOSCRIPT. */
export interface Sender<C extends Callable> {
  exec(c: C, name: string, args: string[]): Promise<unknown>;
  command(name: string, args: string[], what: string, c?: C): Promise<unknown>;
  script(sha: string, source: string, keys: readonly string[], args: readonly string[], what: string): Promise<unknown>;
}

/**
 * Commands and scripts on `client` (and its duplicates). `direct`: the client
 * comes from this copy of ioredis, so commands are built directly (one
 * argument array, no argument parsing); a client of another copy is called
 * through `call`.
 */
export function sender<C extends Callable>(
  client: C,
  direct: boolean,
  ready: (c: C, what: string) => Promise<void>,
): Sender<C> {
  const exec = (c: C, name: string, args: string[]): Promise<unknown> =>
    direct
      ? ((c as unknown as { sendCommand(command: Command): unknown }).sendCommand(
          new Command(name, args, UTF8),
        ) as Promise<unknown>)
      : c.call(name, args);

  const command = async (name: string, args: string[], what: string, c: C = client): Promise<unknown> => {
    if (c.status !== "ready") await ready(c, what);
    try {
      return await exec(c, name, args);
    } catch (cause) {
      throw mapError(cause, what);
    }
  };

  /** EVALSHA (routed by the first key on a cluster), EVAL of the source on NOSCRIPT (a flushed or new server). */
  const script = async (
    sha: string,
    source: string,
    keys: readonly string[],
    args: readonly string[],
    what: string,
  ): Promise<unknown> => {
    if (client.status !== "ready") await ready(client, what);
    const call = [sha, String(keys.length)];
    for (const k of keys) call.push(k);
    for (const a of args) call.push(a);
    try {
      return await exec(client, "evalsha", call);
    } catch (cause) {
      if (!isNoScript(cause)) throw mapError(cause, what);
    }
    call[0] = source;
    return await command("eval", call, what);
  };
  return { exec, command, script };
}
