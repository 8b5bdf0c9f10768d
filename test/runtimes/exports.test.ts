/** scripts/check-exports.ts on fixtures: each kind of disagreement is caught and named. */
import { describe, expect, it } from "vitest";
import { checkExports, type ExportsInput } from "../../scripts/check-exports.ts";

/** Both formats of one build entry, as package.json `exports` names them. */
const dual = (name: string) => ({
  import: { types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` },
  require: { types: `./dist/${name}.d.cts`, default: `./dist/${name}.cjs` },
});

const agreeing: ExportsInput = {
  packageExports: {
    ".": dual("index"),
    "./memory": dual("adapters/memory/index"),
    "./package.json": "./package.json",
  },
  buildEntries: { index: "src/index.ts", "adapters/memory/index": "src/adapters/memory/index.ts" },
  denoExports: { ".": "./src/index.ts", "./memory": "./src/adapters/memory/index.ts" },
  legacy: {
    main: "./dist/index.cjs",
    types: "./dist/index.d.cts",
    typesVersions: { "*": { memory: ["./dist/adapters/memory/index.d.cts"] } },
  },
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
        ".": { types: "./dist/index.d.ts", import: "./dist/index.js" },
        "./memory": {
          ...dual("adapters/memory/index"),
          import: { types: "./dist/adapters/memory/wrong.d.ts", default: "./dist/adapters/memory/index.js" },
        },
      },
      fileExists: (path) => path !== "src/adapters/memory/index.ts",
    });
    expect(problems).toEqual([
      expect.stringMatching(/exports\["\."\] must have "import" then "require"/),
      expect.stringMatching(/exports\["\.\/memory"\]\.import\.types is .*wrong.d.ts/),
      // A subpath whose conditions are unreadable points at no entry, so its entry is reported as unexported.
      expect.stringMatching(/builds entry "index".*no package.json exports subpath/),
      expect.stringMatching(/entry "adapters\/memory\/index" names .* which does not exist/),
      expect.stringMatching(/deno.json exports\["\.\/memory"\] names .* which does not exist/),
    ]);
  });

  it("names a require condition that is not CommonJS, or not the same entry as import", () => {
    const problems = checkExports({
      ...agreeing,
      packageExports: {
        ".": { ...dual("index"), require: { types: "./dist/index.d.ts", default: "./dist/index.js" } },
        "./memory": { ...dual("adapters/memory/index"), require: dual("index").require },
      },
    });
    expect(problems).toEqual([
      expect.stringMatching(/exports\["\."\]\.require\.default must be a \.cjs file/),
      expect.stringMatching(
        /exports\["\.\/memory"\] points "import" at adapters\/memory\/index and "require" at index/,
      ),
      expect.stringMatching(/typesVersions\["\*"\]\["memory"\] has no package.json exports subpath/),
      expect.stringMatching(/builds entry "index".*no package.json exports subpath/),
      expect.stringMatching(/builds entry "adapters\/memory\/index".*no package.json exports subpath/),
    ]);
  });

  it("names main, types and typesVersions that do not name the CommonJS build", () => {
    const problems = checkExports({
      ...agreeing,
      legacy: { main: "./dist/index.js", types: "./dist/index.d.ts", typesVersions: { "*": {} } },
    });
    expect(problems).toEqual([
      expect.stringMatching(/"main" is "\.\/dist\/index\.js", expected "\.\/dist\/index\.cjs"/),
      expect.stringMatching(/"types" is "\.\/dist\/index\.d\.ts", expected "\.\/dist\/index\.d\.cts"/),
      expect.stringMatching(
        /typesVersions\["\*"\]\["memory"\] is undefined, expected \["\.\/dist\/adapters\/memory\/index\.d\.cts"\]/,
      ),
    ]);
  });
});
