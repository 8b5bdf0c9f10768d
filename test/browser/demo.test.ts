/**
 * The web demo in a real browser: Debian's Chromium driven by playwright-core
 * (never a downloaded browser), against `tsx demo/main.ts` as a child
 * process, on the memory backend and on a redis-server of its own.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { DemoDebug } from "../../demo/app.ts";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { createProgress } from "../../src/index.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = join(import.meta.dirname, "..", "..");
const ARTIFACTS = join(ROOT, "test", "artifacts");
const TERMINAL = ["completed", "failed", "cancelled"];

interface Demo {
  readonly url: string;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** Start `tsx demo/main.ts --port 0` and wait for its "listening on" line. */
async function startDemo(env: Record<string, string>): Promise<Demo> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, DEMO_SPEED: "fast", DEMO_FAIL_RATE: "0", ...env };
  if (env.REDIS_URL === undefined) delete childEnv.REDIS_URL;
  delete childEnv.PORT;
  const child: ChildProcess = spawn(join(ROOT, "node_modules", ".bin", "tsx"), ["demo/main.ts", "--port", "0"], {
    cwd: ROOT,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += String(chunk);
  });
  child.stderr?.on("data", (chunk) => {
    output += String(chunk);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: tsx and the page bundle start slowly on a loaded machine.
    const timer = setTimeout(() => reject(new Error(`The demo did not start within 90 s:\n${output}`)), 90_000);
    const check = (): void => {
      const m = /progresscast demo listening on (http:\/\/\S+)/.exec(output);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`The demo exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const demoState = async (page: Page): Promise<DemoDebug> => {
  const state = await page.evaluate(() => window.__demo);
  if (!state) throw new Error("The page did not expose window.__demo");
  return state;
};

/** Status, progress, seq and custom events of each job, as a page shows them. */
async function shown(page: Page): Promise<Record<string, { status: string; progress: string; seq: string }>> {
  return await page.$$eval("article.job", (cards) =>
    Object.fromEntries(
      cards.map((c) => {
        const d = (c as HTMLElement).dataset;
        return [d.op ?? "", { status: d.status ?? "", progress: d.progress ?? "", seq: d.seq ?? "" }];
      }),
    ),
  );
}

interface ServerJob {
  readonly op: string;
  readonly state: { readonly seq: number; readonly status: string; readonly progress?: number } | null;
}

async function serverJobs(url: string): Promise<ServerJob[]> {
  const res = await fetch(`${url}/jobs`);
  const body = (await res.json()) as { jobs: ServerJob[] };
  return body.jobs;
}

/** Every op's seqs are exactly 1..final: nothing missed, nothing twice, in order. */
function expectContiguous(seqs: Record<string, number[]>, jobs: readonly ServerJob[]): void {
  for (const job of jobs) {
    const final = job.state?.seq ?? 0;
    expect(seqs[job.op], `seqs of ${job.op}`).toEqual(Array.from({ length: final }, (_, i) => i + 1));
  }
}

let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. The browser tests use Debian's Chromium and never download one: ` +
        "install it with `apt-get install -y chromium`.",
    );
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

async function scenario(demo: Demo, screenshot: string): Promise<void> {
  if (!browser) throw new Error("no browser");
  const errors: string[] = [];
  const contextA = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const contextB = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    const a = await contextA.newPage();
    a.on("pageerror", (e) => errors.push(`page A: ${e.message}`));
    await a.goto(demo.url);

    // The four startup jobs appear (on a loaded machine they may have ended by now). A render job
    // started from the page (the longest kind) is then caught mid-way.
    await a.waitForFunction(() => Object.keys(window.__demo?.jobs ?? {}).length >= 4);
    const renderJob = await a.evaluate(async () => {
      const res = await fetch("/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ kind: "render" }),
      });
      return (await res.json()) as { op: string };
    });
    await a.waitForFunction((op) => {
      const job = window.__demo?.jobs[op];
      return job !== undefined && job.progress >= 10 && job.progress < 75;
    }, renderJob.op);
    const before = await demoState(a);
    const render = before.jobs[renderJob.op];
    if (!render) throw new Error("no render job");
    // Mid-run, the render job shows the time remaining.
    await a
      .locator(`article.job[data-op="${render.op}"] .eta`)
      .filter({ hasText: /^~\d+ s left$/ })
      .waitFor();
    expect(before.resumedFrom).toBeUndefined();

    // Reload mid-job: the page restores its state and resumes after the last id it saw.
    await a.reload();
    const restored = await demoState(a);
    expect(restored.resumedFrom).toEqual(expect.stringMatching(/^\d+-\d+$/));
    expect(restored.jobs[render.op]?.progress ?? 0).toBeGreaterThanOrEqual(render.progress);
    await a.waitForFunction(
      ([op, p]) => (window.__demo?.jobs[op]?.progress ?? 0) > p && window.__demo?.connection === "open",
      [render.op, render.progress] as const,
    );

    // A late tab, opened mid-run, rebuilds every job from the scope's history.
    const b = await contextB.newPage();
    b.on("pageerror", (e) => errors.push(`page B: ${e.message}`));
    await b.goto(demo.url);

    // Start a job from the page, then cancel it from the page.
    await a.selectOption("#kind", "render");
    const [started] = await Promise.all([
      a.waitForResponse((r) => r.url().endsWith("/jobs") && r.request().method() === "POST"),
      a.click("#start"),
    ]);
    expect(started.status()).toBe(201);
    const { op: cancelOp } = (await started.json()) as { op: string };
    await a.locator(`article.job[data-op="${cancelOp}"][data-status="running"]`).waitFor();
    await a.locator(`article.job[data-op="${cancelOp}"] button.cancel`).click();
    await a.locator(`article.job[data-op="${cancelOp}"][data-status="cancelled"]`).waitFor();

    await a.screenshot({ path: join(ARTIFACTS, screenshot), fullPage: true });

    // Every other bar reaches 100 %, on both pages.
    for (const page of [a, b]) {
      await page.waitForFunction(
        (terminal) => {
          const cards = [...document.querySelectorAll<HTMLElement>("article.job")];
          return cards.length >= 6 && cards.every((c) => terminal.includes(c.dataset.status ?? ""));
        },
        TERMINAL,
        { timeout: 60_000 },
      );
    }
    const jobs = await serverJobs(demo.url);
    expect(jobs.length).toBe(6);
    const viewA = await shown(a);
    for (const job of jobs) {
      const expected = job.op === cancelOp ? { status: "cancelled" } : { status: "completed", progress: "100" };
      expect(viewA[job.op], job.op).toMatchObject({ ...expected, seq: String(job.state?.seq) });
    }
    // The late tab shows the same state as the first.
    expect(await shown(b)).toEqual(viewA);
    const stateA = await demoState(a);
    const stateB = await demoState(b);
    for (const job of jobs) {
      expect(stateB.jobs[job.op]?.events, `${job.op} custom events`).toEqual(stateA.jobs[job.op]?.events);
    }
    expect(stateA.jobs[jobs.find((j) => j.op.startsWith("files"))?.op ?? ""]?.events[0]?.type).toBe("file_completed");

    // No gap and no duplicate across the reload, nor in the late tab.
    expectContiguous(stateA.seqs, jobs);
    expectContiguous(stateB.seqs, jobs);
    expect(stateA.received).toBeLessThan(Object.values(stateA.seqs).flat().length);

    expect(errors).toEqual([]);
  } catch (error) {
    throw new Error(`${String(error)}\n--- demo output ---\n${demo.output()}`, { cause: error });
  } finally {
    await contextA.close();
    await contextB.close();
  }
}

