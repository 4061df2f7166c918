-- floodgate: one decision for one key of a meter policy (gcra, token_bucket), all of its limits,
-- atomically. It mirrors algorithm.Policy.Decide and Policy.Lease (Go) exactly, on the same
-- state: version u8, strategy u8, limit count u8, 0 u8, fingerprint u32, then per limit the
-- theoretical arrival time TAT i64 in microseconds (algorithm/SPEC.md). Every number stays below
-- 2^53, so Lua's doubles compute what Go's integers do.
--
-- KEYS[1]  the key's state
-- ARGV[1]  cost (integer >= 1)
-- ARGV[2]  now in ms, or "" for Redis TIME (microseconds then)
-- ARGV[3]  deadline in ms of Redis time, or "": past it the script changes nothing, answers {-1}
-- ARGV[4]  strategy   ARGV[5]  fingerprint   ARGV[6]  number of limits
-- then per limit: emission interval T (µs), burst b, window_ms (reported)
-- Returns {allowed, limit, window_ms, remaining, retry_after_ms, reset_after_ms, 0, 0,
--          decider (0-based, -1), reason, reset}
--
-- Lease mode (hybrid backend): after the limits, 'lease', release, release_at_ms, used, denied,
-- want, used_at_ms. Units are charged when reserved, so used and denied change nothing; the
-- unused part of the reservation comes back, at most what would not have refilled since
-- release_at_ms. Returns {granted, now_ms, limit, window_ms, remaining, reset_after_ms,
-- retry_after_ms, 0}.

local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2]) * 1000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local now_ms = math.floor(now / 1000)
if ARGV[3] ~= '' and now_ms > tonumber(ARGV[3]) then return {-1} end

local strategy, fingerprint, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

-- floor(a / b) for integers below 2^53, b > 0: the double quotient may round up to an integer.
local function fdiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then return q - 1 end
  if (q + 1) * b <= a then return q + 1 end
  return q
end

local T, B, W, tat = {}, {}, {}, {}
for i = 1, n do
  local o = 6 + (i - 1) * 3
  T[i], B[i], W[i] = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
end

local reset = 0
local s = redis.call('GET', KEYS[1])
local ok = s and #s == 8 + 8 * n
if ok then
  local ver, strat, count, _, fp = struct.unpack('<BBBBI4', s)
  ok = ver == 1 and strat == strategy and count == n and fp == fingerprint
  for i = 1, n do
    if not ok then break end
    tat[i] = struct.unpack('<i8', s, 9 + (i - 1) * 8)
    -- a TAT two refill times ahead: a clock stepped back that far, or garbage
    if tat[i] - now > 2 * B[i] * T[i] then ok = false end
  end
end
if not ok then
  if s then reset = 1 end
  for i = 1, n do tat[i] = 0 end
end

local function save()
  local parts, ahead = {struct.pack('<BBBBI4', 1, strategy, n, 0, fingerprint)}, 1
  for i = 1, n do
    parts[i + 1] = struct.pack('<i8', tat[i])
    if tat[i] - now > ahead then ahead = tat[i] - now end
  end
  redis.call('SET', KEYS[1], table.concat(parts), 'PX', math.floor((ahead + 999) / 1000))
end

-- report: the tightest limit, the one with the fewest whole tokens left
local function report()
  local limit, window, remaining, reset_after = 0, 0, 0, 0
  for i = 1, n do
    local ahead = math.max(tat[i], now) - now
    local left = fdiv(math.max(B[i] * T[i] - ahead, 0), T[i])
    if i == 1 or left < remaining then
      limit, window, remaining, reset_after = B[i], W[i], left, fdiv(ahead + 999, 1000)
    end
  end
  return limit, window, remaining, reset_after
end

local lo = 6 + 3 * n
if ARGV[lo + 1] == 'lease' then
  local release, release_at = tonumber(ARGV[lo + 2]), tonumber(ARGV[lo + 3])
  local used, want = tonumber(ARGV[lo + 4]), tonumber(ARGV[lo + 6])
  local freed = math.max(release - used, 0)
  local room, retry = want, 0
  for i = 1, n do
    if release > 0 then
      local reserved = math.min(release, B[i]) * T[i]
      tat[i] = tat[i] - math.min(math.min(freed, B[i]) * T[i], math.max(reserved - (now - release_at * 1000), 0))
    end
    local ahead = math.max(tat[i], now) - now
    local avail = fdiv(math.max(B[i] * T[i] - ahead, 0), T[i])
    if avail < room then room = avail end
    if avail < 1 then retry = math.max(retry, fdiv(ahead + T[i] - B[i] * T[i] + 999, 1000)) end
  end
  local grant = math.max(math.min(want, math.max(room, freed)), 0)
  if grant > 0 then
    for i = 1, n do tat[i] = math.max(tat[i], now) + grant * T[i] end
  end
  if release > 0 or grant > 0 then save() end
  local limit, window, remaining, reset_after = report()
  return {grant, now_ms, limit, window, remaining, reset_after, retry, 0}
end

-- Reasons: 0 allowed, 1 quota exhausted, 2 cost exceeds quota.
local cost = math.max(1, tonumber(ARGV[1]))
local allowed, decider, reason, retry = true, -1, 0, 0
for i = 1, n do
  if cost > B[i] then
    if reason ~= 2 then decider, reason, retry = i - 1, 2, 0 end
    allowed = false
  else
    local over = math.max(tat[i], now) + cost * T[i] - now - B[i] * T[i]
    if over > 0 then
      local ms = fdiv(over + 999, 1000)
      if reason ~= 2 and (allowed or ms > retry) then decider, reason, retry = i - 1, 1, ms end
      allowed = false
    end
  end
end
if allowed then
  for i = 1, n do tat[i] = math.max(tat[i], now) + cost * T[i] end
  save()
end
local limit, window, remaining, reset_after = report()
local a = 0
if allowed then a = 1 end
return {a, limit, window, remaining, retry, reset_after, 0, 0, decider, reason, reset}
