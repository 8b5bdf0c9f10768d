/**
 * The commands: watch, publish, inspect, cancel, demo.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { assertId, assertStreamId } from "../core/wire/index.ts";
import {
  encodeUpdate,
  type Logger,
  type ProgressStatus,
  type ProgressUpdate,
  ProgressValidationError,
  STATUSES,
  silentLogger,
  type Target,
} from "../index.ts";
import { type CommandSpec, EXIT, flag, type OptionValues, str, UsageError } from "./args.ts";
import { type Backend, backendConfig, type Env, explain, NO_BACKEND, openBackend, stderrLogger } from "./backend.ts";
import { Board, type CliOutput, historyTable, snapshotText } from "./render.ts";

/** What a command gets from the process: its output, environment and Ctrl-C. */
export interface CliIo {
  readonly stdout: CliOutput;
  readonly stderr: CliOutput;
  readonly env: Env;
  /** Aborts on Ctrl-C: `watch` stops, `demo` stops its child. */
  readonly signal?: AbortSignal | undefined;
}

/** One run of a command. */
export interface CommandContext {
  readonly io: CliIo;
  readonly command: CommandSpec;
  readonly operands: readonly string[];
  readonly values: OptionValues;
}

const fail = (io: CliIo, message: string): void => {
  io.stderr.write(`progresscast: ${message}\n`);
};

/**
 * Open the configured backend, run `body` with it, close it, and turn any
 * failure into one line on stderr and an exit status.
 */
async function withBackend(
  ctx: CommandContext,
  logger: Logger,
  body: (backend: Backend) => Promise<number>,
): Promise<number> {
  const config = backendConfig(ctx.values, ctx.io.env);
  if (config === null) throw new UsageError(NO_BACKEND);
  const backend = await openBackend(config, logger);
  try {
    return await body(backend);
  } catch (error) {
    const { message, code } = explain(error, backend);
    fail(ctx.io, message);
    return code;
  } finally {
    // Never let a stuck close keep the command from exiting.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      backend.progress.close().catch(() => {}),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 2000);
      }),
    ]);
    clearTimeout(timer);
  }
}

function number(field: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n)) throw new ProgressValidationError(field, raw, "must be a number");
  return n;
}

function status(raw: string | undefined): ProgressStatus | undefined {
  if (raw === undefined) return undefined;
  const found = STATUSES.find((s) => s === raw);
  if (found === undefined) throw new ProgressValidationError("status", raw, `must be one of ${STATUSES.join(", ")}`);
  return found;
}

function data(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ProgressValidationError("data", raw, `must be a JSON object, e.g. --data '{"rows":42}'`);
  }
  return parsed as Record<string, unknown>;
}

/** The update described by `publish`'s options. @throws {ProgressValidationError} naming the field. */
export function updateFrom(values: OptionValues): ProgressUpdate {
  const u: { -readonly [K in keyof ProgressUpdate]: ProgressUpdate[K] } = {};
  u.progress = number("progress", str(values, "progress"));
  u.current = number("current", str(values, "current"));
  u.total = number("total", str(values, "total"));
  u.eta = number("eta", str(values, "eta"));
  u.status = status(str(values, "status"));
  u.message = str(values, "message");
  u.type = str(values, "type");
  u.cid = str(values, "cid");
  u.data = data(str(values, "data"));
  for (const key of Object.keys(u) as (keyof ProgressUpdate)[]) if (u[key] === undefined) delete u[key];
  return u;
}

