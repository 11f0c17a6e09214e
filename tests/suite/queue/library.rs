//! The Redis queue against a real `redis-server` (started per test on a free
//! loopback port; see `support::redis`). Fails, never skips, without one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fetchq::queue::{Queue, QueueEntry, QueueError, RetryPolicy, default_worker_id};

use crate::support::poll_until;
use crate::support::redis::RedisServer;

const SHORT: Duration = Duration::from_millis(100);

fn entry(i: u64) -> QueueEntry {
    QueueEntry::new(format!("https://example.com/f{i}"), None, None, "urls.txt", i)
}

/// A queue `name` on `server` with worker `worker` registered and entries
/// `0..n` enqueued in order.
fn queue_with_entries(server: &RedisServer, name: &str, worker: &str, n: u64) -> Queue {
    let mut q = Queue::connect(&server.url(), name).unwrap();
    q.register_worker(worker).unwrap();
    for i in 0..n {
        q.enqueue(&entry(i)).unwrap();
    }
    q
}

fn pending_ids(server: &RedisServer, queue: &str) -> Vec<String> {
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("fetchq:{queue}:pending"))
        .arg(0)
        .arg(-1)
        .query(&mut server.connection())
        .unwrap();
    list.iter()
        .map(|s| QueueEntry::from_json(s).unwrap().id)
        .collect()
}

#[test]
fn enqueue_dedups_by_url_and_out() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "dedup").unwrap();
    let a = entry(1);
    assert!(q.enqueue(&a).unwrap());
    assert!(!q.enqueue(&a).unwrap(), "same url+out is a duplicate");
    let same_other_line = QueueEntry::new(a.url.clone(), None, None, "other.txt", 99);
    assert!(!q.enqueue(&same_other_line).unwrap());
    let other_out = QueueEntry::new(a.url.clone(), Some("x/y".into()), None, "urls.txt", 2);
    assert!(q.enqueue(&other_out).unwrap(), "another out is another download");

    // Batches: duplicates inside the batch and against the queue; > 1 script call.
    let mut batch: Vec<QueueEntry> = (10..1200).map(entry).collect();
    batch.push(entry(10));
    batch.push(a.clone());
    let flags = q.enqueue_many(&batch).unwrap();
    assert_eq!(flags.len(), batch.len());
    assert_eq!(flags.iter().filter(|f| **f).count(), 1190);
    assert!(!flags[1190] && !flags[1191]);

    let s = q.status().unwrap();
    assert_eq!((s.pending, s.seen), (1192, 1192));
    // FIFO order across the pipelined batches: the first enqueued is at the head.
    let mut expected = vec![a.id.clone(), other_out.id.clone()];
    expected.extend((10..1200).map(|i| entry(i).id));
    assert!(
        pending_ids(&server, "dedup") == expected,
        "pending is not in enqueue order"
    );
}

/// Batches go to Redis as `EVALSHA`, pipelined: a server that forgot its
/// scripts (as after a restart, or `SCRIPT FLUSH`) gets the script again.
#[test]
fn enqueue_loads_its_script_again_after_a_flush() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "flushed").unwrap();
    assert!(q.enqueue(&entry(0)).unwrap());
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.connection())
        .unwrap();
    let batch: Vec<QueueEntry> = (1..1300).map(entry).collect();
    let flags = q.enqueue_many(&batch).unwrap();
    assert!(flags.iter().all(|f| *f), "every entry is new");
    assert_eq!(q.status().unwrap().pending, 1300);
}

