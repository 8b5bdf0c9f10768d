/**
 * Fails when the modules of `src/` import each other in a cycle (type-only
 * imports count: a cycle of types is still a knot a reader must untie).
 * Reads every relative `import`/`export ... from` specifier of `src/**\/*.ts(x)`.
 *
 * Run: `npm run check:cycles` (tsx scripts/check-cycles.ts).
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SPECIFIER =
  /(?:^|[\s;}])(?:import|export)\s[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

/** Every `.ts`/`.tsx` file under `dir`. */
function files(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(path));
    else if (/\.tsx?$/.test(entry.name)) out.push(path);
  }
  return out;
}

/** The import graph: file -> the files it imports (relative specifiers only). */
export function importGraph(dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files(dir)) {
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    const deps: string[] = [];
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2];
      if (spec !== undefined) deps.push(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
    }
    graph.set(file, deps);
  }
  return graph;
}

/** Every cycle found by a depth-first walk (each reported once, from where it was entered). */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "active");
    stack.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (!graph.has(dep)) continue;
      const s = state.get(dep);
      if (s === "active") cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (s === undefined) visit(dep);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const cycles = findCycles(importGraph(join(root, "src")));
  if (cycles.length > 0) {
    for (const cycle of cycles) console.error(`Import cycle: ${cycle.map((f) => relative(root, f)).join(" -> ")}`);
    process.exit(1);
  }
  console.log("No import cycle in src/.");
}
