import { describe, expect, it } from "vitest";
import { toRequest } from "../../src/node/index.ts";

describe("toRequest", () => {
  it.each(["a b", "x:99999", "[::1", "%", "", "exa mple.com:80"])(
    "never throws on Host: %j; falls back to localhost",
    (host) => {
      const request = toRequest({ method: "GET", url: "/progress/job-1?after=1-0", headers: { host } });
      expect(new URL(request.url).pathname).toBe("/progress/job-1");
      expect(new URL(request.url).searchParams.get("after")).toBe("1-0");
    },
  );

  it("keeps a target starting with // a path on this host", () => {
    const request = toRequest({ method: "GET", url: "//evil.example/x", headers: { host: "api.local" } });
    expect(new URL(request.url).host).toBe("api.local");
    expect(new URL(request.url).pathname).toBe("//evil.example/x");
  });

  it("turns a method a web Request cannot carry into HEAD, and leaves out headers it refuses", () => {
    for (const method of ["TRACE", "TRACK", "CONNECT"]) {
      expect(toRequest({ method, url: "/", headers: { host: "x" } }).method).toBe("HEAD");
    }
    const request = toRequest({ method: "GET", url: "/", headers: { host: "x", "x-bad": "a\u0000b", ok: "1" } });
    expect(request.headers.get("ok")).toBe("1");
    expect(request.headers.get("x-bad")).toBeNull();
  });
});
