-- Read an operation: its snapshot and a page of its events, in one call.
--
-- Input:
--   KEYS[1]  events stream
--   KEYS[2]  snapshot hash (optional)
--   ARGV[1]  start ("-" or "(id")
--   ARGV[2]  limit
-- Output: { snapshot (flat field/value list), entries, [oldest entry] }.
local st={}
if KEYS[2] then st=redis.call('HGETALL',KEYS[2]) end
return {st,redis.call('XRANGE',KEYS[1],ARGV[1],'+','COUNT',ARGV[2]),redis.call('XRANGE',KEYS[1],'-','+','COUNT',1)}
