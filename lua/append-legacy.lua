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
if v=='\1p' or v=='\1P' then
sp=sp or redis.call('HGET',KEYS[tonumber(ARGV[s])],'progress') or '0'
if v=='\1p' then v=tostring(math.floor(tonumber(sp)+0.5)) else v=sp end
end
f[#f+1]=v
end
redis.call('XADD',k,'MAXLEN','~',x,'*',unpack(f))
redis.call('EXPIRE',k,ARGV[s+1])
elseif kind=='P' then
out[i][5]=redis.call('PUBLISH',tg,ARGV[s])
end
end
end
end
return out