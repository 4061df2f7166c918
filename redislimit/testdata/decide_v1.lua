-- floodgate: one rate-limit decision for one key, all of its limits, atomically.
-- It mirrors algorithm.Policy.Decide (Go) exactly and reads and writes the same state format
-- (algorithm/FORMAT.md), so a state can move between the plugin and Redis.
--
-- KEYS[1]  the key's state (all keys of one limiter key share a {hash tag}: Cluster-safe)
-- ARGV[1]  cost (integer >= 1)             ARGV[2]  random draw in [0, 1) (made by the caller)
-- ARGV[3]  now in ms, or "" for Redis TIME ARGV[4]  strategy: 1 absolute, 2 suppressed
-- ARGV[5]  fingerprint of the limits       ARGV[6]  number of limits
-- then per limit: quota, window_ms, group_ms, rate (per second), hard quota, buckets
-- Returns {allowed, limit, window_ms, remaining, retry_after_ms, reset_after_ms,
--          suppression_factor * 1e6, suppressed, decider (0-based, -1), reason, reset}
--
-- Lease mode (hybrid backend): after the limits, ARGV holds 'lease', release, release_at_ms,
-- used, denied, want, used_at_ms. No request is decided. The proxy gives back the release units
-- Redis reserved for it at release_at_ms (Redis time), records the units it admitted (used) at
-- used_at_ms (no earlier than the last of them; 0 for now) and those it denied at now, and is
-- reserved up to want units more, counted as accepted at now so that no other proxy can be
-- granted them. Returns {granted, now_ms, limit, window_ms, remaining,
-- reset_after_ms, retry_after_ms (when nothing could be granted), suppression_factor * 1e6}.

local REBASE_AFTER = 1073741824 -- 2^30 ms
local U32 = 4294967295

local cost = math.max(1, tonumber(ARGV[1]))
local draw = tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local strategy = tonumber(ARGV[4])
local fingerprint = tonumber(ARGV[5])
local nlimits = tonumber(ARGV[6])
local rec = 12
if strategy == 2 then rec = 16 end

local limits, size, longest = {}, 24, 0
for i = 1, nlimits do
  local o = 6 + (i - 1) * 6
  local l = {quota = tonumber(ARGV[o + 1]), window = tonumber(ARGV[o + 2]), group = tonumber(ARGV[o + 3]),
             rate = tonumber(ARGV[o + 4]), hard = tonumber(ARGV[o + 5]), buckets = tonumber(ARGV[o + 6]),
             offset = size}
  size = size + 16 + l.buckets * rec
  if l.window > longest then longest = l.window end
  limits[i] = l
end

local function clamp(v)
  if v < 0 then return 0 end
  if v > U32 then return U32 end
  return v
end

-- decode returns the state as tables, or nil when it is unusable (absent, corrupt, other limits,
-- or more than a window in the future).
local function decode(s)
  if not s or #s ~= size then return nil end
  local ver, strat, count, _, fp, base, last = struct.unpack('<BBBBI4i8i8', s)
  if ver ~= 1 or strat ~= strategy or count ~= nlimits or fp ~= fingerprint then return nil end
  if last < base or last - base > 2 * REBASE_AFTER or last - now > longest then return nil end
  local rings = {}
  for i, l in ipairs(limits) do
    local first, n, sa, sd = struct.unpack('<I2I2I4I4', s, l.offset + 1)
    if first >= l.buckets or n > l.buckets then return nil end
    local b = {}
    for k = 0, n - 1 do
      local p = l.offset + 16 + ((first + k) % l.buckets) * rec + 1
      local bs, be, ba, bd = struct.unpack('<I4I4I4', s, p)
      bd = 0
      if rec == 16 then bd = struct.unpack('<I4', s, p + 12) end
      b[k + 1] = {bs, be, ba, bd}
    end
    rings[i] = {sa = sa, sd = sd, b = b}
  end
  return {base = base, last = last, rings = rings}
end

local st = decode(redis.call('GET', KEYS[1]))
local reset = 0
if not st then
  if redis.call('EXISTS', KEYS[1]) == 1 then reset = 1 end
  st = {base = now, last = now, rings = {}}
  for i = 1, nlimits do st.rings[i] = {sa = 0, sd = 0, b = {}} end
end
if st.last > now then now = st.last end -- a clock going backwards counts as no time passing
st.last = now
local base = st.base

