/**
 * Every export of every entry point (the files TypeDoc documents, see
 * typedoc.json) carries a doc comment, so the API reference (`npm run docs`)
 * has no bare entries.
 */
import { readFileSync } from "node:fs";
import ts from "typescript";
import { describe, expect, it } from "vitest";

describe("API reference", () => {
  it("documents every export of every entry point", () => {
    const { entryPoints } = JSON.parse(readFileSync("typedoc.json", "utf8")) as { entryPoints: string[] };
    const deno = JSON.parse(readFileSync("deno.json", "utf8")) as { exports: Record<string, string> };
    // TypeDoc documents every public entry point.
    expect([...entryPoints].sort()).toEqual(
      Object.values(deno.exports)
        .map((f) => f.slice(2))
        .sort(),
    );
    const program = ts.createProgram(entryPoints, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      allowImportingTsExtensions: true,
      noEmit: true,
      skipLibCheck: true,
      jsx: ts.JsxEmit.ReactJSX,
    });
    const checker = program.getTypeChecker();
    const bare: string[] = [];
    for (const entry of entryPoints) {
      const source = program.getSourceFile(entry);
      const module = source && checker.getSymbolAtLocation(source);
      if (!module) throw new Error(`${entry} did not load`);
      for (const exported of checker.getExportsOfModule(module)) {
        const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
        const documented =
          symbol.getDocumentationComment(checker).length > 0 ||
          (symbol.declarations ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0);
        if (!documented) bare.push(`${entry}: ${exported.name}`);
      }
    }
    expect(bare).toEqual([]);
  }, 180_000);
});
