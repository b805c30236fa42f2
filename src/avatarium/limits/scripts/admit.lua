-- One round trip per admitted request: take a concurrency lease, then count the request
-- in the sliding window; if the window is full, give the lease back.
-- KEYS[1] lease set; KEYS[2] window
-- ARGV[1] concurrency limit; ARGV[2] lease id; ARGV[3] lease ttl (ms)
-- ARGV[4] window (s); ARGV[5] requests limit
-- Returns {status, count, reset ms, now ms}: status 1 admitted, 0 no free slot, 2 window full
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {0, 0, 0, now}
end
local window = tonumber(ARGV[4]) * 1000
local limit = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[2])
local status = 2
if count < limit then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  count = count + 1
  status = 1
end
redis.call('PEXPIRE', KEYS[2], window)
local reset = now + window
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window
end
return {status, count, reset, now}
