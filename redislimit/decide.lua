-- floodgate: one call for one key of a sliding-window policy (absolute, suppressed), all of its
-- limits, atomically. It mirrors algorithm.Policy (Go) exactly, on a compact encoding of the
-- same buckets (redislimit/FORMAT.md): only live buckets are stored, 8 bytes each, so a decision
-- costs O(1) Lua work plus copying the key's bytes, whatever the window's length.
--
-- KEYS[1]  the key's state (all keys of one limiter key share a {hash tag}: Cluster-safe)
-- ARGV[1]  cost (integer >= 1)             ARGV[2]  random draw in [0, 1) (made by the caller)
-- ARGV[3]  now in ms, or "" for Redis TIME ARGV[4]  deadline in ms of Redis time, or "": past it
--          the script changes nothing and answers {-1}
-- ARGV[5]  strategy: 1 absolute, 2 suppressed ARGV[6]  fingerprint of the limits
-- ARGV[7]  block in ms (0: none)           ARGV[8]  number of limits
-- then per limit: quota, window_ms, group_ms, and for suppressed rate (per second), hard quota
-- then the mode: nothing for a decision (Policy.Decide), or one of
--   'check'             Policy.Check: changes nothing
--   'block'             Policy.Block: a rejection for lack of room starts the block
--   'record'            Policy.Record: counts the cost whatever the quota
--   'reset'             Policy.Reset: a fresh state
--   'refund', at_ms     Policy.Refund of cost units admitted at at_ms
-- Returns {allowed, limit, window_ms, remaining, retry_after_ms, reset_after_ms,
--          suppression_factor * 1e6, suppressed, decider (0-based, -1), reason, reset, now_ms};
-- reset and refund answer what a check of the cost answers afterwards.
--
-- Lease mode (hybrid backend): 'lease', release, release_at_ms, used, denied, want, used_at_ms,
-- rejected (see algorithm.Policy.Lease). Returns {granted, now_ms, limit, window_ms, remaining,
-- reset_after_ms, retry_after_ms (when nothing could be granted), suppression_factor * 1e6}.

-- Numbers are read by arithmetic on ARGV's strings (cheaper than tonumber), and each limit's
-- table is built whole (no rehash as fields are added): Redis runs this on every request.
local now
if ARGV[3] ~= '' then
  now = ARGV[3] + 0
else
  local t = redis.call('TIME')
  now = t[1] * 1000 + math.floor(t[2] / 1000)
end
if ARGV[4] ~= '' and now > ARGV[4] + 0 then return {-1} end

local REBASE_AFTER = 1073741824 -- 2^30 ms
local U32 = 4294967295
local CONT = 4294967295 -- the end field of a continuation record
local HAS_CONT = 2147483648 -- added to the end field of a record a continuation follows
local strategy, fingerprint, block, n = ARGV[5] + 0, ARGV[6] + 0, ARGV[7] + 0, ARGV[8] + 0
local sup = strategy == 2
local per, recfmt = 3, '<I4I4'
if sup then per, recfmt = 5, '<I4I2I2' end
local lo = 8 + per * n
local mode = ARGV[lo + 1] -- nil: a decision
local tail = 0 -- the block's end, i64 ms, ends the state of a policy with a block
if block > 0 then tail = 8 end

local function clamp(v)
  if v < 0 then return 0 end
  if v > U32 then return U32 end
  return v
end

local L, longest = {}, 0
for i = 1, n do
  local o = 8 + (i - 1) * per
  local w, g, rate, hard = ARGV[o + 2] + 0, ARGV[o + 3] + 0, 0, 0
  if sup then rate, hard = ARGV[o + 4] + 0, ARGV[o + 5] + 0 end
  local l = {quota = ARGV[o + 1] + 0, window = w, group = g, buckets = math.floor((w + g - 1) / g), rate = rate, hard = hard,
             nb = 0, sa = 0, sd = 0, st = 0, src = '', off = 1, ns = 0, extra = '', nbody = 0, te = false, ta = 0, td = 0, fe = 0}
  if w > longest then longest = w end
  L[i] = l
