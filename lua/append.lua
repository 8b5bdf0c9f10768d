local ttl=ARGV[1]
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
return out