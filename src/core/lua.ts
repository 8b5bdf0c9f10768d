/**
 * The Lua scripts every Redis adapter runs (node-redis over TCP, Upstash over
 * REST), with the argument encoding and reply decoding they share. The SHA1
 * of each script is a constant checked by a test against `SCRIPT LOAD`.
 *
 * @module
 */
import type { AppendItem, AppendOptions, AppendResult } from "./port.ts";

/** Lua code added to the append script by {@link buildAppendScript}. */
export interface AppendScriptParts {
  /**
   * Runs for each accepted item, after its event is written to the stream and
   * the snapshot (and before the scope copy). In scope: `ek` (events key),
   * `sk` (state key), `id` (new entry id), `seq`, `att` (attempt, a number),
   * `now` (server time in ms, from the entry id), and `fl(f,s,e)`, which
   * returns the item's field/value pairs as written (unpacked: use it last in a call).
   */
  readonly afterWrite?: string | undefined;
}

/**
 * Build the append script. KEYS: per item, events, state, scope (the events
 * key again when there is no scope). ARGV: ttl, maxLen, terminalTtl, count,
 * then per item: flags, progress ("" when absent), field count, fields.
 * Fields start with `v`, `op`, `seq` so `seq` is at a known place; when the
 * last field is `attempt` the script sets its value.
 * Flags: 1 allow backwards, 2 allow after terminal, 4 has scope, 8 terminal, 16 restart,
 * 32 status `queued` (refused as backwards after `running` in the same attempt),
 * 64 publish on live channels with SPUBLISH (Redis Cluster) rather than PUBLISH.
 * Live channels: each written entry (and its scope copy) is published on a
 * channel named like its stream key, as the JSON array `[id, field, value, ...]`.
 * Reply per item: { code, id, seq, cancel, attempt }.
 *
 * Robust to any string in the snapshot: a stored `progress`, `seq`,
 * `attempt`, `total` or `exp` that is not a finite number counts as absent,
 * so a bad value written by someone else never fails the call (whose
 * earlier items would already be written).
 *
 * TTLs: the snapshot keeps `exp`, the time (ms) its keys expire. A write
 * refreshes both keys when less than half the TTL is left, when the snapshot
 * is new or was ended, and on terminal events and restarts; so after any write
 * both keys live at least `ttl / 2` more. The scope's stream is refreshed on
 * every write to it. Between refreshes `v` and `op`, which never change, are
 * not written again.
 */
export function buildAppendScript(parts: AppendScriptParts = {}): string {
  return `local ttl=tonumber(ARGV[1])
local maxlen=ARGV[2]
local tttl=ARGV[3]
local half=ttl*500
local out={}
local a=5
local function num(v)
local n=tonumber(v)
if n and n==n and n>-1e15 and n<1e15 then return n end
return nil
end
local function fl(f,s,e)
if f then return unpack(f) end
return unpack(ARGV,s,e)
end
for i=1,tonumber(ARGV[4]) do
local ek=KEYS[i*3-2]
local sk=KEYS[i*3-1]
local flags=tonumber(ARGV[a])
local p=num(ARGV[a+1])
local s=a+3
local e=s+tonumber(ARGV[a+2])-1
a=e+1
local st=redis.call('HMGET',sk,'status','progress','seq','cancel','attempt','exp','total')
local seq=num(st[3]) or 0
if seq<0 then seq=0 end
seq=math.floor(seq)
local att=num(st[5]) or 1
if att<1 then att=1 end
att=math.floor(att)
local ended=st[1]=='completed' or st[1]=='failed' or st[1]=='cancelled'
local restart=flags%32>=16
local terminal=flags%16>=8
local cancel=st[4]
local code='ok'
if not restart then
local sp=num(st[2])
if flags%4<2 and ended then code='terminal'
elseif flags%2==0 and ((p and sp and p<sp) or (flags%64>=32 and st[1]=='running')) then code='backwards' end
end
if code=='ok' then
seq=seq+1
if restart then
if st[1] or st[3] then att=att+1 else att=1 end
if ended then cancel=false end
redis.call('XTRIM',ek,'MAXLEN','0')
redis.call('DEL',sk)
end
ARGV[s+5]=tostring(seq)
if ARGV[e-1]=='attempt' then ARGV[e]=tostring(att) end
local f=nil
local clear=false
if terminal then
f={unpack(ARGV,s,e)}
local status,pi,ci,ti,ei
local msg=false
for j=1,#f-1,2 do
local k=f[j]
if k=='status' then status=f[j+1]
elseif k=='progress' then pi=j+1
elseif k=='current' then ci=j+1
elseif k=='total' then ti=j+1
elseif k=='eta' then ei=j+1
elseif k=='message' then msg=true end
end
if status=='completed' then
if pi then f[pi]='100' else f[#f+1]='progress' f[#f+1]='100' end
local total=nil
if ti then total=f[ti] elseif not restart then
local t=num(st[7])
if t and t>=0 and t==math.floor(t) then total=tostring(t) end
end
if total then
if ci then f[ci]=total else f[#f+1]='current' f[#f+1]=total end
if not ti then f[#f+1]='total' f[#f+1]=total end
end
end
if ei then f[ei]='0' else f[#f+1]='eta' f[#f+1]='0' end
clear=not msg and not restart
end
local id=redis.call('XADD',ek,'MAXLEN','~',maxlen,'*',fl(f,s,e))
local pub=flags%128>=64 and 'SPUBLISH' or 'PUBLISH'
redis.call(pub,ek,cjson.encode({id,fl(f,s,e)}))
local now=tonumber(string.match(id,'^%d+'))
local exp=num(st[6])
if restart or ended or terminal or not exp or exp-now<half then
if restart and cancel then
redis.call('HSET',sk,'id',id,'exp',tostring(now+ttl*1000),'cancel',cancel,fl(f,s,e))
else
redis.call('HSET',sk,'id',id,'exp',tostring(now+ttl*1000),fl(f,s,e))
end
if terminal then redis.call('EXPIRE',ek,tttl) else redis.call('EXPIRE',ek,ttl) end
redis.call('EXPIRE',sk,ttl)
else
redis.call('HSET',sk,'id',id,unpack(ARGV,s+4,e))
end
if clear then redis.call('HDEL',sk,'message') end
${parts.afterWrite ?? ""}
if flags%8>=4 then
local sid=redis.call('XADD',KEYS[i*3],'MAXLEN','~',maxlen,'*','id',id,fl(f,s,e))
redis.call(pub,KEYS[i*3],cjson.encode({sid,'id',id,fl(f,s,e)}))
redis.call('EXPIRE',KEYS[i*3],ttl)
end
out[i]={code,id,seq,cancel,att}
else
out[i]={code,'',seq,cancel,att}
end
end
return out`;
}

