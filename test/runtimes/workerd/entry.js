// Bundle entry of the test Worker. It imports the BUILT package by its public
// names, as a user's Worker would: esbuild resolves them through package.json
// `exports` (self-reference) to dist/. Plain JS so `tsc` does not need dist/.
import { createProgress } from "progresscast";
import { memory } from "progresscast/memory";
import { upstash } from "progresscast/upstash";
import { createWorker } from "./worker.ts";

export default createWorker({ createProgress, memory, upstash });
