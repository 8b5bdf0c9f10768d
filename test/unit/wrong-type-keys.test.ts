import { describe, expect, it } from "vitest";
import { BackendError, isWrongTypeError, WrongTypeError } from "../../src/core/errors.ts";
import { namingWrongType } from "../../src/redis/errors.ts";

describe("namingWrongType: which keys of a failed read hold another type", () => {
  const keys = ["a", "b", "c", "d"];

  it("names the keys whose TYPE is neither stream nor none, asking once for every key", async () => {
    const asked: string[][] = [];
    const error = await namingWrongType(new WrongTypeError("WRONGTYPE Operation against a key"), keys, async (ks) => {
      asked.push([...ks]);
      return ["stream", "string", "none", "hash"];
    });
    expect(asked).toEqual([keys]);
    expect(isWrongTypeError(error)).toBe(true);
    expect((error as WrongTypeError).keys).toEqual(["b", "d"]);
    expect((error as Error).message).toContain("b, d");
  });

  it("leaves the error as it was when it is no WRONGTYPE, already names keys, or the check fails or finds nothing", async () => {
    const never = async (): Promise<never> => {
      throw new Error("must not be asked");
    };
    const other = new BackendError("NOGROUP");
    expect(await namingWrongType(other, keys, never)).toBe(other);
    const named = new WrongTypeError("WRONGTYPE", ["a"]);
    expect(await namingWrongType(named, keys, never)).toBe(named);
    const bare = new WrongTypeError("WRONGTYPE");
    expect(await namingWrongType(bare, keys, never)).toBe(bare);
    expect(await namingWrongType(bare, keys, async () => ["stream", "none", "stream", "stream"])).toBe(bare);
  });
});
