/**
 * The Lua scripts every Redis adapter runs (node-redis over TCP, Upstash over
 * REST), with the argument encoding and reply decoding they share. The SHA1
 * of each script is a constant checked by a test against `SCRIPT LOAD`.
 *
 * @module
 */
import type { AppendItem, AppendOptions, AppendResult } from "./port.ts";

/**
 * Append a batch of events. KEYS: per item, events, state, scope (the events
 * key again when there is no scope). ARGV: ttl, maxLen, terminalTtl, count,
 * then per item: flags, progress ("" when absent), field count, fields.
 * Fields start with `v`, `op`, `seq` so `seq` is at a known place.
 * Flags: 1 allow backwards, 2 allow after terminal, 4 has scope, 8 terminal.
 * Reply per item: { code, id, seq, cancel }.
 */
export const APPEND_SCRIPT = `local ttl=ARGV[1]
local maxlen=ARGV[2]
local tttl=ARGV[3]
local out={}
local a=5
for i=1,tonumber(ARGV[4]) do
local ek=KEYS[i*3-2]
local sk=KEYS[i*3-1]
local flags=tonumber(ARGV[a])
local p=ARGV[a+1]
local s=a+3
local e=s+tonumber(ARGV[a+2])-1
a=e+1
local st=redis.call('HMGET',sk,'status','progress','seq','cancel')
local seq=tonumber(st[3]) or 0
local code='ok'
if flags%4<2 and (st[1]=='completed' or st[1]=='failed' or st[1]=='cancelled') then
code='terminal'
elseif flags%2==0 and p~='' and st[2] and tonumber(p)<tonumber(st[2]) then
code='backwards'
end
if code=='ok' then
seq=seq+1
ARGV[s+5]=tostring(seq)
local id=redis.call('XADD',ek,'MAXLEN','~',maxlen,'*',unpack(ARGV,s,e))
redis.call('HSET',sk,'id',id,unpack(ARGV,s,e))
if flags%16>=8 then redis.call('EXPIRE',ek,tttl) else redis.call('EXPIRE',ek,ttl) end
redis.call('EXPIRE',sk,ttl)
if flags%8>=4 then
redis.call('XADD',KEYS[i*3],'MAXLEN','~',maxlen,'*','id',id,unpack(ARGV,s,e))
redis.call('EXPIRE',KEYS[i*3],ttl)
end
out[i]={code,id,seq,st[4]}
else
out[i]={code,'',seq,st[4]}
end
end
return out`;

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
export const APPEND_SHA = "c787fe38872c8de9375ff34edb13e8d698439f0e";
/** SHA1 of {@link CANCEL_SCRIPT}, as `SCRIPT LOAD` answers it. */
export const CANCEL_SHA = "15bc836cc8ad58a4091b7dcd80230f3de9835606";

/** Keys and arguments of one call of {@link APPEND_SCRIPT}. */
export interface ScriptCall {
  readonly keys: string[];
  readonly args: string[];
}

/**
 * Encode a batch for {@link APPEND_SCRIPT}. Items must carry fields whose first
 * three are `v`, `op`, `seq` (the encoder of the wire format guarantees it).
 */
export function encodeAppend(items: readonly AppendItem[], options: AppendOptions): ScriptCall {
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
      (item.terminal ? 8 : 0);
    const at = args.length;
    args.push(String(flags), item.fields.progress ?? "", "");
    const { fields } = item;
    for (const name in fields) args.push(name, fields[name] as string);
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
    if (code === "ok") return { ok: true, id: String(row[1]), seq, cancelled };
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
