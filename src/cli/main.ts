/**
 * The `progresscast` command, as a function of its arguments and
 * input/output, so tests can run it without a process.
 *
 * @module
 */
import { commandHelp, EXIT, type Parsed, parse, UsageError, usage } from "./args.ts";
import {
  type CliIo,
  type CommandContext,
  cancel,
  demo,
  explainEarly,
  inspect,
  publish,
  version,
  watch,
} from "./commands.ts";

export type { CliIo } from "./commands.ts";
export type { CliOutput } from "./render.ts";

const RUN: Readonly<Record<string, (ctx: CommandContext) => Promise<number>>> = {
  watch,
  publish,
  inspect,
  cancel,
  demo,
  // The gateway and what it needs (jose, ws, prom-client) load only when it runs.
  serve: async (ctx) => (await import("./serve.ts")).serve(ctx),
};

function usageError(io: CliIo, error: UsageError): number {
  const spec = error.command;
  const more = spec
    ? `Usage: ${spec.usage}\nRun "progresscast ${spec.name} --help" for its options.\n`
    : `\n${usage()}`;
  io.stderr.write(`progresscast: ${error.message}\n${more}`);
  return EXIT.usage;
}

/**
 * Run the command line `argv` (without `node` and the script) and return the
 * exit status: 0 done, 1 backend failure (for `watch`, also an operation that
 * failed or was cancelled), 2 bad usage or input, 3 refused, 130 interrupted.
 *
 * @example
 * ```ts
 * const code = await main(["inspect", "import-42", "--json"], { stdout: process.stdout, stderr: process.stderr, env: process.env });
 * ```
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    if (error instanceof UsageError) return usageError(io, error);
    return explainEarly(io, error);
  }
  if (parsed.kind === "help") {
    io.stdout.write(parsed.command ? commandHelp(parsed.command) : usage());
    return EXIT.ok;
  }
  if (parsed.kind === "version") {
    io.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const run = RUN[parsed.command.name];
  if (run === undefined) return usageError(io, new UsageError(`unknown command "${parsed.command.name}"`));
  try {
    return await run({ io, command: parsed.command, operands: parsed.operands, values: parsed.values });
  } catch (error) {
    if (error instanceof UsageError && error.command !== undefined) return usageError(io, error);
    return explainEarly(io, error);
  }
}
