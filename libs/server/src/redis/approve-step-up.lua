-- Approves a step-up in the verifiers' store (ADR 0014): only a pending step-up becomes approved,
-- so one the verifier has meanwhile expired, used or already approved is never flipped.
-- Run by the registry (with its own Redis connection) and by the verifier store's admin side.
--
-- KEYS: 1 the step-up hash, `<prefix>{g:<grant>}:stepup:<id>` (store-keys of @writ/core).
-- Answers 1 when it approved, 0 otherwise.
if redis.call('HGET', KEYS[1], 'status') == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'approved')
  return 1
end
return 0
