/**
 * `npm start`: a web demo. Simulated jobs publish through the manager on the
 * `demo` scope; the page follows all of them over one SSE connection, can
 * start new ones and cancel running ones. A page that connects while no job
 * runs starts a fresh batch, one job of each kind. `/?op=<id>` (or the page's
 * "Watch" field) also follows any operation on the backend, such as one
 * published with the CLI or from Python (same Redis and `DEMO_PREFIX`).
 *
 * Memory backend by default; Redis when REDIS_URL is set.
 *
 * Environment (and flags):
 * - `PORT` or `--port N`: where to listen (default 3000; 0 picks a free port).
 * - `HOST`: interface to bind (default 127.0.0.1).
 * - `REDIS_URL`: use Redis (`nodeRedis({ url })`) instead of the memory backend.
 * - `DEMO_SPEED`: `fast` (5x, for tests) or a number dividing every delay.
 * - `DEMO_FAIL_RATE`: chance (0..1) that a `sync` job fails (default 0.3).
 * - `DEMO_TOKEN`: the token that may start and cancel jobs (default: random per run).
 * - `DEMO_PREFIX`: the key prefix (default `pc-demo-<run>`, so a restarted demo starts
 *   clean); give the CLI's `--prefix` (default `pc`) to watch what it publishes.
 *
 * Routes: `GET /` the page, `/app.js` and `/client.js` bundled on the fly with
 * esbuild, `GET /events` (all jobs), `GET /jobs/:op/events` (one job),
 * `GET /ops/:op/events` (any operation on the backend),
 * `GET /jobs` (snapshots as JSON), `POST /jobs`, `POST /jobs/:op/cancel`,
 * `GET /metrics` (Prometheus).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";
import { Registry } from "prom-client";
import { nodeRedis } from "../src/adapters/node-redis/index.ts";
import { type Authorize, createProgress, UnauthorizedError, type WatchTarget } from "../src/index.ts";
import { toRequest, writeResponse } from "../src/node/index.ts";
import { metricsHandler, prometheusMetrics } from "../src/prometheus/index.ts";
import { isJobKind, JOB_KINDS, type JobKind, jobTitle, runJob } from "./jobs.ts";

// ---- configuration ----

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const portText = flag("--port") ?? process.env.PORT ?? "3000";
const listenPort = Number(portText);
if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65_535) {
  console.error(`PORT / --port must be a port number (0 for any free port), got ${JSON.stringify(portText)}`);
  process.exit(2);
}
const host = process.env.HOST ?? "127.0.0.1";
const speedText = process.env.DEMO_SPEED ?? "1";
const speed = speedText === "fast" ? 5 : Number(speedText);
if (!(speed > 0)) {
  console.error(`DEMO_SPEED must be "fast" or a positive number, got ${JSON.stringify(speedText)}`);
  process.exit(2);
}
const failRate = Math.min(1, Math.max(0, Number(process.env.DEMO_FAIL_RATE ?? "0.3") || 0));
const token = process.env.DEMO_TOKEN ?? randomBytes(16).toString("hex");
const redisUrl = process.env.REDIS_URL;
/** One run's keys: a restarted demo on the same Redis starts clean. */
const run = Date.now().toString(36);
const SCOPE = "demo";

const metrics = prometheusMetrics({ registry: new Registry() });
const progress = createProgress({
  ...(redisUrl ? { port: nodeRedis({ url: redisUrl }) } : {}),
  prefix: process.env.DEMO_PREFIX || `pc-demo-${run}`,
  ttlSeconds: 3600,
  terminalTtlSeconds: 3600,
  // The scope stream holds every job's events: keep enough for a late tab to rebuild them all.
  maxLen: 20_000,
  throttle: { intervalMs: speed > 1 ? 100 : 250 },
  cancelCheckMs: 250,
  metrics,
});
const serveMetrics = metricsHandler(metrics.registry);

// ---- jobs ----

const jobs = new Map<string, { readonly kind: JobKind; readonly startedAt: string }>();
const running = new Set<Promise<void>>();
let counter = 0;

