// @vitest-environment jsdom
import { render, screen, waitFor } from "@testing-library/react";
import { createElement } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { JobProgress } from "../../examples/react/JobProgress.tsx";
import { createProgress, type Progress } from "../../src/index.ts";
import { type SseServer, startSseServer } from "../support/sse-server.ts";

let progress: Progress;
let server: SseServer;

afterEach(async () => {
  await server?.close();
  await progress?.close();
});

describe("examples/react/JobProgress.tsx", () => {
  it("shows the job's progress, its files and its end, with the token sent", async () => {
    progress = createProgress({ logger: {}, throttle: false });
    server = await startSseServer(progress, { token: "t" });
    const view = render(createElement(JobProgress, { op: "page-1", token: "t", api: server.url }));
    expect(screen.getByText(/Waiting for the job/)).toBeTruthy();
    await progress.publish("page-1", { status: "running", progress: 40, message: "Copying" });
    await waitFor(() => expect(screen.getByText(/40% - Copying/)).toBeTruthy(), { timeout: 10_000 });
    await progress.publish("page-1", { type: "file_completed", message: "a.csv", progress: 60 });
    await waitFor(() => expect(screen.getByText("1 files done")).toBeTruthy(), { timeout: 10_000 });
    await progress.publish("page-1", { status: "completed", progress: 100, message: "Done" });
    await waitFor(() => expect(screen.getByText(/completed - Done/)).toBeTruthy(), { timeout: 10_000 });
    view.unmount();
  });

  it("says why when the token is refused", async () => {
    progress = createProgress({ logger: {}, throttle: false });
    server = await startSseServer(progress, { token: "t" });
    render(createElement(JobProgress, { op: "page-2", token: "wrong", api: server.url }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/Cannot follow page-2/), {
      timeout: 10_000,
    });
  });
});
