/**
 * The demo page's script (bundled by the demo server into /app.js; the import
 * of the client is rewritten to /client.js, itself bundled from src/client).
 *
 * One SSE connection (`GET /events`, the `demo` scope) carries every job. A
 * fresh tab gets the scope's history from the start and rebuilds all jobs; a
 * reloaded tab restores what it had from sessionStorage and resumes after the
 * last event id it saw, so nothing is missed and nothing arrives twice.
 */
import { type ConnectionStatus, follow, type ProgressEvent, type Status } from "../src/client/index.ts";

interface JobEvent {
  readonly type: string;
  readonly message: string;
  readonly ts: string;
}

interface JobView {
  op: string;
  kind: string;
  title: string;
  status: Status;
  progress: number;
  message: string;
  current?: number;
  total?: number;
  seq: number;
  ts: string;
  firstTs: string;
  events: JobEvent[];
  error?: string;
}

interface Saved {
  lastEventId?: string;
  jobs: Record<string, JobView>;
  seqs: Record<string, number[]>;
}

/** What the page exposes for tests and curious people (`window.__demo` in the console). */
export interface DemoDebug {
  run: string;
  /** The event id this page load resumed after; undefined for a fresh start. */
  resumedFrom: string | undefined;
  lastEventId: string | undefined;
  jobs: Record<string, JobView>;
  /** Every seq received per operation, across reloads: no gap, no duplicate. */
  seqs: Record<string, number[]>;
  connection: ConnectionStatus;
  /** Events received by this page load. */
  received: number;
}

declare global {
  interface Window {
    __demo?: DemoDebug;
  }
}

const run = document.querySelector<HTMLMetaElement>('meta[name="demo-run"]')?.content ?? "";
const storageKey = `progresscast-demo:${run}`;
const TERMINAL: readonly Status[] = ["completed", "failed", "cancelled"];

function load(): Saved {
  try {
    const text = sessionStorage.getItem(storageKey);
    if (text) {
      const saved: unknown = JSON.parse(text);
      if (saved && typeof saved === "object" && "jobs" in saved && "seqs" in saved) return saved as Saved;
    }
  } catch {
    // Storage unavailable or corrupt: start fresh from the scope's history.
  }
  return { jobs: {}, seqs: {} };
}

const saved = load();
const debug: DemoDebug = {
  run,
  resumedFrom: saved.lastEventId,
  lastEventId: saved.lastEventId,
  jobs: saved.jobs,
  seqs: saved.seqs,
  connection: "connecting",
  received: 0,
};
window.__demo = debug;

function save(): void {
  const state: Saved = { jobs: debug.jobs, seqs: debug.seqs };
  if (debug.lastEventId !== undefined) state.lastEventId = debug.lastEventId;
  try {
    sessionStorage.setItem(storageKey, JSON.stringify(state));
  } catch {
    // Quota or privacy mode: a reload then starts from the scope's history.
  }
}

const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

function apply(e: ProgressEvent): void {
  debug.received++;
  if (e.id !== undefined) debug.lastEventId = e.id;
  const list = debug.seqs[e.op] ?? [];
  list.push(e.seq);
  debug.seqs[e.op] = list;
  const data = e.data ?? {};
  let job = debug.jobs[e.op];
  if (!job) {
    job = {
      op: e.op,
      kind: text(data.kind) ?? "job",
      title: text(data.title) ?? e.op,
      status: e.status,
      progress: 0,
      message: "",
      seq: 0,
      ts: e.ts,
      firstTs: e.ts,
      events: [],
    };
    debug.jobs[e.op] = job;
  }
  if (e.seq > job.seq) {
    job.seq = e.seq;
    job.ts = e.ts;
    job.status = e.status;
  }
  if (e.progress !== undefined) job.progress = Math.max(job.progress, e.progress);
  if (e.current !== undefined) job.current = e.current;
  if (e.total !== undefined) job.total = e.total;
  if (e.type === "progress") {
    if (e.message !== undefined) job.message = e.message;
  } else {
    job.events.unshift({ type: e.type, message: e.message ?? "", ts: e.ts });
    job.events.length = Math.min(job.events.length, 4);
  }
  const error = data.error;
  if (e.status === "failed" && error && typeof error === "object" && "message" in error) {
    job.error = text(error.message) ?? "failed";
  }
  save();
  scheduleRender();
}

