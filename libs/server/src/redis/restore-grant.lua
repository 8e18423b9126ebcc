-- Writes a grant's rebuilt verifier state (ADR 0017), shared by the verifier's store and the
-- registry so both write the one layout of store-keys. It writes only where the grant's marker
-- (the `state` field of its `counters` hash) is absent, and the marker last, in one atomic step:
-- a decision never sees half a state. Counters never go down (the larger of what is there and
-- the snapshot). Every key is under the grant's hash tag (Redis Cluster).
--
-- KEYS: 1 counters, 2 rate, then one key per proof, then one key per revocation.
-- ARGV: 1 state TTL ms, 2 uses, 3 spent, 4 rate floor ('' = none), 5 marker value, 6 number of
--       rate entries, then (score, member) per entry, then the number of proofs, then each proof's
--       TTL ms, then (TTL ms, message) per revocation. Built by restoreGrantCommand (scripts.ts).
-- Answers 1 when it wrote, 0 when the state was there.
if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end
local ttl = ARGV[1]
local c = redis.call('HMGET', KEYS[1], 'uses', 'spent', 'rate_keep', 'rate_floor')
if tonumber(c[1] or '0') < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'uses', ARGV[2]) end
if tonumber(c[2] or '0') < tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], 'spent', ARGV[3]) end
if ARGV[4] ~= '' and ((not c[4]) or tonumber(c[4]) < tonumber(ARGV[4])) then redis.call('HSET', KEYS[1], 'rate_floor', ARGV[4]) end
local n = tonumber(ARGV[6])
local a = 7
for i = 1, n do
  redis.call('ZADD', KEYS[2], ARGV[a], ARGV[a + 1])
  a = a + 2
end
if n > 0 then
  local size = redis.call('ZCARD', KEYS[2])
  if tonumber(c[3] or '0') < size then redis.call('HSET', KEYS[1], 'rate_keep', tostring(size)) end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
local proofs = tonumber(ARGV[a])
a = a + 1
for i = 1, proofs do
  redis.call('SET', KEYS[2 + i], '1', 'PX', ARGV[a])
  a = a + 1
end
for k = 3 + proofs, #KEYS do
  redis.call('SET', KEYS[k], ARGV[a + 1], 'PX', ARGV[a])
  a = a + 2
end
redis.call('HSET', KEYS[1], 'state', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
