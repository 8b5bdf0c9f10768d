/**
 * `bench/RESULTS.md` is written by more than one script: each owns one section,
 * fenced by HTML comments, and rewrites only that section.
 */

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Path of the results file. */
export const RESULTS_PATH: string = fileURLToPath(new URL("../RESULTS.md", import.meta.url));

const HEADER = `# progresscast benchmarks

Written by \`npm run bench\` (\`bench/*.ts\`, one script per section). Each script rewrites
only its own section below (and its entry in \`bench/RESULTS.json\`); numbers are from the
machine named in each section.
`;

/** Sections in the order they appear in a new file. */
const ORDER = [
  "summary",
  "publish",
  "script",
  "delivery",
  "capacity",
  "fanin",
  "coalescing",
  "adapters",
  "edge",
  "memory",
  "cluster",
  "overhead",
  "size",
  "soak",
] as const;
export type SectionName = (typeof ORDER)[number];

const start = (name: string): string => `<!-- section:${name}:start -->`;
const end = (name: string): string => `<!-- section:${name}:end -->`;

/** Replace (or add) one section of RESULTS.md, keeping the others untouched. */
export function writeSection(name: SectionName, markdown: string): void {
  let text = existsSync(RESULTS_PATH) ? readFileSync(RESULTS_PATH, "utf8") : HEADER;
  const block = `${start(name)}\n${markdown.trim()}\n${end(name)}`;
  const from = text.indexOf(start(name));
  const to = text.indexOf(end(name));
  if (from >= 0 && to > from) {
    text = text.slice(0, from) + block + text.slice(to + end(name).length);
  } else {
    // Insert before the first later section that exists, else append.
    const later = ORDER.slice(ORDER.indexOf(name) + 1)
      .map((n) => text.indexOf(start(n)))
      .filter((i) => i >= 0);
    const at = later.length > 0 ? Math.min(...later) : -1;
    text = at >= 0 ? `${text.slice(0, at)}${block}\n\n${text.slice(at)}` : `${text.trimEnd()}\n\n${block}\n`;
  }
  writeFileSync(RESULTS_PATH, text);
}

/** Render a Markdown table; numbers are right-aligned. */
export function markdownTable(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  right?: boolean[],
): string {
  const align = head.map((_, i) => ((right?.[i] ?? i > 0) ? "---:" : "---"));
  return [head, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** Render a plain-text table for the terminal. */
export function textTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Path of the JSON written beside the Markdown. */
export const RESULTS_JSON_PATH: string = fileURLToPath(new URL("../RESULTS.json", import.meta.url));

/** Replace (or add) one section's raw figures in RESULTS.json. */
export function writeJson(name: SectionName, data: unknown): void {
  let all: Record<string, unknown> = {};
  if (existsSync(RESULTS_JSON_PATH)) {
    try {
      all = JSON.parse(readFileSync(RESULTS_JSON_PATH, "utf8")) as Record<string, unknown>;
    } catch {
      all = {};
    }
  }
  all[name] = data;
  const sorted = Object.fromEntries(ORDER.filter((n) => n in all).map((n) => [n, all[n]]));
  writeFileSync(RESULTS_JSON_PATH, `${JSON.stringify(sorted, null, 2)}\n`);
}

/** Version of the redis-server on PATH, e.g. `7.0.15`. */
export function redisVersion(): string {
  try {
    return /v=(\S+)/.exec(execFileSync("redis-server", ["--version"], { encoding: "utf8" }))?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}