/**
 * After every job ended: a page opened now starts a fresh batch, and `/?op=<id>` (what the
 * page's Watch field opens) follows an operation the demo did not start, published by
 * another process on the same Redis and prefix (as the CLI or Python would).
 */
async function watchAnyOperation(demo: Demo, redisUrl: string, prefix: string): Promise<void> {
  if (!browser) throw new Error("no browser");
  const before = (await serverJobs(demo.url)).length;
  const outside = createProgress({ port: nodeRedis({ url: redisUrl }), prefix, logger: {} });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    await outside.publish("ext-import-7", { status: "running", progress: 30, message: "Rows 300 of 1000" });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${demo.url}/`);
    await page.fill("#watch-op", "ext-import-7");
    await Promise.all([page.waitForURL(/\?op=ext-import-7$/), page.click("#watch button")]);
    await page.locator('article.job[data-op="ext-import-7"][data-status="running"][data-progress="30"]').waitFor();
    await outside.publish("ext-import-7", { progress: 80, message: "Rows 800 of 1000" });
    await outside.publish("ext-import-7", { status: "completed" });
    await page.locator('article.job[data-op="ext-import-7"][data-status="completed"][data-progress="100"]').waitFor();
    // The page opened with no job running started a batch of four (the second load found them running).
    const jobs = await serverJobs(demo.url);
    expect(jobs.length).toBe(before + 4);
    const fresh = jobs.slice(before);
    expect(fresh.map((j) => j.op.replace(/-\d+$/, ""))).toEqual(["import", "files", "render", "sync"]);
    await page.waitForFunction(
      (ops) => ops.every((op) => window.__demo?.jobs[op] !== undefined),
      fresh.map((j) => j.op),
    );
    expect(errors).toEqual([]);
  } finally {
    await context.close();
    await outside.close();
  }
}

describe("web demo (npm start)", () => {
  test("memory backend: bars reach 100 %, reload resumes, late tab rebuilds, cancel works", async () => {
    const demo = await startDemo({});
    try {
      await scenario(demo, "demo.png");
    } finally {
      await demo.stop();
    }
  }, 180_000);

  test("Redis backend (REDIS_URL): the same", async () => {
    let redis: RedisServer | undefined;
    let demo: Demo | undefined;
    try {
      redis = await startRedis();
      const prefix = `pc-ext-${Date.now().toString(36)}`;
      demo = await startDemo({ REDIS_URL: redis.url, DEMO_PREFIX: prefix });
      expect(demo.output()).toContain("node-redis backend");
      await scenario(demo, "demo-redis.png");
      await watchAnyOperation(demo, redis.url, prefix);
    } finally {
      await demo?.stop();
      await redis?.close();
    }
  }, 180_000);
});
