/**
 * Writes the Lua scripts of `src/core/lua.ts` (the source of truth) to
 * `lua/*.lua`, shipped in the npm package, and to the Python package's data,
 * byte for byte: `SCRIPT LOAD` of a file answers the SHA1 documented in
 * docs/wire-format.md. `tsx scripts/gen-lua.ts` writes them; `--check` fails
 * when any is out of date.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { LEGACY_APPEND_SCRIPT, LEGACY_APPEND_SHA } from "../src/core/compat/legacy.ts";
import { APPEND_SCRIPT, APPEND_SHA, CANCEL_SCRIPT, CANCEL_SHA } from "../src/redis/scripts.ts";

/** Every generated file, relative to the repository root, with its content. */
export function generatedLua(): Record<string, string> {
  const manifest = `${JSON.stringify(
    {
      append: { file: "append.lua", sha1: APPEND_SHA },
      cancel: { file: "cancel.lua", sha1: CANCEL_SHA },
      appendLegacy: { file: "append-legacy.lua", sha1: LEGACY_APPEND_SHA },
    },
    null,
    2,
  )}\n`;
  const files: Record<string, string> = {};
  for (const dir of ["lua", "python/progresscast/lua"]) {
    files[`${dir}/append.lua`] = APPEND_SCRIPT;
    files[`${dir}/cancel.lua`] = CANCEL_SCRIPT;
    files[`${dir}/append-legacy.lua`] = LEGACY_APPEND_SCRIPT;
    files[`${dir}/scripts.json`] = manifest;
  }
  return files;
}

/** Paths whose content differs from what would be generated. */
export function staleLua(root: string): string[] {
  const stale: string[] = [];
  for (const [path, content] of Object.entries(generatedLua())) {
    let current: string | undefined;
    try {
      current = readFileSync(`${root}/${path}`, "utf8");
    } catch {
      current = undefined;
    }
    if (current !== content) stale.push(path);
  }
  return stale;
}

const root = fileURLToPath(new URL("..", import.meta.url));
if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes("--check")) {
    const stale = staleLua(root);
    if (stale.length > 0) {
      console.error(`Out of date: ${stale.join(", ")}. Run \`tsx scripts/gen-lua.ts\`.`);
      process.exit(1);
    }
  } else {
    for (const [path, content] of Object.entries(generatedLua())) {
      mkdirSync(dirname(`${root}/${path}`), { recursive: true });
      writeFileSync(`${root}/${path}`, content);
    }
  }
}
