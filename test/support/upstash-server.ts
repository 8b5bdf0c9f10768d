/**
 * A local Upstash-compatible REST server in front of a real `redis-server`:
 * every command goes to Redis, nothing is mocked. It speaks the protocol as
 * `@upstash/redis` 1.39 does, so the Upstash adapter can be tested (and
 * developed) without a cloud account.
 *
 * - `POST /` with a JSON array command answers `200 {"result": ...}` or
 *   `400 {"error": "..."}` (Redis error text kept, so `NOSCRIPT` drives the
 *   client's EVALSHA -> EVAL fallback).
 * - `POST /pipeline` and `POST /multi-exec` with an array of commands answer
 *   `200 [{"result": ...} | {"error": "..."}, ...]`; a transaction aborted at
 *   queue time (`EXECABORT`) answers `400 {"error"}`.
 * - Path-style commands (`/get/key`, `/set/key/value`, a POST body as the last
 *   argument) for curl.
 * - Streaming pub/sub, as `Redis.subscribe()` / `psubscribe()` call it:
 *   `POST /subscribe/<channel>[/<channel>...]` (or `/psubscribe/<pattern>...`),
 *   each name percent-decoded, the request body ignored. The answer is
 *   `200 text/event-stream` over a Redis connection of its own that holds the
 *   subscription: one `data: subscribe,<channel>,<count>` line per channel
 *   once Redis confirmed it, then `data: message,<channel>,<payload>` (or
 *   `data: pmessage,<pattern>,<channel>,<payload>`) per message, each followed
 *   by a blank line. Payloads are written as published, never base64 (the
 *   client does not decode them). When the HTTP client goes away the Redis
 *   subscription is closed; when Redis goes away the response ends.
 *   `dropStreams()` cuts every open stream (an upstream drop); with
 *   `subscribe: false` (`--no-subscribe`) the endpoint answers 405, like a
 *   REST endpoint without streaming.
 * - `Authorization: Bearer <token>` (or `?_token=`); anything else gets 401.
 * - `Upstash-Encoding: base64`: every string in the result, nested arrays
 *   included, is base64 of its bytes; numbers and null are not. A top-level
 *   status reply `OK` stays `"OK"`: the client's decoder special-cases exactly
 *   that literal and would turn a raw status like `PONG` into garbage, so every
 *   other string is encoded.
 *
 * Connections: one shared connection pipelines ordinary commands; MULTI and
 * blocking commands (BLPOP, XREAD BLOCK, ...) each borrow a connection of
 * their own from a small pool, so they never stall or interleave with others.
 *
 * Run it for local development:
 * `tsx test/support/upstash-server.ts --redis redis://127.0.0.1:6379 --port 8079 --token dev`
 * (`--no-subscribe` refuses the streaming subscribe endpoint).
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createClient, RESP_TYPES } from "redis";

/** Options of {@link startUpstashServer}. */
export interface UpstashServerOptions {
  /** Redis every command goes to, e.g. `redis://127.0.0.1:6379`. */
  readonly redisUrl: string;
  /**
   * Bearer token clients must send.
   * @default a random UUID
   */
  readonly token?: string | undefined;
  /**
   * Fixed delay before every request is handled, to simulate an edge function
   * far from its Redis region. Change it later with `setDelay`.
   * @default 0
   */
  readonly delayMs?: number | undefined;
  /**
   * Port to listen on (loopback only).
   * @default 0, a free port
   */
  readonly port?: number | undefined;
  /**
   * Serve the streaming `/subscribe` and `/psubscribe` endpoints. `false`
   * answers them `405 {"error"}`, as a REST endpoint without streaming does.
   * @default true
   */
  readonly subscribe?: boolean | undefined;
}

/** A running server. */
export interface UpstashServer {
  /** Base URL to give `@upstash/redis` (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** The bearer token it accepts. */
  readonly token: string;
  readonly port: number;
  /** HTTP requests received since start (or the last `reset()`), refused ones included; a subscribe stream is one. */
  readonly requests: number;
  /** HTTP requests received and not yet answered to the end (open subscribe streams included). */
  readonly openRequests: number;
  /** Subscribe streams open now (answered 200 and not yet ended). */
  readonly openStreams: number;
  /** Every authorized command received, in order, arguments as strings. */
  readonly commands: string[][];
  /** Clear `commands` and set `requests` back to 0. */
  reset(): void;
  /** Change the delay added before every request. */
  setDelay(ms: number): void;
  /** Cut every open subscribe stream (its HTTP connection is destroyed), as a dropped upstream; returns how many. */
  dropStreams(): number;
  /** Stop listening, drop open HTTP connections and close every Redis connection. */
  close(): Promise<void>;
}