function startJob(kind: JobKind): string {
  const op = `${kind}-${String(++counter).padStart(3, "0")}`;
  jobs.set(op, { kind, startedAt: new Date().toISOString() });
  const job = runJob({ progress, scope: SCOPE, speed, failRate }, op, kind);
  running.add(job);
  void job.finally(() => running.delete(job));
  return op;
}

/** One job of each kind. */
function startBatch(): void {
  for (const kind of JOB_KINDS) startJob(kind);
}

// ---- authorization ----

const COOKIE = "demo_token";

function presentedToken(request: Request): string | undefined {
  const header = request.headers.get("x-demo-token");
  if (header) return header;
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === COOKIE) return decodeURIComponent(value.join("="));
  }
  return undefined;
}

/**
 * Who may follow what: anyone may watch the demo scope and the demo's own
 * jobs (a real app would check the session's user against the operation).
 */
const mayWatch: Authorize = (_request, target) =>
  target.scope === SCOPE || (target.op !== undefined && jobs.has(target.op));

/**
 * Who may start and cancel jobs: the holder of the demo token, sent by the page
 * in a SameSite=Strict cookie (or an `x-demo-token` header, for curl). The
 * same shape as `authorize`: throw 401 when there are no credentials, false for 403.
 */
const mayControl: Authorize = (request, _target) => {
  const presented = presentedToken(request);
  if (presented === undefined) throw new UnauthorizedError("a demo token is required", 401);
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
};

async function refused(authorize: Authorize, request: Request, target: WatchTarget): Promise<Response | null> {
  try {
    if (await authorize(request, target)) return null;
    return json({ error: "forbidden" }, 403);
  } catch (error) {
    if (error instanceof UnauthorizedError) return json({ error: error.message }, error.status);
    throw error;
  }
}

// ---- responses ----

