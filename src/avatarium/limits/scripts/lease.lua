-- Concurrency slots as leases that expire: a crashed worker's slots free themselves.
-- KEYS[1] lease set; ARGV[1] limit; ARGV[2] lease id; ARGV[3] ttl (ms)
-- Returns 1 when the lease was granted, 0 when all slots are taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
