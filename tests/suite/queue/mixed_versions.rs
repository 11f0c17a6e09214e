//! Workers of earlier fetchq builds and of this one on the same queue. The
//! builds before the `inflight` keys kept a worker's claims as whole entry texts in
//! `processing:WORKER` (with `claimed:WORKER`, id → text, beside it) and
//! requeued a dead worker by moving every element of that list to
//! `pending` as it was. This build keeps ids under other names: the earlier
//! requeue (run here as the very script it ran) must find nothing of a
//! newer worker to move, and this build must return an earlier worker's
//! claims. The earlier worker's keys are written by hand, as it wrote them.

use std::time::Duration;

use fetchq::queue::QueueEntry;

use super::distributed::{
    BATCH_QUEUE, KilledW0, Worker, assert_all_exit_0, assert_all_files, counts, enqueue_ok, held_by,
    poll_status, serve, status_json, w0_killed_holding_a_full_batch, w1_finishes_after_w0,
};
use crate::support::redis::RedisServer;
use crate::support::*;

/// The requeue of one dead worker as the builds that kept ids in
/// `inflight:WORKER` (texts in `inflight_entries:WORKER`) ran it. KEYS:
/// workers, heartbeat, pending, inflight, inflight_entries, processing,
/// claimed. ARGV: worker id.
const ID_LAYOUT_REQUEUE: &str = r"
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
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local n = drain(KEYS[4], KEYS[5]) + drain(KEYS[6], KEYS[7])
redis.call('SREM', KEYS[1], ARGV[1])
return n
";

/// The requeue of one dead worker as an earlier fetchq ran it. KEYS:
/// workers, heartbeat, processing, pending, claimed. ARGV: worker id.
const EARLIER_REQUEUE: &str = r"
local function drain(src, dst)
  local n = 0
  while redis.call('LMOVE', src, dst, 'RIGHT', 'LEFT') do
    n = n + 1
  end
  return n
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local n = drain(KEYS[3], KEYS[4])
redis.call('DEL', KEYS[5])
redis.call('SREM', KEYS[1], ARGV[1])
return n
";

/// What an earlier fetchq's `status --requeue-stale` did on queue
/// `default`: its requeue for every worker in `workers` and every owner of
/// a `processing:` list. Returns how many elements it moved to `pending`.
fn earlier_requeue_stale(con: &mut ::redis::Connection) -> i64 {
    let p = "fetchq:default:";
    let mut ids: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(format!("{p}workers"))
        .query(con)
        .unwrap();
    let lists: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{p}processing:*"))
        .query(con)
        .unwrap();
    ids.extend(
        lists
            .iter()
            .filter_map(|k| k.strip_prefix(&format!("{p}processing:")).map(str::to_string)),
    );
    ids.sort();
    ids.dedup();
    let mut moved = 0;
    for w in ids {
        let n: i64 = ::redis::cmd("EVAL")
            .arg(EARLIER_REQUEUE)
            .arg(5)
            .arg(format!("{p}workers"))
            .arg(format!("{p}heartbeat:{w}"))
            .arg(format!("{p}processing:{w}"))
            .arg(format!("{p}pending"))
            .arg(format!("{p}claimed:{w}"))
            .arg(&w)
            .query(con)
            .unwrap();
        moved += n.max(0);
    }
    moved
}

fn llen(con: &mut ::redis::Connection, key: &str) -> u64 {
    ::redis::cmd("LLEN").arg(key).query(con).unwrap()
}

/// Claims `k` entries for `worker` as an earlier fetchq did: moved from
/// `pending` to its `processing` list, each noted in `claimed`, and the
/// worker registered (its heartbeat is left to the caller: none = dead).
fn earlier_claims(con: &mut ::redis::Connection, worker: &str, k: usize) {
    let p = "fetchq:default:";
    for _ in 0..k {
        let raw: String = ::redis::cmd("LMOVE")
            .arg(format!("{p}pending"))
            .arg(format!("{p}processing:{worker}"))
            .arg("LEFT")
            .arg("RIGHT")
            .query(con)
            .unwrap();
        let id = QueueEntry::from_json(&raw).unwrap().id;
        let _: () = ::redis::cmd("HSET")
            .arg(format!("{p}claimed:{worker}"))
            .arg(id)
            .arg(&raw)
            .query(con)
            .unwrap();
    }
    let _: () = ::redis::cmd("SADD")
        .arg(format!("{p}workers"))
        .arg(worker)
        .query(con)
        .unwrap();
}

/// [`w0_killed_holding_a_full_batch`], once `w0`'s heartbeat has expired.
fn w0_dead_holding_a_full_batch() -> KilledW0 {
    let killed = w0_killed_holding_a_full_batch();
    wait_for(Duration::from_secs(10), "w0's heartbeat to expire", || {
        poll_status(&killed.url)
            .workers
            .iter()
            .any(|w| w.id == "w0" && !w.alive)
    });
    killed
}

