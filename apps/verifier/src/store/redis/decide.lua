-- The whole decision (docs/adr/0011), one script, one round trip. Every key is under the grant's hash tag.
-- Keys and arguments are built by RedisDecisions (decisions.ts).
--
-- KEYS: 1 proof, 2 counters, 3 rate, 4 events, then the revocation keys (in checking order), then,
--       with a step-up only, stepup-for:<fingerprint> and stepup:<newId>.
-- ARGV: 1 proof TTL ms, 2 state TTL ms, 3 event id, 4 event body,
--       5 precheck code ('' = none), 6 max uses ('' = none),
--       7 rate limit ('' = none), 8 window start (now - window: the window is after it), 9 window ms, 10 now ms, 11 rate member,
--       12 amount in thousandths ('' = no money), 13 total max ('' = none),
--       14 the deadline: the latest instant on this Redis's own clock (TIME, epoch ms) at which the
--          decision may still be taken,
--       with a step-up only: 15 step-up key prefix, 16 new step-up id, 17 step-up request JSON, 18 step-up TTL ms,
--       19 a new step-up's expiry (epoch ms).
--
-- Deadline (issue 19, "Redis frozen"): a verifier whose call to this script has not been answered
-- within its timeout has already told the service provider "deny" (503). The script may still be
-- waiting in a frozen or overloaded Redis's socket and run later; past its deadline it returns
-- {'late'} and touches nothing (no proof spent, no counter charged, no event queued): a decision
-- that missed its deadline never takes effect. The verifier sends the deadline on Redis's clock
-- (its own clock, plus the offset it measured with TIME, plus less than its timeout), so the
-- two machines' clocks need not agree. Every answer, `late` included, ends with the TIME the
-- script read (epoch ms), which the verifier removes before reading the rest.
--
-- Nothing is sent that the decision does not use: a request without a step-up carries neither its
-- keys nor its arguments, and a revocation's kind is read from its key
-- (`<prefix>{g:<grant>}:revoked:<kind>:<value>`: the first `}` closes the hash tag) only when it
-- is revoked. Each argument is a string Redis copies into Lua, and each `redis.call` costs about a
-- microsecond beyond its command: the revocation keys are tested with one EXISTS, and one by one
-- only when one of them exists.
--
-- Rate (ADR 0011 "Rate"): the grant's one log serves tokens with different windows and limits, so a
-- decision never trims it by its own window (that shortened a longer window's count, issue 16
-- finding 7). It counts over its own window (the `limit`-th newest entry, then ZCOUNT) and keeps
-- the newest `rate_keep` entries, the largest limit any decision on the grant asked for (counters
-- hash, only ever raised); `rate_floor` is the newest instant ever trimmed, and a window reaching
-- back past it cannot be counted, so it is refused until the trimmed entries leave that window.
--
-- The event of an `approval_required` decision carries the step-up's id and expiry (fields
-- `step_up`, `step_up_expires_at`), and that of an allow the step-up it consumed (`step_up`): the
-- event body is written before the script decides, so only the script can name them. The stream
-- fields `emit` writes are QUEUED_EVENT_FIELDS of @writ/contracts, which the registry reads.
--
-- Numbers are never formatted by Lua (tostring(1e15) is "1e+15"): every number sent to Redis comes
-- from ARGV as the caller's decimal string, money is added with HINCRBY, and the values compared
-- stay below 2^53, where Lua's doubles are exact.
local function emit(label, stepUp, expires)
  local entry = {'XADD', KEYS[4], '*', 'id', ARGV[3], 'body', ARGV[4], 'outcome', label}
  if stepUp then
    table.insert(entry, 'step_up')
    table.insert(entry, stepUp)
  end
  if expires then
    table.insert(entry, 'step_up_expires_at')
    table.insert(entry, expires)
  end
  redis.call(unpack(entry))
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if nowMs > tonumber(ARGV[14]) then
  return {'late', nowMs}
end
local function decide()
if redis.call('HEXISTS', KEYS[2], 'state') == 0 then
  return {'no_state'}
end
local stepUp = #ARGV >= 15
local lastRevocation = #KEYS
if stepUp then lastRevocation = #KEYS - 2 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  emit('replayed')
  return {'replayed'}
