/**
 * The shipped `.lua` files are the scripts generated from src/redis/lua/ byte for byte,
 * and Redis answers the documented SHA1 when it loads them.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { staleLua } from "../../scripts/gen-lua.ts";
import {
  APPEND_SCRIPT,
  APPEND_SHA,
  CANCEL_SCRIPT,
  CANCEL_SHA,
  LEGACY_APPEND_SCRIPT,
  LEGACY_APPEND_SHA,
} from "../../src/redis/scripts.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { findPython, root, run } from "./support.ts";

describe("shipped Lua scripts", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.close();
  });

  it("lua/ and the Python package hold exactly what src/redis/lua/ generates (run `tsx scripts/gen-lua.ts` when not)", () => {
    expect(staleLua(root)).toEqual([]);
    expect(readFileSync(join(root, "lua", "append.lua"), "utf8")).toBe(APPEND_SCRIPT);
    const manifest = JSON.parse(readFileSync(join(root, "lua", "scripts.json"), "utf8"));
    expect(manifest).toEqual({
      append: { file: "append.lua", sha1: APPEND_SHA },
      cancel: { file: "cancel.lua", sha1: CANCEL_SHA },
      appendLegacy: { file: "append-legacy.lua", sha1: LEGACY_APPEND_SHA },
    });
  });

  it("SCRIPT LOAD of each file answers its documented SHA1", async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      for (const [file, sha, source] of [
        ["append.lua", APPEND_SHA, APPEND_SCRIPT],
        ["cancel.lua", CANCEL_SHA, CANCEL_SCRIPT],
        ["append-legacy.lua", LEGACY_APPEND_SHA, LEGACY_APPEND_SCRIPT],
      ] as const) {
        const bytes = readFileSync(join(root, "lua", file));
        expect(createHash("sha1").update(bytes).digest("hex")).toBe(sha);
        expect(await client.scriptLoad(bytes.toString("utf8"))).toBe(sha);
        expect(source).toBe(bytes.toString("utf8"));
      }
    } finally {
      await client.quit();
    }
  });

  it("the wire-format document's redis-cli and Python calls answer as it shows, against a real Redis", async () => {
    const doc = readFileSync(join(root, "docs", "wire-format.md"), "utf8");
    const block = (after: string, lang = ""): string => {
      const at = doc.indexOf(after);
      expect(at, after).toBeGreaterThan(-1);
      const start = doc.indexOf(`\`\`\`${lang}\n`, at) + 4 + lang.length;
      return doc.slice(start, doc.indexOf("```", start));
    };
    const ids = (text: string): string => text.replace(/"\d{13}-\d+"/g, '"<id>"').trim();
    const cli = async (command: string): Promise<string> => {
      const r = await run("bash", ["-c", command.replaceAll("redis-cli ", `redis-cli -p ${redis.port} --no-raw `)]);
      expect(r.stderr).toBe("");
      return r.stdout;
    };
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      await client.flushAll();
      const call = block("A complete call from `redis-cli`", "sh");
      const command = call.replace(/^#.*$/gm, "").trim();
      const shown = call
        .split("\n")
        .filter((l) => l.startsWith("# "))
        .map((l) => l.slice(2))
        .join("\n");
      expect(ids(await cli(command))).toBe(ids(shown));
      expect(ids(await cli("redis-cli XRANGE 'pc:{job-1}:events' - +"))).toBe(
        ids(block("An example entry, as `redis-cli XRANGE")),
      );
      const again = command.replace(" 0 33.33 22 ", " 0 10 22 ").replace("progress 33.33", "progress 10");
      expect(ids(await cli(again))).toBe(ids(block("The same call again")));

      const py = findPython();
      if (typeof py === "object") {
        await client.flushAll();
        const script = block("The same from Python, without the package", "python")
          .replace("redis.Redis()", `redis.Redis(port=${redis.port})`)
          .replace('open("lua/append.lua")', `open(${JSON.stringify(join(root, "lua", "append.lua"))})`);
        const r = await run(py.path, ["-c", `${script}\nprint(code, seq, cancel, attempt)`]);
        expect(r.stderr).toBe("");
        expect(r.stdout.trim()).toBe("b'ok' 1 None 1");
      }
    } finally {
      await client.quit();
    }
  });

  it("the wire-format document quotes the current SHA1s", () => {
    const doc = readFileSync(join(root, "docs", "wire-format.md"), "utf8");
    expect(doc).toContain(APPEND_SHA);
    expect(doc).toContain(CANCEL_SHA);
  });
});
