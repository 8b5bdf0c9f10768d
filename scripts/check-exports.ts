/**
 * Fails when the three descriptions of the public entry points disagree:
 * package.json `exports` (what Node and bundlers resolve), the tsup build
 * entries (what gets built into dist/) and deno.json `exports` (what Deno and
 * JSR resolve, on the TypeScript sources). Checked in both directions, so a
 * subpath added in one place and forgotten in another fails the build.
 *
 * Run: `npm run check:exports` (tsx scripts/check-exports.ts).
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** package.json `exports`: subpath -> target string or conditions object. */
export type PackageExports = Readonly<Record<string, unknown>>;

/** What {@link checkExports} compares. */
export interface ExportsInput {
  /** package.json `exports`. */
  readonly packageExports: PackageExports;
  /** tsup build entries: output name (relative to dist/, no extension) -> source file. */
  readonly buildEntries: Readonly<Record<string, string>>;
  /** deno.json `exports`: subpath -> source file. */
  readonly denoExports: Readonly<Record<string, string>>;
  /** Build output folder as package.json names it. @default "./dist/" */
  readonly outDir?: string;
  /** Tells whether a source file exists (relative to the package root). @default always true */
  readonly fileExists?: (path: string) => boolean;
}

/** Subpaths of package.json `exports` that are not code entries (no build entry, no Deno export). */
const NON_CODE = new Set(["./package.json"]);

const strip = (path: string): string => path.replace(/^\.\//, "");

/**
 * Compare the three maps and return one message per disagreement (empty when
 * they agree). Pure, so it can be tested on fixtures.
 */
export function checkExports(input: ExportsInput): string[] {
  const outDir = strip(input.outDir ?? "./dist/").replace(/\/?$/, "/");
  const exists = input.fileExists ?? (() => true);
  const problems: string[] = [];

  // package.json subpath -> build entry name it points at.
  const pkgEntry = new Map<string, string>();
  for (const [subpath, target] of Object.entries(input.packageExports)) {
    if (NON_CODE.has(subpath)) continue;
    if (target === null || typeof target !== "object" || Array.isArray(target)) {
      problems.push(
        `package.json exports["${subpath}"] must be a { types, import } object, got ${JSON.stringify(target)}`,
      );
      continue;
    }
    const conditions = target as Record<string, unknown>;
    const keys = Object.keys(conditions);
    if (keys[0] !== "types" || !keys.includes("import")) {
      problems.push(
        `package.json exports["${subpath}"] must list "types" first and have "import" (got conditions: ${keys.join(", ") || "none"})`,
      );
    }
    const importPath = conditions.import;
    const typesPath = conditions.types;
    if (typeof importPath !== "string" || !strip(importPath).startsWith(outDir) || !importPath.endsWith(".js")) {
      problems.push(
        `package.json exports["${subpath}"].import must be a .js file under ./${outDir}, got ${JSON.stringify(importPath)}`,
      );
      continue;
    }
    const name = strip(importPath).slice(outDir.length, -".js".length);
    if (typesPath !== `./${outDir}${name}.d.ts`) {
      problems.push(
        `package.json exports["${subpath}"].types is ${JSON.stringify(typesPath)}, expected "./${outDir}${name}.d.ts" (next to its import ${importPath})`,
      );
    }
    pkgEntry.set(subpath, name);
  }

  // package.json -> tsup
  const referenced = new Set(pkgEntry.values());
  for (const [subpath, name] of pkgEntry) {
    if (!(name in input.buildEntries)) {
      problems.push(
        `package.json exports["${subpath}"] points at ./${outDir}${name}.js, but tsup.config.ts has no build entry "${name}": add it to \`entries\` (or remove the subpath)`,
      );
    }
  }
  // tsup -> package.json
  for (const [name, source] of Object.entries(input.buildEntries)) {
    if (!referenced.has(name)) {
      problems.push(
        `tsup.config.ts builds entry "${name}" (${source}), but no package.json exports subpath points at ./${outDir}${name}.js: add the subpath (or remove the entry)`,
      );
    }
    if (!exists(strip(source))) problems.push(`tsup.config.ts entry "${name}" names ${source}, which does not exist`);
  }

  // package.json <-> deno.json, and both agree on the source file.
  for (const [subpath, name] of pkgEntry) {
    const denoSource = input.denoExports[subpath];
    if (denoSource === undefined) {
      const hint = input.buildEntries[name];
      problems.push(
        `package.json exports["${subpath}"] is missing from deno.json exports${hint ? `: add "${subpath}": "./${strip(hint)}"` : ""}`,
      );
      continue;
    }
    const buildSource = input.buildEntries[name];
    if (buildSource !== undefined && strip(buildSource) !== strip(denoSource)) {
      problems.push(
        `deno.json exports["${subpath}"] is ${denoSource}, but tsup builds that subpath (entry "${name}") from ${buildSource}: they must be the same file`,
      );
    }
  }
  for (const [subpath, source] of Object.entries(input.denoExports)) {
    if (!pkgEntry.has(subpath) && !(subpath in input.packageExports)) {
      problems.push(
        `deno.json exports["${subpath}"] (${source}) has no package.json exports subpath: add it to package.json (or remove it from deno.json)`,
      );
    }
    if (!/\.(ts|tsx|mts)$/.test(source)) {
      problems.push(`deno.json exports["${subpath}"] must point at a TypeScript source, got ${source}`);
    } else if (!exists(strip(source))) {
      problems.push(`deno.json exports["${subpath}"] names ${source}, which does not exist`);
    }
  }
  return problems;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (cause) {
    throw new Error(`Cannot read ${path}: ${String(cause)}`, { cause });
  }
}

async function main(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  const pkg = readJson(join(root, "package.json"));
  const deno = readJson(join(root, "deno.json"));
  const { entries } = (await import(pathToFileURL(join(root, "tsup.config.ts")).href)) as {
    entries?: Record<string, string>;
  };
  if (entries === undefined || typeof entries !== "object") {
    console.error("check-exports: tsup.config.ts must export `entries` (build entry name -> source file).");
    process.exit(1);
  }
  const problems = checkExports({
    packageExports: (pkg.exports ?? {}) as PackageExports,
    buildEntries: entries,
    denoExports: (deno.exports ?? {}) as Record<string, string>,
    fileExists: (path) => existsSync(join(root, path)),
  });
  if (problems.length > 0) {
    console.error(`check-exports: package.json, tsup.config.ts and deno.json disagree (${problems.length}):`);
    for (const p of problems) console.error(`  - ${p}`);
    process.exit(1);
  }
  const count = Object.keys(entries).length;
  console.log(`check-exports: ${count} entries agree across package.json, tsup.config.ts and deno.json`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main();
}
