// A React component following one job with the hook. Served by any of the server examples' /progress/<op> routes.
// Needs: npm install progresscast react react-dom
import { useProgress } from "progresscast/react";

export function JobProgress({ op, token, api = "" }: { op: string; token: string; api?: string }) {
  const { state, events, status, error, eta } = useProgress({
    url: `${api}/progress/${encodeURIComponent(op)}`,
    headers: { authorization: `Bearer ${token}` },
  });
  if (error && !error.retrying) return <p role="alert">Cannot follow {op}: {error.message}</p>;
  if (!state) return <p>{status === "reconnecting" ? "Reconnecting..." : "Waiting for the job to start..."}</p>;
  const files = events.filter((e) => e.kind === "event" && e.type === "file_completed").length;
  return (
    <section aria-label={op}>
      <progress max={100} value={state.progress ?? 0} />
      <p>
        {state.status === "running" ? `${Math.round(state.progress ?? 0)}%` : state.status}
        {state.message ? ` - ${state.message}` : ""}
        {state.status === "running" && eta !== undefined ? ` (${Math.ceil(eta)} s left)` : ""}
      </p>
      {files > 0 ? <p>{files} files done</p> : null}
    </section>
  );
}
