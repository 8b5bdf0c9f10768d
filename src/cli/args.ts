/**
 * Command-line arguments: the commands, their options and help texts, parsed
 * with `node:util` `parseArgs` (no dependency).
 *
 * @module
 */
import { parseArgs } from "node:util";

/** Exit codes of the `progresscast` command. */
export const EXIT = {
  /** Done (for `watch`: the operation completed). */
  ok: 0,
  /** The backend failed or could not be reached (for `watch`: the operation failed or was cancelled). */
  failure: 1,
  /** Bad usage or bad input. */
  usage: 2,
  /** Refused: a publish broke the ordering rules, or `cancel` found the operation already ended or unknown. */
  refused: 3,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

type OptionSpec = { readonly type: "string" | "boolean"; readonly short?: string; readonly multiple?: boolean };
type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Options every command takes. */
const GLOBAL: OptionSpecs = {
  redis: { type: "string" },
  "redis-cluster": { type: "string" },
  "upstash-url": { type: "string" },
  "upstash-token": { type: "string" },
  prefix: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
};

/** One command: its options, how many operands it takes and its help. */
export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly options: OptionSpecs;
  /** Operands after the command name: [min, max]. */
  readonly operands: readonly [number, number];
  readonly help: string;
}

const BACKEND_HELP = `Backend (every command but demo; serve runs on an in-process memory backend without one):
  --redis <url>            Redis URL, e.g. redis://127.0.0.1:6379 (env REDIS_URL);
                           redis+cluster://h1:p1,h2:p2 for a Redis Cluster
  --redis-cluster <nodes>  Redis Cluster seed nodes, e.g. 10.0.0.1:7000,10.0.0.2:7000
  --upstash-url <url>      Upstash REST URL (env UPSTASH_REDIS_REST_URL)
  --upstash-token <token>  Upstash REST token (env UPSTASH_REDIS_REST_TOKEN)
  --prefix <prefix>        key prefix (default "pc")`;

