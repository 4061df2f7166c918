-- floodgate: one call for one key of a meter policy (gcra, token_bucket), all of its limits,
-- atomically. It mirrors algorithm.Policy (Go) exactly. The state is the local one without its
-- header: per limit the theoretical arrival time TAT i64 in microseconds, then, for a policy with
-- a block, the block's end i64 in ms (algorithm/SPEC.md, redislimit/FORMAT.md). Every number
-- stays below 2^52, so Lua's doubles compute what Go's integers do.
--
-- KEYS[1]  the key's state
-- ARGV[1]  cost (integer >= 1)
-- ARGV[2]  now in ms, or "" for Redis TIME (microseconds then)
-- ARGV[3]  deadline in ms of Redis time, or "": past it the script changes nothing, answers {-1}
-- ARGV[4]  block in ms (0: none)
-- ARGV[5]  number of limits, then per limit: emission interval T (µs), burst b, window_ms
-- then the mode: nothing for a decision (Policy.Decide), or 'check', 'block', 'record',
-- 'reset', or 'refund' and at_ms (Policy.Check, Block, Record, Reset, Refund; see decide.lua).
-- Returns {allowed, limit, window_ms, remaining, retry_after_ms, reset_after_ms, 0, 0,
--          decider (0-based, -1), reason, reset, now_ms}
--
-- Lease mode (hybrid backend): 'lease', release, release_at_ms, used, denied, want, used_at_ms,
-- rejected. Units are charged when reserved, so used and denied change nothing; the unused part
-- of the reservation comes back, at most what would not have refilled since release_at_ms.
-- Returns {granted, now_ms, limit, window_ms, remaining, reset_after_ms, retry_after_ms, 0}.

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

local block, n = ARGV[4] + 0, ARGV[5] + 0
local lo = 5 + 3 * n
local mode = ARGV[lo + 1] -- nil: a decision
local blk = '' -- the state's tail: the block's end
local reset, block_end = 0, 0
local s = false -- a reset reads nothing: it writes a fresh state
if mode ~= 'reset' then s = redis.call('GET', KEYS[1]) end
if block > 0 then
  if s and #s == 8 * n + 8 then block_end = struct.unpack('<i8', s, 8 * n + 1) end
  blk = struct.pack('<i8', block_end)
end
if s and #s ~= 8 * n + #blk then s, reset = false, 1 end
-- tat[i]: max(TAT, now); a TAT two refill times ahead (a clock stepped back that far, or
-- garbage) starts that limit afresh.
local tat = {}
for i = 1, n do
  local t = 0
  if s then
    t = struct.unpack('<i8', s, 8 * i - 7)
    if t - now > 2 * ARGV[3 + 3 * i] * ARGV[4 + 3 * i] then t, reset = 0, 1 end
  end
  if t < now then t = now end
  tat[i] = t
end
-- rest: what is left of the key's block (ms); an end more than two blocks ahead is not trusted.
local rest = block_end - now_ms
if block == 0 or rest <= 0 or rest > 2 * block then rest = 0 end

if mode == 'lease' then
  local release, release_at, used, want = ARGV[lo + 2] + 0, ARGV[lo + 3] + 0, ARGV[lo + 4] + 0, ARGV[lo + 6] + 0
  local freed = math.max(release - used, 0)
  local room, retry = want, 0
  for i = 1, n do
    local T, B = ARGV[3 + 3 * i] + 0, ARGV[4 + 3 * i] + 0
    if release > 0 then
      local reserved = math.min(release, B) * T
      tat[i] = math.max(tat[i] - math.min(math.min(freed, B) * T, math.max(reserved - (now - release_at * 1000), 0)), now)
    end
    local avail = math.floor(math.max(B * T - (tat[i] - now), 0) / T)
    if avail < room then room = avail end
    if avail < 1 then retry = math.max(retry, math.floor((tat[i] - now + T - B * T + 999) / 1000)) end
  end
  local grant = math.max(math.min(want, math.max(room, freed)), 0)
  -- A lease reporting rejections starts the block; a blocked key is granted nothing.
  local started = block > 0 and ARGV[lo + 8] + 0 > 0 and rest == 0
  if started then block_end, rest, blk = now_ms + block, block, struct.pack('<i8', now_ms + block) end
  if rest > 0 then grant, retry = 0, math.max(retry, rest) end
  local limit, window, remaining, reset_after, v, ahead = 0, 0, 0, 0, '', 1
  for i = 1, n do
    local T, B = ARGV[3 + 3 * i] + 0, ARGV[4 + 3 * i] + 0
    local t = math.min(tat[i] + grant * T, now + 2 * B * T) -- as a record, never beyond trust
    v = v .. struct.pack('<i8', t)
    if t - now > ahead then ahead = t - now end
    local left = math.floor(math.max(B * T - (t - now), 0) / T)
    if i == 1 or left < remaining then
      limit, window, remaining, reset_after = B, ARGV[5 + 3 * i] + 0, left, math.floor((t - now + 999) / 1000)
    end
  end
  if rest > 0 then remaining, reset_after = 0, math.max(reset_after, rest) end
  if release > 0 or grant > 0 or started then
    redis.call('SET', KEYS[1], v .. blk, 'PX', math.max(math.floor((ahead + 999) / 1000), rest))
  end
  return {grant, now_ms, limit, window, remaining, reset_after, retry, 0}
