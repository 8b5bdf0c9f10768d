#!lua flags=allow-cross-slot-keys
-- Append events of operations in several slots served by one Redis Cluster
-- master, in one call: what append.lua does, for a batch grouped by node
-- rather than by slot. The keys go in ARGV (a script's declared KEYS must
-- share one slot); only KEYS[1] is declared, to route the call.
--
-- Input:
--   KEYS[1]  the events key of the first item (routing only)
--   ARGV[1]  n, the number of keys that follow
--   ARGV[2..n+1]  the keys, three per item, as append.lua's KEYS (on a
--     cluster the scope key is the events key again: scope copies are a
--     separate call)
--   ARGV[n+2]  w, the number of wake-up channels that follow
--   ARGV[n+3..n+2+w]  wake-up channels (one per slot of the batch): each
--     gets SPUBLISH '1' after the writes
--   then append.lua's ARGV (ttl, maxLen, terminal ttl, count, items).
-- Output: 'moved' (nothing written) when a key is not served by this node
--   (a slot that moved or is moving: the caller sends per slot instead);
--   else append.lua's reply, per item { code, id, seq, cancel, attempt }.
local n=tonumber(ARGV[1])
local K={}
for j=1,n do
  local k=ARGV[1+j]
  -- Each item's events key is checked before anything is written (a script is
  -- not rolled back); its other keys share its slot.
  if j%3==1 then
    local r=redis.pcall('EXISTS',k)
    if type(r)=='table' and r.err then return 'moved' end
  end
  K[j]=k
end
local w=tonumber(ARGV[n+2])
local A={}
for j=n+3+w,#ARGV do A[#A+1]=ARGV[j] end
--- @include "append-items"
for j=n+3,n+2+w do redis.call('SPUBLISH',ARGV[j],'1') end
return out