/** `publish <op> ...`: one event, its id and seq printed. */
export async function publish(ctx: CommandContext): Promise<number> {
  const { io, values } = ctx;
  const op = ctx.operands[0] ?? "";
  const update = updateFrom(values);
  const scope = str(values, "scope");
  // Bad input fails before anything connects.
  encodeUpdate(op, update);
  if (scope !== undefined) assertId(scope, "scope");
  const json = flag(values, "json");
  return await withBackend(ctx, silentLogger, async ({ progress }) => {
    // A cheap read first: an unreachable backend fails within the connect timeout,
    // not after the retries a terminal event is entitled to.
    await progress.get(op);
    const result = await progress.publish(op, update, {
      scope,
      allowBackwards: flag(values, "allow-backwards"),
      allowAfterTerminal: flag(values, "allow-after-terminal"),
    });
    if (result.outcome === "failed") throw result.error;
    if (json) {
      io.stdout.write(`${JSON.stringify(result)}\n`);
    } else if (result.ok) {
      io.stdout.write(`published ${op}: seq ${result.seq}, id ${result.id}\n`);
    }
    if (result.cancelled !== null && !json) {
      io.stderr.write(`progresscast: ${op} was asked to stop: ${result.cancelled}\n`);
    }
    if (result.ok) return EXIT.ok;
    fail(
      io,
      result.reason === "terminal"
        ? `refused: ${op} already ended (seq ${result.seq}); pass --allow-after-terminal to write anyway`
        : `refused: progress of ${op} would move backwards (seq ${result.seq}); pass --allow-backwards to write anyway`,
    );
    return EXIT.refused;
  });
}

function target(ctx: CommandContext): Target {
  const op = ctx.operands[0];
  const scope = str(ctx.values, "scope");
  if (op !== undefined && scope !== undefined) {
    throw new UsageError(`${ctx.command.name}: give an operation id or --scope, not both`, ctx.command);
  }
  if (scope !== undefined) {
    assertId(scope, "scope");
    return { scope };
  }
  if (op === undefined) throw new UsageError(`${ctx.command.name}: give an operation id or --scope`, ctx.command);
  assertId(op);
  return op;
}

/** `inspect <op>`: the snapshot and the history. */
export async function inspect(ctx: CommandContext): Promise<number> {
  const { io, values } = ctx;
  const t = target(ctx);
  const rawLimit = str(values, "limit");
  const limit = rawLimit === undefined ? 1000 : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ProgressValidationError("limit", rawLimit, "must be a positive integer");
  }
  const after = str(values, "after");
  if (after !== undefined) assertStreamId(after, "after");
  return await withBackend(ctx, silentLogger, async ({ progress }) => {
    const snapshot = typeof t === "string" ? await progress.get(t) : null;
    const history = await progress.history(t, { after, limit });
    const unknown = typeof t === "string" && snapshot === null && history.length === 0;
    if (flag(values, "json")) {
      const out = typeof t === "string" ? { op: t, snapshot, history } : { scope: t.scope, history };
      io.stdout.write(`${JSON.stringify(out)}\n`);
    } else if (!unknown) {
      const parts: string[] = [];
      if (snapshot !== null) parts.push(snapshotText(snapshot));
      const what = typeof t === "string" ? "" : ` of scope ${t.scope}`;
      const n = `${history.length} event${history.length === 1 ? "" : "s"}`;
      parts.push(history.length === 0 ? `history${what}: no events` : `history${what}: ${n}`);
      if (history.length > 0) parts.push(historyTable(history, typeof t !== "string"));
      const last = history[history.length - 1];
      if (history.length === limit && last !== undefined) {
        parts.push(`(the first ${limit} shown: --after ${last.id} for more)`);
      }
      io.stdout.write(`${parts.join("\n\n")}\n`);
    }
    if (unknown) {
      fail(io, `no operation ${JSON.stringify(t)} (unknown, or expired)`);
      return EXIT.failure;
    }
    return EXIT.ok;
  });
}

/** `cancel <op>`: ask it to stop. */
export async function cancel(ctx: CommandContext): Promise<number> {
  const { io, values } = ctx;
  const op = ctx.operands[0] ?? "";
  assertId(op);
  const reason = str(values, "reason") ?? "cancelled";
  return await withBackend(ctx, silentLogger, async ({ progress }) => {
    const cancelled = await progress.cancel(op, reason);
    if (flag(values, "json")) io.stdout.write(`${JSON.stringify({ op, cancelled, reason })}\n`);
    else if (cancelled) io.stdout.write(`cancel requested: ${op} (${reason})\n`);
    if (cancelled) return EXIT.ok;
    const known = (await progress.get(op)) !== null;
    fail(
      io,
      known
        ? `${op} already ended: nothing to cancel`
        : `no operation ${JSON.stringify(op)} (unknown, or expired): nothing to cancel`,
    );
    return EXIT.refused;
  });
}

