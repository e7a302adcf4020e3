--[[
  Add ARGV[1] units to a SKU's remaining and initial counts.

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)
  ARGV[1]  quantity, a positive integer

  Returns {code, remaining, sold, initial}: code 1 done, -1 unknown SKU.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0, 0, 0}
end
local quantity = tonumber(ARGV[1])
local initial = redis.call('HINCRBY', KEYS[1], 'initial', quantity)
local remaining = redis.call('HINCRBY', KEYS[1], 'remaining', quantity)
return {1, remaining, tonumber(redis.call('HGET', KEYS[1], 'sold')), initial}