const stream = follow("/events", {
  untilTerminal: false,
  ...(saved.lastEventId !== undefined ? { lastEventId: saved.lastEventId } : {}),
  onEvent: (e) => {
    // A scope has no snapshot of its own: its state is rebuilt from events.
    if (e.kind === "event") apply(e);
  },
  onStatus: (status) => {
    debug.connection = status;
    scheduleRender();
  },
  onError: (error) => {
    if (!error.retrying) console.error(error);
  },
});

// `/?op=<id>`: also follow one operation of the backend that the demo did not start.
const watched = new URLSearchParams(location.search).get("op");
if (watched) {
  follow(`/ops/${encodeURIComponent(watched)}/events`, {
    untilTerminal: false,
    // Its snapshot first (the state of an operation that started before the page), then its events.
    onEvent: (e) => {
      if (e.kind === "event" || !debug.jobs[e.op]) apply(e);
    },
    onError: (error) => {
      if (!error.retrying) console.error(error);
    },
  });
}

// ---- rendering ----

const $ = <T extends Element>(selector: string): T => {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`The page lacks ${selector}`);
  return el;
};

const list = $<HTMLElement>("#jobs");
const summary = $<HTMLElement>("#summary");
const connection = $<HTMLElement>("#connection");
const notice = $<HTMLElement>("#notice");

interface Card {
  readonly root: HTMLElement;
  readonly badge: HTMLElement;
  readonly fill: HTMLElement;
  readonly bar: HTMLElement;
  readonly percent: HTMLElement;
  readonly counts: HTMLElement;
  readonly message: HTMLElement;
  readonly eta: HTMLElement;
  readonly events: HTMLElement;
  readonly cancel: HTMLButtonElement;
}

const cards = new Map<string, Card>();

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  parent?: HTMLElement,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  parent?.append(node);
  return node;
}

function card(job: JobView): Card {
  const existing = cards.get(job.op);
  if (existing) return existing;
  const root = el("article", "job");
  root.dataset.op = job.op;
  const head = el("header", "job-head", root);
  const title = el("h2", "title", head);
  title.textContent = job.title;
  const badge = el("span", "badge", head);
  const op = el("span", "op", head);
  op.textContent = `started ${clock(job.firstTs)}`;
  op.title = job.op;
  const bar = el("div", "bar", root);
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-label", job.title);
  const fill = el("div", "fill", bar);
  const meta = el("div", "meta", root);
  const percent = el("span", "percent", meta);
  const counts = el("span", "counts", meta);
  const message = el("span", "message", meta);
  const eta = el("span", "eta", meta);
  const events = el("ul", "events", root);
  const cancel = el("button", "cancel", root);
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => void cancelJob(job.op, cancel));
  const c: Card = { root, badge, fill, bar, percent, counts, message, eta, events, cancel };
  cards.set(job.op, c);
  return c;
}

function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.ceil(seconds);
  if (s < 60) return `~${s} s left`;
  return `~${Math.floor(s / 60)} min ${s % 60} s left`;
}

const clock = (ts: string): string => new Date(ts).toLocaleTimeString([], { hour12: false });

