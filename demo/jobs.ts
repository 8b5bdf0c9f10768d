/**
 * Simulated background jobs for the demo. Each one is a `progress.task` on the
 * demo scope, so one SSE connection to the scope follows all of them; each
 * reports in its own style (row counts, files with custom events, percent with
 * phases, a flaky sync) and stops when cancelled (`task.signal`). Messages say
 * what is happening, never a figure of their own: the card's percent and
 * counts are the one measure of how far a job is.
 */
import type { Progress, Task } from "../src/index.ts";

/** The kinds of job the page can start. */
export const JOB_KINDS = ["import", "files", "render", "sync"] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export const isJobKind = (value: unknown): value is JobKind =>
  typeof value === "string" && (JOB_KINDS as readonly string[]).includes(value);

/** How jobs run: `speed` divides every delay (5 in `DEMO_SPEED=fast`). */
export interface JobSettings {
  readonly progress: Progress;
  readonly scope: string;
  readonly speed: number;
  /** Chance (0..1) that a `sync` job fails part way. */
  readonly failRate: number;
}

interface Step {
  readonly task: Task;
  /** Wait `ms` (divided by the speed); false when the job was cancelled meanwhile. */
  readonly wait: (ms: number) => Promise<boolean>;
  readonly failRate: number;
}

interface KindSpec {
  readonly title: string;
  readonly total?: number;
  readonly startMessage: string;
  readonly run: (step: Step) => Promise<void>;
}

const FILES = [
  "q3-report.pdf",
  "invoices-2026-10.zip",
  "team-photo.jpg",
  "roadmap.key",
  "contracts.tar.gz",
  "customers.xlsx",
  "backup-db.sql.gz",
  "logo.svg",
  "handbook.docx",
  "metrics.parquet",
];

const KINDS: { readonly [K in JobKind]: KindSpec } = {
  import: {
    title: "Import customers.csv",
    total: 2400,
    startMessage: "Reading customers.csv",
    async run({ task, wait }) {
      for (let done = 50; done <= 2400; done += 50) {
        if (!(await wait(400))) return;
        task.progress({ current: done }, "Importing rows");
        if (done % 800 === 0) {
          await task.event("batch_committed", {
            message: `Committed rows ${done - 799}–${done}`,
            data: { rows: done },
          });
        }
      }
    },
  },
  files: {
    title: "Upload 10 files",
    total: FILES.length,
    startMessage: "Connecting to storage",
    async run({ task, wait }) {
      for (const [i, file] of FILES.entries()) {
        for (let part = 1; part <= 4; part++) {
          if (!(await wait(350))) return;
          // Within a file: the overall percent moves on; the count stays at the files done.
          if (part < 4) task.progress(((i + part / 4) / FILES.length) * 100, `Uploading ${file}`);
        }
        const bytes = 40_000 + ((i * 7919) % 9) * 110_000;
        await task.event("file_completed", { message: `${file} uploaded`, data: { file, bytes } });
        task.progress({ current: i + 1 }, `${file} uploaded`);
      }
    },
  },
  render: {
    title: "Render promo video",
    startMessage: "Loading project",
    async run({ task, wait }) {
      const phases = [
        { until: 15, name: "Decoding" },
        { until: 90, name: "Encoding" },
        { until: 100, name: "Muxing" },
      ];
      let phase = -1;
      for (let p = 1; p <= 100; p++) {
        const next = phases.findIndex((ph) => p <= ph.until);
        if (next !== phase) {
          phase = next;
          const name = phases[phase]?.name ?? "Working";
          await task.event("phase_started", { message: `${name} started`, data: { phase: name } });
        }
        if (!(await wait(300))) return;
        task.progress(p, phases[phase]?.name ?? "Working");
      }
    },
  },
  sync: {
    title: "Sync CRM contacts",
    total: 300,
    startMessage: "Fetching contacts",
    async run({ task, wait, failRate }) {
      // Decided up front so a failing run fails somewhere in the middle.
      const failAt = Math.random() < failRate ? 60 + 10 * Math.floor(Math.random() * 18) : -1;
      for (let done = 10; done <= 300; done += 10) {
        if (!(await wait(300))) return;
        if (done === failAt) throw new Error("CRM API answered 503 Service Unavailable");
        task.progress({ current: done }, "Syncing contacts");
      }
    },
  },
};

/** Human title of a kind. */
export const jobTitle = (kind: JobKind): string => KINDS[kind].title;

/** A sleep that resolves early, with false, when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve(!signal.aborted);
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Run one job to its end: `queued`, then `running` with progress, then
 * `completed`, `failed`, or `cancelled` when someone cancels it. Never rejects.
 */
export async function runJob(settings: JobSettings, op: string, kind: JobKind): Promise<void> {
  const spec = KINDS[kind];
  const { progress, scope, speed } = settings;
  const data = { kind, title: spec.title };
  const task = progress.task(op, { scope, data, ...(spec.total !== undefined ? { total: spec.total } : {}) });
  const wait = (ms: number): Promise<boolean> => pause(ms / speed, task.signal);
  try {
    await progress.publish(op, { status: "queued", progress: 0, message: "Waiting for a worker", data }, { scope });
    await wait(600);
    await task.start(spec.startMessage);
    if (task.ended) return;
    await spec.run({ task, wait, failRate: settings.failRate });
    // A cancelled task has already published `cancelled` (task.signal aborted).
    if (!task.ended) await task.complete({ ...data, finishedAt: new Date().toISOString() }, "Done");
  } catch (error) {
    if (!task.ended) await task.fail(error);
  } finally {
    await task[Symbol.asyncDispose]();
  }
}
