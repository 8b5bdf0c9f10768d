/**
 * Generates schema/wire-v1.json from the zod schema of the wire format
 * (never written by hand). `tsx scripts/wire-schema.ts` writes it;
 * `--check` fails when the file is out of date.
 */
import { readFileSync, writeFileSync } from "node:fs";
import * as z from "zod/mini";
import { WireEventSchema } from "../src/schema/index.ts";

export function wireSchemaJson(): string {
  const schema = {
    ...z.toJSONSchema(WireEventSchema),
    $id: "https://progresscast.dev/schema/wire-v1.json",
    title: "progresscast wire format v1: the flat string fields of a stream entry",
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

const file = new URL("../schema/wire-v1.json", import.meta.url);
if (import.meta.url === `file://${process.argv[1]}`) {
  const json = wireSchemaJson();
  if (process.argv.includes("--check")) {
    if (readFileSync(file, "utf8") !== json) {
      console.error("schema/wire-v1.json is out of date: run `tsx scripts/wire-schema.ts`");
      process.exit(1);
    }
  } else writeFileSync(file, json);
}
