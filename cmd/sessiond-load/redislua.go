package main

// The engine's create script, copied word for word from
// store/redis/scripts.go (TestEngineLua checks that it still is).

const luaCommon = `
local base = KEYS[1]
local DAY = 86400000
local function hmap(t) local m = {} for i = 1, #t, 2 do m[t[i]] = t[i+1] end return m end
local function num(s) return tonumber(s) end
local function fmt(n) return string.format('%.0f', n) end
local function str(v) if v then return v end return '' end
local function uakey(k, u) return base .. 'ua:' .. #k .. ':' .. k .. ':' .. u end
local function index(id, f)
  local o = fmt(-num(f.o))
  local k, u = str(f.k), str(f.u)
  redis.call('ZADD', base .. 'order', o, id)
  redis.call('ZADD', base .. 'k:' .. k, o, id)
  if u ~= '' then redis.call('ZADD', base .. 'u:' .. u, o, id) end
  if f.a == '1' then
    redis.call('ZADD', base .. 'req', f.r, id)
    if str(f.e) ~= '' then redis.call('ZADD', base .. 'exp', f.e, id) end
    if u ~= '' then redis.call('SADD', uakey(k, u), id) end
  elseif str(f.c) ~= '' then
    redis.call('ZADD', base .. 'closed', f.c, id)
  end
  redis.call('HSET', base .. 'ix', id, k .. '\0' .. u)
end
local function unindex(id, k, u)
  redis.call('ZREM', base .. 'order', id)
  redis.call('ZREM', base .. 'k:' .. k, id)
  if u ~= '' then
    redis.call('ZREM', base .. 'u:' .. u, id)
    redis.call('SREM', uakey(k, u), id)
  end
  redis.call('ZREM', base .. 'req', id)
  redis.call('ZREM', base .. 'exp', id)
  redis.call('ZREM', base .. 'closed', id)
  redis.call('HDEL', base .. 'ix', id)
end
-- ghost cleans the indexes of a session whose keys are gone.
local function ghost(id)
  local x = redis.call('HGET', base .. 'ix', id)
  if x then
    local p = string.find(x, '\0', 1, true)
    unindex(id, string.sub(x, 1, p - 1), string.sub(x, p + 1))
  else
    unindex(id, '', '')
  end
  redis.call('DEL', base .. 'c:' .. id)
end
-- expiry: as Store.expiry, in ms, for the fields f.
local function expiry(f, now, idle, keep)
  local d
  if f.a == '1' then
    d = num(f.r) + idle
    if str(f.e) ~= '' and num(f.e) < d then d = num(f.e) end
  elseif str(f.c) ~= '' then d = num(f.c)
  else d = num(f.r) end
  d = math.floor(d / 1000)
  if d < now then d = now end
  return d + keep
end
-- setexp moves the expiry of a session's keys to at (ms); when that
-- crosses into a later day, it appends the token hash and the pointer's
-- new expiry to refresh.
local function setexp(id, tok, at, refresh)
  local s = base .. 's:' .. id
  local old = redis.call('PEXPIRETIME', s)
  redis.call('PEXPIREAT', s, fmt(at))
  redis.call('PEXPIREAT', base .. 'c:' .. id, fmt(at))
  if tok ~= '' and (old < 0 or math.floor(at / DAY) > math.floor(old / DAY)) then
    table.insert(refresh, tok)
    table.insert(refresh, fmt((math.floor(at / DAY) + 2) * DAY))
  end
end
`

const luaCreate = `
local id = ARGV[1]
local s = base .. 's:' .. id
if redis.call('EXISTS', s) == 1 then return 0 end
if redis.call('HEXISTS', base .. 'ix', id) == 1 then ghost(id) end
redis.call('DEL', base .. 'c:' .. id)
local f = {}
for i = 3, #ARGV, 2 do f[ARGV[i]] = ARGV[i+1] end
redis.call('HSET', s, unpack(ARGV, 3))
index(id, f)
redis.call('PEXPIREAT', s, ARGV[2])
return 1
`
