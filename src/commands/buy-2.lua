--[[
  Sell ARGV[1] units of one SKU if that many remain: check and decrement in one atomic step,
  and remember the buyer's idempotency key with the answer, so a retry — even one that reaches
  a new primary after a failover — gets the same answer and never buys twice.

  KEYS[1]  the SKU's hash (fields: remaining, sold, initial)
  KEYS[2]  the idempotency record for this buyer's key (string "quantity:remaining"), or any
           unused key name when the request has no idempotency key
  ARGV[1]  quantity, a positive integer
  ARGV[2]  "1" if the request carries an idempotency key, else "0"
  ARGV[3]  how long to remember the key, in seconds

  Returns {code, remaining}:
     1  sold; remaining is the count after this sale
     2  replay: this key already bought; remaining is what that sale left
     0  refused, not enough stock; remaining is the current count
    -1  unknown SKU
    -2  this key already bought a different quantity
]]
local quantity = tonumber(ARGV[1])
if ARGV[2] == '1' then
  local seen = redis.call('GET', KEYS[2])
  if seen then
    local sep = string.find(seen, ':', 1, true)
    if tonumber(string.sub(seen, 1, sep - 1)) ~= quantity then
      return {-2, 0}
    end
    return {2, tonumber(string.sub(seen, sep + 1))}
  end
end
local remaining = tonumber(redis.call('HGET', KEYS[1], 'remaining'))
if remaining == nil then
  return {-1, 0}
end
if remaining < quantity then
  return {0, remaining}
end
redis.call('HINCRBY', KEYS[1], 'sold', quantity)
remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -quantity)
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], quantity .. ':' .. remaining, 'EX', ARGV[3])
end
return {1, remaining}