/// A worker of this build is SIGKILLed holding a full batch; once its
/// heartbeat is gone, an earlier fetchq's requeue runs first. It must move
/// nothing (it would have put bare ids in `pending`, which end in `bad`),
/// and a worker of this build then returns and downloads every entry.
#[test]
fn an_earlier_fetchqs_requeue_never_sees_a_newer_workers_claims() {
    let k = w0_dead_holding_a_full_batch();
    let (root, url, held) = (k.t.root(), k.url.as_str(), k.held);

    let mut con = k.redis.connection();
    let pending = llen(&mut con, "fetchq:default:pending");
    assert_eq!(
        earlier_requeue_stale(&mut con),
        0,
        "the earlier requeue moved a newer worker's claims"
    );
    assert_eq!(llen(&mut con, "fetchq:default:pending"), pending);
    assert_eq!(
        held_by(&poll_status(url), "w0"),
        held,
        "w0's claims are where they were"
    );

    let s = w1_finishes_after_w0(root, url, BATCH_QUEUE, k.w0, held);
    assert_eq!(s["bad"], 0, "{s}");
}

/// A worker of this build is SIGKILLed holding a full batch, and a
/// fetchq of the id layout requeues it (its very script): it reads every
/// element as a whole text, so the entries go back to `pending` as they
/// were, and a worker of this build downloads every one; none goes to
/// `bad`.
#[test]
fn the_id_layouts_requeue_returns_this_builds_claims_as_they_were() {
    let k = w0_dead_holding_a_full_batch();
    let (root, url, held) = (k.t.root(), k.url.as_str(), k.held);
    let mut con = k.redis.connection();
    let p = "fetchq:default:";
    let moved: i64 = ::redis::cmd("EVAL")
        .arg(ID_LAYOUT_REQUEUE)
        .arg(7)
        .arg(format!("{p}workers"))
        .arg(format!("{p}heartbeat:w0"))
        .arg(format!("{p}pending"))
        .arg(format!("{p}inflight:w0"))
        .arg(format!("{p}inflight_entries:w0"))
        .arg(format!("{p}processing:w0"))
        .arg(format!("{p}claimed:w0"))
        .arg("w0")
        .query(&mut con)
        .unwrap();
    assert_eq!(moved as u64, held);
    let pending: Vec<String> = ::redis::cmd("LRANGE")
        .arg(format!("{p}pending"))
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert!(
        pending.iter().all(|e| QueueEntry::from_json(e).is_ok()),
        "{pending:?}"
    );

    let mut workers = vec![
        Worker::spawn(root, url, "w1", &["--drain", "-j", "16"], &[]),
        k.w0,
    ];
    assert_all_exit_0(&mut workers[..1]);
    assert_all_files(root, BATCH_QUEUE, &workers);
    let s = status_json(root, url);
    assert_eq!(counts(&s), [0, 0, BATCH_QUEUE as u64, 0], "{s}");
    assert_eq!(s["bad"], 0, "{s}");
}

/// A worker of an earlier fetchq died holding 8 entries, written as it
/// wrote them: moved from `pending` to its `processing` list, noted in
/// `claimed`, registered, heartbeat expired. A draining worker of this
/// build returns them and downloads every entry once; none goes to `bad`.
#[test]
fn a_dead_earlier_workers_claims_are_returned_and_downloaded() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let n = 20;
    let list = serve(server, n, Duration::ZERO);
    enqueue_ok(root, &url, &list);

    let mut con = redis.connection();
    earlier_claims(&mut con, "old", 8);
    let s = poll_status(&url);
    assert_eq!((s.pending, s.processing, held_by(&s, "old")), (12, 8, 8), "{s:?}");

    let mut workers = vec![Worker::spawn(
        root,
        &url,
        "w1",
        &["--drain", "-j", "4"],
        &[("FETCHQ_HEARTBEAT_TTL_MS", "1000")],
    )];
    assert_all_exit_0(&mut workers);
    assert_all_files(root, n, &workers);
    for i in 0..n {
        let path = super::distributed::path(i);
        assert_eq!(server.hits(&path), 1, "{path}\n{}", workers[0].stderr());
    }
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, n as u64, 0], "{s}");
    assert_eq!(s["bad"], 0, "{s}");
    assert!(
        workers[0].stderr().contains("requeued 8 entries of dead workers"),
        "{}",
        workers[0].stderr()
    );
    let left: Vec<String> = ::redis::cmd("KEYS")
        .arg("fetchq:default:*:old")
        .query(&mut con)
        .unwrap();
    assert_eq!(left, Vec::<String>::new());
}

/// A machine upgraded in place: its earlier worker died holding 5 entries,
/// and a worker of this build starts under the same `--worker-id` (so the
/// heartbeat is alive again). It finds itself holding entries it never
/// claimed, returns them and downloads every entry once.
#[test]
fn a_worker_returns_the_claims_its_id_held_under_an_earlier_fetchq() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let n = 12;
    let list = serve(server, n, Duration::ZERO);
    enqueue_ok(root, &url, &list);
    earlier_claims(&mut redis.connection(), "w1", 5);

    let mut workers = vec![Worker::spawn(root, &url, "w1", &["--drain", "-j", "4"], &[])];
    assert_all_exit_0(&mut workers);
    assert_all_files(root, n, &workers);
    for i in 0..n {
        let path = super::distributed::path(i);
        assert_eq!(server.hits(&path), 1, "{path}\n{}", workers[0].stderr());
    }
    assert!(
        workers[0].stderr().contains("returned 5 orphaned entries"),
        "{}",
        workers[0].stderr()
    );
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, n as u64, 0], "{s}");
    assert_eq!(s["bad"], 0, "{s}");
}