type Json = null | number | string | Json[];
type Outcome = { readonly result: Json } | { readonly error: string };

/** Replies as node-redis hands them over: bulk strings as Buffers (bytes kept), status replies as strings. */
const TYPE_MAPPING = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

/**
 * A Redis connection. No offline queue: while Redis is down a request fails
 * at once (as a hosted database would answer), instead of hanging until it
 * is back. Dedicated connections do not reconnect: a broken one is dropped.
 */
function connect(url: string, dedicated = false) {
  const client = createClient({
    url,
    RESP: 2,
    disableOfflineQueue: true,
    ...(dedicated ? { socket: { reconnectStrategy: false as const } } : {}),
  });
  // A dropped connection is reported through the command that used it.
  client.on("error", () => {});
  return client;
}
type Connection = ReturnType<typeof connect>;

/** Commands that hold or change the state of a connection: refused, like Upstash does. */
const REFUSED = new Set([
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "QUIT",
  "RESET",
  "SELECT",
  "HELLO",
  "AUTH",
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "UNWATCH",
]);
const BLOCKING = new Set([
  "BLPOP",
  "BRPOP",
  "BRPOPLPUSH",
  "BLMOVE",
  "BLMPOP",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "WAIT",
  "WAITAOF",
]);

function isBlocking(command: readonly string[]): boolean {
  const name = (command[0] ?? "").toUpperCase();
  if (BLOCKING.has(name)) return true;
  if (name !== "XREAD" && name !== "XREADGROUP") return false;
  for (const arg of command) {
    const upper = arg.toUpperCase();
    if (upper === "STREAMS") return false;
    if (upper === "BLOCK") return true;
  }
  return false;
}

function stringifyArg(arg: unknown): string {
  if (typeof arg === "string") return arg;
  if (typeof arg === "number" || typeof arg === "boolean") return String(arg);
  return JSON.stringify(arg) ?? "";
}

/** Turn a JSON body into a command, or null when it is not an array of strings and numbers. */
function toCommand(value: unknown): string[] | null {
  if (!Array.isArray(value) || value.length === 0) return null;
  return value.map(stringifyArg);
}