/** Every command, by name. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  watch: {
    name: "watch",
    summary: "follow an operation (or a scope) live: a progress bar, or JSON lines",
    usage:
      "progresscast watch <op> [--json] [--after <id>]\n       progresscast watch --scope <scope> [--json] [--after <id>]",
    options: { scope: { type: "string" }, after: { type: "string" }, json: { type: "boolean" } },
    operands: [0, 1],
    help: `Shows the snapshot, the history, then live events until the operation ends
(completed, failed or cancelled) or Ctrl-C. A scope is followed until Ctrl-C.

Options:
  --scope <scope>  follow every operation published with this scope
  --after <id>     resume after this event id (only later events)
  --json           one JSON line per watch item: {"kind":"snapshot"|"reset","snapshot":...}
                   or {"kind":"event","event":...}

Exit status: 0 when the operation completed, 1 when it failed or was cancelled
(or the backend failed), 130 on Ctrl-C.`,
  },
  publish: {
    name: "publish",
    summary: "publish one event (for shell scripts and jobs in other languages)",
    usage: "progresscast publish <op> [--progress <0..100>] [--message <text>] [--status <status>] [...]",
    options: {
      progress: { type: "string" },
      message: { type: "string" },
      status: { type: "string" },
      current: { type: "string" },
      total: { type: "string" },
      type: { type: "string" },
      data: { type: "string" },
      eta: { type: "string" },
      scope: { type: "string" },
      cid: { type: "string" },
      "allow-backwards": { type: "boolean" },
      "allow-after-terminal": { type: "boolean" },
      json: { type: "boolean" },
    },
    operands: [1, 1],
    help: `Options:
  --progress <n>            percent done, 0 to 100 (derived from --current/--total when absent)
  --message <text>          human text
  --status <status>         queued, running (default), completed, failed or cancelled
  --current <n> --total <n> counts (rows, files)
  --type <type>             event type (default "progress")
  --data <json>             a JSON object of application metadata, e.g. '{"rows":42}'
  --eta <seconds>           estimated seconds remaining
  --scope <scope>           also append the event to this scope's stream
  --cid <id>                correlation id
  --allow-backwards         accept progress below the current
  --allow-after-terminal    accept an event after the operation ended
  --json                    print the result as JSON

Prints the event id and seq. When the operation was asked to stop, says so
(and "cancelled" in --json).

Exit status: 0 published, 1 the backend failed, 2 bad input (the message names
the field), 3 refused by the ordering rules.`,
  },
  inspect: {
    name: "inspect",
    summary: "show an operation's snapshot and history",
    usage:
      "progresscast inspect <op> [--json] [--limit <n>] [--after <id>]\n       progresscast inspect --scope <scope> [--json] [--limit <n>] [--after <id>]",
    options: {
      scope: { type: "string" },
      limit: { type: "string" },
      after: { type: "string" },
      json: { type: "boolean" },
    },
    operands: [0, 1],
    help: `Options:
  --scope <scope>  the history of a scope instead of an operation
  --limit <n>      most events shown, oldest first (default 1000)
  --after <id>     only events after this id
  --json           {"snapshot": ..., "history": [...]}

Exit status: 0 found, 1 unknown (or expired) operation or backend failure.`,
  },
  cancel: {
    name: "cancel",
    summary: "ask an operation to stop",
    usage: "progresscast cancel <op> [--reason <text>]",
    options: { reason: { type: "string" }, json: { type: "boolean" } },
    operands: [1, 1],
    help: `The job sees the request on its next publish (or its task's next check),
aborts task.signal and ends "cancelled".

Options:
  --reason <text>  why (default "cancelled"), at most 512 characters
  --json           print {"op": ..., "cancelled": true|false}

Exit status: 0 requested, 1 backend failure, 3 the operation already ended
or does not exist (nothing is written then).`,
  },
  serve: {
    name: "serve",
    summary: "run a gateway: SSE and WebSocket to browsers, with signed-token authorization",
    usage:
      "progresscast serve --jwt-secret <secret> [--port <n>] [--host <addr>] [--cors-origin <origin>]...\n" +
      "       progresscast serve --jwt-public-key <file.pem> [...]\n       progresscast serve --no-auth [...]",
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "jwt-secret": { type: "string" },
      "jwt-public-key": { type: "string" },
      "no-auth": { type: "boolean" },
      "cors-origin": { type: "string", multiple: true },
      "drain-timeout": { type: "string" },
    },
    operands: [0, 0],
    help: `Serves browsers until SIGTERM or Ctrl-C, then stops accepting, ends open
streams (clients resume elsewhere from their last event id) and exits 0.

  GET /ops/<op>/events        SSE of one operation (Last-Event-ID or ?after= resumes)
  GET /scopes/<scope>/events  SSE of every operation of a scope
  GET /ws                     the WebSocket protocol (watch, unwatch, ping)
  GET /healthz                200 {"status":"ok"} when the backend answers, else 503
  GET /metrics                Prometheus text (needs the prom-client package)

A request carries a JWT in "Authorization: Bearer <token>" or "?token=<token>"
(an EventSource cannot set headers). Its claims: "ops" and/or "scopes", the ids
the bearer may watch, and "exp" (required). No, bad or expired token: 401; a
target outside the claims: 403.

Options:
  --port <n>               where to listen (default 8080; 0 picks a free port)
  --host <addr>            address to bind (default 127.0.0.1)
  --jwt-secret <secret>    HS256 secret, at least 32 bytes (env PROGRESSCAST_JWT_SECRET)
  --jwt-public-key <file>  PEM public key for RS256 (RSA) or ES256/ES384/ES512 (EC)
                           tokens; may be given with --jwt-secret
  --no-auth                serve without tokens: anyone may watch anything; only
                           on a loopback host
  --cors-origin <origin>   let pages of this origin read the streams (repeat for
                           more; "*" for any); WebSocket upgrades from other
                           origins are refused once one is given
  --drain-timeout <s>      on shutdown, most seconds to wait for open streams to
                           end (default 10)

Exit status: 0 stopped by SIGTERM or Ctrl-C, 1 could not listen or reach the
backend, 2 bad usage (no secret and no --no-auth; --no-auth on another host).`,
  },
  demo: {
    name: "demo",
    summary: "run the demo (from a clone of the repository)",
    usage: "progresscast demo [--port <n>] [--redis <url>]",
    options: { port: { type: "string" } },
    operands: [0, 0],
    help: `Runs demo/main.ts, what \`npm start\` runs, until Ctrl-C: on the memory
backend, or on Redis with --redis or REDIS_URL. Needs a clone of the
repository with its dependencies installed; an installed package says how to
get one.

Options:
  --port <n>  where the demo listens (env PORT; 0 picks a free port)`,
  },
};

/** The overview printed by `progresscast --help` and on bad usage. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: progresscast <command> [options]

Commands:
${lines.join("\n")}

${BACKEND_HELP}

Run "progresscast <command> --help" for a command's options.
`;
}

/** Help of one command. */
export function commandHelp(spec: CommandSpec): string {
  return `Usage: ${spec.usage}

${spec.summary[0]?.toUpperCase() ?? ""}${spec.summary.slice(1)}.

${spec.help}

${spec.name === "demo" ? "" : `${BACKEND_HELP}\n`}`;
}

