/** scripts/check-exports.ts on fixtures: each kind of disagreement is caught and named. */
import { describe, expect, it } from "vitest";
import { checkExports, type ExportsInput } from "../../scripts/check-exports.ts";

const agreeing: ExportsInput = {
  packageExports: {
    ".": { types: "./dist/index.d.ts", import: "./dist/index.js" },
    "./memory": { types: "./dist/adapters/memory/index.d.ts", import: "./dist/adapters/memory/index.js" },
    "./package.json": "./package.json",
  },
  buildEntries: { index: "src/index.ts", "adapters/memory/index": "src/adapters/memory/index.ts" },
  denoExports: { ".": "./src/index.ts", "./memory": "./src/adapters/memory/index.ts" },
};

describe("check-exports", () => {
  it("accepts maps that agree", () => {
    expect(checkExports(agreeing)).toEqual([]);
  });

  it("names a package.json subpath without a build entry, and a build entry without a subpath", () => {
    const problems = checkExports({
      ...agreeing,
      buildEntries: { index: "src/index.ts", "adapters/upstash/index": "src/adapters/upstash/index.ts" },
    });
    expect(problems).toEqual([
      expect.stringMatching(/exports\["\.\/memory"\].*no build entry "adapters\/memory\/index"/),
      expect.stringMatching(/builds entry "adapters\/upstash\/index".*no package.json exports subpath/),
    ]);
  });

  it("names a subpath missing from deno.json, and a deno.json export missing from package.json", () => {
    const problems = checkExports({
      ...agreeing,
      denoExports: { ".": "./src/index.ts", "./upstash": "./src/adapters/upstash/index.ts" },
    });
    expect(problems).toEqual([
      expect.stringMatching(
        /exports\["\.\/memory"\] is missing from deno.json.*"\.\/memory": "\.\/src\/adapters\/memory/,
      ),
      expect.stringMatching(/deno.json exports\["\.\/upstash"\].*has no package.json exports subpath/),
    ]);
  });

  it("names a deno.json export whose source differs from the build entry's", () => {
    const problems = checkExports({
      ...agreeing,
      denoExports: { ".": "./src/index.ts", "./memory": "./src/adapters/memory/other.ts" },
    });
    expect(problems).toEqual([expect.stringMatching(/deno.json exports\["\.\/memory"\] is .*other.ts.*from src/)]);
  });

  it("names malformed conditions and files that do not exist", () => {
    const problems = checkExports({
      ...agreeing,
      packageExports: {
        ".": { import: "./dist/index.js", types: "./dist/index.d.ts" },
        "./memory": { types: "./dist/adapters/memory/wrong.d.ts", import: "./dist/adapters/memory/index.js" },
      },
      fileExists: (path) => path !== "src/adapters/memory/index.ts",
    });
    expect(problems).toEqual([
      expect.stringMatching(/exports\["\."\] must list "types" first/),
      expect.stringMatching(/exports\["\.\/memory"\]\.types is .*wrong.d.ts/),
      expect.stringMatching(/entry "adapters\/memory\/index" names .* which does not exist/),
      expect.stringMatching(/deno.json exports\["\.\/memory"\] names .* which does not exist/),
    ]);
  });
});
