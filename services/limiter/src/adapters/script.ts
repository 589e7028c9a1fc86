/**
 * The one Redis script behind Consume and Peek. It reads every bucket of the call, decides, and
 * writes all of them or none, so concurrent calls can never over-admit: Redis runs a script alone.
 * The arithmetic mirrors domain/gcra.ts line by line.
 *
 * KEYS[1]      idempotency record (a hash: f = request fingerprint, a = answer, k = bucket keys,
 *              d = TAT increments, r = refunded), or any key of the slot when there is none
 * KEYS[2..n+1] one TAT per bucket
 * ARGV         mode ("c" consume, "p" peek), now in ms ("" = Redis TIME), idempotency TTL in ms,
 *              fingerprint ("" = no idempotency key), n, then per bucket: period, limit, shadow, cost
 *
 * Returns "C<answer>" for a fresh decision, "R<answer>" for a replayed one, "Emismatch" when the
 * key was used for a different request. <answer> = allowed,retryAfter then per bucket
 * allowed,remaining,resetAfter,retryAfter.
 */
export const decideScript = `
local mode = ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local fingerprint = ARGV[4]
if fingerprint ~= '' then
  local record = redis.call('HMGET', KEYS[1], 'f', 'a')
  if record[2] then
    if record[1] ~= fingerprint then return 'Emismatch' end
    return 'R' .. record[2]
  end
end
local n = tonumber(ARGV[5])
local eps = 0.001
local allowed = 1
local retry = 0
local out = {}
local newTats = {}
local oks = {}
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local period = tonumber(ARGV[b + 1])
  local limit = tonumber(ARGV[b + 2])
  local shadow = ARGV[b + 3] == '1'
  local cost = tonumber(ARGV[b + 4])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i + 1]))
  if tat == nil or tat < now then tat = now end
  local newTat = tat + cost * interval
  local ok = newTat - now <= period + eps
  local used = tat
  local r = 0
  if ok then used = newTat else r = math.ceil(newTat - period - now) end
  local remaining = math.floor((period - (used - now)) / interval + eps)
  if remaining < 0 then remaining = 0 end
  if not ok and not shadow then
    allowed = 0
    if r > retry then retry = r end
  end
  newTats[i] = newTat
  oks[i] = ok
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(used - now)
  out[#out + 1] = r
end
local answer = allowed .. ',' .. retry .. ',' .. table.concat(out, ',')
if mode ~= 'c' then return 'C' .. answer end
local keys = {}
local deltas = {}
if allowed == 1 then
  for i = 1, n do
    if oks[i] then
      local ttl = math.ceil(newTats[i] - now) + 1
      redis.call('SET', KEYS[i + 1], string.format('%.17g', newTats[i]), 'PX', ttl)
      keys[#keys + 1] = KEYS[i + 1]
      local b = 5 + (i - 1) * 4
      deltas[#deltas + 1] = string.format('%.17g', tonumber(ARGV[b + 4]) * (tonumber(ARGV[b + 1]) / tonumber(ARGV[b + 2])))
    end
  end
end
if fingerprint ~= '' then
  redis.call('HSET', KEYS[1], 'f', fingerprint, 'a', answer, 'k', table.concat(keys, ' '), 'd', table.concat(deltas, ' '))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 'C' .. answer
`;

/**
 * Refund: gives the increments recorded by a Consume back to its buckets, once. The caller reads
 * the record's bucket keys first (so they can be declared in KEYS, as Redis Cluster wants) and the
 * script checks they are still the recorded ones.
 *
 * KEYS[1] idempotency record, KEYS[2..] its buckets; ARGV[1] now ("" = Redis TIME), ARGV[2] the
 * bucket keys joined by spaces. Returns "refunded", "already", "not-consumed", "not-found" or "changed".
 */
export const refundScript = `
local record = redis.call('HMGET', KEYS[1], 'a', 'k', 'd', 'r')
if not record[1] then return 'not-found' end
if record[4] then return 'already' end
if string.sub(record[1], 1, 1) ~= '1' then return 'not-consumed' end
if record[2] ~= ARGV[2] then return 'changed' end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local i = 2
for delta in string.gmatch(record[3], '%S+') do
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat then
    local restored = tat - tonumber(delta)
    if restored <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.17g', restored), 'PX', math.ceil(restored - now) + 1)
    end
  end
  i = i + 1
end
redis.call('HSET', KEYS[1], 'r', '1')
return 'refunded'
`;
