import { createElement, type ReactElement } from "react";
import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { useProgress } from "../../src/react/index.ts";

function Job(): ReactElement {
  const { state, status } = useProgress("http://127.0.0.1:1/progress/job-1");
  return createElement("p", null, `${status} ${state?.progress ?? "-"}`);
}

describe("progresscast/react on the server", () => {
  it("imports and renders without a window, connecting nothing", () => {
    expect(typeof (globalThis as { window?: unknown }).window).toBe("undefined");
    expect(renderToString(createElement(Job))).toBe("<p>connecting -</p>");
  });
});
