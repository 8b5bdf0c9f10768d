/**
 * `progresscast serve` as a real process over real sockets, on a real
 * redis-server: tokens decide who watches what, health and metrics answer,
 * bad requests are answered without a crash, SIGTERM ends open streams and
 * exits 0, and a server that would serve anyone refuses to start.
 */
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { nodeRedis } from "../../src/adapters/node-redis/index.ts";
import { type CliIo, main } from "../../src/cli/main.ts";
import { publicKey, TokenVerifier } from "../../src/cli/token.ts";
import { createProgress, type Progress, silentLogger } from "../../src/index.ts";
import { entries } from "../../tsup.config.ts";
import { findPython, run } from "../interop/support.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import {
  bundleCli,
  cleanEnv,
  data,
  type GatewayProcess,
  killGateways,
  readSse,
  root,
  startGateway,
} from "./serve-support.ts";

const SECRET = "test-secret-of-at-least-32-bytes-0123456789";
const key = new TextEncoder().encode(SECRET);
const ORIGIN = "https://app.example.com";

/** A token signed with `secret` (default: the gateway's), expiring in `ttl` seconds (negative: already expired). */
async function token(
  claims: { ops?: string[]; scopes?: string[] },
  options: { ttl?: number; secret?: Uint8Array } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + (options.ttl ?? 300))
    .sign(options.secret ?? key);
}

let bundle: Awaited<ReturnType<typeof bundleCli>>;
let redis: RedisServer;
let progress: Progress;
let gateway: GatewayProcess;
const prefix = `serve${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  bundle = await bundleCli("serve");
  redis = await startRedis();
  progress = createProgress({
    port: nodeRedis({ url: redis.url, connectTimeoutMs: 2000 }),
    prefix,
    throttle: false,
    estimate: false,
    logger: silentLogger,
  });
  gateway = await startGateway(bundle.file, [
    "--redis",
    redis.url,
    "--prefix",
    prefix,
    "--jwt-secret",
    SECRET,
    "--cors-origin",
    ORIGIN,
  ]);
});

afterAll(async () => {
  killGateways();
  await progress?.close();
  await redis?.close();
  bundle?.remove();
});

const get = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${gateway.url}${path}`, init);

async function refusal(res: Response): Promise<{ status: number; error: string }> {
  const body = (await res.json()) as { error?: string };
  return { status: res.status, error: body.error ?? "" };
}

