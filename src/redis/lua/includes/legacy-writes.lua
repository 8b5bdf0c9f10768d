-- Legacy mode: the writes for old readers, run after the items are
-- appended. The section sits after the items' arguments (which it ignores);
-- the last argument holds the section's length, so it is found from the end.
-- Per item: the number of writes, then per write: kind (H, X, P), target (a
-- KEYS index; the channel for P), ttl (H) or maxlen (X), argument count,
-- arguments (X: the snapshot's KEYS index, ttl, fields). An item's writes
-- run only when its event was accepted. A publish's subscriber count is the
-- sixth element of the item's reply row.
local la=#ARGV-tonumber(ARGV[#ARGV])+1
for i=1,#out do
  local n=tonumber(ARGV[la])
  la=la+1
  for c=1,n do
    local kind=ARGV[la]
    local tg=ARGV[la+1]
    local x=ARGV[la+2]
    local s=la+4
    local e=s+tonumber(ARGV[la+3])-1
    la=e+1
    if out[i][1]=='ok' then
      if kind=='H' then
        local k=KEYS[tonumber(tg)]
        redis.call('HSET',k,unpack(ARGV,s,e))
        redis.call('EXPIRE',k,x)
      elseif kind=='X' then
        local k=KEYS[tonumber(tg)]
        local sp=nil
        local f={}
        for j=s+2,e do
          local v=ARGV[j]
          -- \1p: the snapshot's progress rounded to an integer; \1P: as stored.
          if v=='\1p' or v=='\1P' then
            sp=sp or redis.call('HGET',KEYS[tonumber(ARGV[s])],'progress') or '0'
            if v=='\1p' then v=tostring(math.floor(tonumber(sp)+0.5)) else v=sp end
          end
          f[#f+1]=v
        end
        redis.call('XADD',k,'MAXLEN','~',x,'*',unpack(f))
        redis.call('EXPIRE',k,ARGV[s+1])
      elseif kind=='P' then
        out[i][6]=redis.call('PUBLISH',tg,ARGV[s])
      end
    end
  end
end
