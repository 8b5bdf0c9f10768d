-- Delete an operation's snapshot and events together (one call over REST).
--
-- Input:
--   KEYS[1]  snapshot hash
--   KEYS[2]  events stream
-- Output: the number of keys deleted.
return redis.call('DEL',KEYS[1],KEYS[2])
