#!/usr/bin/env node
/**
 * The `progresscast` command: watch, publish, inspect and cancel operations
 * from a terminal or a shell script. Run `progresscast --help`.
 *
 * @module
 */
import { main } from "./main.ts";

const controller = new AbortController();
let interrupts = 0;
const interrupt = (): void => {
  // A second Ctrl-C does not wait for a clean stop.
  if (++interrupts > 1) process.exit(130);
  controller.abort();
};
process.on("SIGINT", interrupt);
process.on("SIGTERM", interrupt);
// Output piped into `head` and closed early is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
process.exitCode = code;
// A client still retrying a connection must not keep the command alive: exit once the output is written.
const drain = (stream: NodeJS.WriteStream): Promise<void> =>
  new Promise((resolve) => stream.write("", () => resolve()));
await Promise.all([drain(process.stdout), drain(process.stderr)]);
process.exit(code);
