--[[
  Put a SKU back to remaining = initial, sold = 0.

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)

  Returns 1 if done, -1 for an unknown SKU.
]]
local initial = redis.call('HGET', KEYS[1], 'initial')
if initial == false then
  return -1
end
redis.call('HSET', KEYS[1], 'remaining', initial, 'sold', 0)
return 1