#[test]
fn claim_moves_to_the_workers_processing_list() {
    let server = RedisServer::start();
    let w = "host:1:aaaa";
    let mut q = queue_with_entries(&server, "claim", w, 3);
    assert_eq!(q.claim(w, SHORT).unwrap(), Some(entry(0)));
    assert_eq!(q.claim(w, Duration::ZERO).unwrap(), Some(entry(1)));
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing), (1, 2));
    assert_eq!(s.workers.len(), 1);
    assert_eq!(s.workers[0].id, w);
    assert!(s.workers[0].alive && s.workers[0].registered);
    assert_eq!(s.workers[0].processing, 2);

    assert_eq!(q.claim(w, SHORT).unwrap(), Some(entry(2)));
    // Empty: BLMOVE times out after about `wait`, no longer.
    let t = Instant::now();
    assert_eq!(q.claim(w, Duration::from_millis(300)).unwrap(), None);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(q.claim(w, Duration::ZERO).unwrap(), None);
    // A sub-millisecond wait must not turn into "block forever".
    let t = Instant::now();
    assert_eq!(q.claim(w, Duration::from_micros(10)).unwrap(), None);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_push_wakes_a_blocked_claim() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "wake").unwrap();
    let mut producer = q.try_clone().unwrap();
    q.register_worker("w").unwrap();
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            producer.enqueue(&entry(7)).unwrap();
        });
        assert_eq!(q.claim("w", Duration::from_secs(5)).unwrap(), Some(entry(7)));
    });
    assert!(t.elapsed() < Duration::from_secs(4));
}

#[test]
fn complete_records_done_or_failed_and_leaves_processing() {
    let server = RedisServer::start();
    let w = "w1";
    let mut q = queue_with_entries(&server, "complete", w, 3);
    let a = q.claim(w, SHORT).unwrap().unwrap();
    let b = q.claim(w, SHORT).unwrap().unwrap();
    assert!(q.complete(w, &a, true, r#"{"bytes":10}"#).unwrap());
    assert!(q.complete(w, &b, false, r#"{"error":"404"}"#).unwrap());
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing, s.done, s.failed), (1, 0, 1, 1));

    let mut con = server.connection();
    let done: Option<String> = redis::cmd("HGET")
        .arg("fetchq:complete:done")
        .arg(&a.id)
        .query(&mut con)
        .unwrap();
    assert_eq!(done.as_deref(), Some(r#"{"bytes":10}"#));
    let failed_entry: String = redis::cmd("HGET")
        .arg("fetchq:complete:failed_entries")
        .arg(&b.id)
        .query(&mut con)
        .unwrap();
    assert_eq!(QueueEntry::from_json(&failed_entry).unwrap(), b);

    // Repeating a completion (a retry after a lost reply) is harmless.
    assert!(!q.complete(w, &a, true, r#"{"bytes":10}"#).unwrap());
    // A failure never overwrites a success...
    assert!(!q.complete(w, &a, false, r#"{"error":"late"}"#).unwrap());
    // ...and a success clears a failure.
    assert!(!q.complete(w, &b, true, "{}").unwrap());
    let s = q.status().unwrap();
    assert_eq!((s.done, s.failed), (2, 0));
}

#[test]
fn release_puts_the_entry_back_at_the_head() {
    let server = RedisServer::start();
    let mut q = queue_with_entries(&server, "release", "w", 3);
    let a = q.claim("w", SHORT).unwrap().unwrap();
    let b = q.claim("w", SHORT).unwrap().unwrap();
    // Matched by id: a re-built copy works too.
    let b_copy = QueueEntry::from_json(&b.to_json()).unwrap();
    assert!(q.release("w", &b_copy).unwrap());
    assert!(q.release("w", &a).unwrap());
    assert!(!q.release("w", &a).unwrap(), "no longer in processing");
    assert_eq!(
        pending_ids(&server, "release"),
        vec![a.id.clone(), b.id.clone(), entry(2).id]
    );
    assert_eq!(q.claim("w", SHORT).unwrap(), Some(a));
    assert_eq!(q.status().unwrap().processing, 1);
}

#[test]
fn requeue_stale_moves_only_dead_workers_entries() {
    let server = RedisServer::start();
    let url = server.url();
    let ttl = Duration::from_millis(300);
    let mut dead = Queue::connect(&url, "stale").unwrap().with_heartbeat_ttl(ttl);
    let mut live = Queue::connect(&url, "stale")
        .unwrap()
        .with_heartbeat_ttl(Duration::from_secs(30));
    // Short TTL but kept alive by a heartbeat thread on its own connection.
    let mut beating = Queue::connect(&url, "stale").unwrap().with_heartbeat_ttl(ttl);
    let mut beater = beating.try_clone().unwrap();
    assert_eq!(beater.heartbeat_interval(), Duration::from_millis(100));

    for i in 0..6 {
        dead.enqueue(&entry(i)).unwrap();
    }
    dead.register_worker("dead").unwrap();
    live.register_worker("live").unwrap();
    beating.register_worker("beating").unwrap();
    let d0 = dead.claim("dead", SHORT).unwrap().unwrap();
    let d1 = dead.claim("dead", SHORT).unwrap().unwrap();
    let l0 = live.claim("live", SHORT).unwrap().unwrap();
    let b0 = beating.claim("beating", SHORT).unwrap().unwrap();
    assert_eq!(dead.requeue_stale().unwrap(), 0, "everyone is alive");

    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Bounded: at most 100 beats (10 s).
            for _ in 0..100 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                beater.heartbeat("beating").unwrap();
                std::thread::sleep(beater.heartbeat_interval());
            }
        });
        let gone = poll_until(Duration::from_secs(5), || {
            let s = live.status().unwrap();
            s.workers.iter().any(|w| w.id == "dead" && !w.alive)
        });
        assert!(gone, "the dead worker's heartbeat should expire");
        // Well past the short TTL: the beating worker must still be alive.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(live.requeue_stale().unwrap(), 2);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });

    // The dead worker's entries are back at the head, in claim order.
    let ids = pending_ids(&server, "stale");
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[..2], [d0.id.clone(), d1.id.clone()]);
    let s = live.status().unwrap();
    assert_eq!((s.pending, s.processing), (4, 2));
    let names: Vec<&str> = s.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(names, ["beating", "live"], "the dead worker is forgotten");
    assert!(s.workers.iter().all(|w| w.alive && w.processing == 1));
    assert!(live.complete("live", &l0, true, "{}").unwrap());
    assert!(beating.complete("beating", &b0, true, "{}").unwrap());
    assert_eq!(live.requeue_stale().unwrap(), 0);
    // A late completion by the presumed-dead worker is still recorded.
    assert!(!dead.complete("dead", &d0, true, "{}").unwrap());
    assert_eq!(live.status().unwrap().done, 3);
}

#[test]
fn unregister_requeues_leftovers_and_is_drained_tracks_work() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "drain").unwrap();
    assert!(q.is_drained().unwrap());
    q.register_worker("w").unwrap();
    q.enqueue(&entry(1)).unwrap();
    q.enqueue(&entry(2)).unwrap();
    assert!(!q.is_drained().unwrap());
    let a = q.claim("w", SHORT).unwrap().unwrap();
    let _orphan = q.claim("w", SHORT).unwrap().unwrap();
    assert!(!q.is_drained().unwrap(), "in-flight entries are not done");
    q.complete("w", &a, true, "{}").unwrap();
    assert!(!q.is_drained().unwrap());
    assert_eq!(q.unregister_worker("w").unwrap(), 1);
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing), (1, 0));
    assert!(s.workers.is_empty());
    let b = q.claim("w2", SHORT).unwrap().unwrap();
    q.complete("w2", &b, true, "{}").unwrap();
    assert!(q.is_drained().unwrap());
}