/** The append script (see {@link buildAppendScript}). */
export const APPEND_SCRIPT: string = buildAppendScript();

/**
 * Mark an operation cancelled unless it already ended or does not exist (a
 * typo must not leave a mark that later stops a real job). KEYS: state.
 * ARGV: reason, ttl. Reply: 1 marked, 0 already terminal or unknown.
 */
export const CANCEL_SCRIPT = `local st=redis.call('HGET',KEYS[1],'status')
if st=='completed' or st=='failed' or st=='cancelled' then return 0 end
if not st and redis.call('EXISTS',KEYS[1])==0 then return 0 end
redis.call('HSET',KEYS[1],'cancel',ARGV[1])
redis.call('EXPIRE',KEYS[1],ARGV[2])
return 1`;

/** SHA1 of {@link APPEND_SCRIPT}, as `SCRIPT LOAD` answers it. */
export const APPEND_SHA = "fa8330596d933c52c5bb15eac1bd47d476ea9ba1";
/** SHA1 of {@link CANCEL_SCRIPT}, as `SCRIPT LOAD` answers it. */
export const CANCEL_SHA = "15bc836cc8ad58a4091b7dcd80230f3de9835606";

/** Keys and arguments of one call of {@link APPEND_SCRIPT}. */
export interface ScriptCall {
  readonly keys: string[];
  readonly args: string[];
}

/**
 * Encode a batch for {@link APPEND_SCRIPT}. Items must carry fields whose first
 * three are `v`, `op`, `seq` (the encoder of the wire format guarantees it);
 * `attempt` is sent last, whatever its place in the item.
 */
export function encodeAppend(items: readonly AppendItem[], options: AppendOptions, sharded = false): ScriptCall {
  const keys: string[] = [];
  const args: string[] = [
    String(options.ttlSeconds),
    String(options.maxLen),
    String(options.terminalTtlSeconds),
    String(items.length),
  ];
  for (const item of items) {
    keys.push(item.eventsKey, item.stateKey, item.scopeKey ?? item.eventsKey);
    const flags =
      (item.allowBackwards ? 1 : 0) |
      (item.allowAfterTerminal ? 2 : 0) |
      (item.scopeKey ? 4 : 0) |
      (item.terminal ? 8 : 0) |
      (item.restart ? 16 : 0) |
      (item.fields.status === "queued" ? 32 : 0) |
      (sharded ? 64 : 0);
    const at = args.length;
    args.push(String(flags), item.fields.progress ?? "", "");
    const { fields } = item;
    for (const name in fields) if (name !== "attempt") args.push(name, fields[name] as string);
    // Always last, where the script sets it.
    args.push("attempt", "1");
    args[at + 2] = String(args.length - at - 3);
  }
  return { keys, args };
}

/** Decode the reply of {@link APPEND_SCRIPT} (RESP2 or RESP3 shapes, or REST's). */
export function decodeAppend(reply: unknown, count: number): AppendResult[] {
  if (!Array.isArray(reply) || reply.length !== count) {
    throw new TypeError(`Unexpected reply to the append script: ${JSON.stringify(reply)}`);
  }
  return reply.map((row: unknown): AppendResult => {
    if (!Array.isArray(row)) throw new TypeError(`Unexpected row in the append reply: ${JSON.stringify(row)}`);
    const code = String(row[0]);
    const seq = Number(row[2]);
    const cancelled = row[3] == null || row[3] === false ? null : String(row[3]);
    if (code === "ok") return { ok: true, id: String(row[1]), seq, cancelled, attempt: Number(row[4]) || 1 };
    if (code === "backwards" || code === "terminal") return { ok: false, refused: code, seq, cancelled };
    throw new TypeError(`Unexpected code in the append reply: ${code}`);
  });
}

/**
 * Copy events to scope streams on Redis Cluster, where a scope key lives in
 * another slot than the operation's keys and cannot be written by the append
 * script. All KEYS share one slot. ARGV: ttl, maxLen, then per key: field
 * count, fields (`id` of the operation's event first, then its fields with
 * `seq` set). Reply: number of entries written.
 */
export const SCOPE_SCRIPT = `local a=3
for i=1,#KEYS do
local n=tonumber(ARGV[a])
redis.call('XADD',KEYS[i],'MAXLEN','~',ARGV[2],'*',unpack(ARGV,a+1,a+n))
redis.call('EXPIRE',KEYS[i],ARGV[1])
a=a+n+1
end
return #KEYS`;

/** SHA1 of {@link SCOPE_SCRIPT}, as `SCRIPT LOAD` answers it. */
export const SCOPE_SHA = "a288f97f1e70d218846a4e1db51097f3fde2d556";
