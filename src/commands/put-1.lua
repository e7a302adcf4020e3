--[[
  Create a SKU, or reset an existing one, to ARGV[1] remaining and nothing sold.

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)
  ARGV[1]  stock, a non-negative integer
  ARGV[2]  1 to leave an existing SKU untouched (seeding at start-up), 0 to reset it

  Returns 1 if the SKU was created, 0 if it existed.
]]
local existed = redis.call('EXISTS', KEYS[1])
if existed == 1 and ARGV[2] == '1' then
  return 0
end
redis.call('HSET', KEYS[1], 'remaining', ARGV[1], 'sold', 0, 'initial', ARGV[1])
return 1 - existed
