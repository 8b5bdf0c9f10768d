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
 * - `GET /sse?op=<op>`: `progress.sse(request, op)` on the Upstash adapter
 *   (default prefix): the `text/event-stream` Response, streamed until the
 *   operation ends or the client goes away. `Last-Event-ID` and `?after=` are
 *   the library's to honour; `?heartbeatMs=` sets the heartbeat (workerd
 *   notices a client that left when it next writes).
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
  /**
   * A manager on the chosen backend, closed after the route answers, or after
   * the body of the response passed to `streaming` ends.
   */
  readonly progress: (options?: { readonly backend?: string; readonly prefix?: string }) => Progress;
  /** Keep this request's managers open while `response`'s body streams; close them when it ends or is cancelled. */
  readonly streaming: (response: Response) => Response;
}

type Route = (ctx: Context) => Promise<Response>;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/**
 * The same response, whose body calls `done` once: before it closes, when it
 * errors, or when the client cancels it (then the original body is cancelled too).
 */
function closeAfterBody(response: Response, done: () => Promise<void>): Response {
  const source = response.body;
  if (source === null) {
    void done();
    return response;
  }
  const reader = source.getReader();
  let finished: Promise<void> | undefined;
  const finish = (): Promise<void> => {
    finished ??= done();
    return finished;
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        await finish();
        controller.error(error);
        return;
      }
      if (chunk.done) {
        await finish();
        controller.close();
      } else controller.enqueue(chunk.value);
    },
    async cancel(reason) {
      try {
        await reader.cancel(reason);
      } finally {
        await finish();
      }
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
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

  async "GET /sse"({ request, url, progress, streaming }) {
    const op = url.searchParams.get("op") ?? "";
    const heartbeatMs = Number(url.searchParams.get("heartbeatMs") ?? Number.NaN);
    return streaming(await progress().sse(request, op, Number.isFinite(heartbeatMs) ? { heartbeatMs } : {}));
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
      const closeAll = async (): Promise<void> => {
        await Promise.all(open.splice(0).map((p) => p.close()));
      };
      let streamed = false;
      const streaming: Context["streaming"] = (response) => {
        streamed = true;
        return closeAfterBody(response, closeAll);
      };
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
        return await route({ request, url, env, lib, progress, streaming });
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        streamed = false; // no body will close them
        return json({ error: `${e.name}: ${e.message}`, stack: e.stack }, 500);
      } finally {
        // A streamed body closes its managers when it ends.
        if (!streamed) await closeAll();
      }
    },
  };
}
