--[[
  Sell ARGV[1] units of one SKU if that many remain: check and decrement in one atomic step.

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)
  ARGV[1]  quantity, a positive integer

  Returns {code, remaining}:
     1  sold; remaining is the count after this sale
     0  refused, not enough stock; remaining is the current count
    -1  unknown SKU
]]
local remaining = tonumber(redis.call('HGET', KEYS[1], 'remaining'))
if remaining == nil then
  return {-1, 0}
end
local quantity = tonumber(ARGV[1])
if remaining < quantity then
  return {0, remaining}
end
redis.call('HINCRBY', KEYS[1], 'sold', quantity)
return {1, redis.call('HINCRBY', KEYS[1], 'remaining', -quantity)}
