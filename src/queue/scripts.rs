//! The Lua scripts that make multi-key steps atomic. Redis runs a script
//! without interleaving other commands, so a crash or a concurrent worker
//! can never observe (or leave behind) half of one of these steps.
//! `redis::Script` sends EVALSHA and loads the script on NOSCRIPT (e.g.
//! after a server restart).

use std::sync::LazyLock;

use redis::Script;

/// KEYS: seen, pending. ARGV: id1, json1, id2, json2, ...
/// Returns one 0/1 per entry: 1 = pushed, 0 = its id was already seen.
pub(crate) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for i = 1, #ARGV, 2 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
",
    )
});

/// KEYS: inflight, done, failed, failed_entries. ARGV: groups of three:
/// id, result json, entry text (as the inflight list holds it; at most a
/// few hundred groups). Records failures, which `complete_many` sends
/// after the batch's successes: a failure is not recorded for an id that is
/// already done (success wins), and its text is kept for `retry-failed`.
/// Returns one 0/1 per group: 1 if the text was in the inflight list.
pub(crate) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for i = 1, #ARGV, 3 do
  local id, text = ARGV[i], ARGV[i + 2]
  out[#out + 1] = redis.call('LREM', KEYS[1], 1, text)
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    redis.call('HSET', KEYS[3], id, ARGV[i + 1])
    redis.call('HSET', KEYS[4], id, text)
  end
end
return out
",
    )
});

/// KEYS: inflight, pending. ARGV: entry text. Moves the entry from the
/// inflight list to the head of pending. Returns 1 if it was there, else 0.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
",
    )
});

/// KEYS[3..7]: pending, inflight, inflight_entries, processing, claimed.
/// Moves every element of the worker's two claim lists to the head of
/// pending, each list keeping its order, and deletes their hashes. Both
/// hold whole entry texts, pushed as they are, except the ids a fetchq of
/// the `inflight_entries` layout kept in `inflight`: each is pushed as the
/// text that hash notes for it. `processing` goes last, so its entries,
/// claimed before any of `inflight` (a worker that kept the same id across
/// an upgrade), end up first. Returns how many.
const DRAIN: &str = r"
local function drain(src, notes)
  local n = 0
  while true do
    local e = redis.call('RPOP', src)
    if not e then break end
    local raw = redis.call('HGET', notes, e)
    redis.call('LPUSH', KEYS[3], raw or e)
    n = n + 1
  end
  redis.call('DEL', notes)
  return n
end
local function drain_all()
  return drain(KEYS[4], KEYS[5]) + drain(KEYS[6], KEYS[7])
end
";

/// KEYS: workers, heartbeat, pending, inflight, inflight_entries,
/// processing, claimed. ARGV: worker id.
/// If the heartbeat key is gone: requeue both claim lists (see `DRAIN`),
/// forget the worker, return the count. If it is still there: return -1,
/// change nothing.
pub(crate) static REQUEUE_IF_DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{DRAIN}
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local n = drain_all()
redis.call('SREM', KEYS[1], ARGV[1])
return n
"
    ))
});

/// KEYS: workers, heartbeat, pending, inflight, inflight_entries,
/// processing, claimed. ARGV: worker id.
/// Clean shutdown: requeue whatever is left in both claim lists (see
/// `DRAIN`), delete the heartbeat, forget the worker. Returns the count
/// requeued.
pub(crate) static UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{DRAIN}
local n = drain_all()
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return n
"
    ))
});

/// KEYS: failed, failed_entries, pending. ARGV: HSCAN cursor, COUNT hint.
/// One HSCAN step over failed_entries: each entry found goes to the tail of
/// pending and leaves both hashes. Returns {next cursor, count moved}.
pub(crate) static RETRY_FAILED_STEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HSCAN', KEYS[2], ARGV[1], 'COUNT', ARGV[2])
local kv = r[2]
local n = 0
for i = 1, #kv, 2 do
  redis.call('RPUSH', KEYS[3], kv[i + 1])
  redis.call('HDEL', KEYS[2], kv[i])
  redis.call('HDEL', KEYS[1], kv[i])
  n = n + 1
end
return {r[1], n}
",
    )
});

/// KEYS: inflight, bad. ARGV: raw. Moves one malformed element out of
/// the inflight list to `bad` (if the list still holds it).
pub(crate) static QUARANTINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
return 1
",
    )
});

/// KEYS: the host's slots hash (worker → slots held), the set of hosts
/// with slots. ARGV: worker, limit, want, heartbeat key prefix, host.
/// Counts the slots held by live workers (a holder whose heartbeat key is
/// gone is dropped from the hash: its leases expired with it), takes up to
/// `want` of what is free under `limit` for the worker, and returns how
/// many. One `EXISTS` per other holder: a handful of workers, not entries.
pub(crate) static TAKE_SLOTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('HGETALL', KEYS[1])
local used = 0
for i = 1, #held, 2 do
  local w = held[i]
  if w ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. w) == 0 then
    redis.call('HDEL', KEYS[1], w)
  else
    used = used + tonumber(held[i + 1])
  end
end
local n = math.min(tonumber(ARGV[2]) - used, tonumber(ARGV[3]))
if n <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], n)
redis.call('SADD', KEYS[2], ARGV[5])
return n
",
    )
});

/// KEYS: the set of hosts with slots, then one slots hash per host.
/// ARGV: worker, then per hash: host, count. Gives the slots back; a
/// worker left with none leaves the hash, and an empty hash's host leaves
/// the set. A count below zero (the worker was presumed dead meanwhile and
/// its leases dropped) is cleared the same way.
pub(crate) static GIVE_SLOTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 2, #KEYS do
  local j = (i - 2) * 2 + 2
  if redis.call('HINCRBY', KEYS[i], ARGV[1], -tonumber(ARGV[j + 1])) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[1])
    if redis.call('HLEN', KEYS[i]) == 0 then
      redis.call('SREM', KEYS[1], ARGV[j])
    end
  end
end
return #KEYS - 1
",
    )
});

/// KEYS: the set of hosts with slots. ARGV: worker, slots key prefix.
/// Drops every slot the worker holds, on any host (shutdown, or a start
/// under the id of a worker that died holding slots).
pub(crate) static GIVE_ALL_SLOTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for _, host in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. host
  redis.call('HDEL', key, ARGV[1])
  if redis.call('HLEN', key) == 0 then
    redis.call('SREM', KEYS[1], host)
  end
end
return 1
",
    )
});

/// KEYS: the rate bucket (hash: tokens, at in µs of Redis's clock).
/// ARGV: rate (bytes/s), burst (bytes), bytes read. Refills the bucket for
/// the time since the last charge (up to `burst`), takes the bytes, and
/// returns how many µs the caller should pause for the debt to be paid (0
/// if none). The clock is Redis's own, so workers' clocks need not agree.
pub(crate) static CHARGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]) or 0, tonumber(b[2]) or now
local elapsed = math.max(0, now - at)
tokens = math.min(burst, tokens + elapsed * rate / 1000000) - tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], 3600000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000000 / rate)
",
    )
});