/** A usage error: printed with the usage of its command, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
  readonly command: CommandSpec | undefined;
  constructor(message: string, command?: CommandSpec) {
    super(message);
    this.command = command;
  }
}

/** Parsed values of options: strings, booleans and lists (of repeatable options) by option name. */
export type OptionValues = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

/** The outcome of parsing a command line. */
export type Parsed =
  | { readonly kind: "help"; readonly command: CommandSpec | undefined }
  | { readonly kind: "version" }
  | {
      readonly kind: "run";
      readonly command: CommandSpec;
      readonly operands: readonly string[];
      readonly values: OptionValues;
    };

function isParseError(error: unknown): error is Error & { code: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === "string";
}

/**
 * Parse a command line. The command is the first operand; global options may
 * come before or after it.
 *
 * @throws {UsageError} for an unknown command or option, a missing value or a wrong number of operands.
 */
export function parse(argv: readonly string[]): Parsed {
  // First pass, lenient, only to find the command among global options.
  const first = parseArgs({ args: [...argv], options: GLOBAL, strict: false, allowPositionals: true, tokens: true });
  const name = first.positionals[0];
  const wantsHelp = first.values.help === true;
  if (name === "help") {
    const topic = first.positionals[1];
    if (topic === undefined) return { kind: "help", command: undefined };
    const spec = COMMANDS[topic];
    if (!spec) throw new UsageError(`unknown command "${topic}"`);
    return { kind: "help", command: spec };
  }
  if (name === undefined) {
    if (wantsHelp) return { kind: "help", command: undefined };
    if (first.values.version === true) return { kind: "version" };
    throw new UsageError("no command given");
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command "${name}"`);
  if (wantsHelp) return { kind: "help", command };

  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...GLOBAL, ...command.options },
      strict: true,
      allowPositionals: true,
    }) as typeof parsed;
  } catch (error) {
    if (isParseError(error) && error.code.startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError(error.message.replace(/\. To specify a positional argument.*$/s, ""), command);
    }
    throw error;
  }
  const operands = parsed.positionals.slice(1);
  const [min, max] = command.operands;
  if (operands.length < min) {
    throw new UsageError(`${command.name}: missing the operation id`, command);
  }
  if (operands.length > max) {
    throw new UsageError(`${command.name}: unexpected argument "${operands[max] ?? ""}"`, command);
  }
  return { kind: "run", command, operands, values: parsed.values };
}

/** A string option's value, or undefined. */
export function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/** Every value of a repeatable option, in order (empty when absent). */
export function list(values: OptionValues, name: string): readonly string[] {
  const v = values[name];
  if (Array.isArray(v)) return v;
  return typeof v === "string" ? [v] : [];
}

/** A boolean option's value. */
export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true;
}
