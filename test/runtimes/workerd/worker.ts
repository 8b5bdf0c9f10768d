/**
 * The test Worker: routes that publish and read progress inside workerd.
 *
 * It receives the library from entry.js, which imports the BUILT package by
 * its public names (`progresscast`, `progresscast/upstash`, ...), resolved by
 * esbuild through package.json `exports` with the workerd conditions. This file
 * only borrows the types of the sources, so `tsc` checks it without a build.
 *
 * Routes (add one by adding an entry to `routes`):
 * - `POST /publish?op=<op>`: publish a running, running, completed sequence
 *   through the Upstash adapter (default prefix), read it back with get and
 *   history; answers JSON.
 * - `GET /scenarios?backend=upstash|memory`: run the shared runtime scenarios
 *   (../scenarios.ts); answers JSON with one result per scenario.
 *
 * @module
 */
import type { memory } from "../../../src/adapters/memory/index.ts";
import type { upstash } from "../../../src/adapters/upstash/index.ts";
import type { createProgress, Progress, StreamPort } from "../../../src/index.ts";
import { runScenarios, uniquePrefix } from "../scenarios.ts";

/** What entry.js hands over from the built package. */
export interface Library {
  readonly createProgress: typeof createProgress;
  readonly memory: typeof memory;
  readonly upstash: typeof upstash;
}

/** Miniflare bindings. */
export interface Env {
  /** Base URL of the Upstash-compatible REST server. */
  readonly UPSTASH_URL: string;
  readonly UPSTASH_TOKEN: string;
}

/** What a route gets: the request, its URL, the bindings and a way to build a manager. */
interface Context {
  readonly request: Request;
  readonly url: URL;
  readonly env: Env;
  readonly lib: Library;
  /** A manager on the chosen backend, closed after the route answers. */
  readonly progress: (options?: { readonly backend?: string; readonly prefix?: string }) => Progress;
}

type Route = (ctx: Context) => Promise<Response>;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

const routes: Record<string, Route> = {
  async "POST /publish"({ url, progress }) {
    const op = url.searchParams.get("op") ?? "";
    const p = progress();
    const results = [
      await p.publish(op, {
        current: 1,
        total: 4,
        message: "Chunked 1 of 4",
        cid: "worker-1",
        data: { runtime: "workerd" },
      }),
      await p.publish(op, { current: 2, total: 4, message: "Chunked 2 of 4" }),
      await p.publish(op, { status: "completed", message: "Done" }),
      // After the terminal event: refused, by the ordering rules.
      await p.publish(op, { current: 3, total: 4 }),
    ];
    return json({ backend: p.backend, results, snapshot: await p.get(op), history: await p.history(op) });
  },

  async "GET /scenarios"({ progress, url }) {
    const backend = url.searchParams.get("backend") ?? "upstash";
    const results = await runScenarios(() => progress({ backend, prefix: uniquePrefix() }));
    return json({ backend, results });
  },
};

/**
 * Build the Worker's module export from the library.
 *
 * @example
 * ```ts
 * export default createWorker({ createProgress, memory, upstash });
 * ```
 */
export function createWorker(lib: Library): { fetch(request: Request, env: Env): Promise<Response> } {
  return {
    async fetch(request, env) {
      const url = new URL(request.url);
      const route = routes[`${request.method} ${url.pathname}`];
      if (route === undefined) return json({ error: `no route ${request.method} ${url.pathname}` }, 404);
      // Workers may not share I/O objects between requests: one set of managers per request.
      const open: Progress[] = [];
      const progress: Context["progress"] = (options = {}) => {
        const port: StreamPort =
          (options.backend ?? "upstash") === "memory"
            ? lib.memory()
            : lib.upstash({ url: env.UPSTASH_URL, token: env.UPSTASH_TOKEN, retry: false, pollMaxMs: 200 });
        const manager = lib.createProgress({ port, logger: {}, ...(options.prefix ? { prefix: options.prefix } : {}) });
        open.push(manager);
        return manager;
      };
      try {
        return await route({ request, url, env, lib, progress });
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        return json({ error: `${e.name}: ${e.message}`, stack: e.stack }, 500);
      } finally {
        await Promise.all(open.map((p) => p.close()));
      }
    },
  };
}
