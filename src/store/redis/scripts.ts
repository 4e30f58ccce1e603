import { createHash } from 'node:crypto';

/** A Lua script, sent by its SHA1 (EVALSHA) and loaded with EVAL the first time a server lacks it. */
export interface Script {
  source: string;
  sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * A batch (or, on a cluster, the part of it in one hash slot), applied atomically exactly once:
 * nothing if its guard exists (the same batch sent again after a lost answer); otherwise the
 * guard, its idempotency keys turned from this batch's claims into done answers, and the counts.
 * A key whose claim is no longer this batch's (it lapsed, and a repeat took it) fails the whole
 * script before anything is written: the repeat is counted instead.
 *
 * KEYS: guard, n idempotency keys, counters. ARGV: guard lifetime (ms), n, then per key its
 * claim, its done value and when it expires (ms since the epoch), then per counter delivered
 * and bounced. A counter's field is only written when its delta is not 0 (a domain with only
 * deliveries keeps one field), `d` always for a domain whose deltas are both 0.
 */
export const APPLY = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
for i = 1, n do
  if redis.call('GET', KEYS[1 + i]) ~= ARGV[3 * i] then
    return redis.error_reply('SVCLAPSED the idempotency key ' .. KEYS[1 + i] .. ' is no longer claimed by this batch')
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i = 1, n do
  redis.call('SET', KEYS[1 + i], ARGV[3 * i + 1], 'PXAT', ARGV[3 * i + 2])
end
local a = 3 * n + 3
for j = n + 2, #KEYS do
  local d = ARGV[a]
  local b = ARGV[a + 1]
  a = a + 2
  if d ~= '0' or b == '0' then redis.call('HINCRBY', KEYS[j], 'd', d) end
  if b ~= '0' then redis.call('HINCRBY', KEYS[j], 'b', b) end
end
return 1
`);

/** Replaces a key's value only if it is still ARGV[1] (a lapsed claim taken over); 1 if replaced. */
export const COMPARE_AND_SET = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`);

/** Deletes a key only if its value starts with ARGV[1] (this process's claim); 1 if deleted. */
export const DELETE_IF_PREFIX = script(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`);

/** The counts of many counters in one round trip: `d` and `b` of each key, in order (false for a missing field). */
export const READ = script(`
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'd', 'b')
  out[2 * i - 1] = v[1]
  out[2 * i] = v[2]
end
return out
`);

/**
 * Turns a claim into its done answer: if the key still holds this batch's claim (ARGV[1]) or
 * already this answer (the batch finished before), or nothing (the claim expired, or a failover
 * lost it: the batch is counted, so its answer must be kept). A claim taken by a repeat is left
 * to the repeat. 1 if stored.
 */
export const STORE_KEY = script(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or v == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  return 1
end
return 0
`);

/**
 * Extends writers' leases in the sorted set KEYS[1] to ARGV[1], each only if it still has the
 * expiry its holder set (ARGV pairs after the first: writer, expiry; an empty expiry for a writer
 * taking its first lease, which must not exist yet). One 1 (extended) or 0 per writer.
 */
export const RENEW_LEASES = script(`
local out = {}
for i = 2, #ARGV, 2 do
  local current = redis.call('ZSCORE', KEYS[1], ARGV[i])
  local ours
  if ARGV[i + 1] == '' then ours = not current else ours = current and tonumber(current) == tonumber(ARGV[i + 1]) end
  if ours then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`);

/**
 * Takes a writer's lease in the sorted set KEYS[1] if its expiry is still ARGV[2] (the one seen);
 * 1 if taken. Expiries are compared as numbers: a score's text differs between clients.
 */
export const TAKE_LEASE = script(`
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
`);

/** Removes a writer from the leases KEYS[1] if its expiry is still ARGV[2] (nobody renewed it). */
export const DROP_LEASE = script(`
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
`);