#[test]
fn dead_workers_entries_block_drained_until_requeued() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "dd")
        .unwrap()
        .with_heartbeat_ttl(Duration::from_millis(200));
    q.register_worker("w").unwrap();
    q.enqueue(&entry(1)).unwrap();
    q.claim("w", SHORT).unwrap().unwrap();
    assert!(poll_until(Duration::from_secs(5), || {
        q.status().unwrap().workers.iter().all(|w| !w.alive)
    }));
    assert!(!q.is_drained().unwrap());
    assert_eq!(q.requeue_stale().unwrap(), 1);
    assert_eq!(q.status().unwrap().pending, 1);
}

#[test]
fn retry_failed_moves_failures_back_to_pending() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "retry").unwrap();
    q.register_worker("w").unwrap();
    let n = 1203u64; // several HSCAN batches
    let all: Vec<QueueEntry> = (0..n).map(entry).collect();
    q.enqueue_many(&all).unwrap();
    for _ in 0..n {
        let e = q.claim("w", Duration::ZERO).unwrap().unwrap();
        let ok = e.line.is_multiple_of(3);
        q.complete("w", &e, ok, r#"{"error":"x"}"#).unwrap();
    }
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.done, s.failed), (0, 401, 802));
    assert_eq!(q.retry_failed().unwrap(), 802);
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.done, s.failed, s.seen), (802, 401, 0, n));
    assert_eq!(q.retry_failed().unwrap(), 0);
    let again = q.claim("w", Duration::ZERO).unwrap().unwrap();
    assert!(!again.line.is_multiple_of(3), "a retried entry is a failed one");
}

