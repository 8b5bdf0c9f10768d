-- Copy events to scope streams on Redis Cluster, where a scope key lives in
-- another slot than the operation's keys and cannot be written by the
-- append script.
--
-- Input:
--   KEYS     scope streams, all in one slot
--   ARGV[1]  ttl, seconds
--   ARGV[2]  maxLen of the streams
--   then per key: field count, fields (`id` of the operation's event first,
--     then its fields with `seq` set)
-- Each entry is published on the scope stream's live channel (SPUBLISH, the
--   channel named like the stream, as append.lua does).
-- Output: the number of entries written.
local a=3
for i=1,#KEYS do
  local n=tonumber(ARGV[a])
  local sid=redis.call('XADD',KEYS[i],'MAXLEN','~',ARGV[2],'*',unpack(ARGV,a+1,a+n))
  redis.call('SPUBLISH',KEYS[i],cjson.encode({sid,unpack(ARGV,a+1,a+n)}))
  redis.call('EXPIRE',KEYS[i],ARGV[1])
  a=a+n+1
end
return #KEYS
