/**
 * Fails when the three descriptions of the public entry points disagree:
 * package.json `exports` (what Node and bundlers resolve), the tsup build
 * entries (what gets built into dist/) and deno.json `exports` (what Deno and
 * JSR resolve, on the TypeScript sources). Checked in both directions, so a
 * subpath added in one place and forgotten in another fails the build. Each
 * subpath ships both formats, each with its own types: `import` (ESM, `.js`
 * and `.d.ts`) and `require` (CommonJS, `.cjs` and `.d.cts`), and `main`,
 * `types` and `typesVersions` name the CommonJS build for resolvers that
 * ignore `exports` (TypeScript's `node10`).
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
  /** package.json `main`, `types` and `typesVersions`, for resolvers that ignore `exports`; unchecked when absent. */
  readonly legacy?: LegacyFields;
}

/** The package.json fields that resolvers without `exports` support read. */
export interface LegacyFields {
  readonly main?: unknown;
  readonly types?: unknown;
  readonly typesVersions?: Readonly<Record<string, Readonly<Record<string, unknown>>>> | undefined;
}

/** Subpaths of package.json `exports` that are not code entries (no build entry, no Deno export). */
const NON_CODE = new Set(["./package.json"]);

const strip = (path: string): string => path.replace(/^\.\//, "");

/**
 * The build entry one package.json subpath points at, or `undefined` (with
 * the reason in `problems`) when its conditions are not
 * `{ import: { types: X.d.ts, default: X.js }, require: { types: X.d.cts, default: X.cjs } }`.
 */
function entryOf(subpath: string, target: unknown, outDir: string, problems: string[]): string | undefined {
  const shape = `{ import: { types, default }, require: { types, default } }`;
  if (!isObject(target)) {
    problems.push(`package.json exports["${subpath}"] must be a ${shape} object, got ${JSON.stringify(target)}`);
    return undefined;
  }
  const keys = Object.keys(target);
  if (keys.length !== 2 || keys[0] !== "import" || keys[1] !== "require") {
    problems.push(
      `package.json exports["${subpath}"] must have "import" then "require", each with its own types (got conditions: ${keys.join(", ") || "none"})`,
    );
    return undefined;
  }
  const names: string[] = [];
  for (const [condition, code, types] of [
    ["import", ".js", ".d.ts"],
    ["require", ".cjs", ".d.cts"],
  ] as const) {
    const inner = target[condition];
    if (!isObject(inner) || Object.keys(inner).join(",") !== "types,default") {
      problems.push(
        `package.json exports["${subpath}"].${condition} must be { types, default } with "types" first, got ${JSON.stringify(inner)}`,
      );
      return undefined;
    }
    const file = inner.default;
    if (typeof file !== "string" || !strip(file).startsWith(outDir) || !file.endsWith(code)) {
      problems.push(
        `package.json exports["${subpath}"].${condition}.default must be a ${code} file under ./${outDir}, got ${JSON.stringify(file)}`,
      );
      return undefined;
    }
    const name = strip(file).slice(outDir.length, -code.length);
    if (inner.types !== `./${outDir}${name}${types}`) {
      problems.push(
        `package.json exports["${subpath}"].${condition}.types is ${JSON.stringify(inner.types)}, expected "./${outDir}${name}${types}" (next to ${file})`,
      );
    }
    names.push(name);
  }
  if (names[0] !== names[1]) {
    problems.push(
      `package.json exports["${subpath}"] points "import" at ${names[0]} and "require" at ${names[1]}: both must be builds of one entry`,
    );
    return undefined;
  }
  return names[0];
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

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
    const name = entryOf(subpath, target, outDir, problems);
    if (name !== undefined) pkgEntry.set(subpath, name);
  }

  // The fields that resolvers without `exports` read (Node 10 style): the root's CommonJS build and types,
  // and `typesVersions` for the other subpaths' types.
  if (input.legacy !== undefined) {
    const { main, types, typesVersions } = input.legacy;
    if (pkgEntry.has(".")) {
      const root = pkgEntry.get(".") ?? "";
      if (main !== `./${outDir}${root}.cjs`) {
        problems.push(`package.json "main" is ${JSON.stringify(main)}, expected "./${outDir}${root}.cjs"`);
      }
      if (types !== `./${outDir}${root}.d.cts`) {
        problems.push(`package.json "types" is ${JSON.stringify(types)}, expected "./${outDir}${root}.d.cts"`);
      }
    }
    const mapped = typesVersions?.["*"] ?? {};
    for (const [subpath, name] of pkgEntry) {
      if (subpath === ".") continue;
      const key = strip(subpath);
      const expected = `./${outDir}${name}.d.cts`;
      const got = mapped[key];
      if (!Array.isArray(got) || got.length !== 1 || got[0] !== expected) {
        problems.push(
          `package.json typesVersions["*"]["${key}"] is ${JSON.stringify(got)}, expected ["${expected}"] (the types of ${subpath} for resolvers that ignore "exports")`,
        );
      }
    }
    for (const key of Object.keys(mapped)) {
      if (!pkgEntry.has(`./${key}`)) {
        problems.push(`package.json typesVersions["*"]["${key}"] has no package.json exports subpath "./${key}"`);
      }
    }
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
    legacy: { main: pkg.main, types: pkg.types, typesVersions: pkg.typesVersions as LegacyFields["typesVersions"] },
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