#[test]
fn status_counts_everything_and_serializes() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "st").unwrap();
    q.register_worker("a").unwrap();
    q.register_worker("b").unwrap();
    for i in 0..10 {
        q.enqueue(&entry(i)).unwrap();
    }
    q.enqueue(&entry(0)).unwrap();
    let e = q.claim("a", SHORT).unwrap().unwrap();
    q.complete("a", &e, true, "{}").unwrap();
    let e = q.claim("a", SHORT).unwrap().unwrap();
    q.complete("a", &e, false, "{}").unwrap();
    q.claim("a", SHORT).unwrap().unwrap();
    q.claim("b", SHORT).unwrap().unwrap();
    q.claim("b", SHORT).unwrap().unwrap();
    // A malformed element is set aside, not handed out again.
    redis::cmd("LPUSH")
        .arg("fetchq:st:pending")
        .arg("not json")
        .query::<()>(&mut server.connection())
        .unwrap();
    match q.claim("b", SHORT) {
        Err(e @ QueueError::BadEntry { .. }) => {
            assert!(!e.is_connection());
            assert!(e.to_string().contains("not json"), "{e}");
        }
        other => panic!("expected BadEntry, got {other:?}"),
    }
    let s = q.status().unwrap();
    assert_eq!(
        (s.pending, s.processing, s.done, s.failed, s.seen, s.bad),
        (5, 3, 1, 1, 10, 1)
    );
    let per: Vec<(&str, u64)> = s.workers.iter().map(|w| (w.id.as_str(), w.processing)).collect();
    assert_eq!(per, [("a", 1), ("b", 2)]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["queue"], "st");
    assert_eq!(json["workers"][1]["processing"], 2);
    assert_eq!(json["workers"][0]["alive"], true);
}