/** Encode a reply for JSON, base64-encoding strings when the client asked for it. */
function encodeReply(reply: unknown, base64: boolean, top: boolean): Json {
  if (reply === null || reply === undefined) return null;
  if (typeof reply === "number") return reply;
  if (typeof reply === "bigint") return Number(reply);
  if (typeof reply === "boolean") return reply ? 1 : 0;
  if (Buffer.isBuffer(reply)) return base64 ? reply.toString("base64") : reply.toString("utf8");
  if (typeof reply === "string") {
    if (!base64 || (top && reply === "OK")) return reply;
    return Buffer.from(reply, "utf8").toString("base64");
  }
  if (Array.isArray(reply)) return reply.map((item) => encodeReply(item, base64, false));
  if (reply instanceof Error) return encodeReply(reply.message, base64, false);
  return encodeReply(String(reply), base64, false);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Start an Upstash-compatible REST server in front of the Redis at `redisUrl`.
 *
 * @example
 * ```ts
 * const redis = await startRedis();
 * const server = await startUpstashServer({ redisUrl: redis.url });
 * const client = new Redis({ url: server.url, token: server.token });
 * await client.set("k", "v");
 * await server.close();
 * ```
 */
export async function startUpstashServer(options: UpstashServerOptions): Promise<UpstashServer> {
  const token = options.token ?? randomUUID();
  let delayMs = options.delayMs ?? 0;
  let requests = 0;
  const commands: string[][] = [];

  const shared = connect(options.redisUrl);
  await shared.connect();

  // Connections for MULTI and blocking commands, kept for reuse.
  const idle: Connection[] = [];
  const dedicated = new Set<Connection>();
  let closing = false;
  const acquire = async (): Promise<Connection> => {
    const ready = idle.pop();
    if (ready) return ready;
    const connection = connect(options.redisUrl, true);
    dedicated.add(connection);
    try {
      await connection.connect();
    } catch (error) {
      dedicated.delete(connection);
      throw error;
    }
    return connection;
  };
  const release = (connection: Connection): void => {
    if (!closing && connection.isReady && idle.length < 8) {
      idle.push(connection);
      return;
    }
    dedicated.delete(connection);
    if (connection.isOpen) connection.destroy();
  };

  const exec = (connection: Connection, command: readonly string[]): Promise<unknown> =>
    connection.sendCommand<unknown>(command, { typeMapping: TYPE_MAPPING });

  const run = async (command: readonly string[], base64: boolean): Promise<Outcome> => {
    const name = (command[0] ?? "").toUpperCase();
    if (REFUSED.has(name)) return { error: `ERR Command is not available over REST: '${command[0]}'` };
    try {
      if (!isBlocking(command)) return { result: encodeReply(await exec(shared, command), base64, true) };
      const connection = await acquire();
      try {
        return { result: encodeReply(await exec(connection, command), base64, true) };
      } finally {
        release(connection);
      }
    } catch (error) {
      return { error: errorMessage(error) };
    }
  };

  const runPipeline = async (batch: readonly (readonly string[])[], base64: boolean): Promise<Outcome[]> => {
    if (batch.some(isBlocking)) {
      const out: Outcome[] = [];
      for (const command of batch) out.push(await run(command, base64));
      return out;
    }
    // node-redis writes them in call order on one connection: order is kept without waiting for each.
    return await Promise.all(batch.map((command) => run(command, base64)));
  };

  const runTransaction = async (
    batch: readonly (readonly string[])[],
    base64: boolean,
  ): Promise<Outcome[] | string> => {
    for (const command of batch) {
      const name = (command[0] ?? "").toUpperCase();
      if (REFUSED.has(name) || isBlocking(command))
        return `ERR Command is not allowed in a transaction: '${command[0]}'`;
    }
    const connection = await acquire();
    try {
      await exec(connection, ["MULTI"]);
      // Queue errors mark the transaction dirty: EXEC then answers EXECABORT.
      await Promise.all(batch.map((command) => exec(connection, command).catch(() => undefined)));
      const replies = await exec(connection, ["EXEC"]);
      if (!Array.isArray(replies)) return "EXECABORT Transaction discarded";
      return replies.map(
        (reply: unknown): Outcome =>
          reply instanceof Error ? { error: reply.message } : { result: encodeReply(reply, base64, true) },
      );
    } catch (error) {
      return errorMessage(error);
    } finally {
      release(connection);
    }
  };

  // Subscribe streams: each holds a Redis connection of its own in subscriber mode.
  const subscribeEnabled = options.subscribe ?? true;
  const streams = new Set<ServerResponse>();
  const subscribers = new Set<Connection>();
  let openRequests = 0;

  const stream = async (res: ServerResponse, kind: "subscribe" | "psubscribe", names: readonly string[]) => {
    if (!subscribeEnabled) {
      send(res, 405, { error: "ERR streaming subscribe is not supported by this endpoint" });
      return;
    }
    const unique = [...new Set(names)];
    if (unique.length === 0) {
      send(res, 400, { error: `ERR wrong number of arguments for '${kind}' command` });
      return;
    }
    const subscriber = connect(options.redisUrl, true);
    subscribers.add(subscriber);
    let gone = false;
    const drop = (): void => {
      gone = true;
      subscribers.delete(subscriber);
      if (subscriber.isOpen) subscriber.destroy();
    };
    res.once("close", drop);
    // Lines that arrive before the subscribe lines are written wait here, so the client always sees the confirmation first.
    let pending: Buffer[] | null = [];
    const write = (line: Buffer): void => {
      if (gone) return;
      if (pending) pending.push(line);
      else res.write(line);
    };
    const line = (...parts: (string | Buffer)[]): Buffer => {
      const chunks: Buffer[] = [Buffer.from("data: ")];
      parts.forEach((part, index) => {
        if (index > 0) chunks.push(Buffer.from(","));
        chunks.push(typeof part === "string" ? Buffer.from(part, "utf8") : part);
      });
      chunks.push(Buffer.from("\n\n"));
      return Buffer.concat(chunks);
    };
    try {
      await subscriber.connect();
      if (kind === "subscribe") {
        await subscriber.subscribe([...unique], (message, channel) => write(line("message", channel, message)), true);
      } else {
        for (const pattern of unique) {
          await subscriber.pSubscribe(
            pattern,
            (message, channel) => write(line("pmessage", pattern, channel, message)),
            true,
          );
        }
      }
    } catch (error) {
      drop();
      if (!res.destroyed) send(res, 500, { error: `ERR ${errorMessage(error)}` });
      return;
    }
    if (gone) return;
    // Redis went away: the stream ends, so the client notices and subscribes again.
    // node-redis reports a lost connection that does not reconnect as an "error" alone.
    subscriber.once("error", () => {
      if (!res.writableEnded) res.end();
    });
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    streams.add(res);
    res.once("close", () => streams.delete(res));
    unique.forEach((name, index) => {
      res.write(line(kind, name, String(index + 1)));
    });
    const held = pending;
    pending = null;
    for (const chunk of held) res.write(chunk);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    requests += 1;
    openRequests += 1;
    res.once("close", () => {
      openRequests -= 1;
    });
    if (delayMs > 0) await sleep(delayMs);
    const url = new URL(req.url ?? "/", "http://localhost");
    const auth = req.headers.authorization ?? "";
    const given = auth.startsWith("Bearer ") ? auth.slice("Bearer ".length) : url.searchParams.get("_token");
    if (given !== token) {
      send(res, 401, { error: "Unauthorized: invalid or missing auth token" });
      return;
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const body = await readBody(req);
    const path = url.pathname.replace(/\/+$/, "");

    if (path === "" || path === "/pipeline" || path === "/multi-exec") {
      if (req.method !== "POST") {
        send(res, 405, { error: "ERR Use POST with a JSON body" });
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        send(res, 400, { error: "ERR failed to parse command" });
        return;
      }
      if (path === "") {
        const command = toCommand(parsed);
        if (!command) {
          send(res, 400, { error: "ERR failed to parse command" });
          return;
        }
        commands.push(command);
        const outcome = await run(command, base64);
        send(res, "error" in outcome ? 400 : 200, outcome);
        return;
      }
      const batch = Array.isArray(parsed) ? parsed.map(toCommand) : [null];
      if (batch.length === 0 || batch.some((command) => command === null)) {
        send(res, 400, { error: "ERR failed to parse pipeline request" });
        return;
      }
      const valid = batch.filter((command): command is string[] => command !== null);
      commands.push(...valid);
      if (path === "/pipeline") {
        send(res, 200, await runPipeline(valid, base64));
        return;
      }
      const outcome = await runTransaction(valid, base64);
      if (typeof outcome === "string") send(res, 400, { error: outcome });
      else send(res, 200, outcome);
      return;
    }

    // Path-style command: /set/key/value, with a POST body as the last argument.
    const command = path
      .split("/")
      .filter((part) => part !== "")
      .map((part) => decodeURIComponent(part));
    const name = (command[0] ?? "").toLowerCase();
    if (name === "subscribe" || name === "psubscribe") {
      commands.push(command);
      await stream(res, name, command.slice(1));
      return;
    }
    if (req.method === "POST" && body !== "") command.push(body);
    commands.push(command);
    const outcome = await run(command, base64);
    send(res, "error" in outcome ? 400 : 200, outcome);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { error: `ERR ${errorMessage(error)}` });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    port,
    get requests() {
      return requests;
    },
    get openRequests() {
      return openRequests;
    },
    get openStreams() {
      return streams.size;
    },
    commands,
    reset() {
      commands.length = 0;
      requests = 0;
    },
    setDelay(ms: number) {
      delayMs = ms;
    },
    dropStreams() {
      const open = [...streams];
      for (const res of open) res.destroy();
      return open.length;
    },
    close() {
      closed ??= (async () => {
        closing = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await stopped;
        for (const connection of [...dedicated, ...subscribers, shared]) if (connection.isOpen) connection.destroy();
        dedicated.clear();
        subscribers.clear();
        idle.length = 0;
      })();
      return closed;
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      redis: { type: "string", default: "redis://127.0.0.1:6379" },
      port: { type: "string", default: "8079" },
      token: { type: "string", default: "dev" },
      delay: { type: "string", default: "0" },
      subscribe: { type: "boolean", default: true },
    },
    allowNegative: true,
  });
  const server = await startUpstashServer({
    redisUrl: values.redis,
    token: values.token,
    port: Number(values.port),
    delayMs: Number(values.delay),
    subscribe: values.subscribe,
  });
  console.log(`Upstash-compatible REST server in front of ${values.redis}`);
  console.log(`UPSTASH_REDIS_REST_URL=${server.url}`);
  console.log(`UPSTASH_REDIS_REST_TOKEN=${server.token}`);
  const stop = (): void => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(entry).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
