--[[
  Add ARGV[1] units to a SKU's remaining and initial counts, unless initial would pass ARGV[2].

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)
  ARGV[1]  quantity, a positive integer
  ARGV[2]  the stock limit (MAX_STOCK): the largest initial count any lane may hold

  Returns {code, remaining, sold, initial}: code 1 done, -1 unknown SKU, -2 refused (the limit;
  the counts are as they stand, unchanged).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0, 0, 0}
end
local quantity = tonumber(ARGV[1])
local current = redis.call('HMGET', KEYS[1], 'remaining', 'sold', 'initial')
if tonumber(current[3]) + quantity > tonumber(ARGV[2]) then
  return {-2, tonumber(current[1]), tonumber(current[2]), tonumber(current[3])}
end
local initial = redis.call('HINCRBY', KEYS[1], 'initial', quantity)
local remaining = redis.call('HINCRBY', KEYS[1], 'remaining', quantity)
return {1, remaining, tonumber(redis.call('HGET', KEYS[1], 'sold')), initial}