#[test]
fn three_workers_claim_every_entry_exactly_once() {
    let server = RedisServer::start();
    let url = server.url();
    let mut q = Queue::connect(&url, "conc").unwrap();
    let all: Vec<QueueEntry> = (0..300).map(entry).collect();
    assert!(q.enqueue_many(&all).unwrap().iter().all(|f| *f));

    // All three connect and register first, then start claiming together:
    // a thread that was slow to connect must not find the queue drained.
    let ready = std::sync::Barrier::new(3);
    let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                let ready = &ready;
                s.spawn(move || {
                    let mut q = Queue::connect(&url, "conc").unwrap();
                    let me = default_worker_id();
                    q.register_worker(&me).unwrap();
                    ready.wait();
                    let mut got = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    // Bounded in count (300 entries + a few empty polls) and time.
                    for _ in 0..400 {
                        assert!(Instant::now() < deadline, "worker took too long");
                        match q.claim(&me, SHORT).unwrap() {
                            Some(e) => {
                                assert!(q.complete(&me, &e, true, "{}").unwrap());
                                got.push(e.id);
                            }
                            None => {
                                if q.is_drained().unwrap() {
                                    break;
                                }
                            }
                        }
                    }
                    q.unregister_worker(&me).unwrap();
                    got
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: usize = claimed.iter().map(Vec::len).sum();
    let unique: HashSet<&String> = claimed.iter().flatten().collect();
    assert_eq!(total, 300, "each entry claimed once: {total} claims");
    assert_eq!(unique.len(), 300);
    assert_eq!(unique, all.iter().map(|e| &e.id).collect::<HashSet<_>>());
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing, s.done), (0, 0, 300));
    assert!(
        claimed.iter().all(|c| !c.is_empty()),
        "all three took part: {:?}",
        claimed.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

/// Redis restarts mid-run. The server runs with `appendonly yes,
/// appendfsync always`, so the queue survives the restart and we can check
/// that nothing was lost or duplicated, not just that calls come back.
#[test]
fn operations_recover_after_a_redis_restart() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut q = queue_with_entries(&server, "rs", "w", 5);
    let policy = RetryPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        give_up_after: Duration::from_secs(20),
    };
    let first = q.claim("w", SHORT).unwrap().unwrap();

    // A plain restart: the next call fails as a connection error, a retry succeeds.
    server.restart();
    let e = q.status().unwrap_err();
    assert!(e.is_connection(), "{e:?}");
    let s = q.with_retry(&policy, |q| q.status()).unwrap();
    assert_eq!((s.pending, s.processing), (4, 1), "AOF kept the queue");

    // Down for a while, with a claim blocked in BLMOVE and retrying meanwhile.
    let mut notes = 0u32;
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            server.stop();
            std::thread::sleep(Duration::from_secs(1));
            server.start_again();
        });
        // Drain what is pending, then block on the empty queue across the outage.
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && got.len() < 4 {
            let r = q.with_retry_notify(
                &policy,
                |q| q.claim("w", Duration::from_millis(200)),
                |_, _| notes += 1,
            );
            if let Some(e) = r.unwrap() {
                got.push(e);
            }
        }
        // And keep polling until the outage has surely happened and passed.
        for _ in 0..20 {
            let r = q.with_retry_notify(&policy, |q| q.claim("w", SHORT), |_, _| notes += 1);
            assert!(r.unwrap().is_none());
        }
        got
    });
    assert!(notes > 0, "the outage was seen and retried through");
    assert_eq!(got.len(), 4);
    let s = q.with_retry(&policy, |q| q.status()).unwrap();
    let processing = 1 + got.len() as u64;
    assert_eq!((s.pending, s.processing), (4 - got.len() as u64, processing));
    q.with_retry(&policy, |q| q.complete("w", &first, true, "{}"))
        .unwrap();
    for e in &got {
        q.with_retry(&policy, |q| q.complete("w", e, true, "{}")).unwrap();
    }
    let s = q.status().unwrap();
    assert_eq!(s.done, 1 + got.len() as u64);
}

#[test]
fn with_retry_gives_up_in_bounded_time_and_passes_other_errors_through() {
    let mut server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "gu").unwrap();
    server.stop();
    let t = Instant::now();
    let mut notes = 0;
    let err = q
        .with_retry_notify(
            &RetryPolicy::give_up_after(Duration::from_secs(1)),
            |q| q.status(),
            |_, _| notes += 1,
        )
        .unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(notes >= 2, "backed off and retried: {notes}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");

    // Reconnect works once the server is back.
    server.start_again();
    q.reconnect().unwrap();
    assert_eq!(q.status().unwrap().pending, 0);

    // Not a connection error: returned at once.
    let mut calls = 0;
    let t = Instant::now();
    let err = q
        .with_retry(&RetryPolicy::default(), |q| {
            calls += 1;
            q.claim("bad id", SHORT)
        })
        .unwrap_err();
    assert!(matches!(err, QueueError::BadWorkerId { .. }));
    assert_eq!(calls, 1);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn connect_errors_are_typed_and_hide_the_password() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Queue::connect(&format!("redis://:s3cret@127.0.0.1:{port}/"), "q").unwrap_err();
    assert!(matches!(err, QueueError::Connect { .. }), "{err:?}");
    assert!(err.is_connection());
    let msg = err.to_string();
    assert!(
        !msg.contains("s3cret") && msg.contains(&port.to_string()),
        "{msg}"
    );

    let server = RedisServer::start();
    let q = Queue::connect(&server.url(), "ok").unwrap();
    assert!(!format!("{q:?}").contains("s3cret"));
}

/// Every key of queue `queue` whose name starts with `fetchq:QUEUE:PART`.
fn keys_like(server: &RedisServer, queue: &str, part: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("fetchq:{queue}:{part}*"))
        .query(&mut server.connection())
        .unwrap()
}

