/**
 * Child processes of the load benchmarks (`soak.ts`, `capacity.ts`,
 * `fanin.ts`): the SSE clients (`sse-clients.ts`), the publishers
 * (`publisher.ts`, `fanin-publisher.ts`) and the watching servers
 * (`fanin-server.ts`) run in processes of their own so each one's CPU is its
 * own, and talk to the parent over IPC with the messages below.
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { RedisServer } from "../../test/support/redis-server.ts";

/** Last state a client saw, or the final state of an operation. */
export interface Seen {
  readonly id: string | undefined;
  readonly seq: number;
  readonly status: string;
}

export type ToClients =
  | {
      readonly type: "start";
      /** Base URL of the server, e.g. `http://127.0.0.1:1234`; clients get `${base}/progress?op=<op>`. */
      readonly base: string;
      /** One entry per connection: the operation it follows. */
      readonly ops: readonly string[];
      /** Connections opened before waiting for them to be ready. @default 200 */
      readonly window?: number;
    }
  | { readonly type: "stats" }
  | {
      readonly type: "finish";
      /** Final state per operation (as `progress.get` read it), or null to check only that a terminal event arrived. */
      readonly finals: Readonly<Record<string, Seen>> | null;
      readonly timeoutMs: number;
    };

export interface ClientStats {
  readonly type: "stats";
  /** Connections that received their first message (snapshot). */
  readonly ready: number;
  readonly open: number;
  readonly events: number;
  readonly reconnects: number;
  readonly errors: number;
}

export interface ClientResult {
  readonly type: "result";
  readonly clients: number;
  /** Connections that received a terminal event of their operation as an event (not only in a snapshot). */
  readonly terminalEvents: number;
  /** Connections whose last state is terminal (event or snapshot). */
  readonly ended: number;
  /** Connections whose last state equals the final state given (0 when none was given). */
  readonly correct: number;
  /** A few connections that did not end on the final state. */
  readonly mismatches: readonly { readonly op: string; readonly last: Seen | null; readonly final: Seen | null }[];
  readonly events: number;
  readonly reconnects: number;
  readonly errors: number;
  /** Publish-to-receive latency histogram (see `histogram.ts`) of events carrying `data.t`. */
  readonly latency: readonly number[];
  /** CPU (user + system) of this client process since it started, ms. */
  readonly cpuMs: number;
}

export type FromClients =
  | { readonly type: "ready"; readonly ready: number; readonly failed: number; readonly ms: number }
  | ClientStats
  | ClientResult;

export type ToPublisher =
  | {
      readonly type: "init";
      readonly redisUrl: string;
      readonly prefix: string;
      readonly maxLen: number;
      readonly ops: readonly string[];
    }
  | {
      readonly type: "run";
      /** Events per second over all operations, round robin. */
      readonly rate: number;
      readonly seconds: number;
    }
  | { readonly type: "stats" };

export interface PublisherStats {
  readonly type: "stats";
  readonly published: number;
  readonly failed: number;
  readonly inFlight: number;
  /** How far the publisher is behind its schedule, in events. */
  readonly behind: number;
}

export interface PublisherDone {
  readonly type: "done";
  readonly published: number;
  readonly refused: number;
  readonly failed: number;
  readonly seconds: number;
  /** Events per second achieved over the run (terminal events not counted). */
  readonly rate: number;
  /** Most events the publisher was ever behind its schedule. */
  readonly maxBehind: number;
  /** Terminal events published (one per operation). */
  readonly terminals: number;
  readonly terminalFailures: number;
  /** CPU (user + system) of the publisher process over the run, ms. */
  readonly cpuMs: number;
}

export type FromPublisher =
  | { readonly type: "initialized"; readonly ms: number }
  | PublisherStats
  | PublisherDone
  | { readonly type: "error"; readonly message: string };

/** What `fanin.ts` compares: how S processes come to hear of the events of K operations. */
export type FaninVariant = "raw" | "xread" | "live" | "bullmq";

export type ToFaninServer =
  | {
      readonly type: "start";
      readonly variant: FaninVariant;
      readonly redisUrl: string;
      /** Key prefix of the progresscast variants; queue name of BullMQ; key prefix of the raw streams. */
      readonly prefix: string;
      /** The operations (BullMQ: job ids) to watch. */
      readonly ops: readonly string[];
    }
  | { readonly type: "mark" }
  | {
      readonly type: "wait";
      /** Answer once this many events were received, or after timeoutMs. */
      readonly count: number;
      readonly timeoutMs: number;
    };

