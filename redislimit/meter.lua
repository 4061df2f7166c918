-- floodgate: one decision for one key of a meter policy (gcra, token_bucket), all of its limits,
-- atomically. It mirrors algorithm.Policy.Decide and Policy.Lease (Go) exactly. The state is
-- the local one without its header: per limit the theoretical arrival time TAT i64 in
-- microseconds (algorithm/SPEC.md, redislimit/FORMAT.md). Every number stays below 2^52, so Lua's
-- doubles compute what Go's integers do.
--
-- KEYS[1]  the key's state
-- ARGV[1]  cost (integer >= 1)
-- ARGV[2]  now in ms, or "" for Redis TIME (microseconds then)
-- ARGV[3]  deadline in ms of Redis time, or "": past it the script changes nothing, answers {-1}
-- ARGV[4]  number of limits, then per limit: emission interval T (µs), burst b, window_ms
-- Returns {allowed, limit, window_ms, remaining, retry_after_ms, reset_after_ms, 0, 0,
--          decider (0-based, -1), reason, reset, now_ms}
--
-- Lease mode (hybrid backend): after the limits, 'lease', release, release_at_ms, used, denied,
-- want, used_at_ms. Units are charged when reserved, so used and denied change nothing; the
-- unused part of the reservation comes back, at most what would not have refilled since
-- release_at_ms. Returns {granted, now_ms, limit, window_ms, remaining, reset_after_ms,
-- retry_after_ms, 0}.

-- Written for Redis's CPU: no closure, one table, numbers read by arithmetic on ARGV's strings.
-- Every number stays below 2^52, where math.floor(a / b) of integers is exact (the quotient's
-- rounding error is under half of 1/b).
local now
if ARGV[2] ~= '' then
  now = ARGV[2] * 1000
else
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
local now_ms = math.floor(now / 1000)
if ARGV[3] ~= '' and now_ms > ARGV[3] + 0 then return {-1} end

local n = ARGV[4] + 0
local reset = 0
local s = redis.call('GET', KEYS[1])
if s and #s ~= 8 * n then s, reset = nil, 1 end
-- tat[i]: max(TAT, now); a TAT two refill times ahead (a clock stepped back that far, or
-- garbage) starts that limit afresh.
local tat = {}
for i = 1, n do
  local t = 0
  if s then
    t = struct.unpack('<i8', s, 8 * i - 7)
    if t - now > 2 * ARGV[2 + 3 * i] * ARGV[3 + 3 * i] then t, reset = 0, 1 end
  end
  if t < now then t = now end
  tat[i] = t
end

local lo = 4 + 3 * n
if ARGV[lo + 1] == 'lease' then
  local release, release_at, used, want = ARGV[lo + 2] + 0, ARGV[lo + 3] + 0, ARGV[lo + 4] + 0, ARGV[lo + 6] + 0
  local freed = math.max(release - used, 0)
  local room, retry = want, 0
  for i = 1, n do
    local T, B = ARGV[2 + 3 * i] + 0, ARGV[3 + 3 * i] + 0
    if release > 0 then
      local reserved = math.min(release, B) * T
      tat[i] = math.max(tat[i] - math.min(math.min(freed, B) * T, math.max(reserved - (now - release_at * 1000), 0)), now)
    end
    local avail = math.floor(math.max(B * T - (tat[i] - now), 0) / T)
    if avail < room then room = avail end
    if avail < 1 then retry = math.max(retry, math.floor((tat[i] - now + T - B * T + 999) / 1000)) end
  end
  local grant = math.max(math.min(want, math.max(room, freed)), 0)
  local limit, window, remaining, reset_after, v, ahead = 0, 0, 0, 0, '', 1
  for i = 1, n do
    local T, B = ARGV[2 + 3 * i] + 0, ARGV[3 + 3 * i] + 0
    local t = tat[i] + grant * T
    v = v .. struct.pack('<i8', t)
    if t - now > ahead then ahead = t - now end
    local left = math.floor(math.max(B * T - (t - now), 0) / T)
    if i == 1 or left < remaining then
      limit, window, remaining, reset_after = B, ARGV[4 + 3 * i] + 0, left, math.floor((t - now + 999) / 1000)
    end
  end
  if release > 0 or grant > 0 then redis.call('SET', KEYS[1], v, 'PX', math.floor((ahead + 999) / 1000)) end
  return {grant, now_ms, limit, window, remaining, reset_after, retry, 0}
end

-- Reasons: 0 allowed, 1 quota exhausted, 2 cost exceeds quota.
local cost = ARGV[1] + 0
if cost < 1 then cost = 1 end
local allowed, decider, reason, retry = 1, -1, 0, 0
for i = 1, n do
  local T, B = ARGV[2 + 3 * i] + 0, ARGV[3 + 3 * i] + 0
  if cost > B then
    if reason ~= 2 then decider, reason, retry = i - 1, 2, 0 end
    allowed = 0
  else
    local over = tat[i] + cost * T - now - B * T
    if over > 0 then
      local ms = math.floor((over + 999) / 1000)
      if reason ~= 2 and (allowed == 1 or ms > retry) then decider, reason, retry = i - 1, 1, ms end
      allowed = 0
    end
  end
end
-- Apply (when admitted) and report the tightest limit: the one with the fewest whole tokens left.
local limit, window, remaining, reset_after, v, ahead = 0, 0, 0, 0, '', 1
for i = 1, n do
  local T, B = ARGV[2 + 3 * i] + 0, ARGV[3 + 3 * i] + 0
  local t = tat[i]
  if allowed == 1 then
    t = t + cost * T
    v = v .. struct.pack('<i8', t)
    if t - now > ahead then ahead = t - now end
  end
  local left = math.floor(math.max(B * T - (t - now), 0) / T)
  if i == 1 or left < remaining then
    limit, window, remaining, reset_after = B, ARGV[4 + 3 * i] + 0, left, math.floor((t - now + 999) / 1000)
  end
end
if allowed == 1 then redis.call('SET', KEYS[1], v, 'PX', math.floor((ahead + 999) / 1000)) end
return {allowed, limit, window, remaining, retry, reset_after, 0, 0, decider, reason, reset, now_ms}