function renderCard(job: JobView): void {
  const c = card(job);
  const pct = job.status === "completed" ? 100 : job.progress;
  const shown = Math.floor(pct * 10) / 10;
  c.root.dataset.status = job.status;
  c.root.dataset.progress = String(shown);
  c.root.dataset.seq = String(job.seq);
  c.badge.className = `badge ${job.status}`;
  c.badge.textContent = job.status;
  c.fill.style.width = `${pct}%`;
  c.bar.setAttribute("aria-valuenow", String(shown));
  c.percent.textContent = `${shown.toFixed(shown % 1 === 0 ? 0 : 1)}%`;
  const done = job.status === "completed" && job.total !== undefined ? job.total : job.current;
  c.counts.textContent = done !== undefined && job.total !== undefined ? `${done} / ${job.total}` : "";
  c.message.textContent = job.status === "failed" ? (job.error ?? job.message) : job.message;
  c.eta.textContent = TERMINAL.includes(job.status) ? "" : formatEta(stream.remainingSeconds(job.op));
  const items = job.events.map((e) => {
    const li = document.createElement("li");
    const type = el("span", "type", li);
    type.textContent = e.type;
    const msg = el("span", "text", li);
    msg.textContent = e.message;
    const time = el("time", "", li);
    time.dateTime = e.ts;
    time.textContent = clock(e.ts);
    return li;
  });
  c.events.replaceChildren(...items);
  const over = TERMINAL.includes(job.status);
  // Hidden but keeping its place, so a finished card is as tall as a running one.
  c.cancel.style.visibility = over ? "hidden" : "";
  if (over) c.cancel.disabled = true;
}

function render(): void {
  const jobs = Object.values(debug.jobs).sort((a, b) => b.firstTs.localeCompare(a.firstTs) || b.op.localeCompare(a.op));
  for (const job of jobs) renderCard(job);
  const order = jobs.map((j) => card(j).root);
  if (order.some((node, i) => list.children[i] !== node)) list.replaceChildren(...order);
  const counts = new Map<Status, number>();
  for (const job of jobs) counts.set(job.status, (counts.get(job.status) ?? 0) + 1);
  summary.replaceChildren(
    ...(["queued", "running", "completed", "failed", "cancelled"] as const)
      .filter((s) => counts.has(s))
      .map((s) => {
        const chip = el("span", `chip ${s}`);
        chip.textContent = `${counts.get(s)} ${s}`;
        return chip;
      }),
  );
  connection.dataset.state = debug.connection;
  // Event ids are for the client to resume from; the page says only that it did.
  connection.textContent =
    debug.connection === "open"
      ? debug.resumedFrom
        ? "live · resumed where this tab left off"
        : "live"
      : debug.connection;
  list.dataset.empty = String(jobs.length === 0);
}

let pending = false;
function scheduleRender(): void {
  if (pending) return;
  pending = true;
  // A timer, not requestAnimationFrame: a background tab still keeps its state current.
  setTimeout(() => {
    pending = false;
    render();
  }, 30);
}
// The ETA counts down between events.
setInterval(render, 500);
render();

// ---- actions ----

let noticeTimer: ReturnType<typeof setTimeout> | undefined;
function say(message: string, kind: "info" | "error" = "info"): void {
  notice.textContent = message;
  notice.dataset.kind = kind;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.hidden = true;
  }, 4000);
}

async function post(url: string, body: Record<string, unknown>): Promise<Response> {
  // The demo token travels in a SameSite=Strict cookie; a JSON body cannot be posted cross-site without CORS.
  return await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function answer(res: Response): Promise<string> {
  try {
    const body: unknown = await res.json();
    if (body && typeof body === "object" && "error" in body) return String(body.error);
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`;
}

async function cancelJob(op: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  button.textContent = "Cancelling…";
  try {
    const res = await post(`/jobs/${encodeURIComponent(op)}/cancel`, { reason: "Cancelled from the page" });
    if (!res.ok) {
      say(`Cancel refused: ${await answer(res)}`, "error");
      button.disabled = false;
      button.textContent = "Cancel";
    }
  } catch (error) {
    say(`Cancel failed: ${String(error)}`, "error");
    button.disabled = false;
    button.textContent = "Cancel";
  }
}

const kind = $<HTMLSelectElement>("#kind");
const start = $<HTMLButtonElement>("#start");
start.addEventListener("click", async () => {
  start.disabled = true;
  try {
    const res = await post("/jobs", { kind: kind.value });
    if (!res.ok) say(`Could not start a job: ${await answer(res)}`, "error");
    else {
      const body: unknown = await res.json();
      const op = body && typeof body === "object" && "op" in body ? String(body.op) : "a job";
      say(`Started ${op}`);
    }
  } catch (error) {
    say(`Could not start a job: ${String(error)}`, "error");
  } finally {
    start.disabled = false;
  }
});