for i, l in ipairs(limits) do
  local r = st.rings[i]
  while #r.b > 0 and now - (base + r.b[1][2]) >= l.window do
    r.sa = r.sa - r.b[1][3]
    r.sd = r.sd - r.b[1][4]
    table.remove(r.b, 1)
  end
  if #r.b == 0 then r.sa, r.sd = 0, 0 end
  r.sa, r.sd = clamp(r.sa), clamp(r.sd)
end

if now - base > REBASE_AFTER then
  local shift = (now - longest) - base
  if shift > 0 then
    for _, r in ipairs(st.rings) do
      for _, b in ipairs(r.b) do
        b[1] = math.max(b[1] - shift, 0)
        b[2] = math.max(b[2] - shift, 0)
      end
    end
    base = now - longest
    st.base = base
  end
end

local function add(r, l, c, denied)
  local n = #r.b
  if n == 0 or (now - (base + r.b[n][1]) >= l.group and n < l.buckets) then
    n = n + 1
    r.b[n] = {now - base, 0, 0, 0}
  end
  r.b[n][2] = now - base
  if denied then
    r.b[n][4] = clamp(r.b[n][4] + c)
    r.sd = r.sd + c
  else
    r.b[n][3] = clamp(r.b[n][3] + c)
    r.sa = r.sa + c
  end
end

-- fits_after: time until used - (what expires) + c <= quota; false when c can never fit.
local function fits_after(r, l, used, c, quota)
  if c > quota then return 0, false end
  local ms = 0
  local k = 1
  while k <= #r.b and used + c > quota do
    used = used - r.b[k][3]
    ms = base + r.b[k][2] + l.window - now
    k = k + 1
  end
  return math.max(ms, 0), true
end

local function suppression_factor(r, l)
  local perceived = (r.sa + r.sd) * 1000 / l.window
  local last_second = 0
  local k = #r.b
  while k >= 1 and now - (base + r.b[k][2]) < 1000 do
    last_second = last_second + r.b[k][3] + r.b[k][4]
    k = k - 1
  end
  if last_second > perceived then perceived = last_second end
  if perceived <= l.rate then return 0 end
  return 1 - l.rate / perceived
end

-- report returns the tightest limit: the least remaining.
local function report()
  local limit, window, remaining, reset_after = 0, 0, 0, 0
  for i, l in ipairs(limits) do
    local r = st.rings[i]
    local left = math.max(l.quota - r.sa, 0)
    if i == 1 or left < remaining then
      limit, window, remaining, reset_after = l.quota, l.window, left, 0
      if #r.b > 0 then reset_after = math.max(base + r.b[1][2] + l.window - now, 0) end
    end
  end
  return limit, window, remaining, reset_after
end