export type FromFaninServer =
  | { readonly type: "ready"; readonly ms: number }
  | {
      readonly type: "mark";
      /** Events received since the watches were ready. */
      readonly received: number;
      /** CPU (user + system) of this process since it started, µs. */
      readonly cpuUs: number;
      /** This process's clock (performance.now()), ms. */
      readonly at: number;
    }
  | { readonly type: "count"; readonly received: number }
  | { readonly type: "error"; readonly message: string };

export type ToFaninPublisher =
  | {
      readonly type: "init";
      readonly variant: FaninVariant;
      readonly redisUrl: string;
      readonly prefix: string;
      readonly ops: readonly string[];
    }
  | {
      readonly type: "run";
      /** Events per second over all operations, round robin. */
      readonly rate: number;
      readonly seconds: number;
    }
  | { readonly type: "stats" };

export type FromFaninPublisher =
  | { readonly type: "initialized"; readonly ms: number }
  | { readonly type: "stats"; readonly published: number; readonly failed: number; readonly behind: number }
  | {
      readonly type: "done";
      readonly published: number;
      readonly failed: number;
      readonly seconds: number;
      /** Events per second achieved over the run. */
      readonly rate: number;
      readonly maxBehind: number;
      /** CPU (user + system) of the publisher process over the run, ms. */
      readonly cpuMs: number;
    }
  | { readonly type: "error"; readonly message: string };

/** A forked child speaking the messages above. */
export interface Child<In, Out extends { readonly type: string }> {
  readonly process: ChildProcess;
  send(message: In): void;
  /** The next message of this type; rejects when the child exits first or after timeoutMs. */
  next<T extends Out["type"]>(type: T, timeoutMs: number): Promise<Extract<Out, { type: T }>>;
  /** Kill it (SIGKILL) if still running. */
  kill(): void;
}

/**
 * Fork one of the child scripts of this folder under tsx. The child exits when
 * the parent goes away (its IPC channel closes).
 */
export function forkChild<In, Out extends { readonly type: string }>(
  script: "sse-clients.ts" | "publisher.ts" | "fanin-server.ts" | "fanin-publisher.ts",
  label: string,
): Child<In, Out> {
  const child = fork(fileURLToPath(new URL(`./${script}`, import.meta.url)), [label], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting = new Set<{ type: string; resolve(m: Out): void; reject(e: Error): void }>();
  child.on("message", (message: Out) => {
    for (const w of waiting) {
      if (w.type === message.type) {
        waiting.delete(w);
        w.resolve(message);
        return;
      }
    }
  });
  child.on("exit", (code, signal) => {
    for (const w of waiting) w.reject(new Error(`${label} exited (${signal ?? code}) while waiting for "${w.type}"`));
    waiting.clear();
  });
  return {
    process: child,
    send(message) {
      if (child.connected) child.send(message as object);
    },
    next(type, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          reject(new Error(`${label} is not running`));
          return;
        }
        const w = {
          type,
          resolve: (m: Out) => {
            clearTimeout(timer);
            resolve(m as Extract<Out, { type: typeof type }>);
          },
          reject: (e: Error) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        const timer = setTimeout(() => {
          waiting.delete(w);
          reject(new Error(`${label} did not answer "${type}" within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.add(w);
      });
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Open-file limit (`ulimit -n`) of this process, which the children inherit; NaN when unknown. */
export function openFileLimit(): number {
  try {
    const out = execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim();
    return out === "unlimited" ? Number.POSITIVE_INFINITY : Number(out);
  } catch {
    return Number.NaN;
  }
}

/** What a benchmark stops on the way out, whatever happens: its child processes and its redis-server. */
export interface Supervisor {
  readonly children: Child<unknown, { type: string }>[];
  /** The redis-server it started, once started. */
  redis: RedisServer | undefined;
  /** Stop everything started, say why on stderr, and exit with status 2. */
  giveUp(why: string): never;
  /** The run ended in time: stop the watchdog. */
  done(): void;
}

/**
 * Watch over a benchmark named `name`: on an interrupt, a crash, an unhandled
 * rejection or a run longer than `limitS` seconds, stop its children and its
 * redis-server and exit 2.
 */
export function supervise(name: string, limitS: number): Supervisor {
  const supervisor: Supervisor = {
    children: [],
    redis: undefined,
    giveUp(why: string): never {
      console.error(`${name}: ${why}`);
      for (const c of supervisor.children) c.kill();
      void supervisor.redis?.close();
      process.exit(2);
    },
    done() {
      clearTimeout(watchdog);
    },
  };
  const watchdog = setTimeout(() => supervisor.giveUp(`did not finish within ${limitS} s`), limitS * 1000);
  process.on("SIGINT", () => supervisor.giveUp("interrupted"));
  process.on("uncaughtException", (error) => supervisor.giveUp(error.stack ?? error.message));
  process.on("unhandledRejection", (reason) => supervisor.giveUp(String(reason)));
  return supervisor;
}