#[test]
fn batches_claim_in_order_and_complete_in_one_call() {
    let server = RedisServer::start();
    let mut q = queue_with_entries(&server, "batch", "w", 10);
    let batch = q.claim_many("w", 4, SHORT).unwrap();
    let ids: Vec<String> = batch.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, (0..4).map(|i| entry(i).id).collect::<Vec<_>>());
    assert!(batch.bad.is_empty());
    // A batch larger than what is pending takes what there is, without waiting.
    let t = Instant::now();
    let rest = q.claim_many("w", 100, Duration::from_secs(5)).unwrap();
    assert_eq!(rest.entries.len(), 6);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(q.status().unwrap().processing, 10);

    // Outcomes of the first batch in one call, one of them twice (a retry
    // after a lost reply): only the first finds it in processing.
    let outcome = |e, ok| fetchq::queue::Completion {
        entry: e,
        ok,
        result_json: "{}",
    };
    let e = &batch.entries;
    let found = q
        .complete_many(
            "w",
            &[
                outcome(&e[0], true),
                outcome(&e[1], false),
                outcome(&e[2], true),
                outcome(&e[0], true),
            ],
        )
        .unwrap();
    assert_eq!(found, [true, true, true, false]);
    let s = q.status().unwrap();
    assert_eq!((s.processing, s.done, s.failed), (7, 2, 1));
    // The rest: more outcomes than one script call takes are split.
    let mut all: Vec<_> = rest.entries.iter().map(|e| outcome(e, true)).collect();
    all.push(outcome(&e[3], true));
    assert!(q.complete_many("w", &all).unwrap().iter().all(|f| *f));
    let s = q.status().unwrap();
    assert_eq!((s.processing, s.done, s.failed), (0, 9, 1));
    // The processing list is gone with its last entry.
    assert_eq!(keys_like(&server, "batch", "inflight"), Vec::<String>::new());
}

#[test]
fn a_dead_workers_whole_batch_returns_in_claim_order() {
    let server = RedisServer::start();
    let url = server.url();
    let ttl = Duration::from_millis(200);
    let mut dead = Queue::connect(&url, "deadbatch").unwrap().with_heartbeat_ttl(ttl);
    for i in 0..12 {
        dead.enqueue(&entry(i)).unwrap();
    }
    dead.register_worker("dead").unwrap();
    let held = dead.claim_many("dead", 8, SHORT).unwrap().entries;
    assert_eq!(held.len(), 8);
    assert_eq!(
        list(&server, "fetchq:deadbatch:inflight:dead"),
        held.iter().map(|e| e.to_json()).collect::<Vec<_>>()
    );

    let mut live = Queue::connect(&url, "deadbatch").unwrap();
    let expired = poll_until(Duration::from_secs(5), || {
        let s = live.status().unwrap();
        s.workers.iter().any(|w| w.id == "dead" && !w.alive)
    });
    assert!(expired, "the dead worker's heartbeat should expire");
    assert_eq!(live.requeue_stale().unwrap(), 8);
    // Back at the head, in claim order, before the 4 never claimed.
    assert_eq!(
        pending_ids(&server, "deadbatch"),
        (0..12).map(|i| entry(i).id).collect::<Vec<_>>()
    );
    assert_eq!(keys_like(&server, "deadbatch", "inflight"), Vec::<String>::new());
    // A late completion of a requeued entry still records it, and says it
    // was no longer held.
    assert!(!dead.complete("dead", &held[0], true, "{}").unwrap());
    assert_eq!(live.status().unwrap().done, 1);
}

fn list(server: &RedisServer, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut server.connection())
        .unwrap()
}

/// `RPUSH key values`: elements written as another tool or build would.
fn push(server: &RedisServer, key: &str, values: impl redis::ToRedisArgs) {
    let _: () = redis::cmd("RPUSH")
        .arg(key)
        .arg(values)
        .query(&mut server.connection())
        .unwrap();
}

