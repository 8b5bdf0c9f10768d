/**
 * The import-cycle check run by `npm run check`: it finds a cycle (type
 * imports included) and src/ has none.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findCycles, importGraph } from "../../scripts/check-cycles.ts";
import { root } from "../interop/support.ts";

describe("import cycles", () => {
  it("finds a cycle made of a type import and a value import, and not a chain", () => {
    const dir = mkdtempSync(join(tmpdir(), "cycles-"));
    try {
      mkdirSync(join(dir, "a"));
      writeFileSync(join(dir, "a", "port.ts"), 'import type { W } from "../legacy.ts";\nexport type P = W;\n');
      writeFileSync(
        join(dir, "legacy.ts"),
        'import { x } from "./lua.ts";\nexport type W = string;\nexport const y = x;\n',
      );
      writeFileSync(join(dir, "lua.ts"), 'export { type P } from "./a/port.ts";\nexport const x = 1;\n');
      writeFileSync(join(dir, "alone.ts"), 'import { x } from "./lua.ts";\nexport const z = x;\n');
      const cycles = findCycles(importGraph(dir));
      expect(cycles).toHaveLength(1);
      const files = cycles[0]?.map((f) => f.slice(dir.length + 1)) ?? [];
      expect(files[0]).toBe(files[files.length - 1]);
      expect([...new Set(files)].sort()).toEqual(["a/port.ts", "legacy.ts", "lua.ts"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("src/ has none", () => {
    expect(findCycles(importGraph(join(root, "src")))).toEqual([]);
  });
});