local function save()
  local parts = {struct.pack('<BBBBI4i8i8', 1, strategy, nlimits, 0, fingerprint, st.base, st.last)}
  for i, l in ipairs(limits) do
    local r = st.rings[i]
    local n = #r.b
    parts[#parts + 1] = struct.pack('<I2I2I4I4I4', 0, n, clamp(r.sa), clamp(r.sd), 0)
    for k = 1, l.buckets do
      local b = r.b[k]
      if b then
        if rec == 16 then
          parts[#parts + 1] = struct.pack('<I4I4I4I4', b[1], b[2], b[3], b[4])
        else
          parts[#parts + 1] = struct.pack('<I4I4I4', b[1], b[2], b[3])
        end
      else
        parts[#parts + 1] = string.rep('\0', rec)
      end
    end
  end
  redis.call('SET', KEYS[1], table.concat(parts), 'PX', longest + 1000)
end

local lo = 6 + 6 * nlimits
if ARGV[lo + 1] == 'lease' then
  local release, release_at = tonumber(ARGV[lo + 2]), tonumber(ARGV[lo + 3])
  local used, denied, want = tonumber(ARGV[lo + 4]), tonumber(ARGV[lo + 5]), tonumber(ARGV[lo + 6])
  local used_at = tonumber(ARGV[lo + 7] or '0')
  if used_at <= 0 or used_at > now then used_at = now end
  if used_at < base then used_at = base end
  -- add_at counts c accepted units at time `at` (<= now): into the newest bucket unless a new one
  -- can start there; a bucket's end never moves back, so units are never counted short.
  local function add_at(r, l, c, at)
    local n = #r.b
    if n == 0 or (at - (base + r.b[n][1]) >= l.group and at >= base + r.b[n][2] and n < l.buckets) then
      n = n + 1
      r.b[n] = {at - base, at - base, 0, 0}
    end
    if at - base > r.b[n][2] then r.b[n][2] = at - base end
    r.b[n][3] = clamp(r.b[n][3] + c)
    r.sa = r.sa + c
  end
  -- room is what every limit has left; freed is what this proxy gives back and did not use,
  -- which it may have spent while this call travelled: granting that much back only relabels
  -- units Redis counted already, so it is granted whatever the caps say.
  local room, freed, retry, sf = want, math.max(release - used, 0), 0, 0
  for i, l in ipairs(limits) do
    local r = st.rings[i]
    if release > 0 then
      -- The reservation went into the newest bucket of its time; a bucket gone from the window
      -- took it along.
      for k = #r.b, 1, -1 do
        if base + r.b[k][1] <= release_at then
          if base + r.b[k][2] >= release_at then
            local c = math.min(r.b[k][3], release)
            r.b[k][3] = r.b[k][3] - c
            r.sa = r.sa - c
          end
          break
        end
      end
    end
    if used > 0 then add_at(r, l, used, used_at) end
    if denied > 0 then add(r, l, denied, true) end
    -- Suppressed: below the soft quota, reserve up to it (those requests pass unsuppressed);
    -- above, up to the hard quota, spent locally under the suppression factor.
    local cap = l.quota
    if strategy == 2 and r.sa + 1 > l.quota then
      cap = l.hard
      if r.sa + 1 <= cap then sf = math.max(sf, suppression_factor(r, l)) end
    end
    room = math.min(room, math.max(cap - r.sa, 0))
    if r.sa + 1 > cap then
      local ms = fits_after(r, l, r.sa, 1, cap)
      retry = math.max(retry, ms)
    end
  end
  local grant = math.min(want, math.max(room, freed))
  if grant > 0 then
    for i, l in ipairs(limits) do
      local r = st.rings[i]
      add(r, l, grant, false)
      -- What is granted above the soft quota is spent under the factor too.
      if strategy == 2 and r.sa > l.quota then sf = math.max(sf, suppression_factor(r, l)) end
    end
  else
    grant = 0
  end
  local limit, window, remaining, reset_after = report()
  if release > 0 or used > 0 or denied > 0 or grant > 0 then save() end
  return {grant, now, limit, window, remaining, reset_after, retry, math.floor(sf * 1000000 + 0.5)}
end

-- Reasons: 0 allowed, 1 quota exhausted, 2 cost exceeds quota, 3 hard limit, 4 suppressed.
local allowed, decider, reason, retry, sf, suppressed, changed = true, -1, 0, 0, 0, false, false
if strategy == 1 then
  for i, l in ipairs(limits) do
    local r = st.rings[i]
    if r.sa + cost > l.quota then
      local ms, ok = fits_after(r, l, r.sa, cost, l.quota)
      if not ok then
        if reason ~= 2 then decider, reason, retry = i - 1, 2, 0 end
      elseif reason ~= 2 and (allowed or ms > retry) then
        decider, reason, retry = i - 1, 1, ms
      end
      allowed = false
    end
  end
  if allowed then
    for i, l in ipairs(limits) do add(st.rings[i], l, cost, false) end
    changed = true
  end
else
  local hard = false
  for i, l in ipairs(limits) do
    local r = st.rings[i]
    local acc = r.sa
    if acc + cost <= l.quota then
      -- below the soft quota
    elseif acc + cost > l.hard then
      local ms, ok = fits_after(r, l, acc, cost, l.hard)
      local why = 3
      if not ok then why = 2 end
      if (not hard) or (reason ~= 2 and (why == 2 or ms > retry)) then
        decider, reason, retry = i - 1, why, ms
      end
      hard = true
      sf = 1
    else
      local f = suppression_factor(r, l)
      if f > sf and not hard then
        sf = f
        decider = i - 1
      end
    end
  end
  if hard then
    allowed = false
    if reason == 2 then retry = 0 end
  elseif sf > 0 and draw < sf then
    local r, l = st.rings[decider + 1], limits[decider + 1]
    local ms = fits_after(r, l, r.sa, 1, r.sa)
    allowed, suppressed, reason, retry = false, true, 4, ms
  else
    decider = -1
  end
  for i, l in ipairs(limits) do add(st.rings[i], l, cost, not allowed) end
  changed = true
end

local limit, window, remaining, reset_after = report()
if changed then save() end

local a, s = 0, 0
if allowed then a = 1 end
if suppressed then s = 1 end
return {a, limit, window, remaining, retry, reset_after, math.floor(sf * 1000000 + 0.5), s, decider, reason, reset}
