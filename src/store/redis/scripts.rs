//! The Lua scripts behind every Redis write: each is atomic, so a record, its owner's index
//! and (in `pubsub` invalidation mode) the announcement of its change happen together or not
//! at all. Time comes from the server (`TIME`), one clock for the whole fleet.
//!
//! A record is a hash: `v` (the value) and `o` (its owner's hex digest, when it has one), with
//! the record's expiry as the key's own. An owner's index is a sorted set of record digests
//! scored by their expiry (`+inf`: never), expiring with its last record.

use redis::Script;
use std::sync::LazyLock;

/// Shared Lua: the server's time in ms, and an owner index's expiry set to its latest record's.
const PRELUDE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
local function fit_index(index)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now_ms())
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', index)
  elseif last[2] == 'inf' or last[2] == '+inf' then
    redis.call('PERSIST', index)
  else
    redis.call('PEXPIREAT', index, last[2])
  end
end
local function announce(channel, key)
  if channel ~= '' then redis.call('PUBLISH', channel, key) end
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// KEYS: record, [owner index]. ARGV: value, expiry ms ('' = never), record digest, owner
/// digest ('' = none). Returns 1, or 0 when the record already exists.
pub(super) static PUT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'o', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1])
end
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
if KEYS[2] then
  redis.call('ZADD', KEYS[2], ARGV[2] ~= '' and ARGV[2] or '+inf', ARGV[3])
  fit_index(KEYS[2])
end
return 1
",
    )
});

/// KEYS: record. ARGV: owner index prefix, record digest, channel ('' = none).
/// Returns 1 when this call removed it: of concurrent callers, exactly one.
pub(super) static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local owner = redis.call('HGET', KEYS[1], 'o')
local removed = redis.call('DEL', KEYS[1])
if removed == 1 then
  if owner then redis.call('ZREM', ARGV[1] .. owner, ARGV[2]) end
  announce(ARGV[3], KEYS[1])
end
return removed
",
    )
});

/// KEYS: record. ARGV: expiry ms ('' = never), owner index prefix, record digest, channel.
/// Returns 1 when the record existed.
pub(super) static SET_EXPIRY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
local owner = redis.call('HGET', KEYS[1], 'o')
if owner then
  local index = ARGV[2] .. owner
  redis.call('ZADD', index, ARGV[1] ~= '' and ARGV[1] or '+inf', ARGV[3])
  fit_index(index)
end
announce(ARGV[4], KEYS[1])
return 1
",
    )
});

/// KEYS: owner index. ARGV: record key prefix, channel. Removes every record in the index;
/// returns the digests of those that were there.
pub(super) static REMOVE_OWNED_BY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local removed = {}
for _, digest in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. digest
  if redis.call('DEL', key) == 1 then
    removed[#removed + 1] = digest
    announce(ARGV[2], key)
  end
end
redis.call('DEL', KEYS[1])
return removed
",
    )
});

/// KEYS: state hash (`f` failures, `u` locked until ms), slot set. ARGV: threshold, slot id,
/// slot lifetime ms, busy wait ms. Returns 0 with the slot taken, or the ms to wait.
pub(super) static ATTEMPT_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local now = now_ms()
local state = redis.call('HMGET', KEYS[1], 'f', 'u')
local failures = tonumber(state[1]) or 0
local locked_until = tonumber(state[2]) or 0
if locked_until > now then return locked_until - now end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local allowed = math.max(tonumber(ARGV[1]) - failures, 1)
if redis.call('ZCARD', KEYS[2]) >= allowed then return tonumber(ARGV[4]) end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 0
",
    )
});

/// KEYS: state hash, slot set. ARGV: slot id, threshold, base lock ms, max lock ms, idle ms.
/// Counts a failure and locks at the threshold (doubling from the base up to the max).
pub(super) static ATTEMPT_FAIL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
redis.call('ZREM', KEYS[2], ARGV[1])
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local threshold = tonumber(ARGV[2])
local keep = tonumber(ARGV[5])
if failures >= threshold then
  local doublings = math.min(failures - threshold, 30)
  local lock = math.min(tonumber(ARGV[3]) * 2 ^ doublings, tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'u', now_ms() + lock)
  keep = math.max(keep, lock)
end
redis.call('PEXPIRE', KEYS[1], keep)
return failures
",
    )
});

/// KEYS: the limit's key. ARGV: emission interval ms, burst. GCRA: returns 0 when admitted,
/// else the ms until the next event would be.
pub(super) static RATE_ADMIT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local now = now_ms()
local interval = tonumber(ARGV[1])
local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
local allow_at = tat + interval - tonumber(ARGV[2]) * interval
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now)
return 0
",
    )
});
