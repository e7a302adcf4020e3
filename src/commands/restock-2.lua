--[[
  Add ARGV[1] units to a SKU's remaining and initial counts, unless initial would pass ARGV[2] —
  once per restock idempotency key: the key is recorded in the same step, so a retry of a restock
  whose answer was lost finds it made and adds nothing.

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)
  KEYS[2]  the record of this restock's idempotency key, or any unused key name when it has none
  ARGV[1]  quantity, a positive integer
  ARGV[2]  the stock limit (MAX_STOCK): the largest initial count any lane may hold
  ARGV[3]  "1" if the restock carries an idempotency key, else "0"
  ARGV[4]  how long to remember the key, in seconds

  Returns {code, remaining, sold, initial}: code 1 done, 2 already done under this key (the counts
  as they stand), -1 unknown SKU, -2 refused (the limit; the counts as they stand, unchanged).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0, 0, 0}
end
local quantity = tonumber(ARGV[1])
local current = redis.call('HMGET', KEYS[1], 'remaining', 'sold', 'initial')
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {2, tonumber(current[1]), tonumber(current[2]), tonumber(current[3])}
end
if tonumber(current[3]) + quantity > tonumber(ARGV[2]) then
  return {-2, tonumber(current[1]), tonumber(current[2]), tonumber(current[3])}
end
local initial = redis.call('HINCRBY', KEYS[1], 'initial', quantity)
local remaining = redis.call('HINCRBY', KEYS[1], 'remaining', quantity)
if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], quantity, 'EX', tonumber(ARGV[4]))
end
return {1, remaining, tonumber(redis.call('HGET', KEYS[1], 'sold')), initial}
