local K,A=KEYS,ARGV
local ttl=tonumber(A[1])
local maxlen=A[2]
local tttl=A[3]
local half=ttl*500
local out={}
local a=5
local function num(v)
local n=tonumber(v)
if n and n==n and n>-1e15 and n<1e15 then return n end
return nil
end
local function fl(f,s,e)
if f then return unpack(f) end
return unpack(A,s,e)
end
for i=1,tonumber(A[4]) do
local ek=K[i*3-2]
local sk=K[i*3-1]
local flags=tonumber(A[a])
local p=num(A[a+1])
local s=a+3
local e=s+tonumber(A[a+2])-1
a=e+1
local st=redis.call('HMGET',sk,'status','progress','seq','cancel','attempt','exp','total','ts')
local seq=num(st[3]) or 0
if seq<0 then seq=0 end
seq=math.floor(seq)
local att=num(st[5]) or 1
if att<1 then att=1 end
att=math.floor(att)
local ended=st[1]=='completed' or st[1]=='failed' or st[1]=='cancelled'
local restart=flags%32>=16
local terminal=flags%16>=8
local cancel=st[4]
local code='ok'
if not restart then
local sp=num(st[2])
if flags%4<2 and ended then code='terminal'
elseif flags%2==0 and ((p and sp and p<sp) or (flags%64>=32 and st[1]=='running')) then code='backwards' end
end
if code=='ok' then
seq=seq+1
if restart then
if st[1] or st[3] then att=att+1 else att=1 end
if ended then cancel=false end
redis.call('XTRIM',ek,'MAXLEN','0')
redis.call('DEL',sk)
elseif st[8] then
for j=s,e-1,2 do
if A[j]=='ts' then
if A[j+1]<st[8] then A[j+1]=st[8] end
break
end
end
end
A[s+5]=tostring(seq)
if A[e-1]=='attempt' then A[e]=tostring(att) end
local f=nil
local clear=false
if terminal then
f={unpack(A,s,e)}
local status,pi,ci,ti,ei
local msg=false
for j=1,#f-1,2 do
local k=f[j]
if k=='status' then status=f[j+1]
elseif k=='progress' then pi=j+1
elseif k=='current' then ci=j+1
elseif k=='total' then ti=j+1
elseif k=='eta' then ei=j+1
elseif k=='message' then msg=true end
end
if status=='completed' then
if pi then f[pi]='100' else f[#f+1]='progress' f[#f+1]='100' end
local total=nil
if ti then total=f[ti] elseif not restart then
local t=num(st[7])
if t and t>=0 and t==math.floor(t) then total=tostring(t) end
end
if total then
if ci then f[ci]=total else f[#f+1]='current' f[#f+1]=total end
if not ti then f[#f+1]='total' f[#f+1]=total end
end
end
if ei then f[ei]='0' else f[#f+1]='eta' f[#f+1]='0' end
clear=not msg and not restart
end
local id=redis.call('XADD',ek,'MAXLEN','~',maxlen,'*',fl(f,s,e))
local pub=flags%128>=64 and 'SPUBLISH' or 'PUBLISH'
redis.call(pub,ek,cjson.encode({id,fl(f,s,e)}))
local now=tonumber(string.match(id,'^%d+'))
local exp=num(st[6])
if restart or ended or terminal or not exp or exp-now<half then
if restart and cancel then
redis.call('HSET',sk,'id',id,'exp',tostring(now+ttl*1000),'cancel',cancel,fl(f,s,e))
else
redis.call('HSET',sk,'id',id,'exp',tostring(now+ttl*1000),fl(f,s,e))
end
if terminal then redis.call('EXPIRE',ek,tttl) else redis.call('EXPIRE',ek,ttl) end
redis.call('EXPIRE',sk,ttl)
else
redis.call('HSET',sk,'id',id,unpack(A,s+4,e))
end
if clear then redis.call('HDEL',sk,'message') end
if flags%8>=4 then
local sid=redis.call('XADD',K[i*3],'MAXLEN','~',maxlen,'*','id',id,fl(f,s,e))
redis.call(pub,K[i*3],cjson.encode({sid,'id',id,fl(f,s,e)}))
redis.call('EXPIRE',K[i*3],ttl)
end
out[i]={code,id,seq,cancel,att}
else
out[i]={code,'',seq,cancel,att}
end
end
return out