-- Mark an operation cancelled unless it already ended or does not exist (a
-- typo must not leave a mark that later stops a real job).
--
-- Input:
--   KEYS[1]  snapshot hash of the operation
--   ARGV[1]  reason
--   ARGV[2]  ttl, seconds
-- Output: 1 marked, 0 already terminal or unknown.
local st=redis.call('HGET',KEYS[1],'status')
if st=='completed' or st=='failed' or st=='cancelled' then return 0 end
if not st and redis.call('EXISTS',KEYS[1])==0 then return 0 end
redis.call('HSET',KEYS[1],'cancel',ARGV[1])
redis.call('EXPIRE',KEYS[1],ARGV[2])
return 1