/// A claimed entry sits in the inflight list as the very text it had in
/// `pending`, whether claimed in a batch or by the blocking claim, and is
/// found there by that text: also one written by another tool, with other
/// spacing than fetchq's own (a success removes it, a failure keeps it
/// for retry-failed, a release puts it back, all byte for byte).
#[test]
fn inflight_lists_hold_the_claimed_texts_byte_for_byte() {
    let server = RedisServer::start();
    let mut q = queue_with_entries(&server, "texts", "w", 2);
    let spaced = entry(2).to_json().replace(',', ", ");
    push(&server, "fetchq:texts:pending", &spaced);
    let batch = q.claim_many("w", 3, SHORT).unwrap().entries;
    let texts = vec![entry(0).to_json(), entry(1).to_json(), spaced.clone()];
    assert_eq!(list(&server, "fetchq:texts:inflight:w"), texts);
    assert_eq!(batch[2], entry(2));

    // The blocking claim (`BLMOVE`, nothing pending yet) ends the same way.
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut q = Queue::connect(&url, "texts").unwrap();
        q.claim("w", Duration::from_secs(10)).unwrap()
    });
    let blocked = poll_until(Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query(&mut server.connection())
            .unwrap();
        info.lines()
            .any(|l| l.starts_with("blocked_clients:") && l != "blocked_clients:0")
    });
    assert!(blocked, "the claim should block in BLMOVE");
    let spaced_late = entry(3).to_json().replace("\":", "\": ");
    push(&server, "fetchq:texts:pending", &spaced_late);
    let late = waiter
        .join()
        .unwrap()
        .expect("the blocked claim gets the new entry");
    assert_eq!(late, entry(3));
    assert_eq!(
        list(&server, "fetchq:texts:inflight:w").last(),
        Some(&spaced_late)
    );

    // A success, a failure and a release: each finds its text.
    assert!(q.complete("w", &batch[2], true, "{}").unwrap());
    assert!(q.complete("w", &batch[0], false, "{}").unwrap());
    assert!(q.release("w", &late).unwrap());
    assert_eq!(list(&server, "fetchq:texts:inflight:w"), vec![texts[1].clone()]);
    assert_eq!(list(&server, "fetchq:texts:pending"), vec![spaced_late.clone()]);
    let kept: Option<String> = redis::cmd("HGET")
        .arg("fetchq:texts:failed_entries")
        .arg(&batch[0].id)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(kept, Some(texts[0].clone()));
    assert_eq!(q.retry_failed().unwrap(), 1);
    assert_eq!(q.unregister_worker("w").unwrap(), 1);
    assert_eq!(
        list(&server, "fetchq:texts:pending"),
        vec![texts[1].clone(), spaced_late, texts[0].clone()]
    );
    let s = q.status().unwrap();
    assert_eq!(
        (s.pending, s.processing, s.done, s.failed, s.bad),
        (3, 0, 1, 0, 0)
    );
}

/// A worker of the fetchq builds that kept ids in `inflight:WORKER` and
/// the texts in `inflight_entries:WORKER` (written here by hand, as they
/// wrote them, with a whole text among the ids as their cut-off blocking
/// claim left one) is counted, and its claims go back to `pending` as
/// texts, in claim order, when its heartbeat is gone; both keys go too.
#[test]
fn claims_of_the_id_layout_are_counted_and_returned_as_texts() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "ids").unwrap();
    q.enqueue(&entry(9)).unwrap();
    let texts: Vec<String> = (0..3).map(|i| entry(i).to_json()).collect();
    let held = [entry(0).id, texts[1].clone(), entry(2).id];
    let mut con = server.connection();
    push(&server, "fetchq:ids:inflight:gone", &held);
    let _: () = redis::cmd("HSET")
        .arg("fetchq:ids:inflight_entries:gone")
        .arg(&held[0])
        .arg(&texts[0])
        .arg(&held[2])
        .arg(&texts[2])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("fetchq:ids:workers")
        .arg("gone")
        .query(&mut con)
        .unwrap();
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing), (1, 3));
    assert_eq!(q.requeue_stale().unwrap(), 3);
    let mut want = texts.clone();
    want.push(entry(9).to_json());
    assert_eq!(list(&server, "fetchq:ids:pending"), want);
    assert_eq!(keys_like(&server, "ids", "inflight"), Vec::<String>::new());
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing, s.bad), (4, 0, 0));
}