end

local cost = ARGV[1] + 0
if cost < 1 then cost = 1 end
local v -- the state to write, without its tail; nil: nothing to write
if mode == 'refund' and s then
  -- Every limit's TAT moves back by cost × T, never below now (from the TATs as stored).
  local changed = false
  v = ''
  for i = 1, n do
    local T, B = ARGV[3 + 3 * i] + 0, ARGV[4 + 3 * i] + 0
    local t = struct.unpack('<i8', s, 8 * i - 7)
    if t > now then t, changed = math.max(t - cost * T, now), true end
    v = v .. struct.pack('<i8', t)
    if t - now > 2 * T * B then t = now end
    if t < now then t = now end
    tat[i] = t
  end
  if not changed then v = nil end
elseif mode == 'reset' then
  v = string.rep('\0', 8 * n)
end

-- Reasons: 0 allowed, 1 quota exhausted, 2 cost exceeds quota, 5 blocked.
local allowed, decider, reason, retry = 1, -1, 0, 0
for i = 1, n do
  local T, B = ARGV[3 + 3 * i] + 0, ARGV[4 + 3 * i] + 0
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
if rest > 0 then allowed, decider, reason, retry = 0, -1, 5, 0 end

-- Apply a decision or a record, and report the tightest limit: the one with the fewest whole
-- tokens left; then the block.
local record = mode == 'record'
local apply = record or (allowed == 1 and not mode)
if apply then v = '' end
if record then retry = 0 end
local limit, window, remaining, reset_after, ahead = 0, 0, 0, 0, 1
for i = 1, n do
  local T, B = ARGV[3 + 3 * i] + 0, ARGV[4 + 3 * i] + 0
  local t = tat[i]
  if apply then
    if record then
      -- Counted whatever the quota, but never beyond now + 2 × b × T: the state stays trusted.
      -- The answer tells how long until one more unit fits.
      t = math.min(t + cost * T, now + 2 * B * T)
      local over = t + T - now - B * T
      if over > 0 then retry = math.max(retry, math.floor((over + 999) / 1000)) end
    else
      t = t + cost * T
    end
    v = v .. struct.pack('<i8', t)
  end
  if t - now > ahead then ahead = t - now end
  local left = math.floor(math.max(B * T - (t - now), 0) / T)
  if i == 1 or left < remaining then
    limit, window, remaining, reset_after = B, ARGV[5 + 3 * i] + 0, left, math.floor((t - now + 999) / 1000)
  end
end
-- A rejection for lack of room starts the block (a decision, a block, a record).
if block > 0 and reason == 1 and (not mode or mode == 'block' or record) then
  block_end, rest, blk = now_ms + block, block, struct.pack('<i8', now_ms + block)
  if not v then -- only the block changes: the TATs as stored
    if s then v = string.sub(s, 1, 8 * n) else v = string.rep('\0', 8 * n) end
  end
end
if rest > 0 then
  remaining, reset_after, retry = 0, math.max(reset_after, rest), math.max(retry, rest)
end
if v then redis.call('SET', KEYS[1], v .. blk, 'PX', math.max(math.floor((ahead + 999) / 1000), rest)) end
return {allowed, limit, window, remaining, retry, reset_after, 0, 0, decider, reason, reset, now_ms}
