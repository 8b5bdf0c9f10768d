/**
 * React hooks over the browser client: `useProgress` follows one operation,
 * `useProgressList` every operation of a scope. Each (re)renders with the
 * latest state, the events seen, the connection status, the last error and a
 * time-remaining estimate; resume, de-duplication and backoff come from
 * `progresscast/client`. Safe to import during server rendering (nothing runs
 * until an effect does); the connection closes on unmount or when the URL
 * changes. React 18 and 19.
 *
 * @example
 * ```tsx
 * import { useProgress } from "progresscast/react";
 *
 * function Job({ op }: { op: string }) {
 *   const { state, status, eta } = useProgress(`/progress/${op}`);
 *   if (!state) return <p>{status === "connecting" ? "Connecting..." : "Waiting for the job"}</p>;
 *   return <progress max={100} value={state.progress ?? 0} title={`${eta ?? "?"} s left`} />;
 * }
 * ```
 *
 * @module
 */
import { useEffect, useRef, useState } from "react";
import {
  type ConnectionStatus,
  type Follow,
  type FollowError,
  type FollowOptions,
  follow,
  type ProgressEvent,
  type ProgressState,
} from "../client/index.ts";

export type { ConnectionStatus, FollowError, ProgressEvent, ProgressState } from "../client/index.ts";

/** Options of {@link useProgress} and {@link useProgressList}. */
export interface UseProgressOptions<TData = Record<string, unknown>>
  extends Pick<FollowOptions<TData>, "headers" | "fetch" | "lastEventId" | "minDelayMs" | "maxDelayMs"> {
  /**
   * The SSE URL (a route answering with `progress.sse`). `null` or `undefined`
   * follows nothing (status `idle`), e.g. while the operation id is not known yet.
   * Changing it closes the old connection and opens a new one; changing other
   * options does not (the latest `headers` are read on every reconnect).
   * @example `/progress/${op}`
   */
  readonly url: string | URL | null | undefined;
  /**
   * How many of the latest events `events` keeps.
   * @default 100
   * @example 1_000
   */
  readonly maxEvents?: number;
  /**
   * Called with each snapshot, reset and event, as with `follow`'s `onEvent`.
   * @default undefined
   * @example (e) => { if (e.type === "file_completed") toast(e.message) }
   */
  readonly onEvent?: (event: ProgressEvent<TData>) => void;
}

/** Connection status of a hook: the client's, or `idle` when there is no URL. */
export type HookStatus = ConnectionStatus | "idle";

/** What {@link useProgress} returns. */
export interface UseProgressResult<TData = Record<string, unknown>> {
  /** The operation's merged state; `undefined` until the snapshot arrives (or when the operation is unknown). */
  readonly state: ProgressState<TData> | undefined;
  /** The latest events (snapshots, resets and events, de-duplicated), oldest first, at most `maxEvents`. */
  readonly events: readonly ProgressEvent<TData>[];
  /** `connecting`, `open`, `reconnecting`, `closed` (terminal event, 401/403/404, unmount) or `idle`. */
  readonly status: HookStatus;
  /** The latest failure; `error.retrying` is false when the client gave up (401, 403, 404). Cleared by new data. */
  readonly error: FollowError | undefined;
  /** Estimated seconds remaining, refreshed every second while running; `0` when completed, `undefined` when unknown. */
  readonly eta: number | undefined;
}

/** What {@link useProgressList} returns. */
export interface UseProgressListResult<TData = Record<string, unknown>> {
  /** Every operation seen on the scope, by op id. */
  readonly states: ReadonlyMap<string, ProgressState<TData>>;
  /** The same states as a list, most recently updated first. */
  readonly list: readonly ProgressState<TData>[];
  readonly status: HookStatus;
  readonly error: FollowError | undefined;
  /** Estimated seconds remaining for an operation of the scope. */
  eta(op: string): number | undefined;
}

interface Snapshot<TData> {
  readonly follower: Follow<TData> | undefined;
  readonly events: readonly ProgressEvent<TData>[];
  readonly status: HookStatus;
  readonly error: FollowError | undefined;
  /** Bumped on every change, so React re-renders. */
  readonly version: number;
}

const IDLE: Snapshot<never> = { follower: undefined, events: [], status: "idle", error: undefined, version: 0 };
const CONNECTING: Snapshot<never> = { ...IDLE, status: "connecting" };
const TERMINAL = ["completed", "failed", "cancelled"];

function normalize<TData>(
  target: string | URL | UseProgressOptions<TData> | null | undefined,
): UseProgressOptions<TData> {
  return target === null || target === undefined || typeof target === "string" || target instanceof URL
    ? { url: target }
    : target;
}

