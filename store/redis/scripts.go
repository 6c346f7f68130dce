package redis

import (
	"context"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// The scripts. Each runs in one group's slot: KEYS[1] is the group's base
// (prefix{gg}:), and every key a script touches starts with it, so a
// script never crosses slots. Keys of group base B:
//
//	B s:<id>        hash: the session (sessionFields)
//	B c:<id>        hash: its gateway statistics, fields <service>\0q|R|w|e|l
//	B order         zset: every session, score -open (µs): newest first, ties by id
//	B k:<api key>   zset: the sessions of an API key ("" for none), score -open
//	B u:<user>      zset: the sessions of a user id, score -open
//	B ua:<len(key)>:<key>:<user>  set: the active sessions of a user and key
//	B req           zset: active sessions by request_time (µs)
//	B exp           zset: active sessions with an expire_time, by it
//	B closed        zset: inactive sessions by close_time
//	B ix            hash: id -> api key \0 user, to clean the indexes of a
//	                session whose keys expired
//	B x:<user>      zset: groups other than this one (the user's home) that
//	                hold sessions of the user, score the last time one was
//	                placed there (ms)
//	B xs            set: the users with an x key in this group
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

// create: ARGV id, expiry (ms), field-value pairs (v included). 0 if the
// id exists; else {1, the active sessions of its user and key in this
// group, the groups recorded as the user's strays if this is the user's
// home} for the per-user limit, counted after the write ({1, 0, 0} for a
// session without a user, or not active).
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
local u = str(f.u)
if u == '' or f.a ~= '1' then return {1, 0, 0} end
return {1, redis.call('SCARD', uakey(str(f.k), u)), redis.call('ZCARD', base .. 'x:' .. u)}
`

// alive: ARGV idle bound, now bound (µs), most. The group's alive
// sessions (active, request_time >= the idle bound, no expire_time or
// one >= the now bound), from the indexes: the req set's count from the
// idle bound, less those of them past their expire_time. -1 if more than
// most sessions are past their expire_time (the sweep is behind): the
// caller then counts from the sessions.
const luaAlive = `
local n = redis.call('ZCOUNT', base .. 'req', ARGV[1], '+inf')
local past = redis.call('ZRANGEBYSCORE', base .. 'exp', '-inf', '(' .. ARGV[2], 'LIMIT', 0, num(ARGV[3]) + 1)
if #past > num(ARGV[3]) then return -1 end
for _, id in ipairs(past) do
  local r = redis.call('ZSCORE', base .. 'req', id)
  if r and num(r) >= num(ARGV[1]) then n = n - 1 end
end
return n
`

// update: ARGV id, version read, expiry (ms), field-value pairs.
// {0} if there is no session, {-1} if another write came in between, or
// {1, token, pointer expiry...}.
const luaUpdate = `
local id = ARGV[1]
local s = base .. 's:' .. id
local cur = redis.call('HGETALL', s)
if #cur == 0 then return {0} end
local old = hmap(cur)
if old.v ~= ARGV[2] then return {-1} end
unindex(id, str(old.k), str(old.u))
redis.call('HDEL', s, 'us', 'd')
redis.call('HSET', s, unpack(ARGV, 4))
redis.call('HINCRBY', s, 'v', 1)
local f = {}
for i = 4, #ARGV, 2 do f[ARGV[i]] = ARGV[i+1] end
index(id, f)
local refresh = {1}
setexp(id, str(old.t), num(ARGV[3]), refresh)
return refresh
`

// delete: ARGV id. The session's fields, empty if there was none.
const luaDelete = `
local id = ARGV[1]
local s = base .. 's:' .. id
local cur = redis.call('HGETALL', s)
if #cur == 0 then
  if redis.call('HEXISTS', base .. 'ix', id) == 1 then ghost(id) end
  return {}
end
local f = hmap(cur)
unindex(id, str(f.k), str(f.u))
redis.call('DEL', s, base .. 'c:' .. id)
return cur
`

// touch: ARGV now (ms), idle (µs), keep (ms), then id, time (µs) pairs.
// Raises request_time of active sessions; returns the pointers to
// refresh (token, expiry pairs).
const luaTouch = `
local now, idle, keep = num(ARGV[1]), num(ARGV[2]), num(ARGV[3])
local refresh = {}
for i = 4, #ARGV, 2 do
  local id, t = ARGV[i], ARGV[i+1]
  local s = base .. 's:' .. id
  local v = redis.call('HMGET', s, 'a', 'r', 'e', 't')
  if v[1] == '1' and num(v[2]) < num(t) then
    redis.call('HSET', s, 'r', t)
    redis.call('HINCRBY', s, 'v', 1)
    redis.call('ZADD', base .. 'req', t, id)
    setexp(id, str(v[4]), expiry({a = '1', r = t, e = str(v[3])}, now, idle, keep), refresh)
  end
end
return refresh
`

// closeExpired: ARGV idle bound (µs: request_time below it is dead), now
// bound (µs: expire_time below it is dead), idle (µs), now (ms), keep
// (ms), batch. Closes up to batch dead sessions as sessiond.ApplyClose at
// their deadline. Returns {ids, refresh, more}.
const luaCloseExpired = `
local idle, now, keep, batch = num(ARGV[3]), num(ARGV[4]), num(ARGV[5]), num(ARGV[6])
local a = redis.call('ZRANGEBYSCORE', base .. 'req', '-inf', '(' .. ARGV[1], 'LIMIT', 0, batch)
local b = redis.call('ZRANGEBYSCORE', base .. 'exp', '-inf', '(' .. ARGV[2], 'LIMIT', 0, batch)
local more = 0
if #a == batch or #b == batch then more = 1 end
local seen, closed, refresh = {}, {}, {}
local function close(id)
  if seen[id] then return end
  seen[id] = true
  local s = base .. 's:' .. id
  local cur = redis.call('HGETALL', s)
  if #cur == 0 then ghost(id) return end
  local f = hmap(cur)
  if f.a ~= '1' then
    redis.call('ZREM', base .. 'req', id)
    redis.call('ZREM', base .. 'exp', id)
    return
  end
  local d = num(f.r) + idle
  if str(f.e) ~= '' and num(f.e) < d then d = num(f.e) end
  local ds = fmt(d)
  redis.call('ZREM', base .. 'req', id)
  redis.call('ZREM', base .. 'exp', id)
  if str(f.u) ~= '' then redis.call('SREM', uakey(str(f.k), f.u), id) end
  redis.call('HSET', s, 'a', '0', 'c', ds, 'r', ds, 'cr', 'expired')
  redis.call('HDEL', s, 'us', 'd')
  redis.call('HINCRBY', s, 'v', 1)
  redis.call('ZADD', base .. 'closed', ds, id)
  setexp(id, str(f.t), expiry({a = '0', c = ds}, now, idle, keep), refresh)
  table.insert(closed, id)
end
for _, id in ipairs(a) do close(id) end
for _, id in ipairs(b) do close(id) end
return {closed, refresh, more}
`

// purge: ARGV cutoff (µs: close_time below it goes), batch. Deletes up to
// batch closed sessions. Returns {ids, their token hashes, more}.
const luaPurge = `
local batch = num(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', base .. 'closed', '-inf', '(' .. ARGV[1], 'LIMIT', 0, batch)
local out, toks = {}, {}
for _, id in ipairs(ids) do
  local s = base .. 's:' .. id
  local cur = redis.call('HGETALL', s)
  if #cur == 0 then
    ghost(id)
  else
    local f = hmap(cur)
    if f.a ~= '1' then
      unindex(id, str(f.k), str(f.u))
      redis.call('DEL', s, base .. 'c:' .. id)
      table.insert(out, id)
      table.insert(toks, str(f.t))
    else
      redis.call('ZREM', base .. 'closed', id)
    end
  end
end
local more = 0
if #ids == batch then more = 1 end
return {out, toks, more}
`

// stats: ARGV groups of 7: id, service, requests, reads, writes, errors,
// last used (µs or ""). Deltas of sessions that do not exist are dropped.
const luaStats = `
for i = 1, #ARGV, 7 do
  local id = ARGV[i]
  local at = redis.call('PEXPIRETIME', base .. 's:' .. id)
  if at ~= -2 then
    local c = base .. 'c:' .. id
    local p = ARGV[i+1] .. '\0'
    redis.call('HINCRBY', c, p .. 'q', ARGV[i+2])
    redis.call('HINCRBY', c, p .. 'R', ARGV[i+3])
    redis.call('HINCRBY', c, p .. 'w', ARGV[i+4])
    redis.call('HINCRBY', c, p .. 'e', ARGV[i+5])
    local l = ARGV[i+6]
    if l ~= '' then
      local cur = redis.call('HGET', c, p .. 'l')
      if (not cur) or cur == '' or num(cur) < num(l) then redis.call('HSET', c, p .. 'l', l) end
    end
    if at > 0 then redis.call('PEXPIREAT', c, at) end
  end
end
return 0
`

// stray: ARGV user, group (hex), now (ms), expiry (ms). Records that the
// group holds a session of the user (run on the user's home group).
const luaStray = `
local x = base .. 'x:' .. ARGV[1]
redis.call('ZADD', x, ARGV[3], ARGV[2])
redis.call('SADD', base .. 'xs', ARGV[1])
for _, k in ipairs({x, base .. 'xs'}) do
  if redis.call('PEXPIRETIME', k) < num(ARGV[4]) then redis.call('PEXPIREAT', k, ARGV[4]) end
end
return 0
`

// unstray: ARGV user, group (hex), the score read. Forgets the group
// unless a session was placed there since.
const luaUnstray = `
local x = base .. 'x:' .. ARGV[1]
if num(redis.call('ZSCORE', x, ARGV[2]) or 'nan') == num(ARGV[3]) then redis.call('ZREM', x, ARGV[2]) end
if redis.call('EXISTS', x) == 0 then redis.call('SREM', base .. 'xs', ARGV[1]) end
return 0
`

// token pointers, KEYS[1] the pointer: value "<id> <ms written>".
// claimToken: ARGV value, expiry (ms), the value to replace ("" for
// none). 1 if written.
const luaClaimToken = `
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
`

// dropToken: ARGV id. Deletes the pointer if it names the session.
const luaDropToken = `
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('DEL', KEYS[1]) return 1 end
return 0
`

// createKey: KEYS[1] the keys' base; ARGV id, created (µs or ""), name,
// secret, score (created in µs, the zero time included).
const luaCreateKey = `
local k = KEYS[1] .. 'key:' .. ARGV[1]
if redis.call('EXISTS', k) == 1 then return 0 end
redis.call('HSET', k, 'n', ARGV[3], 's', ARGV[4], 'c', ARGV[2])
redis.call('ZADD', KEYS[1] .. 'keys', ARGV[5], ARGV[1])
return 1
`

// deleteKey: KEYS[1] the keys' base; ARGV id.
const luaDeleteKey = `
redis.call('ZREM', KEYS[1] .. 'keys', ARGV[1])
return redis.call('DEL', KEYS[1] .. 'key:' .. ARGV[1])
`

type scripts struct {
	create, alive, update, delete, touch, closeExpired, purge, stats, stray, unstray *goredis.Script
	claimToken, dropToken, createKey, deleteKey                                      *goredis.Script
	publish                                                                          *goredis.Script
}

func group(src string) *goredis.Script { return goredis.NewScript(luaCommon + src) }

// CreateScript is the source of the script Create runs (KEYS: the
// session's group base; ARGV as Create passes them), for baselines that
// must run exactly the engine's commands (cmd/sessiond-load).
const CreateScript = luaCommon + luaCreate

var lua = scripts{
	create: group(luaCreate), alive: group(luaAlive), update: group(luaUpdate), delete: group(luaDelete), touch: group(luaTouch),
	closeExpired: group(luaCloseExpired), purge: group(luaPurge), stats: group(luaStats),
	stray: group(luaStray), unstray: group(luaUnstray),
	claimToken: goredis.NewScript(luaClaimToken), dropToken: goredis.NewScript(luaDropToken),
	createKey: goredis.NewScript(luaCreateKey), deleteKey: goredis.NewScript(luaDeleteKey),
	publish: goredis.NewScript(luaPublish),
}

// evalMany runs one script per call in a pipeline (EVALSHA), and again,
// with the script's text, the calls whose server did not know it (a new
// or restarted master). It returns the commands, in order.
type call struct {
	script *goredis.Script
	keys   []string
	args   []any
}

func (s *Store) evalMany(ctx context.Context, calls []call) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, len(calls))
	pipe := s.rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !noScriptOnly(cmds) {
		return cmds, err
	}
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds, nil
	}
	pipe = s.rdb.Pipeline()
	for _, i := range again {
		c := calls[i]
		cmds[i] = c.script.Eval(ctx, pipe, c.keys, c.args...)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

// noScriptOnly reports whether every failed command failed with NOSCRIPT
// (or not at all).
func noScriptOnly(cmds []*goredis.Cmd) bool {
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			return false
		}
	}
	return true
}

// eval runs one script (EVALSHA, then EVAL if the server lacks it).
func (s *Store) eval(ctx context.Context, sc *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	return sc.Run(ctx, s.rdb, keys, args...)
}