end

-- A limit's buckets other than the newest are l.nbody records: l.ns of them in the stored
-- string l.src from byte l.off (read in place, never copied until the state is written back),
-- then l.extra, the records this call moved out of the newest bucket. The newest bucket is
-- l.te, l.ta, l.td (end, accepted, denied), nil when the limit has none.

-- word unpacks record k (0-based) of l's body.
local function word(l, k)
  if k < l.ns then return struct.unpack(recfmt, l.src, l.off + k * 8) end
  return struct.unpack(recfmt, l.extra, (k - l.ns) * 8 + 1)
end

-- rec reads the bucket whose head record is k: end, a, d and the number of records it takes (2
-- with a continuation).
local function rec(l, k)
  local e, a, d = word(l, k)
  if not sup then return e, a, 0, 1 end
  if e < HAS_CONT then return e, a, d, 1 end
  local _, ah, dh = word(l, k + 1)
  return e - HAS_CONT, a + ah * 65536, d + dh * 65536, 2
end

local function enc(e, a, d)
  if not sup then return struct.pack(recfmt, e, a) end
  if a < 65536 and d < 65536 then return struct.pack(recfmt, e, a, d) end
  return struct.pack('<I4I2I2I4I2I2', e + HAS_CONT, a % 65536, d % 65536, CONT, math.floor(a / 65536), math.floor(d / 65536))
end

-- decode fills every limit from the stored state; it returns the state's base, last time and
-- block end, or nil when the state is unusable (absent, corrupt, other limits, or from more than
-- a window in the future).
local function decode(s)
  if not s or #s < 20 + 16 * n + tail then return nil end
  local ver, strat, count, _, fp, base, last = struct.unpack('<BBBBI4i8I4', s)
  if ver ~= 2 or strat ~= strategy or count ~= n or fp ~= fingerprint or last > 2 * REBASE_AFTER then return nil end
  last = base + last
  if last - now > longest then return nil end
  local pos = 21 + 16 * n
  for i, l in ipairs(L) do
    local nb, nr, sa, sd, st = struct.unpack('<I2I2I4I4I4', s, 5 + 16 * i)
    if nb > l.buckets or nb > nr or (not sup and nr ~= nb) or nr > 2 * nb or pos + 8 * nr - 1 > #s then return nil end
    l.nb, l.sa, l.sd, l.st = nb, sa, sd, st
    l.src, l.off, l.ns, l.extra, l.nbody = s, pos, nr, '', nr
    pos = pos + 8 * nr
  end
  if pos + tail ~= #s + 1 then return nil end
  local block_end = 0
  if tail > 0 then block_end = struct.unpack('<i8', s, pos) end
  return base, last, block_end
end

local reset = 0
local s = false -- a reset reads nothing: it writes a fresh state
if mode ~= 'reset' then s = redis.call('GET', KEYS[1]) end
local base, last, block_end = decode(s)
if not base then
  if s then reset = 1 end
  base, last, block_end = now, now, 0
  for _, l in ipairs(L) do l.nb, l.sa, l.sd, l.st, l.src, l.off, l.ns, l.extra, l.nbody = 0, 0, 0, 0, '', 1, 0, '', 0 end -- decode may have begun
end
if last > now then now = last end -- a clock going backwards counts as no time passing
-- rest: what is left of the key's block; an end more than two blocks ahead is not trusted.
local rest = block_end - now
if block == 0 or rest <= 0 or rest > 2 * block then rest = 0 end

