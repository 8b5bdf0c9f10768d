/** progresscast/prometheus against the real prom-client: what the manager reports shows up, exactly, in a valid exposition. */
import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { memory } from "../../src/adapters/memory/index.ts";
import { isProgressError } from "../../src/core/errors.ts";
import type { MetricName } from "../../src/core/observe.ts";
import type { ProgressOptions } from "../../src/core/options.ts";
import { Progress, type PublishResult } from "../../src/core/progress.ts";
import { metricsHandler, prometheusMetrics } from "../../src/prometheus/index.ts";

// --- A small parser of the Prometheus text format (0.0.4), strict enough to catch a malformed line. ---

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = "(?:NaN|[+-]?Inf|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

interface Family {
  help: string;
  type: string;
}
interface Exposition {
  readonly families: Map<string, Family>;
  /** `name{a="1",b="2"}` (labels sorted) -> value. */
  readonly samples: Map<string, number>;
}

const FAMILY_SUFFIXES: Record<string, readonly string[]> = {
  counter: ["", "_total"],
  gauge: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
  untyped: [""],
};

function key(name: string, labels: Readonly<Record<string, string>> = {}): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`;
}

/** Parse the exposition, throwing on any line that is not valid text format or a sample outside its declared family. */
function parse(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples = new Map<string, number>();
  let current: string | undefined;
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === "") continue;
    const help = HELP.exec(line);
    if (help) {
      const name = help[1] ?? "";
      if (families.has(name)) throw new Error(`${where}: second HELP for ${name}`);
      families.set(name, { help: help[2] ?? "", type: "untyped" });
      current = name;
      continue;
    }
    const type = TYPE.exec(line);
    if (type) {
      const family = families.get(type[1] ?? "");
      if (!family || current !== type[1]) throw new Error(`${where}: TYPE without its HELP`);
      family.type = type[2] ?? "";
      continue;
    }
    if (line.startsWith("#")) throw new Error(`${where}: unknown comment`);
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`${where}: not a sample line`);
    const name = sample[1] ?? "";
    const family = current === undefined ? undefined : families.get(current);
    const suffixes = family ? (FAMILY_SUFFIXES[family.type] ?? []) : [];
    if (!family || !suffixes.some((s) => name === `${current}${s}`)) {
      throw new Error(`${where}: sample ${name} outside its family (${current})`);
    }
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? "").matchAll(LABEL_PAIR)) labels[m[1] ?? ""] = m[2] ?? "";
    const k = key(name, labels);
    if (samples.has(k)) throw new Error(`${where}: duplicate sample ${k}`);
    const raw = sample[3] ?? "";
    samples.set(
      k,
      raw === "+Inf" || raw === "Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? -Infinity : Number(raw),
    );
  }
  return { families, samples };
}

// --- Helpers ---

const registries: Registry[] = [];
const managers: Progress[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((p) => p.close()));
  for (const r of registries.splice(0)) r.clear();
});

function setup(options: Partial<ProgressOptions> = {}): {
  progress: Progress;
  registry: Registry;
  scrape(): Promise<Exposition>;
} {
  const registry = new Registry();
  registries.push(registry);
  const progress = new Progress({
    port: memory(),
    logger: {},
    throttle: false,
    ...options,
    metrics: prometheusMetrics({ registry }),
  });
  managers.push(progress);
  return { progress, registry, scrape: async () => parse(await registry.metrics()) };
}

function value(e: Exposition, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  return e.samples.get(key(name, labels));
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const P = "progresscast_";

// --- Tests ---

describe("the exposition parser", () => {
  it("rejects what is not text format, so the checks below have teeth", () => {
    const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n';
    expect(value(parse(ok), "a_total", { x: "1" })).toBe(2);
    expect(() => parse(`${ok}a_total{x=1} 2\n`)).toThrow(/not a sample/);
    expect(() => parse(`${ok}b_total 2\n`)).toThrow(/outside its family/);
    expect(() => parse(`${ok}a_total{x="1"} 3\n`)).toThrow(/duplicate/);
    expect(() => parse("# TYPE a counter\na 1\n")).toThrow(/TYPE without/);
    expect(() => parse("# HELP a A.\n# TYPE a counter\na one\n")).toThrow(/not a sample/);
  });
});

describe("prometheusMetrics", () => {
  it("exposes every metric with HELP and TYPE, at zero, before anything happens", async () => {
    const { scrape } = setup();
    const e = await scrape();
    const expected: Record<string, string> = {
      events_published_total: "counter",
      events_coalesced_total: "counter",
      events_refused_total: "counter",
      publish_failures_total: "counter",
      publish_retries_total: "counter",
      publish_latency_seconds: "histogram",
      watchers_active: "gauge",
      events_delivered_total: "counter",
      delivery_lag_seconds: "histogram",
      resets_total: "counter",
      read_failures_total: "counter",
      connection_errors_total: "counter",
      group_pending: "gauge",
      group_delivered_total: "counter",
      group_claimed_total: "counter",
    };
    expect(Object.fromEntries([...e.families].map(([name, f]) => [name, f.type]))).toEqual(
      Object.fromEntries(Object.entries(expected).map(([name, type]) => [P + name, type])),
    );
    for (const f of e.families.values()) expect(f.help.length).toBeGreaterThan(10);
    expect(value(e, `${P}events_published_total`)).toBe(0);
    expect(value(e, `${P}events_refused_total`, { reason: "backwards" })).toBe(0);
    expect(value(e, `${P}events_refused_total`, { reason: "terminal" })).toBe(0);
    expect(value(e, `${P}events_coalesced_total`, { where: "report" })).toBe(0);
    expect(value(e, `${P}events_coalesced_total`, { where: "delivery" })).toBe(0);
    expect(value(e, `${P}watchers_active`)).toBe(0);
    expect(value(e, `${P}connection_errors_total`, { transport: "websocket" })).toBe(0);
    expect(value(e, `${P}publish_latency_seconds_count`)).toBe(0);
    expect(value(e, `${P}publish_latency_seconds_bucket`, { le: "0.001" })).toBe(0);
    expect(value(e, `${P}publish_latency_seconds_bucket`, { le: "10" })).toBe(0);
    expect(value(e, `${P}publish_latency_seconds_bucket`, { le: "+Inf" })).toBe(0);
  });

  it("counts published, refused (backwards and terminal), delivered, latency, lag and watchers exactly", async () => {
    const { progress, scrape } = setup();
    const op = "op-1";
    const watch = progress.watch(op);
    expect((await watch.next()).value).toEqual({ kind: "snapshot", snapshot: null });
    const delivered = (async () => {
      const seen: number[] = [];
      for await (const item of watch) if (item.kind === "event") seen.push(item.event.seq);
      return seen;
    })();
    await until(async () => value(await scrape(), `${P}watchers_active`) === 1, "the watcher to subscribe");

    const results: PublishResult[] = [];
    results.push(await progress.publish(op, { progress: 10 }));
    results.push(await progress.publish(op, { progress: 20 }));
    results.push(await progress.publish(op, { progress: 5 }));
    results.push(await progress.publish(op, { progress: 100, status: "completed" }));
    results.push(await progress.publish(op, { progress: 50 }));
    expect(results.map((r) => (r.ok ? r.outcome : r.outcome === "refused" ? r.reason : r.outcome))).toEqual([
      "published",
      "published",
      "backwards",
      "published",
      "terminal",
    ]);
    expect(await delivered).toEqual([1, 2, 3]);
    await until(async () => value(await scrape(), `${P}watchers_active`) === 0, "the watcher to leave");

    const e = await scrape();
    expect(value(e, `${P}events_published_total`)).toBe(3);
    expect(value(e, `${P}events_refused_total`, { reason: "backwards" })).toBe(1);
    expect(value(e, `${P}events_refused_total`, { reason: "terminal" })).toBe(1);
    expect(value(e, `${P}events_delivered_total`)).toBe(3);
    expect(value(e, `${P}publish_failures_total`)).toBe(0);
    expect(value(e, `${P}publish_retries_total`)).toBe(0);
    expect(value(e, `${P}events_coalesced_total`, { where: "report" })).toBe(0);
    // Every answered publish is timed, refused ones included; cumulative buckets end at the count.
    expect(value(e, `${P}publish_latency_seconds_count`)).toBe(5);
    expect(value(e, `${P}publish_latency_seconds_bucket`, { le: "+Inf" })).toBe(5);
    const sum = value(e, `${P}publish_latency_seconds_sum`) ?? -1;
    expect(sum).toBeGreaterThanOrEqual(0);
    expect(sum).toBeLessThan(5); // seconds, not milliseconds
    const lag = value(e, `${P}delivery_lag_seconds_count`) ?? 0;
    expect(lag).toBeGreaterThanOrEqual(1);
    expect(lag).toBeLessThanOrEqual(3);
  });

  it("counts reports merged by the throttle as coalesced where=report", async () => {
    const { progress, scrape } = setup({ throttle: { intervalMs: 60_000 } });
    for (let i = 1; i <= 5; i++) progress.report("op-2", { progress: i * 10 });
    await progress.flush();
    const e = await scrape();
    // The first is written at once, the second is held, the next three merge into it; flush writes the held one.
    expect(value(e, `${P}events_coalesced_total`, { where: "report" })).toBe(3);
    expect(value(e, `${P}events_published_total`)).toBe(2);
    expect((await progress.history("op-2")).map((ev) => ev.progress)).toEqual([10, 50]);
  });

  it("counts events a slow watcher skipped as coalesced where=delivery", async () => {
    const { progress, scrape } = setup();
    const op = "op-3";
    const watch = progress.watch(op, { maxQueue: 1 });
    await watch.next();
    const first = watch.next();
    await until(async () => value(await scrape(), `${P}watchers_active`) === 1, "the watcher to subscribe");
    await progress.publish(op, { progress: 10 });
    expect((await first).value).toMatchObject({ kind: "event", event: { seq: 1 } });
    for (let p = 20; p <= 50; p += 10) await progress.publish(op, { progress: p });
    await progress.publish(op, { progress: 100, status: "completed" });
    // Not reading: the queue holds one progress event; p20..p40 are superseded by p50.
    await until(
      async () => value(await scrape(), `${P}events_coalesced_total`, { where: "delivery" }) === 3,
      "three events to be coalesced",
    );
    const rest: number[] = [];
    for await (const item of watch) if (item.kind === "event") rest.push(item.event.seq);
    expect(rest).toEqual([5, 6]);
    const e = await scrape();
    expect(value(e, `${P}events_delivered_total`)).toBe(3);
    expect(value(e, `${P}events_published_total`)).toBe(6);
  });

  it("counts a publish the backend rejects in publish_failures, and retries of terminal events", async () => {
    const port = memory();
    // A closed backend never comes back: close() need not wait for the held events.
    const { progress, scrape } = setup({
      port,
      retry: { attempts: 2, minDelayMs: 1, maxDelayMs: 1 },
      closeTimeoutMs: 50,
    });
    await port.close();
    const failed = await progress.publish("op-4", { progress: 10 });
    expect(failed.ok).toBe(false);
    expect(!failed.ok && failed.outcome === "failed" && isProgressError(failed.error)).toBe(true);
    let e = await scrape();
    expect(value(e, `${P}publish_failures_total`)).toBe(1);
    expect(value(e, `${P}publish_retries_total`)).toBe(0);
    expect(value(e, `${P}publish_latency_seconds_count`)).toBe(0);

    await progress.publish("op-4", { status: "failed", message: "gave up" });
    e = await scrape();
    expect(value(e, `${P}publish_failures_total`)).toBe(2);
    expect(value(e, `${P}publish_retries_total`)).toBe(2);
    expect(value(e, `${P}events_published_total`)).toBe(0);
  });

  it("records group metrics with the group label, and drops unknown labels, names and bad values without throwing", async () => {
    const registry = new Registry();
    registries.push(registry);
    const sink = prometheusMetrics({ registry, prefix: "app_" });
    sink.increment("group_delivered", 2, { group: "db" });
    sink.increment("group_claimed", 1, { group: "db", consumer: "w1" });
    sink.gauge("group_pending", 7, { group: "db" });
    sink.increment("events_refused", 1, { reason: "backwards", op: "x" });
    sink.increment("events_published", -1);
    sink.increment("events_published", Number.NaN);
    sink.observe("publish_latency_ms", Number.POSITIVE_INFINITY);
    sink.observe("events_published", 3); // a counter, not a histogram
    sink.increment("nope" as MetricName);
    sink.observe("delivery_lag_ms", 1500);
    const e = parse(await registry.metrics());
    expect([...e.families.keys()].every((n) => n.startsWith("app_"))).toBe(true);
    expect(value(e, "app_group_delivered_total", { group: "db" })).toBe(2);
    expect(value(e, "app_group_claimed_total", { group: "db" })).toBe(1);
    expect(value(e, "app_group_pending", { group: "db" })).toBe(7);
    expect(value(e, "app_events_refused_total", { reason: "backwards" })).toBe(1);
    expect(value(e, "app_events_published_total")).toBe(0);
    expect(value(e, "app_publish_latency_seconds_count")).toBe(0);
    expect(value(e, "app_delivery_lag_seconds_sum")).toBe(1.5);
    expect(value(e, "app_delivery_lag_seconds_bucket", { le: "1" })).toBe(0);
    expect(value(e, "app_delivery_lag_seconds_bucket", { le: "2.5" })).toBe(1);
  });

  it("uses custom buckets given in milliseconds, as seconds", async () => {
    const registry = new Registry();
    registries.push(registry);
    const sink = prometheusMetrics({ registry, buckets: { latencyMs: [2, 20, 200] } });
    sink.observe("publish_latency_ms", 15);
    const e = parse(await registry.metrics());
    const les = [...e.samples.keys()].filter((k) => k.startsWith(`${P}publish_latency_seconds_bucket`));
    expect(les).toEqual(
      [0.002, 0.02, 0.2, "+Inf"].map((le) => key(`${P}publish_latency_seconds_bucket`, { le: `${le}` })),
    );
    expect(value(e, `${P}publish_latency_seconds_bucket`, { le: "0.02" })).toBe(1);
  });

  it("shares metrics between two sinks on one registry, and refuses a name it did not create", () => {
    const registry = new Registry();
    registries.push(registry);
    const a = prometheusMetrics({ registry });
    const b = prometheusMetrics({ registry });
    a.increment("resets");
    b.increment("resets");
    expect(registry.getSingleMetric(`${P}resets_total`)).toBeDefined();

    const other = new Registry();
    registries.push(other);
    new Counter({ name: "mine_resets_total", help: "not ours", registers: [other] });
    expect(() => prometheusMetrics({ registry: other, prefix: "mine_" })).toThrow(/mine_resets_total/);
  });

  it("validates prefix and buckets", () => {
    const registry = new Registry();
    registries.push(registry);
    expect(() => prometheusMetrics({ registry, prefix: "9bad" })).toThrow(/prefix/);
    expect(() => prometheusMetrics({ registry, prefix: "bad-name" })).toThrow(/prefix/);
    expect(() => prometheusMetrics({ registry, buckets: { lagMs: [10, 5] } })).toThrow(/buckets\.lagMs/);
    expect(() => prometheusMetrics({ registry, buckets: { latencyMs: [] } })).toThrow(/buckets\.latencyMs/);
  });
});

describe("metricsHandler", () => {
  it("serves the text format on GET, headers only on HEAD, 405 otherwise", async () => {
    const registry = new Registry();
    registries.push(registry);
    const sink = prometheusMetrics({ registry });
    sink.increment("events_published", 4);
    const handle = metricsHandler(sink.registry);

    const got = await handle(new Request("http://localhost/metrics"));
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe(registry.contentType);
    expect(got.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(got.headers.get("cache-control")).toBe("no-store");
    expect(value(parse(await got.text()), `${P}events_published_total`)).toBe(4);

    const head = await handle(new Request("http://localhost/metrics", { method: "HEAD" }));
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");

    const post = await handle(new Request("http://localhost/metrics", { method: "POST" }));
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("answers 500 with the reason when collecting fails", async () => {
    const handle = metricsHandler({
      contentType: "text/plain; version=0.0.4; charset=utf-8",
      metrics: () => Promise.reject(new Error("collector exploded")),
    });
    const res = await handle(new Request("http://localhost/metrics"));
    expect(res.status).toBe(500);
    expect(await res.text()).toMatch(/collector exploded/);
  });
});
