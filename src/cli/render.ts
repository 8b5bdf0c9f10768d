/**
 * Terminal output: progress bars, the live board of `watch`, and the tables
 * of `inspect`. Plain lines when the output is not a terminal.
 *
 * @module
 */
import { compareIds, isTerminal, type ProgressEvent, type ProgressSnapshot, type ProgressStatus } from "../index.ts";

/** Where output goes: `process.stdout` fits, and so does a test's buffer. */
export interface CliOutput {
  write(chunk: string): unknown;
  /** True on a terminal: `watch` redraws its bars in place. */
  readonly isTTY?: boolean | undefined;
  /** Terminal width, used to keep a redrawn line on one row. */
  readonly columns?: number | undefined;
}

/** Percent as shown: `40%`, `42.5%`, `100%`. */
export function percent(p: number): string {
  return `${Number.isInteger(p) ? p : p.toFixed(1)}%`;
}

/** A bar of `width` cells: `[########------------]`. */
export function bar(p: number, width = 20): string {
  const filled = Math.max(0, Math.min(width, Math.round((p / 100) * width)));
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

/** Seconds as `12s`, `3m05s`, `1h02m`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** What the board knows of one operation. */
interface OpState {
  op: string;
  known: boolean;
  status: ProgressStatus;
  progress: number | undefined;
  current: number | undefined;
  total: number | undefined;
  message: string | undefined;
  eta: number | undefined;
}

type Update = Omit<ProgressSnapshot, "id"> | ProgressEvent;

function merge(state: OpState, u: Update): void {
  state.known = true;
  state.status = u.status;
  if (u.progress !== undefined) state.progress = u.progress;
  if (u.current !== undefined) state.current = u.current;
  if (u.total !== undefined) state.total = u.total;
  if (u.message !== undefined) state.message = u.message;
  state.eta = isTerminal(u.status) ? undefined : (u.eta ?? state.eta);
}

function line(s: OpState): string {
  if (!s.known) return `${s.op}  waiting for the first event`;
  const p = s.progress ?? 0;
  const parts = [s.op, bar(p), percent(p), s.status];
  if (s.current !== undefined && s.total !== undefined) parts.push(`${s.current}/${s.total}`);
  if (s.message !== undefined && s.message !== "") parts.push(s.message);
  if (s.eta !== undefined) parts.push(`eta ${duration(s.eta)}`);
  return parts.join("  ");
}

const clip = (text: string, columns: number | undefined): string =>
  columns !== undefined && columns > 10 && text.length >= columns ? `${text.slice(0, columns - 2)}…` : text;

/**
 * The bars of `watch`. On a terminal, the bars of running operations are
 * redrawn in place (at most every 50 ms) and an ended one is left above them;
 * elsewhere every change is one plain line, so logs and pipes read well.
 */
export class Board {
  readonly #out: CliOutput;
  readonly #live: boolean;
  readonly #ops = new Map<string, OpState>();
  readonly #printed = new Map<string, string>();
  /** Per operation, the id its snapshot covers: earlier events are already in it. */
  readonly #covered = new Map<string, string>();
  #pending: string[] = [];
  #drawn = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(out: CliOutput) {
    this.#out = out;
    this.#live = out.isTTY === true;
  }

  #state(op: string): OpState {
    let s = this.#ops.get(op);
    if (!s) {
      s = {
        op,
        known: false,
        status: "queued",
        progress: undefined,
        current: undefined,
        total: undefined,
        message: undefined,
        eta: undefined,
      };
      this.#ops.set(op, s);
    }
    return s;
  }

  /** Show an operation not seen yet (the snapshot of a watch that found nothing). */
  waiting(op: string): void {
    this.#changed(this.#state(op));
  }

  /** Replace what is known of an operation with its snapshot. */
  snapshot(snapshot: ProgressSnapshot): void {
    const s = this.#state(snapshot.op);
    s.progress = undefined;
    s.current = undefined;
    s.total = undefined;
    s.message = undefined;
    s.eta = undefined;
    merge(s, snapshot);
    if (snapshot.id !== undefined) this.#covered.set(snapshot.op, snapshot.id);
    this.#changed(s);
  }

  /**
   * Apply an event. Events of other types than `progress` also get a line of
   * their own. Events the snapshot already covers (the history a watch
   * replays) are skipped: the bar shows the state, then what changes.
   */
  event(event: ProgressEvent): void {
    const covered = this.#covered.get(event.op);
    if (covered !== undefined && compareIds(event.id, covered) <= 0) return;
    const s = this.#state(event.op);
    merge(s, event);
    if (event.type !== "progress") {
      const data = event.data !== undefined ? `  ${JSON.stringify(event.data)}` : "";
      this.note(`${event.op}  ${event.type}${event.message !== undefined ? `: ${event.message}` : ""}${data}`);
    }
    this.#changed(s);
  }

  /** A line printed once, above the bars. */
  note(text: string): void {
    if (this.#live) {
      this.#pending.push(text);
      this.#schedule();
    } else this.#out.write(`${text}\n`);
  }

  /** Draw what is pending now and stop redrawing. */
  end(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#live) this.#draw();
  }

  #changed(s: OpState): void {
    if (!this.#live) {
      const text = line(s);
      if (this.#printed.get(s.op) !== text) this.#out.write(`${text}\n`);
      this.#printed.set(s.op, text);
      return;
    }
    if (isTerminal(s.status)) {
      // An ended operation leaves the live area: its last line stays above it.
      this.#ops.delete(s.op);
      this.#pending.push(line(s));
    }
    this.#schedule();
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#draw();
    }, 50);
  }

  #draw(): void {
    const columns = this.#out.columns;
    let text = this.#drawn > 0 ? `\x1b[${this.#drawn}A\r` : "\r";
    for (const l of this.#pending) text += `\x1b[2K${clip(l, columns)}\n`;
    this.#pending = [];
    for (const s of this.#ops.values()) text += `\x1b[2K${clip(line(s), columns)}\n`;
    text += "\x1b[J";
    this.#drawn = this.#ops.size;
    this.#out.write(text);
  }
}

