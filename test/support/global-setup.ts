import { assertRedisInstalled } from "./redis-server.ts";

/** Fails the run at once, with how to fix it, when redis-server is missing. */
export default function setup(): void {
  assertRedisInstalled();
}
