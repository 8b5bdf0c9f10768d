/**
 * examples/fastapi-celery run as its README says, every part a real process:
 * redis-server, the Celery worker and the FastAPI app (Uvicorn) on Debian's
 * /usr/bin/python3, and `progresscast serve`. A client follows a job the app
 * started, with the token the app minted, through to `completed`: the
 * package's `follow`, and the example's page in Chromium.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { follow, type ProgressState } from "../../src/client/index.ts";
import { freePort, type RedisServer, startRedis } from "../support/redis-server.ts";
import { bundleCli, cleanEnv, type GatewayProcess, killGateways, root, startGateway } from "./serve-support.ts";

const PYTHON = "/usr/bin/python3";
const CHROMIUM = "/usr/bin/chromium";
const EXAMPLE = join(root, "examples", "fastapi-celery");
const SECRET = "example-secret-of-at-least-32-bytes-abcdef";

/** The Debian packages the example needs that /usr/bin/python3 cannot import. */
function missingPackages(): string[] {
  const needs: Array<[module: string, pkg: string]> = [
    ["fastapi", "python3-fastapi"],
    ["uvicorn", "python3-uvicorn"],
    ["celery", "python3-celery"],
    ["redis", "python3-redis"],
  ];
  if (!existsSync(PYTHON)) return needs.map(([, pkg]) => pkg);
  return needs
    .filter(([module]) => {
      try {
        execFileSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore" });
        return false;
      } catch {
        return true;
      }
    })
    .map(([, pkg]) => pkg);
}

const missing = missingPackages();
const children: ChildProcess[] = [];
let redis: RedisServer | undefined;
let bundle: Awaited<ReturnType<typeof bundleCli>> | undefined;
let gateway: GatewayProcess;
let app: string;
let output = "";

function python(args: readonly string[], env: Record<string, string>): ChildProcess {
  const child = spawn(PYTHON, args, {
    cwd: EXAMPLE,
    env: cleanEnv({ PYTHONPATH: join(root, "python"), PYTHONUNBUFFERED: "1", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-8000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  children.push(child);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** Resolves once `url` answers 200. @throws after `timeoutMs`, with the processes' output. */
async function until200(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${output}`);
}

async function startJob(rows: number): Promise<{ op: string; token: string; events: string; ws: string }> {
  const res = await fetch(`${app}/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ rows }),
  });
  expect(res.status, output).toBe(200);
  return (await res.json()) as { op: string; token: string; events: string; ws: string };
}

describe.skipIf(missing.length > 0)(
  `examples/fastapi-celery${missing.length > 0 ? ` (skipped: /usr/bin/python3 lacks ${missing.join(", ")}; apt-get install -y ${missing.join(" ")})` : ""}`,
  { timeout: 120_000 },
  () => {
    beforeAll(async () => {
      redis = await startRedis();
      bundle = await bundleCli("serve-fastapi");
      const appPort = await freePort();
      app = `http://127.0.0.1:${appPort}`;
      // The README's three commands.
      gateway = await startGateway(bundle.file, ["--redis", redis.url, "--cors-origin", app], {
        PROGRESSCAST_JWT_SECRET: SECRET,
      });
      const env = { REDIS_URL: redis.url, PROGRESSCAST_JWT_SECRET: SECRET, GATEWAY_URL: gateway.url };
      python(["-m", "celery", "-A", "tasks", "worker", "--pool=solo", "--concurrency=1", "-l", "warning"], {
        ...env,
        STEP_SECONDS: "0.05",
      });
      python(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", String(appPort)], env);
      await until200(`${app}/healthz`);
    }, 120_000);

    afterAll(async () => {
      await Promise.all(children.map(stop));
      killGateways();
      await redis?.close();
      bundle?.remove();
    });

    it("a job started through the app is followed from the gateway with the app's token, to completed", async () => {
      const job = await startJob(12);
      expect(job.events).toBe(`${gateway.url}/ops/${job.op}/events?token=${job.token}`);
      const seen: ProgressState[] = [];
      const types: string[] = [];
      const following = follow(job.events, {
        onState: (s) => seen.push(s),
        onEvent: (e) => types.push(e.type),
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        following.done,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the job did not complete in time:\n${output}`)), 90_000);
        }),
      ]).finally(() => clearTimeout(timer));
      expect(following.state).toMatchObject({ op: job.op, status: "completed", progress: 100 });
      expect(seen.some((s) => s.status === "running" && (s.progress ?? 0) > 0 && (s.progress ?? 100) < 100)).toBe(true);
      expect(types).toContain("report_ready");

      // The token names that job only.
      const other = await startJob(1);
      const refused = await fetch(`${gateway.url}/ops/${other.op}/events?token=${job.token}`);
      expect(refused.status).toBe(403);
    });

    it.skipIf(!existsSync(CHROMIUM))("the example's page shows the job through to completed in Chromium", async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
      });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("console", (m) => {
          // The browser's own request for /favicon.ico is no error of the page.
          if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) errors.push(m.text());
        });
        await page.goto(`${app}/?rows=10`);
        await page.click("#start");
        await page.waitForFunction(() => document.getElementById("status")?.textContent === "completed", undefined, {
          timeout: 90_000,
        });
        expect(await page.locator("#bar").evaluate((el) => (el as HTMLProgressElement).value)).toBe(100);
        expect(await page.locator("#percent").textContent()).toBe("100%");
        // The page is on the app's origin, the stream on the gateway's: CORS let it through.
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  },
);
