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

/// Finds the first element of list KEYS[1] whose JSON `id` is `id`.
/// Processing lists are short (a worker's in-flight entries), so a scan is cheap.
const FIND: &str = r"
local function find(key, id)
  local items = redis.call('LRANGE', key, 0, -1)
  for _, raw in ipairs(items) do
    local ok, e = pcall(cjson.decode, raw)
    if ok and type(e) == 'table' and e.id == id then
      return raw
    end
  end
  return nil
end
";

/// KEYS: processing, done, failed, failed_entries.
/// ARGV: id, ok ('1'/'0'), result json, entry json (used if not found in processing).
/// Returns 1 if the entry was in the processing list, else 0.
/// A failure is not recorded for an id that is already done (success wins).
pub(crate) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{FIND}
local raw = find(KEYS[1], ARGV[1])
if raw then
  redis.call('LREM', KEYS[1], 1, raw)
end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
elseif redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[1], raw or ARGV[4])
end
if raw then return 1 end
return 0
"
    ))
});

/// KEYS: processing, pending. ARGV: id.
/// Moves the entry from the processing list to the head of pending.
/// Returns 1 if it was there, else 0.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{FIND}
local raw = find(KEYS[1], ARGV[1])
if raw then
  redis.call('LREM', KEYS[1], 1, raw)
  redis.call('LPUSH', KEYS[2], raw)
  return 1
end
return 0
"
    ))
});

/// Moves every element of KEYS[3] (processing) to the head of KEYS[4]
/// (pending), keeping their order, and returns how many.
const DRAIN: &str = r"
local function drain(src, dst)
  local n = 0
  while redis.call('LMOVE', src, dst, 'RIGHT', 'LEFT') do
    n = n + 1
  end
  return n
end
";

/// KEYS: workers, heartbeat, processing, pending. ARGV: worker id.
/// If the heartbeat key is gone: requeue the processing list, forget the
/// worker, return the count. If it is still there: return -1, change nothing.
pub(crate) static REQUEUE_IF_DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{DRAIN}
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local n = drain(KEYS[3], KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
return n
"
    ))
});

/// KEYS: workers, heartbeat, processing, pending. ARGV: worker id.
/// Clean shutdown: requeue whatever is left in the processing list, delete
/// the heartbeat, forget the worker. Returns the count requeued.
pub(crate) static UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{DRAIN}
local n = drain(KEYS[3], KEYS[4])
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

/// KEYS: processing, bad. ARGV: raw.
/// Moves one malformed element out of the processing list.
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