/** The shared engine of both hooks: one `follow` per URL, closed on unmount. */
function useFollow<TData>(options: UseProgressOptions<TData>, untilTerminal: boolean): Snapshot<TData> {
  const url = options.url === null || options.url === undefined ? undefined : String(options.url);
  // With a URL, the first render (also on the server, where effects never run) says `connecting`.
  const [snap, setSnap] = useState<Snapshot<TData>>(url === undefined ? IDLE : CONNECTING);
  const latest = useRef(options);
  latest.current = options;

  useEffect(() => {
    if (url === undefined) {
      setSnap(IDLE);
      return;
    }
    const max = latest.current.maxEvents ?? 100;
    let events: ProgressEvent<TData>[] = [];
    let error: FollowError | undefined;
    let version = 0;
    let live = true;
    const { headers, fetch, lastEventId, minDelayMs, maxDelayMs } = latest.current;
    const follower: Follow<TData> = follow<TData>(url, {
      untilTerminal,
      // Read on every reconnect, so a refreshed token is picked up without reconnecting now.
      ...(headers !== undefined
        ? {
            headers: () => {
              const h = latest.current.headers ?? {};
              return typeof h === "function" ? h() : h;
            },
          }
        : {}),
      ...(fetch !== undefined ? { fetch } : {}),
      ...(lastEventId !== undefined ? { lastEventId } : {}),
      ...(minDelayMs !== undefined ? { minDelayMs } : {}),
      ...(maxDelayMs !== undefined ? { maxDelayMs } : {}),
      onEvent: (e) => {
        events = events.length >= max ? [...events.slice(events.length - max + 1), e] : [...events, e];
        error = undefined;
        latest.current.onEvent?.(e);
        publish();
      },
      onError: (e) => {
        error = e;
        publish();
      },
      onStatus: () => publish(),
    });
    const publish = (): void => {
      if (live) setSnap({ follower, events, status: follower.status, error, version: ++version });
    };
    publish();
    // The estimate counts down between events: refresh it every second while running.
    const timer = setInterval(() => {
      const s = follower.state;
      if (s && !TERMINAL.includes(s.status) && follower.remainingSeconds() !== undefined) publish();
    }, 1000);
    return () => {
      live = false;
      clearInterval(timer);
      follower.close();
    };
  }, [url, untilTerminal]);

  return snap;
}

/**
 * Follows one operation's SSE stream (`progress.sse`) while the component is
 * mounted: the snapshot first, then each event once, resumed after any
 * disconnect, until a terminal event. Returns the merged `state`, the latest
 * `events`, the connection `status`, the last `error` and `eta` in seconds.
 * Never throws: failures are in `error` (with `error.retrying` false and status
 * `closed` after a 401, 403 or 404).
 *
 * @example
 * ```tsx
 * const { state, events, status, error, eta } = useProgress({
 *   url: `/progress/${op}`,
 *   headers: { authorization: `Bearer ${token}` },
 * });
 * ```
 * @example
 * ```tsx
 * const { state } = useProgress(op ? `/progress/${op}` : null); // idle until there is an op
 * ```
 */
export function useProgress<TData = Record<string, unknown>>(
  target: string | URL | UseProgressOptions<TData> | null | undefined,
): UseProgressResult<TData> {
  const snap = useFollow(normalize(target), true);
  const follower = snap.follower;
  return {
    state: follower?.state,
    events: snap.events,
    status: snap.status,
    error: snap.error,
    eta: follower?.remainingSeconds(),
  };
}

/** `ms-seq` stream ids in order; 0 when either is missing or not one. */
function idOrder(a: string | undefined, b: string | undefined): number {
  const x = a === undefined ? null : /^(\d+)-(\d+)$/.exec(a);
  const y = b === undefined ? null : /^(\d+)-(\d+)$/.exec(b);
  return x && y ? Number(x[1]) - Number(y[1]) || Number(x[2]) - Number(y[2]) : 0;
}

/** Most recently updated first: by `ts`, then (within one millisecond) by the scope stream's order of their events. */
function newestFirst(a: ProgressState<unknown>, b: ProgressState<unknown>): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? 1 : -1;
  return idOrder(b.id, a.id) || b.seq - a.seq;
}

/**
 * Follows every operation of a scope (an SSE URL served with
 * `progress.sse(request, { scope })`) while the component is mounted; the
 * stream never ends on its own. Never throws: failures are in `error`.
 *
 * @example
 * ```tsx
 * const { list } = useProgressList("/me/progress");
 * return <ul>{list.map((s) => <li key={s.op}>{s.op}: {s.status} {s.progress ?? 0}%</li>)}</ul>;
 * ```
 */
export function useProgressList<TData = Record<string, unknown>>(
  target: string | URL | UseProgressOptions<TData> | null | undefined,
): UseProgressListResult<TData> {
  const snap = useFollow(normalize(target), false);
  const follower = snap.follower;
  const states: ReadonlyMap<string, ProgressState<TData>> = follower ? new Map(follower.states) : new Map();
  const list = [...states.values()].sort(newestFirst);
  return {
    states,
    list,
    status: snap.status,
    error: snap.error,
    eta: (op) => follower?.remainingSeconds(op),
  };
}