function json(body: unknown, status = 200): Response {
  return new Response(`${JSON.stringify(body, null, 2)}\n`, {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** The page's script imports the client by its URL (/client.js), served as its own bundle. */
const clientByUrl: Plugin = {
  name: "client-by-url",
  setup(b) {
    b.onResolve({ filter: /\/src\/client\/index\.ts$/ }, () => ({ path: "/client.js", external: true }));
  },
};

const bundles = new Map<string, Promise<string>>();
function bundle(entry: string, plugins: Plugin[] = []): Promise<string> {
  let built = bundles.get(entry);
  if (!built) {
    built = build({
      entryPoints: [here(entry)],
      bundle: true,
      format: "esm",
      target: "es2022",
      write: false,
      plugins,
      logLevel: "silent",
    }).then((r) => r.outputFiles[0]?.text ?? "");
    // A failed build is retried on the next request.
    built.catch(() => bundles.delete(entry));
    bundles.set(entry, built);
  }
  return built;
}

function script(code: string): Response {
  return new Response(code, {
    headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" },
  });
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

let page: Promise<string> | undefined;
async function html(): Promise<Response> {
  page ??= readFile(here("./index.html"), "utf8");
  const kinds = JOB_KINDS.map((k) => `<option value="${k}">${escapeHtml(jobTitle(k))}</option>`).join("");
  const body = (await page)
    .replace("%RUN%", escapeHtml(run))
    .replace("%BACKEND%", escapeHtml(progress.backend))
    .replace("%KINDS%", kinds);
  return new Response(body, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "set-cookie": `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`,
    },
  });
}

async function readJson(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text();
  if (text.length > 4096) throw new RangeError("body too large");
  if (!text.trim()) return {};
  const value: unknown = JSON.parse(text);
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

// ---- routes ----

async function route(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  const method = request.method;
  const jobPath = /^\/jobs\/([^/]+)\/(events|cancel)$/.exec(path);

  if (method === "GET" && path === "/") {
    // A page opened after the last batch ended still sees jobs run.
    if (running.size === 0) startBatch();
    return await html();
  }
  if (method === "GET" && path === "/app.js") return script(await bundle("./app.ts", [clientByUrl]));
  if (method === "GET" && path === "/client.js") return script(await bundle("../src/client/index.ts"));
  if (method === "GET" && path === "/events") {
    return await progress.sse(request, { scope: SCOPE }, { authorize: mayWatch, heartbeatMs: 10_000 });
  }
  const opPath = /^\/ops\/([^/]+)\/events$/.exec(path);
  if (method === "GET" && opPath) {
    // Any operation on the backend may be watched here (a local demo); a bad id gets a 400.
    return await progress.sse(request, decodeURIComponent(opPath[1] ?? ""), { heartbeatMs: 10_000 });
  }
  if ((method === "GET" || method === "HEAD") && path === "/metrics") return await serveMetrics(request);
  if (method === "GET" && path === "/favicon.ico") return new Response(null, { status: 204 });

  if (method === "GET" && path === "/jobs") {
    const list = await Promise.all([...jobs].map(async ([op, job]) => ({ op, ...job, state: await progress.get(op) })));
    return json({ run, backend: progress.backend, scope: SCOPE, jobs: list });
  }
  if (method === "POST" && path === "/jobs") {
    const denied = await refused(mayControl, request, { scope: SCOPE });
    if (denied) return denied;
    const body = await readJson(request);
    const kind = body.kind === undefined ? JOB_KINDS[counter % JOB_KINDS.length] : body.kind;
    if (!isJobKind(kind)) return json({ error: `kind must be one of ${JOB_KINDS.join(", ")}` }, 400);
    const op = startJob(kind);
    return json({ op, kind, events: `/jobs/${op}/events` }, 201);
  }
  if (jobPath) {
    const op = decodeURIComponent(jobPath[1] ?? "");
    if (!jobs.has(op)) return json({ error: `no job ${op}` }, 404);
    if (method === "GET" && jobPath[2] === "events") {
      return await progress.sse(request, op, { authorize: mayWatch, heartbeatMs: 10_000 });
    }
    if (method === "POST" && jobPath[2] === "cancel") {
      const denied = await refused(mayControl, request, { op });
      if (denied) return denied;
      const body = await readJson(request);
      const reason = typeof body.reason === "string" ? body.reason.slice(0, 200) : "Cancelled";
      const accepted = await progress.cancel(op, reason);
      return accepted ? json({ op, cancelling: true, reason }, 202) : json({ error: `${op} already ended` }, 409);
    }
  }
  return json({ error: `no route for ${method} ${path}` }, 404);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  // POST bodies are read by the web Request, so hand it the Node stream.
  const base = toRequest(req, res);
  const request = req.method === "POST" ? new Request(base, { body: await readBody(req), signal: base.signal }) : base;
  let response: Response;
  try {
    response = await route(request);
  } catch (error) {
    const status = error instanceof SyntaxError || error instanceof RangeError ? 400 : 500;
    if (status === 500) console.error(error);
    response = json({ error: error instanceof Error ? error.message : String(error) }, status);
  }
  await writeResponse(res, response);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 4096) break;
  }
  return text;
}

// ---- start ----

const server = createServer((req, res) => {
  handle(req, res).catch((error: unknown) => {
    console.error(error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});

server.once("error", (error: NodeJS.ErrnoException) => {
  const hint = error.code === "EADDRINUSE" ? ` (port ${listenPort} is taken: set PORT or pass --port 0)` : "";
  console.error(`progresscast demo could not listen on ${host}:${listenPort}: ${error.message}${hint}`);
  process.exit(1);
});

server.listen(listenPort, host, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : listenPort;
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  console.log(
    `progresscast demo listening on http://${shown}:${port} (${progress.backend} backend${redisUrl ? ` at ${redisUrl}` : ""}, speed ${speed}x)`,
  );
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  server.close();
  server.closeAllConnections();
  const timer = setTimeout(() => process.exit(1), 3000);
  timer.unref();
  // Jobs see their manager close; what they hold is flushed first.
  await progress.close();
  process.exit(0);
}
process.once("SIGINT", () => void shutdown("SIGINT"));
process.once("SIGTERM", () => void shutdown("SIGTERM"));
