/**
 * SSE clients in their own process (forked by `soak.ts` and `capacity.ts`,
 * see `children.ts`): many `GET /progress?op=...` connections over real HTTP,
 * each following one operation like a browser's EventSource would (resuming
 * with `Last-Event-ID` when the stream ends early), recording what they see
 * and the publish-to-receive latency of events that carry `data.t`.
 */
import { get, type IncomingMessage } from "node:http";
import { createParser } from "eventsource-parser";
import type { ClientResult, ClientStats, FromClients, Seen, ToClients } from "./children.ts";
import { newHistogram, record } from "./histogram.ts";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const now = (): number => performance.timeOrigin + performance.now();

interface Client {
  readonly op: string;
  last: Seen | null;
  ready: boolean;
  open: boolean;
  terminalEvent: boolean;
  events: number;
  reconnects: number;
  close: (() => void) | undefined;
}

const clients: Client[] = [];
const latency = newHistogram();
let errors = 0;
let stopping = false;
let base = "";
let readyCount = 0;
let onReady: (() => void) | undefined;

const send = (message: FromClients): void => {
  if (process.connected) process.send?.(message);
};

function follow(client: Client): void {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (client.last?.id) headers["last-event-id"] = client.last.id;
  let settled = false;
  const retry = (delay: number): void => {
    if (settled) return;
    settled = true;
    client.open = false;
    client.close = undefined;
    if (stopping || (client.last && TERMINAL.has(client.last.status))) return;
    client.reconnects++;
    setTimeout(() => follow(client), delay + Math.random() * delay);
  };
  const req = get(
    `${base}/progress?op=${encodeURIComponent(client.op)}`,
    { headers, agent: false },
    (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        errors++;
        res.resume();
        res.on("end", () => retry(1000));
        return;
      }
      client.open = true;
      const parser = createParser({
        onEvent(message) {
          if (message.event === "error") return;
          const data = JSON.parse(message.data) as {
            id?: string;
            seq: number;
            status: string;
            data?: { t?: number };
          };
          if (!client.ready) {
            client.ready = true;
            readyCount++;
            if (readyCount === clients.length) onReady?.();
          }
          if (message.event === "snapshot" || message.event === "reset") {
            client.last = { id: data.id, seq: data.seq, status: data.status };
            return;
          }
          client.last = { id: data.id, seq: data.seq, status: data.status };
          client.events++;
          if (TERMINAL.has(data.status)) client.terminalEvent = true;
          const t = data.data?.t;
          if (typeof t === "number") record(latency, now() - t);
        },
      });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => parser.feed(chunk));
      res.on("end", () => retry(250));
      res.on("error", () => retry(250));
    },
  );
  client.close = () => req.destroy();
  req.on("error", () => {
    errors++;
    retry(500);
  });
}

async function start(message: Extract<ToClients, { type: "start" }>): Promise<void> {
  base = message.base;
  const t0 = performance.now();
  for (const op of message.ops) {
    clients.push({
      op,
      last: null,
      ready: false,
      open: false,
      terminalEvent: false,
      events: 0,
      reconnects: 0,
      close: undefined,
    });
  }
  const allReady = new Promise<void>((resolve) => {
    onReady = resolve;
    if (clients.length === 0) resolve();
  });
  // Open a window of connections at a time, so the server's accept backlog never overflows.
  const window = message.window ?? 200;
  for (let i = 0; i < clients.length; i++) {
    const stalled = Date.now() + 10_000;
    while (i - readyCount >= window && Date.now() < stalled) await new Promise((r) => setTimeout(r, 5));
    follow(clients[i] as Client);
  }
  const deadline = new Promise<void>((r) => setTimeout(r, 120_000).unref());
  await Promise.race([allReady, deadline]);
  send({
    type: "ready",
    ready: readyCount,
    failed: clients.length - readyCount,
    ms: Math.round(performance.now() - t0),
  });
}

function stats(): ClientStats {
  let open = 0;
  let events = 0;
  let reconnects = 0;
  for (const c of clients) {
    if (c.open) open++;
    events += c.events;
    reconnects += c.reconnects;
  }
  return { type: "stats", ready: readyCount, open, events, reconnects, errors };
}

const same = (a: Seen | null, b: Seen | undefined): boolean =>
  a !== null && b !== undefined && a.id === b.id && a.seq === b.seq && a.status === b.status;

async function finish(message: Extract<ToClients, { type: "finish" }>): Promise<void> {
  const { finals } = message;
  const done = (c: Client): boolean =>
    finals ? same(c.last, finals[c.op]) : c.terminalEvent && c.last !== null && TERMINAL.has(c.last.status);
  const deadline = Date.now() + message.timeoutMs;
  while (Date.now() < deadline && !clients.every(done)) await new Promise((r) => setTimeout(r, 100));
  stopping = true;
  let terminalEvents = 0;
  let ended = 0;
  let correct = 0;
  const mismatches: ClientResult["mismatches"][number][] = [];
  for (const c of clients) {
    if (c.terminalEvent) terminalEvents++;
    if (c.last && TERMINAL.has(c.last.status)) ended++;
    if (finals) {
      if (same(c.last, finals[c.op])) correct++;
      else if (mismatches.length < 5) mismatches.push({ op: c.op, last: c.last, final: finals[c.op] ?? null });
    }
  }
  const s = stats();
  for (const c of clients) c.close?.();
  send({
    type: "result",
    clients: clients.length,
    terminalEvents,
    ended,
    correct,
    mismatches,
    events: s.events,
    reconnects: s.reconnects,
    errors,
    latency,
    cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
  });
}

process.on("message", (message: ToClients) => {
  if (message.type === "start") void start(message);
  else if (message.type === "stats") send(stats());
  else if (message.type === "finish") void finish(message);
});
// The parent went away: nothing left to do.
process.on("disconnect", () => process.exit(0));
