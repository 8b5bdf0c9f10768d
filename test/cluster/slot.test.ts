import fc from "fast-check";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crc16, groupAppendsBySlot, groupBySlot, hashTag, SLOTS, slotOf, slotTag } from "../../src/redis/slot.ts";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.ts";

describe("slots", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const keyslots = async (keys: readonly string[]): Promise<number[]> => {
    const client = createClient({ url: cluster.rootNodes[0]?.url ?? "", RESP: 2 });
    await client.connect();
    try {
      return await Promise.all(keys.map(async (k) => Number(await client.sendCommand(["CLUSTER", "KEYSLOT", k]))));
    } finally {
      client.destroy();
    }
  };

  it("CRC16 is XMODEM: the check value of 123456789 is 0x31c3", () => {
    expect(crc16("123456789")).toBe(0x31c3);
    expect(crc16(new TextEncoder().encode("123456789"))).toBe(0x31c3);
  });

  it("agrees with CLUSTER KEYSLOT of a real server, hash tags and UTF-8 included", async () => {
    const keys = [
      "pc:{job-1}:events",
      "pc:{job-1}:state",
      "pc:scope:{user-7}:events",
      "plain",
      "{}empty-tag",
      "a{}{b}",
      "{a}{b}",
      "no}close{",
      "{unclosed",
      "ünïcødé:{jöb}",
      "emoji-\u{1F680}",
      "",
    ];
    const sample = fc.sample(fc.string({ unit: "grapheme", maxLength: 20 }), { numRuns: 40, seed: 7 });
    const all = [...keys, ...sample.filter((k) => !k.includes("\n") && !k.includes("\r") && !k.includes("\0"))];
    expect(all.map(slotOf)).toEqual(await keyslots(all));
    expect(hashTag("pc:{job-1}:events")).toBe("job-1");
    expect(hashTag("{}x")).toBe("{}x");
  });

  it("slotTag finds a tag for every slot", async () => {
    for (const slot of [0, 1, 42, 8000, SLOTS - 1]) expect(slotOf(`wake:{${slotTag(slot)}}`)).toBe(slot);
    for (let s = 0; s < SLOTS; s += 97) expect(slotOf(`{${slotTag(s)}}`)).toBe(s);
    expect(await keyslots([`x{${slotTag(1234)}}`])).toEqual([1234]);
    expect(() => slotTag(SLOTS)).toThrow(RangeError);
  });

  it("groups a batch by slot, keeping order and positions", () => {
    const groups = groupBySlot(["{a}1", "{b}1", "{a}2", "{c}1", "{b}2"], (k) => k);
    expect(groups.map((g) => g.items)).toEqual([["{a}1", "{a}2"], ["{b}1", "{b}2"], ["{c}1"]]);
    expect(groups.map((g) => g.indices)).toEqual([[0, 2], [1, 4], [3]]);
    expect(groups.map((g) => g.slot)).toEqual([slotOf("a"), slotOf("b"), slotOf("c")]);
    const item = (op: string, state = `pc:{${op}}:state`) => ({
      eventsKey: `pc:{${op}}:events`,
      stateKey: state,
      fields: { status: "running" },
      terminal: false,
      allowBackwards: false,
      allowAfterTerminal: false,
    });
    expect(groupAppendsBySlot([item("x"), item("y"), item("x")]).map((g) => g.indices)).toEqual([[0, 2], [1]]);
    expect(() => groupAppendsBySlot([item("x", "chunking:progress:x")])).toThrow(/hash tag/);
  });
});
