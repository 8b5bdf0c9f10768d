/**
 * What the HTTP ways of following (SSE, the WebSocket upgrade) share: the
 * target a request follows, the `authorize` hook and its refusals, the resume
 * id of a request, and the 400 answer for a request naming an invalid id.
 *
 * @module
 */
import { isUnauthorizedError } from "../errors.ts";
import { assertStreamId } from "../wire/index.ts";

/** What a watcher asks to follow: one operation, or every operation of a scope. */
export type WatchTarget =
  | { readonly op: string; readonly scope?: undefined }
  | { readonly scope: string; readonly op?: undefined };

/**
 * Decides whether a request may follow a target. Return true to allow, false
 * to forbid (403 / WebSocket 4003); throw an `UnauthorizedError` with status
 * 401 when credentials are missing (401 / WebSocket 4001).
 */
export type Authorize<R = Request> = (request: R, target: WatchTarget) => boolean | Promise<boolean>;

/**
 * The id to resume after: the `Last-Event-ID` header, else the `after` query
 * parameter; undefined when neither is given (or both are empty).
 *
 * @throws {ProgressValidationError} naming `Last-Event-ID` or `after` when it is not a stream entry id.
 * @example
 * ```ts
 * resumeId(new Request("https://x/progress/job-1?after=1732890000000-0")); // "1732890000000-0"
 * ```
 */
export function resumeId(request: Request): string | undefined {
  const header = request.headers.get("last-event-id")?.trim();
  if (header) {
    assertStreamId(header, "Last-Event-ID");
    return header;
  }
  const after = new URL(request.url, "http://localhost").searchParams.get("after");
  if (after === null || after === "") return undefined;
  assertStreamId(after, "after");
  return after;
}

/**
 * A 400 answer with a short plain-text reason, for a request that names an
 * invalid operation, scope or resume id: a client that gets it should not retry.
 */
export function badRequest(reason: string, headers?: Readonly<Record<string, string>>): Response {
  return new Response(`${reason}\n`, {
    status: 400,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/** A 401 or 403 answer with a JSON reason and no data. */
export function refusal(
  status: 401 | 403,
  message: string,
  headers: Readonly<Record<string, string>> | undefined,
): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Run the `authorize` hook; a Response when refused, else null. */
export async function checkAuthorize<R>(
  authorize: Authorize<R> | undefined,
  request: R,
  target: WatchTarget,
): Promise<{ status: 401 | 403; message: string } | null> {
  if (!authorize) return null;
  try {
    return (await authorize(request, target)) === true ? null : { status: 403, message: "forbidden" };
  } catch (error) {
    if (isUnauthorizedError(error)) return { status: error.status, message: error.message };
    return { status: 403, message: "forbidden" };
  }
}