-- Expire the buckets whose latest request left the window, then take the newest out of the body.
for _, l in ipairs(L) do
  local k, sa, sd = 0, l.sa, l.sd
  while l.nb > 0 do
    local e, a, d, w = rec(l, k)
    if now - (base + e) < l.window then
      l.fe = e -- the oldest live bucket's end, for report
      break
    end
    sa, sd, k, l.nb = sa - a, sd - d, k + w, l.nb - 1
  end
  if l.nb == 0 then sa, sd = 0, 0 end
  l.sa, l.sd = clamp(sa), clamp(sd)
  l.off, l.ns, l.nbody = l.off + k * 8, l.ns - k, l.nbody - k
  if l.nb > 0 then
    local h = l.nbody - 1
    if sup and h > 0 and word(l, h) == CONT then h = h - 1 end
    l.te, l.ta, l.td = rec(l, h)
    l.ns, l.nbody = h, h
  end
end

if now - base > REBASE_AFTER then
  -- Before anything is added: offsets must fit in 32 bits however long the key was idle.
  local shift = (now - longest) - base
  if shift > 0 then
    for _, l in ipairs(L) do
      local parts, k = {}, 0
      while k < l.nbody do
        local e, a, d, w = rec(l, k)
        parts[#parts + 1] = enc(math.max(e - shift, 0), a, d)
        k = k + w
      end
      l.src, l.off, l.ns, l.extra = table.concat(parts), 1, l.nbody, ''
      if l.te then l.te, l.fe = math.max(l.te - shift, 0), math.max(l.fe - shift, 0) end
      l.st = math.max(l.st - shift, 0)
    end
    base = now - longest
  end
end

-- newbucket moves the newest bucket into the body and starts one at t (ms after base).
local function newbucket(l, t)
  if l.te then
    local r = enc(l.te, l.ta, l.td)
    if l.nbody == 0 then l.fe = l.te end
    l.extra, l.nbody = l.extra .. r, l.nbody + #r / 8
  end
  l.te, l.ta, l.td, l.st, l.nb = t, 0, 0, t, l.nb + 1
end

-- add counts c at now: into the newest bucket if it started less than group_ms ago (or when
-- the limit has all its buckets), else into a new one.
local function add(l, c, denied)
  if l.nb == 0 or (now - (base + l.st) >= l.group and l.nb < l.buckets) then newbucket(l, now - base) end
  l.te = now - base
  if denied then
    l.td, l.sd = clamp(l.td + c), clamp(l.sd + c)
  else
    l.ta, l.sa = clamp(l.ta + c), clamp(l.sa + c)
  end
end

-- release takes back up to units accepted units from the oldest bucket whose latest request is
-- no earlier than at: the bucket a reservation or an admission made at that time went into. (A
-- decision does not need it: it is not even made then.)
local release
if mode then
  release = function(l, at, units)
    local k = 0
    while k < l.nbody do
      local e, a, d, w = rec(l, k)
      if base + e >= at then
        local c = math.min(a, units)
        local r = enc(e, a - c, d)
        local body = string.sub(l.src, l.off, l.off + 8 * l.ns - 1) .. l.extra
        l.src = string.sub(body, 1, k * 8) .. r .. string.sub(body, (k + w) * 8 + 1)
        l.nbody, l.sa = l.nbody - w + #r / 8, clamp(l.sa - c)
        l.off, l.ns, l.extra = 1, l.nbody, ''
        return
      end
      k = k + w
    end
    if l.te and base + l.te >= at then
      local c = math.min(l.ta, units)
      l.ta, l.sa = l.ta - c, clamp(l.sa - c)
    end
  end
end

-- fits_after: time until used - (what expires) + c <= quota, oldest bucket first; false when c
-- can never fit.
local function fits_after(l, used, c, quota)
  if c > quota then return 0, false end
  local ms, k = 0, 0
  while used + c > quota and k < l.nbody do
    local e, a, _, w = rec(l, k)
    used, ms, k = used - a, base + e + l.window - now, k + w
  end
  if used + c > quota and l.te then ms = base + l.te + l.window - now end
  return math.max(ms, 0), true
end

local function suppression_factor(l)
  local perceived = (l.sa + l.sd) * 1000 / l.window
  local last_second = 0
  if l.te and now - (base + l.te) < 1000 then
    last_second = l.ta + l.td
    local k = l.nbody - 1
    while k >= 0 do
      local h = k
      if word(l, k) == CONT then h = k - 1 end
      local e, a, d = rec(l, h)
      if now - (base + e) >= 1000 then break end
      last_second, k = last_second + a + d, h - 1
    end
  end
  if last_second > perceived then perceived = last_second end
  if perceived <= l.rate then return 0 end
  return 1 - l.rate / perceived
end

-- admit applies the absolute rule (accepted units against the quota), counting nothing. Reasons:
-- 0 allowed, 1 quota exhausted, 2 cost exceeds quota.
local function admit(c)
  local ok_, decider, reason, retry = true, -1, 0, 0
  for i, l in ipairs(L) do
    if l.sa + c > l.quota then
      local ms, ok = fits_after(l, l.sa, c, l.quota)
      if not ok then
        if reason ~= 2 then decider, reason, retry = i - 1, 2, 0 end
      elseif reason ~= 2 and (ok_ or ms > retry) then
        decider, reason, retry = i - 1, 1, ms
      end
      ok_ = false
    end
  end
  return ok_, decider, reason, retry
end

-- report returns the tightest limit (the least remaining), and applies the key's block.
local function report()
  local limit, window, remaining, reset_after = 0, 0, 0, 0
  for i, l in ipairs(L) do
    local left = math.max(l.quota - l.sa, 0)
    if i == 1 or left < remaining then
      limit, window, remaining, reset_after = l.quota, l.window, left, 0
      if l.nbody > 0 then
        reset_after = math.max(base + l.fe + l.window - now, 0)
      elseif l.te then
        reset_after = math.max(base + l.te + l.window - now, 0)
      end
    end
  end
  if rest > 0 then
    remaining = 0
    if rest > reset_after then reset_after = rest end
  end
  return limit, window, remaining, reset_after
end

local function save()
  local v = {struct.pack('<BBBBI4i8I4', 2, strategy, n, 0, fingerprint, base, now - base)}
  for i, l in ipairs(L) do
    local t = ''
    if l.te then t = enc(l.te, l.ta, l.td) end
    v[i + 1] = struct.pack('<I2I2I4I4I4', l.nb, l.nbody + #t / 8, l.sa, l.sd, l.st)
    v[n + 3 * i - 1] = string.sub(l.src, l.off, l.off + 8 * l.ns - 1)
    v[n + 3 * i], v[n + 3 * i + 1] = l.extra, t
  end
  local ttl = longest
  if tail > 0 then
    v[4 * n + 2] = struct.pack('<i8', block_end)
    if block_end - now > ttl then ttl = block_end - now end
  end
  redis.call('SET', KEYS[1], table.concat(v), 'PX', ttl + 1000)
end

if mode == 'lease' then
  local release_n, release_at = ARGV[lo + 2] + 0, ARGV[lo + 3] + 0
  local used, denied, want = ARGV[lo + 4] + 0, ARGV[lo + 5] + 0, ARGV[lo + 6] + 0
  local used_at, rejected = ARGV[lo + 7] + 0, ARGV[lo + 8] + 0
  if used_at <= 0 or used_at > now then used_at = now end
  if used_at < base then used_at = base end
  local room, freed, retry, sf = want, math.max(release_n - used, 0), 0, 0
  for _, l in ipairs(L) do
    if release_n > 0 and release_at > now - l.window then release(l, release_at, release_n) end
    if used > 0 then
      -- into the newest bucket unless a new one can start at used_at; an end never moves back
      if l.nb == 0 or (used_at - (base + l.st) >= l.group and used_at >= base + l.te and l.nb < l.buckets) then
        newbucket(l, used_at - base)
      end
      if used_at - base > l.te then l.te = used_at - base end
      l.ta, l.sa = clamp(l.ta + used), clamp(l.sa + used)
    end
    if denied > 0 and sup then add(l, denied, true) end
    local cap = l.quota
    if sup and l.sa + 1 > l.quota then
      cap = l.hard
      if l.sa + 1 <= cap then sf = math.max(sf, suppression_factor(l)) end
    end
    room = math.min(room, math.max(cap - l.sa, 0))
    if l.sa + 1 > cap then retry = math.max(retry, (fits_after(l, l.sa, 1, cap))) end
  end
  local grant = math.max(math.min(want, math.max(room, freed)), 0)
  -- A lease reporting rejections starts the block; a blocked key is granted nothing.
  local started = block > 0 and rejected > 0 and rest == 0
  if started then block_end, rest = now + block, block end
  if rest > 0 then grant, retry = 0, math.max(retry, rest) end
  if grant > 0 then
    for _, l in ipairs(L) do
      add(l, grant, false)
      if sup and l.sa > l.quota then sf = math.max(sf, suppression_factor(l)) end
    end
  end
  local limit, window, remaining, reset_after = report()
  if release_n > 0 or used > 0 or denied > 0 or grant > 0 or started then save() end
  return {grant, now, limit, window, remaining, reset_after, retry, math.floor(sf * 1000000 + 0.5)}
end

-- Reasons: 0 allowed, 1 quota exhausted, 2 cost exceeds quota, 3 hard limit, 4 suppressed,
-- 5 blocked.
local cost = math.max(1, ARGV[1] + 0)
local allowed, decider, reason, retry, sf, suppressed = true, -1, 0, 0, 0, false
local changed = false
if mode == 'refund' then
  local at = ARGV[lo + 2] + 0
  if reset == 0 then -- a state that is not the policy's is left alone
    for _, l in ipairs(L) do
      if at > now - l.window and l.sa > 0 then
        release(l, at, cost)
        if sup then add(l, cost, true) end
        changed = true
      end
    end
  end
elseif mode == 'reset' then
  changed = true
end

if rest > 0 then
  allowed, reason = false, 5
elseif mode or not sup then
  allowed, decider, reason, retry = admit(cost)
else
  -- a suppressed decision
  local draw, hard = ARGV[2] + 0, false
  for i, l in ipairs(L) do
    local acc = l.sa
    if acc + cost <= l.quota then
      -- below the soft quota
    elseif acc + cost > l.hard then
      local ms, ok = fits_after(l, acc, cost, l.hard)
      local why = 3
      if not ok then why = 2 end
      if (not hard) or (reason ~= 2 and (why == 2 or ms > retry)) then
        decider, reason, retry = i - 1, why, ms
      end
      hard, sf = true, 1
    else
      local f = suppression_factor(l)
      if f > sf and not hard then sf, decider = f, i - 1 end
    end
  end
  if hard then
    allowed = false
    if reason == 2 then retry = 0 end
  elseif sf > 0 and draw < sf then
    local l = L[decider + 1]
    allowed, suppressed, reason, retry = false, true, 4, (fits_after(l, l.sa, 1, l.sa))
  else
    decider = -1
  end
  for _, l in ipairs(L) do add(l, cost, not allowed) end
  changed = true
end
if mode == 'record' or (allowed and not mode and not sup) then
  for _, l in ipairs(L) do add(l, cost, false) end
  changed = true
end

-- A rejection for lack of room starts the block (a decision, a block, a record).
if block > 0 and not allowed and (reason == 1 or reason == 3) and (not mode or mode == 'block' or mode == 'record') then
  block_end, rest, changed = now + block, block, true
end
if mode == 'record' then
  local _, _, _, r = admit(1) -- how long the key has no room
  retry = r
end

local limit, window, remaining, reset_after = report()
if rest > retry then retry = rest end
if changed then save() end

local a, su = 0, 0
if allowed then a = 1 end
if suppressed then su = 1 end
return {a, limit, window, remaining, retry, reset_after, math.floor(sf * 1000000 + 0.5), su, decider, reason, reset, now}