describe("progresscast serve with --jwt-secret", { timeout: 60_000 }, () => {
  it("a token for operation A streams A to its end; B is 403; no, bad and expired tokens are 401", async () => {
    await progress.publish("op-a", { progress: 10, message: "started" });
    await progress.publish("op-b", { progress: 10 });
    const forA = await token({ ops: ["op-a"] });

    const res = await get(`/ops/op-a/events?token=${forA}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const sse = readSse(res);
    await sse.until((e) => e.length >= 1);
    expect(sse.events[0]?.event).toBe("snapshot");
    expect(data(sse.events[0])).toMatchObject({ op: "op-a", progress: 10, message: "started" });
    await progress.publish("op-a", { progress: 60, message: "more" });
    await progress.publish("op-a", { status: "completed", message: "done" });
    // The stream ends by itself after the terminal event.
    expect(await sse.ended).toBe("end");
    // The snapshot, the history it missed, then live events.
    expect(sse.events.slice(1).map((e) => [data(e).progress, data(e).status])).toEqual([
      [10, "running"],
      [60, "running"],
      [100, "completed"],
    ]);
    expect(sse.events[2]?.id).toMatch(/^\d+-\d+$/);
    expect(sse.events[3]?.event).toBe("progress");

    // The same token in the Authorization header; resuming with Last-Event-ID gives only what followed.
    const resumed = await get("/ops/op-a/events", {
      headers: { authorization: `Bearer ${forA}`, "last-event-id": sse.events[2]?.id ?? "" },
    });
    expect(resumed.status).toBe(200);
    const later = readSse(resumed);
    expect(await later.ended).toBe("end");
    expect(later.events.filter((e) => e.event !== "snapshot").map((e) => data(e).status)).toEqual(["completed"]);

    expect(await refusal(await get(`/ops/op-b/events?token=${forA}`))).toEqual({ status: 403, error: "forbidden" });
    const none = await refusal(await get("/ops/op-a/events"));
    expect(none.status).toBe(401);
    expect(none.error).toMatch(/token is required/);
    const expired = await refusal(await get(`/ops/op-a/events?token=${await token({ ops: ["op-a"] }, { ttl: -60 })}`));
    expect(expired).toEqual({ status: 401, error: "invalid token: expired" });
    const otherKey = new TextEncoder().encode("another-secret-of-at-least-32-bytes-00000");
    const forged = await refusal(
      await get(`/ops/op-a/events`, {
        headers: { authorization: `Bearer ${await token({ ops: ["op-a"] }, { secret: otherKey })}` },
      }),
    );
    expect(forged).toEqual({ status: 401, error: "invalid token: bad signature" });
    // An unsigned token ("alg": "none") names every operation: still refused.
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
    const unsigned = `${b64({ alg: "none" })}.${b64({ ops: ["op-a"], exp: 9_999_999_999 })}.`;
    expect((await get(`/ops/op-a/events?token=${unsigned}`)).status).toBe(401);
    // A token without exp never expires: refused.
    const forever = await new SignJWT({ ops: ["op-a"] }).setProtectedHeader({ alg: "HS256" }).sign(key);
    expect((await refusal(await get(`/ops/op-a/events?token=${forever}`))).status).toBe(401);
  });

  it("a scope token follows the scope, not other scopes; an ops claim does not grant a scope", async () => {
    const forTeam = await token({ scopes: ["team-1"] });
    const res = await get(`/scopes/team-1/events?token=${forTeam}`);
    expect(res.status).toBe(200);
    const sse = readSse(res);
    await progress.publish("op-s1", { progress: 5, message: "in team" }, { scope: "team-1" });
    await sse.until((e) => e.some((m) => data(m).op === "op-s1"));
    sse.cancel();
    expect((await get(`/scopes/team-2/events?token=${forTeam}`)).status).toBe(403);
    expect((await get(`/scopes/team-1/events?token=${await token({ ops: ["team-1"] })}`)).status).toBe(403);
    // An id holding "/" (allowed in ids) is reached plain or percent-encoded.
    const slash = await token({ ops: ["user/7"] });
    await progress.publish("user/7", { progress: 1 });
    for (const path of ["/ops/user/7/events", "/ops/user%2F7/events"]) {
      const r = await get(`${path}?token=${slash}`);
      expect(r.status, path).toBe(200);
      await r.body?.cancel();
    }
  });

  it("answers CORS for the configured origin only, preflight included", async () => {
    const forA = await token({ ops: ["op-a"] });
    const allowed = await get(`/ops/op-a/events?token=${forA}`, { headers: { origin: ORIGIN } });
    expect(allowed.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    await allowed.body?.cancel();
    // A refusal carries the header too, so the page can read the status.
    const refused = await get("/ops/op-a/events", { headers: { origin: ORIGIN } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const other = await get(`/ops/op-a/events?token=${forA}`, { headers: { origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    await other.body?.cancel();
    const preflight = await get("/ops/op-a/events", {
      method: "OPTIONS",
      headers: {
        origin: ORIGIN,
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(preflight.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    expect(preflight.headers.get("access-control-allow-headers")).toMatch(/last-event-id/);
  });

  it("/healthz answers ok; /metrics is Prometheus text counting open streams", async () => {
    const health = await get("/healthz");
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });

    await progress.publish("op-m", { progress: 1 });
    const open = await get(`/ops/op-m/events?token=${await token({ ops: ["op-m"] })}`);
    const sse = readSse(open);
    await sse.until((e) => e.length >= 1);
    const metrics = await get("/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await metrics.text();
    expect(text).toMatch(/^progresscast_gateway_connections\{transport="sse"\} [1-9]\d*$/m);
    expect(text).toMatch(/^progresscast_watchers_active [1-9]\d*$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    sse.cancel();
  });

  it("WebSocket: a token for A follows A; watching B closes 4003; no token is refused at the upgrade", async () => {
    await progress.publish("op-w", { progress: 20, message: "ws" });
    const wsUrl = `${gateway.url.replace(/^http/, "ws")}/ws`;
    const socket = new WebSocket(`${wsUrl}?token=${await token({ ops: ["op-w"] })}`);
    const messages: Array<Record<string, unknown>> = [];
    socket.on("message", (raw) => messages.push(JSON.parse(String(raw)) as Record<string, unknown>));
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    socket.send(JSON.stringify({ type: "watch", op: "op-w" }));
    await expect.poll(() => messages.find((m) => m.type === "snapshot"), { timeout: 10_000 }).toBeTruthy();
    expect(messages.find((m) => m.type === "snapshot")).toMatchObject({ op: "op-w", snapshot: { progress: 20 } });
    await progress.publish("op-w", { progress: 70 });
    await expect
      .poll(() => messages.find((m) => m.type === "event" && (m.event as { progress?: number }).progress === 70), {
        timeout: 10_000,
      })
      .toMatchObject({ op: "op-w", event: { progress: 70 } });
    socket.send(JSON.stringify({ type: "watch", op: "op-other" }));
    expect(await closed).toBe(4003);

    const status = await new Promise<number>((resolve, reject) => {
      const anonymous = new WebSocket(wsUrl);
      anonymous.once("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        anonymous.terminate();
      });
      anonymous.once("open", () => reject(new Error("opened without a token")));
      anonymous.once("error", () => {});
    });
    expect(status).toBe(401);

    // A message past the protocol's size limit closes the socket (1009), and the gateway lives on.
    const big = new WebSocket(`${wsUrl}?token=${await token({ ops: ["op-w"] })}`);
    const bigClosed = new Promise<number>((resolve) => big.once("close", (code) => resolve(code)));
    await new Promise((resolve) => big.once("open", resolve));
    big.send(JSON.stringify({ type: "watch", op: "op-w", pad: "x".repeat(8192) }));
    expect(await bigClosed).toBe(1009);
    expect((await get("/healthz")).status).toBe(200);
  });

  it("answers bad requests (bad Host, bad paths, bad ids, bad upgrades, garbage) and keeps serving", async () => {
    const { port } = new URL(gateway.url);
    const raw = (text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connect(Number(port), "127.0.0.1");
        let reply = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => {
          reply += chunk;
        });
        socket.on("end", () => resolve(reply));
        socket.on("close", () => resolve(reply));
        socket.on("error", reject);
        socket.write(text);
        setTimeout(() => socket.destroy(), 3000);
      });
    const status = (reply: string): string => /^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? reply.slice(0, 40);
    const req = (line: string, headers = "Host: x\r\n"): string => `${line}\r\n${headers}Connection: close\r\n\r\n`;

    expect(status(await raw(req("GET /healthz HTTP/1.1", "Host: [[[::bad\r\n")))).toBe("200");
    expect(status(await raw(req("GET /healthz HTTP/1.1", "")))).toBe("400");
    expect(status(await raw(req("GET http://evil.example/ops/op-a/events HTTP/1.1")))).toBe("400");
    expect(status(await raw(req("GET /ops/%E0%A4%A/events HTTP/1.1")))).toBe("400");
    expect(status(await raw(req("GET /ops/a%20b/events HTTP/1.1")))).toBe("400");
    expect(status(await raw(req("GET /ops/op-a/events HTTP/1.1", "Host: x\r\nLast-Event-ID: yesterday\r\n")))).toBe(
      "400",
    );
    expect(status(await raw(req("GET //ops/op-a/events HTTP/1.1")))).toBe("404");
    expect(status(await raw(req("GET /nothing/here HTTP/1.1")))).toBe("404");
    expect(status(await raw(req("DELETE /ops/op-a/events HTTP/1.1")))).toBe("405");
    // Upgrades: without a WebSocket key, to another path, with a token of nothing.
    expect(status(await raw(req("GET /ws HTTP/1.1", "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")))).toBe(
      "401",
    );
    const forA = await token({ ops: ["op-a"] });
    const upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    expect(status(await raw(`GET /ws?token=${forA} HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n`))).toBe("400");
    expect(status(await raw(`GET /elsewhere HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n`))).toBe("404");
    const badOrigin = `GET /ws?token=${forA} HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n${upgrade}\r\n`;
    expect(status(await raw(badOrigin))).toBe("403");
    expect(status(await raw("\u0000\u0001 nonsense\r\n\r\n"))).toBe("400");

    expect(gateway.child.exitCode).toBeNull();
    expect((await get("/healthz")).status).toBe(200);
  });

  it("accepts a token minted by the Python package (sign_token)", async (ctx) => {
    const python = findPython();
    if (typeof python === "string") {
      ctx.skip(`no python3 with redis-py here (${python}): the progresscast package imports redis`);
      return;
    }
    const mint = (args: string): string =>
      execFileSync(
        python.path,
        ["-c", `import os\nfrom progresscast import sign_token\nprint(sign_token(os.environ["SECRET"], ${args}))`],
        { env: { ...cleanEnv(), PYTHONPATH: join(root, "python"), SECRET }, encoding: "utf8" },
      ).trim();
    await progress.publish("py-op", { progress: 33, message: "from python's token" });
    const minted = mint('ops=["py-op"], scopes=["py-team"], ttl_seconds=60');
    const res = await get(`/ops/py-op/events?token=${minted}`);
    expect(res.status).toBe(200);
    const sse = readSse(res);
    await sse.until((e) => e.length >= 1);
    expect(data(sse.events[0])).toMatchObject({ op: "py-op", progress: 33 });
    sse.cancel();
    const scope = await get("/scopes/py-team/events", { headers: { authorization: `Bearer ${minted}` } });
    expect(scope.status).toBe(200);
    await scope.body?.cancel();
    expect((await get(`/ops/other/events?token=${minted}`)).status).toBe(403);
    const stale = mint('ops=["py-op"], ttl_seconds=60, now=__import__("time").time() - 3600');
    expect(await refusal(await get(`/ops/py-op/events?token=${stale}`))).toEqual({
      status: 401,
      error: "invalid token: expired",
    });
  });
});

describe("progresscast serve with --jwt-public-key", { timeout: 60_000 }, () => {
  it("accepts ES256 tokens of the key (and HS256 ones of the secret given beside it), not of another key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "progresscast-keys-"));
    try {
      const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const stranger = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const pem = join(dir, "public.pem");
      writeFileSync(pem, pair.publicKey.export({ type: "spki", format: "pem" }));
      const g = await startGateway(bundle.file, [
        "--redis",
        redis.url,
        "--prefix",
        prefix,
        "--jwt-public-key",
        pem,
        "--jwt-secret",
        SECRET,
      ]);
      expect(g.stdout()).toMatch(/tokens: HS256, ES256/);
      await progress.publish("op-k", { progress: 42 });
      const es = (signer: typeof pair.privateKey): Promise<string> =>
        new SignJWT({ ops: ["op-k"] }).setProtectedHeader({ alg: "ES256" }).setExpirationTime("5m").sign(signer);
      const ok = await fetch(`${g.url}/ops/op-k/events?token=${await es(pair.privateKey)}`);
      expect(ok.status).toBe(200);
      await ok.body?.cancel();
      const hs = await fetch(`${g.url}/ops/op-k/events?token=${await token({ ops: ["op-k"] })}`);
      expect(hs.status).toBe(200);
      await hs.body?.cancel();
      const forged = await fetch(`${g.url}/ops/op-k/events?token=${await es(stranger.privateKey)}`);
      expect(await refusal(forged)).toEqual({ status: 401, error: "invalid token: bad signature" });
      g.kill();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads RSA keys as RS256 and refuses a private key or an unsupported curve", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
    const verifier = new TokenVerifier({ publicKey: publicKey(pem, "rsa.pem") });
    expect(verifier.algorithms).toEqual(["RS256"]);
    const signed = await new SignJWT({ ops: ["op-r"] })
      .setProtectedHeader({ alg: "RS256" })
      .setExpirationTime("5m")
      .sign(rsa.privateKey);
    expect([...(await verifier.verify(signed)).ops]).toEqual(["op-r"]);
    // An HS256 token when only a public key is configured: refused, whatever its secret.
    await expect(verifier.verify(await token({ ops: ["op-r"] }))).rejects.toMatchObject({ status: 401 });
    const priv = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(() => publicKey(priv, "key.pem")).toThrow(/holds a private key/);
    const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey.export({ type: "spki", format: "pem" });
    expect(() => publicKey(k1.toString(), "k1.pem")).toThrow(/not supported/);
  });
});

describe("progresscast serve, shutdown", { timeout: 60_000 }, () => {
  it("SIGTERM ends open SSE streams and sockets, then exits 0", async () => {
    // --no-auth on the default loopback host is allowed.
    const g = await startGateway(bundle.file, ["--redis", redis.url, "--prefix", prefix, "--no-auth"]);
    await progress.publish("op-t", { progress: 50, message: "long job" });
    const one = readSse(await fetch(`${g.url}/ops/op-t/events`));
    const scope = readSse(await fetch(`${g.url}/scopes/team-t/events`));
    await one.until((e) => e.length >= 1);
    // A scope's stream has no snapshot: wait for an event of it, so the stream surely runs.
    await progress.publish("op-t2", { progress: 1 }, { scope: "team-t" });
    await scope.until((e) => e.length >= 1);
    const socket = new WebSocket(`${g.url.replace(/^http/, "ws")}/ws`);
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
    await new Promise((resolve) => socket.once("open", resolve));

    g.child.kill("SIGTERM");
    // Each client sees its stream end (not an error): it would reconnect and resume elsewhere.
    expect(await one.ended).toBe("end");
    expect(await scope.ended).toBe("end");
    expect(await closed).toBe(1001);
    expect(await g.exited).toBe(0);
    expect(g.stdout()).toMatch(/shutting down: ending 2 streams and 1 socket\n/);
    expect(g.stdout()).toMatch(/stopped\n$/);
    expect(g.stderr()).toBe("");
  });
});

describe("progresscast serve refuses to serve anyone by mistake", { timeout: 60_000 }, () => {
  async function inProcess(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = "";
    let stderr = "";
    const io: CliIo = {
      stdout: { write: (c: string) => (stdout += c) },
      stderr: { write: (c: string) => (stderr += c) },
      env: {},
    };
    const code = await main(["serve", ...args], io);
    return { code, stdout, stderr };
  }

  it("--no-auth on a non-loopback host exits 2 before binding (a process)", async () => {
    const r = await run(process.execPath, [bundle.file, "serve", "--no-auth", "--host", "0.0.0.0", "--port", "0"], {
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--no-auth lets anyone watch anything, so it is refused on 0\.0\.0\.0/);
    expect(r.stdout).toBe("");
  });

  it("without a key, with a weak secret, a private key or a bad origin: exit 2, nothing served", async () => {
    const none = await inProcess(["--port", "0"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/give --jwt-secret .* or --jwt-public-key .*--no-auth serves without them/);
    expect(none.stdout).toBe("");
    const weak = await inProcess(["--port", "0", "--jwt-secret", "short"]);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toMatch(/at least 32 bytes/);
    const both = await inProcess(["--port", "0", "--no-auth", "--jwt-secret", SECRET]);
    expect(both.code).toBe(2);
    const origin = await inProcess(["--port", "0", "--jwt-secret", SECRET, "--cors-origin", "https://x.example/app"]);
    expect(origin.code).toBe(2);
    expect(origin.stderr).toMatch(/--cors-origin takes an origin/);
    const missing = await inProcess(["--port", "0", "--jwt-public-key", "/nonexistent/key.pem"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read --jwt-public-key/);
  });

  it("an unreachable Redis fails at start, in one line, exit 1; a bad --port is usage", async () => {
    const down = await inProcess(["--port", "0", "--jwt-secret", SECRET, "--redis", "redis://127.0.0.1:1"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^progresscast: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: /);
    expect(down.stdout).toBe("");
    const port = await inProcess(["--port", "http", "--jwt-secret", SECRET]);
    expect(port.code).toBe(2);
    expect(port.stderr).toMatch(/--port must be 0 to 65535/);
  });
});

describe("the gateway stays out of the library", () => {
  it("no entry of the package bundles jose, ws or the command's code", async () => {
    for (const [name, file] of Object.entries(entries)) {
      const result = await build({
        entryPoints: [join(root, file)],
        bundle: true,
        write: false,
        metafile: true,
        format: "esm",
        platform: "neutral",
        packages: "external",
        logLevel: "silent",
        outdir: "out",
      });
      const inputs = Object.keys(result.metafile.inputs);
      const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
      expect(
        inputs.filter((i) => i.includes("src/cli/")),
        name,
      ).toEqual([]);
      expect(
        imports.filter((i) => /^(jose|ws)(\/|$)/.test(i)),
        name,
      ).toEqual([]);
    }
  });
});