/// Claims of a worker of an earlier fetchq (whole entry texts in
/// `processing:WORKER`, id → text in `claimed:WORKER`) are counted and
/// returned: a dead one's by requeue, in claim order; those of a worker
/// that kept its id by its unregister.
#[test]
fn claims_in_the_earlier_format_are_counted_and_returned() {
    let server = RedisServer::start();
    let mut q = Queue::connect(&server.url(), "old").unwrap();
    let texts: Vec<String> = (0..4).map(|i| entry(i).to_json()).collect();
    let mut con = server.connection();
    for (w, held) in [("w", &texts[..2]), ("gone", &texts[2..])] {
        push(&server, &format!("fetchq:old:processing:{w}"), held);
        let mut notes = redis::cmd("HSET");
        notes.arg(format!("fetchq:old:claimed:{w}"));
        for t in held {
            notes.arg(QueueEntry::from_json(t).unwrap().id).arg(t);
        }
        let _: () = notes.query(&mut con).unwrap();
        let _: () = redis::cmd("SADD")
            .arg("fetchq:old:workers")
            .arg(w)
            .query(&mut con)
            .unwrap();
    }
    q.register_worker("w").unwrap();
    q.enqueue(&entry(4)).unwrap();
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing), (1, 4));
    let per: Vec<(&str, u64)> = s.workers.iter().map(|w| (w.id.as_str(), w.processing)).collect();
    assert_eq!(per, [("gone", 2), ("w", 2)]);
    // The dead one's go back to the head; the live one's stay.
    assert_eq!(q.requeue_stale().unwrap(), 2);
    let want: Vec<String> = [2, 3, 4].iter().map(|&i| entry(i).id).collect();
    assert_eq!(pending_ids(&server, "old"), want);
    // A worker that claims under the same id holds both kinds until it
    // unregisters: the earlier claims first.
    let late = q.claim_many("w", 1, SHORT).unwrap().entries;
    assert_eq!(late[0].id, entry(2).id);
    assert_eq!(q.status().unwrap().processing, 3);
    assert_eq!(q.unregister_worker("w").unwrap(), 3);
    let want: Vec<String> = [0, 1, 2, 3, 4].iter().map(|&i| entry(i).id).collect();
    assert_eq!(pending_ids(&server, "old"), want);
    assert_eq!(keys_like(&server, "old", "processing:"), Vec::<String>::new());
    assert_eq!(keys_like(&server, "old", "claimed:"), Vec::<String>::new());
    let s = q.status().unwrap();
    assert_eq!((s.pending, s.processing, s.bad), (5, 0, 0));
    assert!(s.workers.is_empty(), "{s:?}");
}

/// Completions remove exactly their own entries from a longer processing
/// list, one at a time or many at once, and an entry completed twice is
/// found once.
#[test]
fn completions_remove_exactly_their_entries() {
    let server = RedisServer::start();
    let mut q = queue_with_entries(&server, "sizes", "w", 20);
    let held = q.claim_many("w", 20, SHORT).unwrap().entries;
    let ok = |e| fetchq::queue::Completion {
        entry: e,
        ok: true,
        result_json: "{}",
    };
    assert_eq!(q.complete_many("w", &[ok(&held[5])]).unwrap(), [true]);
    assert_eq!(
        q.complete_many("w", &[ok(&held[0]), ok(&held[0])]).unwrap(),
        [true, false]
    );
    // Ten of the eighteen left, with one already done.
    let mut many: Vec<_> = held[6..15].iter().map(ok).collect();
    many.push(ok(&held[5]));
    let found = q.complete_many("w", &many).unwrap();
    assert_eq!(found.iter().filter(|f| **f).count(), 9);
    assert!(!found[9]);
    let left: Vec<String> = [1, 2, 3, 4, 15, 16, 17, 18, 19]
        .iter()
        .map(|&i| held[i].to_json())
        .collect();
    assert_eq!(list(&server, "fetchq:sizes:inflight:w"), left);
    assert_eq!(q.status().unwrap().done, 11);
}
