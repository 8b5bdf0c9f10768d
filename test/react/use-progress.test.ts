// @vitest-environment jsdom
import { act, renderHook, waitFor } from "@testing-library/react";
import { StrictMode } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { createProgress, type Progress } from "../../src/index.ts";
import { useProgress, useProgressList } from "../../src/react/index.ts";
import { type SseServer, startSseServer } from "../support/sse-server.ts";

let progress: Progress;
let server: SseServer;

async function setup(options: { token?: string } = {}): Promise<void> {
  progress = createProgress({ logger: {}, throttle: false });
  server = await startSseServer(progress, options);
}

afterEach(async () => {
  await server?.close();
  await progress?.close();
});

const wait = { timeout: 10_000, interval: 10 };

describe("useProgress", () => {
  it("renders the snapshot, each event and the end, then closes the stream", async () => {
    await setup();
    await progress.publish("r1", { status: "running", progress: 10, message: "Reading" });
    const { result } = renderHook(() => useProgress(`${server.url}/progress/r1`), { wrapper: StrictMode });
    await waitFor(() => expect(result.current.state?.progress).toBe(10), wait);
    expect(result.current.status).toBe("open");
    expect(result.current.state?.message).toBe("Reading");
    await progress.publish("r1", { progress: 60, message: "Writing" });
    await waitFor(() => expect(result.current.state?.message).toBe("Writing"), wait);
    await progress.publish("r1", { status: "completed", progress: 100 });
    await waitFor(() => expect(result.current.status).toBe("closed"), wait);
    expect(result.current.state?.status).toBe("completed");
    expect(result.current.eta).toBe(0);
    expect(result.current.error).toBeUndefined();
    const kinds = result.current.events.map((e) => `${e.kind}:${e.progress}`);
    expect(kinds[0]).toBe("snapshot:10");
    expect(kinds.slice(-2)).toEqual(["event:60", "event:100"]);
    await waitFor(() => expect(server.open()).toBe(0), wait);
  });

  it("closes the connection on unmount and follows nothing without a URL", async () => {
    await setup();
    await progress.publish("r2", { status: "running", progress: 5 });
    const { result, unmount, rerender } = renderHook(({ url }: { url: string | null }) => useProgress(url), {
      initialProps: { url: null as string | null },
    });
    expect(result.current.status).toBe("idle");
    expect(result.current.state).toBeUndefined();
    rerender({ url: `${server.url}/progress/r2` });
    await waitFor(() => expect(result.current.state?.progress).toBe(5), wait);
    expect(server.open()).toBe(1);
    unmount();
    await waitFor(() => expect(server.open()).toBe(0), wait);
  });

  it("sends headers and reports a refusal as a final error", async () => {
    await setup({ token: "s3cret" });
    await progress.publish("r3", { status: "running", progress: 1 });
    const denied = renderHook(() =>
      useProgress({ url: `${server.url}/progress/r3`, headers: { authorization: "Bearer no" } }),
    );
    await waitFor(() => expect(denied.result.current.status).toBe("closed"), wait);
    expect(denied.result.current.error?.status).toBe(403);
    expect(denied.result.current.error?.retrying).toBe(false);
    const allowed = renderHook(() =>
      useProgress({ url: `${server.url}/progress/r3`, headers: { authorization: "Bearer s3cret" } }),
    );
    await waitFor(() => expect(allowed.result.current.state?.progress).toBe(1), wait);
    allowed.unmount();
    denied.unmount();
  });
});

describe("useProgressList", () => {
  it("lists every operation of a scope, most recently updated first", async () => {
    await setup();
    const { result, unmount } = renderHook(() => useProgressList(`${server.url}/scope/team-1`));
    await waitFor(() => expect(result.current.status).toBe("open"), wait);
    await act(async () => {
      // The same timestamp for both: the later one in the scope's stream comes first.
      const ts = new Date();
      await progress.publish("a1", { status: "running", progress: 20, ts }, { scope: "team-1" });
      await progress.publish("a2", { status: "running", progress: 40, ts }, { scope: "team-1" });
    });
    await waitFor(() => expect(result.current.list.map((s) => s.op)).toEqual(["a2", "a1"]), wait);
    await progress.publish("a1", { status: "completed", progress: 100 }, { scope: "team-1" });
    await waitFor(() => expect(result.current.states.get("a1")?.status).toBe("completed"), wait);
    expect(result.current.eta("a1")).toBe(0);
    // A scope stream does not end with one of its operations.
    expect(result.current.status).toBe("open");
    unmount();
    await waitFor(() => expect(server.open()).toBe(0), wait);
  });
});
