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

/// The id field of an entry's JSON text, without decoding all of it: in
/// JSON every quote inside a string is escaped, so `"id":"` can only be the
/// key itself. Rust checks the id against the URL after the claim.
const ID_OF: &str = r#"
local function id_of(raw)
  return string.match(raw, '"id":"([^"]*)"')
end
"#;

/// KEYS: pending, inflight, inflight_entries. ARGV: max (at most a few
/// thousand: the entries are passed to one `RPUSH` and one `HSET` as
/// arguments). Moves up to `max` entries from the head of pending: each
/// one's id goes to the tail of the worker's inflight list and its exact
/// text into its inflight_entries hash under that id (an element without an id goes to the list as it is,
/// for the caller to quarantine). A fixed number of commands per call,
/// whatever `max`. Returns the texts, in order.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{ID_OF}
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('LTRIM', KEYS[1], #items, -1)
local held, notes = {{}}, {{}}
for n, raw in ipairs(items) do
  local id = id_of(raw)
  if id then
    held[n] = id
    notes[#notes + 1] = id
    notes[#notes + 1] = raw
  else
    held[n] = raw
  end
end
redis.call('RPUSH', KEYS[2], unpack(held))
if #notes > 0 then
  redis.call('HSET', KEYS[3], unpack(notes))
end
return items
"
    ))
});

/// KEYS: inflight, inflight_entries. ARGV: id, raw. After a `BLMOVE` put
/// the text `raw` at the tail of the inflight list: replaces it there with
/// its id and notes the text in the hash, as `CLAIM` does. Returns 1 if
/// the text was there.
pub(crate) static NOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('LREM', KEYS[1], -1, ARGV[2]) == 0 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
",
    )
});

/// Removes the entry `id` from the inflight list: its id, else (a `BLMOVE`
/// whose `NOTE` was lost with a connection) the text the inflight_entries
/// hash or the caller gives. Returns whether it was there, and the entry's
/// text if known. Leaves the hash alone.
const TAKE: &str = r"
local function take(list, notes, id, fallback)
  local raw = redis.call('HGET', notes, id)
  if redis.call('LREM', list, 1, id) > 0 then
    return true, raw or fallback
  end
  if raw and redis.call('LREM', list, 1, raw) > 0 then
    return true, raw
  end
  if fallback and fallback ~= '' and fallback ~= raw
    and redis.call('LREM', list, 1, fallback) > 0 then
    return true, fallback
  end
  return false, raw or fallback
end
";

/// KEYS: inflight, inflight_entries, done, failed, failed_entries.
/// ARGV: groups of four: id, ok ('1'/'0'), result json, entry json (sent
/// only with a failure, '' with a success; at most a few hundred groups:
/// ids and results are passed to single commands).
/// Returns one 0/1 per group: 1 if the entry was in the inflight list.
/// A failure is not recorded for an id that is already done, or done earlier
/// in the same call (success wins).
///
/// A batch that is at least an eighth of the inflight list reads the
/// list once, counts its elements in a Lua table and writes back what is
/// left (`LRANGE`, `DEL`, `RPUSH`: a fixed number of commands); a smaller
/// one removes each id with its own `LREM`. Either way the first copy of
/// each element goes, as `LREM key 1` would. An id not in the list is
/// looked for as its whole text (as a `BLMOVE` whose `NOTE` was lost
/// leaves it): the text the hash notes, else the one a failure carries. A failure also reads its text,
/// checks `done` and writes two fields; the rest is one command per call.
pub(crate) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local k = #ARGV / 4
local whole = k * 8 >= redis.call('LLEN', KEYS[1])
local held, count, taken = nil, {}, {}
if whole then
  held = redis.call('LRANGE', KEYS[1], 0, -1)
  for _, e in ipairs(held) do
    count[e] = (count[e] or 0) + 1
  end
end
local function remove(e)
  if not whole then
    return redis.call('LREM', KEYS[1], 1, e) > 0
  end
  if (count[e] or 0) == 0 then return false end
  count[e] = count[e] - 1
  taken[e] = (taken[e] or 0) + 1
  return true
end
local ids, done, done_now, out = {}, {}, {}, {}
for i = 1, #ARGV, 4 do
  local id, n = ARGV[i], #ids + 1
  ids[n] = id
  if remove(id) then
    out[n] = 1
  else
    local raw = redis.call('HGET', KEYS[2], id)
    local own = ARGV[i + 3]
    if (raw and remove(raw)) or (own ~= '' and own ~= raw and remove(own)) then
      out[n] = 1
    else
      out[n] = 0
    end
  end
  if ARGV[i + 1] == '1' then
    done[#done + 1] = id
    done[#done + 1] = ARGV[i + 2]
    done_now[id] = true
  elseif not done_now[id] and redis.call('HEXISTS', KEYS[3], id) == 0 then
    local raw = redis.call('HGET', KEYS[2], id)
    if not raw or raw == '' then raw = ARGV[i + 3] end
    redis.call('HSET', KEYS[4], id, ARGV[i + 2])
    redis.call('HSET', KEYS[5], id, raw)
  end
end
if whole and next(taken) then
  local keep = {}
  for _, e in ipairs(held) do
    local t = taken[e]
    if t and t > 0 then
      taken[e] = t - 1
    else
      keep[#keep + 1] = e
    end
  end
  redis.call('DEL', KEYS[1])
  for j = 1, #keep, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(keep, j, math.min(j + 999, #keep)))
  end
end
redis.call('HDEL', KEYS[2], unpack(ids))
if #done > 0 then
  local ok_ids = {}
  for j = 1, #done, 2 do
    ok_ids[#ok_ids + 1] = done[j]
  end
  redis.call('HSET', KEYS[3], unpack(done))
  redis.call('HDEL', KEYS[4], unpack(ok_ids))
  redis.call('HDEL', KEYS[5], unpack(ok_ids))
end
return out
",
    )
});

/// KEYS: inflight, pending, inflight_entries. ARGV: id, entry json.
/// Moves the entry from the inflight list to the head of pending.
/// Returns 1 if it was there, else 0.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{TAKE}
local found, raw = take(KEYS[1], KEYS[3], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1])
if found then
  redis.call('LPUSH', KEYS[2], raw)
  return 1
end
return 0
"
    ))
});

/// KEYS[3..7]: pending, inflight, inflight_entries, processing, claimed.
/// Moves every element of the worker's two claim lists to the head of
/// pending, each list keeping its order, and deletes their hashes. An
/// element of `inflight` is an id, pushed as the text `inflight_entries`
/// notes for it (a whole text, left by a blocking claim whose note was
/// lost, is pushed as it is); `processing` holds whole texts, pushed as
/// they are. `processing` goes last, so its entries, claimed before any
/// of `inflight` (a worker that kept the same id across an upgrade), end
/// up first. Returns how many.
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

/// KEYS: inflight, bad, inflight_entries. ARGV: raw.
/// Moves one malformed element out of the inflight list to `bad`: the
/// text itself if the list holds it, else its id when the hash notes this
/// text under it (the note goes too).
pub(crate) static QUARANTINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{ID_OF}
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
local id = id_of(ARGV[1])
if id and redis.call('HGET', KEYS[3], id) == ARGV[1] then
  redis.call('HDEL', KEYS[3], id)
  if redis.call('LREM', KEYS[1], 1, id) > 0 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
  end
end
return 1
"
    ))
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