/** Text table: a header row, columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const render = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [render(header), ...rows.map(render)].join("\n");
}

const count = (u: { readonly current?: number; readonly total?: number }): string =>
  u.current !== undefined || u.total !== undefined ? `${u.current ?? "?"}/${u.total ?? "?"}` : "";

/** The snapshot of `inspect`, as `field  value` lines. */
export function snapshotText(s: ProgressSnapshot): string {
  const rows: Array<[string, string]> = [["operation", s.op]];
  rows.push(["status", s.status]);
  if (s.progress !== undefined) rows.push(["progress", `${percent(s.progress)}  ${bar(s.progress)}`]);
  if (s.current !== undefined || s.total !== undefined) rows.push(["count", count(s)]);
  if (s.message !== undefined) rows.push(["message", s.message]);
  if (s.eta !== undefined) rows.push(["eta", duration(s.eta)]);
  rows.push(["type", s.type]);
  if (s.cid !== undefined) rows.push(["cid", s.cid]);
  rows.push(["seq", String(s.seq)]);
  rows.push(["attempt", String(s.attempt ?? 1)]);
  if (s.ts !== "") rows.push(["updated", s.ts]);
  if (s.id !== undefined) rows.push(["last id", s.id]);
  if (s.cancel !== undefined) rows.push(["cancel", s.cancel]);
  if (s.data !== undefined) rows.push(["data", JSON.stringify(s.data)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

/** The history of `inspect`, one event a row. */
export function historyTable(events: readonly ProgressEvent[], scope: boolean): string {
  const header = scope
    ? ["ID", "OP", "SEQ", "ATTEMPT", "TIME", "TYPE", "STATUS", "PROGRESS", "COUNT", "MESSAGE"]
    : ["ID", "SEQ", "ATTEMPT", "TIME", "TYPE", "STATUS", "PROGRESS", "COUNT", "MESSAGE"];
  const rows = events.map((e) => {
    const cells = [
      e.id,
      String(e.seq),
      String(e.attempt ?? 1),
      e.ts,
      e.type,
      e.status,
      e.progress !== undefined ? percent(e.progress) : "",
      count(e),
      e.message ?? "",
    ];
    if (scope) cells.splice(1, 0, e.op);
    return cells;
  });
  return table(header, rows);
}
