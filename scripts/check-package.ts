/**
 * Checks the package as npm would publish it, from the `dist/` already built:
 * packs it once without lifecycle scripts (no second build through
 * `prepack`), then runs publint on the directory and `attw` (Are the Types
 * Wrong?) on that tarball, with its full profile: every entry point must
 * resolve, with the right types, under TypeScript's `node10`, `node16` from
 * CommonJS, `node16` from ESM and `bundler`. Exits non-zero when either fails.
 *
 * Run: `npm run check:package` (tsx scripts/check-package.ts), after `npm run build`.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Pack `root` into `destination` with `npm pack --ignore-scripts` and return
 * the tarball's path. Nothing is built: `dist/` must be there already.
 *
 * @throws {Error} when `dist/` is missing, or npm fails.
 */
export function packWithoutScripts(root: string, destination: string): string {
  if (!existsSync(join(root, "dist", "index.js"))) {
    throw new Error("dist/ is missing: run `npm run build` first.");
  }
  const out = execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", destination], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [packed] = JSON.parse(out) as [{ filename: string }];
  return join(destination, packed.filename);
}

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
if (import.meta.url === `file://${process.argv[1]}`) {
  const bin = (name: string): string => join(root, "node_modules", ".bin", name);
  const dir = mkdtempSync(join(tmpdir(), "progresscast-pack-"));
  try {
    execFileSync(bin("publint"), [], { cwd: root, stdio: "inherit" });
    const tarball = packWithoutScripts(root, dir);
    execFileSync(bin("attw"), [tarball, "--profile", "strict"], { cwd: root, stdio: "inherit" });
  } catch (error) {
    process.exitCode = 1;
    if (!(error instanceof Error && "status" in error)) console.error(error);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