/** `watch <op>` or `watch --scope s`: live bars, or JSON lines. */
export async function watch(ctx: CommandContext): Promise<number> {
  const { io, values } = ctx;
  const t = target(ctx);
  const json = flag(values, "json");
  const after = str(values, "after");
  if (after !== undefined) assertStreamId(after, "after");
  const logger = stderrLogger((l) => io.stderr.write(l));
  return await withBackend(ctx, logger, async ({ progress }) => {
    const board = json ? undefined : new Board(io.stdout);
    let last: ProgressStatus | undefined;
    try {
      for await (const item of progress.watch(t, { after, signal: io.signal })) {
        if (item.kind === "event") last = item.event.status;
        else if (item.snapshot !== null) last = item.snapshot.status;
        if (json) {
          io.stdout.write(`${JSON.stringify(item)}\n`);
        } else if (board !== undefined) {
          if (item.kind === "event") board.event(item.event);
          else {
            if (item.kind === "reset")
              board.note("(resumed from an id older than the kept history: from the snapshot)");
            if (item.snapshot !== null) board.snapshot(item.snapshot);
            else if (typeof t === "string") board.waiting(t);
          }
        }
      }
    } finally {
      board?.end();
    }
    if (io.signal?.aborted) return EXIT.interrupted;
    if (typeof t !== "string") return EXIT.ok;
    return last === "completed" ? EXIT.ok : EXIT.failure;
  });
}

/** The folder of the progresscast package this file belongs to (the repository, or node_modules/progresscast). */
export function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        const { name } = JSON.parse(readFileSync(pkg, "utf8")) as { name?: unknown };
        if (name === "progresscast") return dir;
      } catch {
        // not ours: keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/** The package's version, from its package.json. */
export function version(): string {
  const root = packageRoot();
  if (root === undefined) return "unknown";
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version?: unknown };
  return typeof version === "string" ? version : "unknown";
}

/** `demo`: run demo/main.ts with tsx, when this is a clone of the repository. */
export async function demo(ctx: CommandContext): Promise<number> {
  const { io, values } = ctx;
  const root = packageRoot();
  const script = root === undefined ? undefined : join(root, "demo", "main.ts");
  const hasTsx = root !== undefined && existsSync(join(root, "node_modules", "tsx", "package.json"));
  if (root === undefined || script === undefined || !existsSync(script) || !hasTsx) {
    io.stdout.write(
      "The demo runs from a clone of the progresscast repository:\n\n" +
        "  npm install && npm start              # memory backend\n" +
        "  REDIS_URL=redis://127.0.0.1:6379 npm start\n\n" +
        "This installed copy has no demo/ folder (or no tsx). Try the command with Redis instead:\n" +
        "  progresscast watch my-job --redis redis://127.0.0.1:6379\n" +
        '  progresscast publish my-job --progress 40 --message "working" --redis redis://127.0.0.1:6379\n',
    );
    return EXIT.ok;
  }
  const env: Record<string, string | undefined> = { ...io.env };
  const redis = str(values, "redis");
  if (redis !== undefined) env.REDIS_URL = redis;
  const port = str(values, "port");
  if (port !== undefined) env.PORT = port;
  return await new Promise<number>((resolve) => {
    // Its own process group: a Ctrl-C in the terminal reaches only this process, which passes on exactly one.
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    child.stdout.on("data", (chunk: Buffer) => io.stdout.write(chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => io.stderr.write(chunk.toString()));
    const stop = (): void => {
      child.kill("SIGINT");
    };
    const orphan = (): void => {
      child.kill("SIGKILL");
    };
    io.signal?.addEventListener("abort", stop, { once: true });
    process.once("exit", orphan);
    const done = (code: number): void => {
      io.signal?.removeEventListener("abort", stop);
      process.off("exit", orphan);
      resolve(code);
    };
    child.on("error", (error) => {
      fail(io, `cannot run the demo: ${error.message}`);
      done(EXIT.failure);
    });
    child.on("close", (code, signal) => {
      done(signal !== null || io.signal?.aborted ? EXIT.interrupted : (code ?? EXIT.failure));
    });
  });
}

/** Turn an error thrown before a backend was opened into a line and an exit status. */
export function explainEarly(io: CliIo, error: unknown): number {
  const { message, code } = explain(error, undefined);
  fail(io, message);
  return code;
}
