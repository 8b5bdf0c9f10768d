/**
 * examples/bullmq-react as a user runs it: server.ts and worker.ts as their
 * own processes on a real redis-server, the page they serve in Debian's
 * Chromium (playwright-core, never a downloaded browser). A user starts
 * imports from the page and watches them complete in the list; a reload
 * rebuilds the list from the scope; another user's page lists none of them.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { type Running, startExample } from "./support.ts";

const CHROMIUM = "/usr/bin/chromium";

let redis: RedisServer;
let server: Running;
let worker: Running;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\`.`);
  }
  redis = await startRedis();
  [server, worker] = await Promise.all([
    startExample("examples/bullmq-react/server.ts", { REDIS_URL: redis.url }),
    startExample("examples/bullmq-react/worker.ts", { REDIS_URL: redis.url, STEPS: "4" }, undefined, /(worker ready)/),
  ]);
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
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), worker?.stop()]);
  await redis?.close();
});

/** Each listed job: `op: status`, as the page shows it, in the list's order. */
const listed = (page: Page): Promise<string[]> =>
  page.$$eval("li", (items) => items.map((li) => `${li.textContent?.split(":")[0]?.trim()}: ${li.dataset.status}`));

describe("examples/bullmq-react", () => {
  it("a user's imports, started from the page, are listed live to completed; a reload lists them again", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.url}/?user=7`);
      await page.getByText("No imports yet.").waitFor();
      for (let i = 0; i < 2; i++) {
        await Promise.all([
          page.waitForResponse((r) => r.url().endsWith("/users/7/imports") && r.status() === 201),
          page.getByRole("button", { name: "Start an import" }).click(),
        ]);
      }
      // Live: each job shows up, runs with its step message, and completes.
      await page
        .locator("li[data-status=running]", { hasText: /Step \d of 4/ })
        .first()
        .waitFor({ timeout: 60_000 });
      await page.waitForFunction(() => document.querySelectorAll("li[data-status=completed]").length === 2, null, {
        timeout: 60_000,
      });
      const live = await listed(page);
      expect(live, server.output() + worker.output()).toHaveLength(2);
      for (const item of live) expect(item).toMatch(/^user-7\.\d+-\d+: completed$/);
      expect(
        await page.locator("progress").evaluateAll((bars) => bars.map((b) => (b as HTMLProgressElement).value)),
      ).toEqual([100, 100]);

      // A late joiner: the list is rebuilt from the scope's history.
      await page.reload();
      await page.waitForFunction(() => document.querySelectorAll("li[data-status=completed]").length === 2, null, {
        timeout: 30_000,
      });
      expect((await listed(page)).sort()).toEqual([...live].sort());

      // Another user's scope holds none of them: once user 8 starts one, it is the only one listed.
      await page.goto(`${server.url}/?user=8`);
      await page.getByText("No imports yet.").waitFor();
      await page.getByRole("button", { name: "Start an import" }).click();
      await page.waitForFunction(() => document.querySelectorAll("li[data-status=completed]").length === 1, null, {
        timeout: 60_000,
      });
      const other = await listed(page);
      expect(other).toHaveLength(1);
      expect(other[0]).toMatch(/^user-8\.\d+-\d+: completed$/);
    } finally {
      await page.close();
    }
  }, 240_000);
});
