import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const readme = readFileSync("README.md", "utf8");

describe("README snippets", () => {
  const marked = [...readme.matchAll(/<!-- from (examples\/\S+) -->\n```\w*\n([\s\S]*?)```/g)];

  it("come from the example files, verbatim", () => {
    expect(marked.map((m) => m[1])).toEqual(
      expect.arrayContaining([
        "examples/task/import-job.ts",
        "examples/websocket/server.ts",
        "examples/cloudflare-worker/src/index.ts",
        "examples/deno/main.ts",
        "examples/react/JobProgress.tsx",
        "examples/bullmq/server.ts",
        "examples/bullmq/worker.ts",
        "examples/quick-start/worker.ts",
        "examples/quick-start/worker.cjs",
        "examples/bullmq-react/worker.ts",
        "examples/bullmq-react/Imports.tsx",
      ]),
    );
    for (const [, file = "", body] of marked) expect(body, file).toBe(readFileSync(file, "utf8"));
  });

  it("examples/tsconfig.json maps every progresscast entry point to its source, as deno.json does", () => {
    const deno = JSON.parse(readFileSync("deno.json", "utf8")) as { exports: Record<string, string> };
    const examples = JSON.parse(readFileSync("examples/tsconfig.json", "utf8")) as {
      compilerOptions: { paths: Record<string, string[]> };
    };
    const expected = Object.fromEntries(
      Object.entries(deno.exports).map(([subpath, file]) => [
        subpath === "." ? "progresscast" : `progresscast/${subpath.slice(2)}`,
        [`../${file.slice(2)}`],
      ]),
    );
    expect(examples.compilerOptions.paths).toEqual(expected);
  });
});
