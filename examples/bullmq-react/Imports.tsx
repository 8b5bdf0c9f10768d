// A user's imports in one live list: useProgressList follows the user's scope (GET /users/<user>/progress of server.ts).
import { useProgressList } from "progresscast/react";

export function Imports({ user, api = "" }: { user: string; api?: string }) {
  const { list, error, eta } = useProgressList(`${api}/users/${encodeURIComponent(user)}/progress`);
  const start = () => void fetch(`${api}/users/${encodeURIComponent(user)}/imports`, { method: "POST" });
  return (
    <section aria-label="imports">
      <button type="button" onClick={start}>
        Start an import
      </button>
      {error && !error.retrying ? <p role="alert">Cannot follow the imports: {error.message}</p> : null}
      {list.length === 0 ? <p>No imports yet.</p> : null}
      <ul>
        {list.map((job) => {
          const left = job.status === "running" ? eta(job.op) : undefined;
          return (
            <li key={job.op} data-status={job.status}>
              <progress max={100} value={job.progress ?? 0} /> {job.op}: {job.status}
              {(job.attempt ?? 1) > 1 ? ` (attempt ${job.attempt})` : ""}
              {job.status === "running" && job.message ? ` - ${job.message}` : ""}
              {left !== undefined ? ` (${Math.ceil(left)} s left)` : ""}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
