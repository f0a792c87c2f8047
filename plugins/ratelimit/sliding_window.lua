-- Sliding-window counter, decided atomically inside Redis (see window.py for the rule).
-- KEYS[1] current window counter, KEYS[2] previous window counter
-- ARGV[1] limit, ARGV[2] weight of the previous window, ARGV[3] expiry of the counter in ms
local limit = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local curr = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * weight + curr + 1 <= limit then
  curr = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, prev, curr}
end
return {0, prev, curr}
