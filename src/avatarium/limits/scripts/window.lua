-- Sliding-window log: admit one request if fewer than LIMIT were admitted in the last
-- WINDOW seconds, atomically. The clock is Redis's own, so every host agrees on it.
-- KEYS[1] window key; ARGV[1] window (s); ARGV[2] limit; ARGV[3] unique member
-- Returns {admitted (0/1), count in window after this call, reset time in ms}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1]) * 1000
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local reset = now + window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window
end
return {admitted, count, reset, now}
