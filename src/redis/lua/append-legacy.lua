-- The append script (append.lua) followed by legacy mode's writes for old
-- readers, in the same atomic call.
--
-- Input:
--   KEYS: as append.lua, then the keys of the legacy writes.
--   ARGV: as append.lua, then the legacy section (see
--     includes/legacy-writes.lua), its length last.
-- Output: as append.lua; an item whose legacy writes published a message
--   has a sixth element, the subscriber count.
local K,A=KEYS,ARGV
--- @include "append-items"
--- @include "legacy-writes"
return out
