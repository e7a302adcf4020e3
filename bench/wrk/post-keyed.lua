-- wrk: every request a POST with a fresh Idempotency-Key, so each one is a new keyed buy (claim,
-- sale, answer recorded) and none is a replay. The first script argument makes the keys of one
-- run unique: wrk ... -s post-keyed.lua <url> -- <prefix>
local prefix = "k"
local counter = 0

function init(args)
  prefix = args[1] or prefix
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, { ["Idempotency-Key"] = prefix .. "-" .. counter })
end
