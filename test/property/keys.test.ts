/**
 * Key isolation, as a property: under every shipped key strategy, no valid id
 * (however crafted) reaches another operation's or scope's keys.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultKeys, type KeyStrategy, keyPresets } from "../../src/core/port/keys.ts";
import { ID_PATTERN } from "../../src/core/wire/index.ts";

const strategies: ReadonlyArray<readonly [string, KeyStrategy]> = [
  ["default (pc)", defaultKeys("pc")],
  ["default (a:b)", defaultKeys("a:b")],
  ["chunking", keyPresets.chunking],
  ["importProgress", keyPresets.importProgress],
  ["operations", keyPresets.operations],
];

/** Pieces of the strategies' own key names, so generated ids look like their keys. */
const TOKENS = [
  "k",
  "x",
  "state",
  "events",
  "scope",
  "progress",
  "hash",
  "channel",
  "chunking",
  "stream",
  "import_progress",
  "operations",
  "pc",
  "a",
  "b",
  ":",
  "/",
  ".",
  "@",
  "-",
  "_",
  "#",
  "{",
  "}",
];

/** Valid ids, half of them built from the strategies' own key parts. */
const id = fc.oneof(
  fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 8 }).map((parts) => parts.join("")),
  fc.stringMatching(ID_PATTERN),
);
const validId = id.filter((s) => ID_PATTERN.test(s));
/** Ids around one base id (`k`, `k:state`, `state:k`, ...): where collisions hide. */
const family = fc
  .tuple(
    validId,
    fc.array(fc.tuple(fc.boolean(), fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 3 })), {
      minLength: 1,
      maxLength: 5,
    }),
  )
  .map(([base, affixes]) => [
    base,
    ...affixes.map(([before, parts]) => (before ? `${parts.join("")}${base}` : `${base}${parts.join("")}`)),
  ])
  .map((ids) => [...new Set(ids.filter((s) => ID_PATTERN.test(s)))]);

/** The crafted ids that broke the `operations` preset, and their relatives. */
const CRAFTED = [
  "k",
  "k:state",
  "k:events",
  "state",
  "scope",
  "state:k",
  "scope:k",
  "progress:k",
  "hash:k",
  "channel:k",
  "chunking:progress:k",
  "stream:chunking:k",
  "k/../state",
];

function owners(keys: KeyStrategy, ops: readonly string[], scopes: readonly string[]): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const claim = (key: string, who: string): void => {
    const list = seen.get(key) ?? [];
    if (!list.includes(who)) list.push(who);
    seen.set(key, list);
  };
  for (const op of ops) {
    claim(keys.events(op), `events of op ${op}`);
    claim(keys.state(op), `state of op ${op}`);
  }
  for (const scope of scopes) claim(keys.scope(scope), `scope ${scope}`);
  return seen;
}

function shared(keys: KeyStrategy, ops: readonly string[], scopes: readonly string[]): string[] {
  return [...owners(keys, ops, scopes)].filter(([, who]) => who.length > 1).map(([key, who]) => `${key}: ${who}`);
}

describe.each(strategies)("key strategy %s", (_name, keys) => {
  it("gives crafted ids keys of their own", () => {
    expect(CRAFTED.every((s) => ID_PATTERN.test(s))).toBe(true);
    expect(shared(keys, CRAFTED, CRAFTED)).toEqual([]);
  });

  it("never lets two distinct ids, as operations or scopes, share a key", () => {
    fc.assert(
      fc.property(fc.oneof(family, fc.uniqueArray(validId, { minLength: 2, maxLength: 6 })), family, (ops, scopes) => {
        expect(shared(keys, ops, scopes)).toEqual([]);
      }),
      { numRuns: 1000 },
    );
  });
});