end
if lastRevocation >= 5 and redis.call('EXISTS', unpack(KEYS, 5, lastRevocation)) > 0 then
  for i = 5, lastRevocation do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      emit('revoked:' .. string.match(KEYS[i], '}:revoked:(%a+):'))
      return {'revoked', i - 4}
    end
  end
end
if ARGV[5] ~= '' then
  emit(ARGV[5])
  return {'precheck'}
end
local counters = redis.call('HMGET', KEYS[2], 'uses', 'spent', 'rate_keep', 'rate_floor')
local uses = tonumber(counters[1] or '0')
if ARGV[6] ~= '' and uses >= tonumber(ARGV[6]) then
  emit('max_uses')
  return {'max_uses', uses}
end
local rateCount = 0
local keep = tonumber(counters[3] or '0')
local floor = counters[4]
if ARGV[7] ~= '' then
  local limit = tonumber(ARGV[7])
  if limit > keep then
    redis.call('HSET', KEYS[2], 'rate_keep', ARGV[7])
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    keep = limit
  end
  if limit == 0 then
    emit('rate_limited')
    return {'rate_limited', ARGV[9]}
  end
  local nth = redis.call('ZREVRANGE', KEYS[3], limit - 1, limit - 1, 'WITHSCORES')
  if nth[2] and tonumber(nth[2]) > tonumber(ARGV[8]) then
    emit('rate_limited')
    return {'rate_limited', tonumber(nth[2]) + tonumber(ARGV[9]) - tonumber(ARGV[10])}
  end
  if floor and tonumber(floor) > tonumber(ARGV[8]) then
    emit('rate_limited')
    return {'rate_limited', tonumber(floor) + tonumber(ARGV[9]) - tonumber(ARGV[10])}
  end
  rateCount = redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[8], '+inf') + 1
end
local spent = counters[2] or '0'
if ARGV[12] ~= '' and ARGV[13] ~= '' and tonumber(spent) + tonumber(ARGV[12]) > tonumber(ARGV[13]) then
  emit('budget_exceeded')
  return {'budget_exceeded', spent}
end
local consumed = ''
if stepUp then
  local stepUpFor, newStepUp = KEYS[#KEYS - 1], KEYS[#KEYS]
  local id = redis.call('GET', stepUpFor)
  local status = false
  if id then status = redis.call('HGET', ARGV[15] .. id, 'status') end
  if status == 'approved' then
    redis.call('HSET', ARGV[15] .. id, 'status', 'used')
    redis.call('DEL', stepUpFor)
    consumed = id
  elseif status == 'pending' then
    emit('approval_required', id, redis.call('HGET', ARGV[15] .. id, 'expires'))
    return {'approval_required', id}
  else
    redis.call('DEL', newStepUp)
    redis.call('HSET', newStepUp, 'status', 'pending', 'request', ARGV[17], 'expires', ARGV[19])
    redis.call('PEXPIRE', newStepUp, ARGV[18])
    redis.call('SET', stepUpFor, ARGV[16], 'PX', ARGV[18])
    emit('approval_required', ARGV[16], ARGV[19])
    return {'approval_required', ARGV[16]}
  end
end
local newUses = redis.call('HINCRBY', KEYS[2], 'uses', 1)
if ARGV[12] ~= '' then spent = redis.call('HINCRBY', KEYS[2], 'spent', ARGV[12]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[11])
  local excess = redis.call('ZCARD', KEYS[3]) - keep
  if excess > 0 then
    local cut = redis.call('ZRANGE', KEYS[3], excess - 1, excess - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
    if not floor or tonumber(cut[2]) > tonumber(floor) then redis.call('HSET', KEYS[2], 'rate_floor', cut[2]) end
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
if consumed ~= '' then emit('allow', consumed) else emit('allow') end
return {'allow', newUses, spent, rateCount, consumed}
end
-- Every answer ends with Redis's clock (epoch ms): the verifier tightens its estimate of the
-- offset between the clocks with it, at no extra round trip.
local reply = decide()
table.insert(reply, nowMs)
return reply
