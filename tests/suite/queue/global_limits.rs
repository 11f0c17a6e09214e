//! `worker --global-limits`: `--per-host` and `--limit-rate` held by three
//! `fetchq worker` processes together, through a real Redis, against the
//! in-process HTTP test server, which counts the requests it serves at once.
//! A worker SIGKILLed while it holds host slots must not keep them past its
//! heartbeat's TTL.

use std::path::Path;
use std::time::{Duration, Instant};

use super::distributed::{
    WORKER_DEADLINE, Worker, assert_all_exit_0, assert_all_files, enqueue_ok, poll_status, serve,
};
use crate::support::redis::RedisServer;
use crate::support::*;

/// Workers `w0`..`w2` running `--drain --global-limits` with `args` and `env`.
fn three_workers(root: &Path, redis: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<Worker> {
    (0..3)
        .map(|i| {
            let mut all = vec!["--drain", "--global-limits"];
            all.extend_from_slice(args);
            Worker::spawn(root, redis, &format!("w{i}"), &all, env)
        })
        .collect()
}

/// The test server's host slots in Redis: worker id → slots it holds.
fn slot_holders(redis: &RedisServer, server: &TestServer) -> Vec<(String, i64)> {
    let key = format!("fetchq:default:slots:{}", server.addr());
    let mut holders: Vec<(String, i64)> = ::redis::cmd("HGETALL")
        .arg(&key)
        .query(&mut redis.connection())
        .unwrap_or_default();
    holders.sort();
    holders
}

fn logs(workers: &[Worker]) -> String {
    workers
        .iter()
        .map(|w| format!("--- {} ---\n{}", w.name, w.stderr()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn three_workers_keep_to_one_per_host_limit_together() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 60, Duration::from_millis(150));
    enqueue_ok(root, &url, &list);

    let mut workers = three_workers(root, &url, &["-j", "8", "--per-host", "4"], &[]);
    assert_all_exit_0(&mut workers);
    assert_all_files(root, 60, &workers);
    let most = server.max_concurrent_requests();
    assert!(
        (2..=4).contains(&most),
        "three workers with -j 8 --per-host 4 --global-limits: {most} requests at once\n{}",
        logs(&workers)
    );
    assert_eq!(
        slot_holders(&redis, server),
        vec![],
        "drained workers hold no slots"
    );
}

#[test]
fn a_killed_workers_host_slots_come_back_within_the_ttl() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 60, Duration::from_millis(150));
    enqueue_ok(root, &url, &list);

    let env = [("FETCHQ_HEARTBEAT_TTL_MS", "1000")];
    let mut workers = three_workers(root, &url, &["-j", "8", "--per-host", "4"], &env);
    // Kill the worker holding the most slots while the queue is under way.
    let mut victim = String::new();
    wait_for(Duration::from_secs(20), "a worker holding host slots", || {
        let holders = slot_holders(&redis, server);
        match holders.iter().max_by_key(|(_, n)| *n) {
            Some((id, n)) if *n > 0 && poll_status(&url).done >= 8 => {
                victim = id.clone();
                true
            }
            _ => false,
        }
    });
    let index = workers
        .iter()
        .position(|w| w.name == victim)
        .unwrap_or_else(|| panic!("no worker named {victim}"));
    let mut dead = workers.remove(index);
    dead.process.child.kill().unwrap();
    dead.wait(Duration::from_secs(5));
    let killed_at = Instant::now();
    let held: Vec<String> = slot_holders(&redis, server)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(held.contains(&victim), "{victim} died holding slots: {held:?}");

    // The survivors take the dead worker's slots once its heartbeat expires,
    // and finish its entries too.
    wait_for(Duration::from_secs(10), "the dead worker's slots dropped", || {
        !slot_holders(&redis, server).iter().any(|(id, _)| *id == victim)
    });
    let freed_after = killed_at.elapsed();
    assert_all_exit_0(&mut workers);
    workers.push(dead);
    assert_all_files(root, 60, &workers);
    assert!(
        freed_after < Duration::from_secs(5),
        "slots of a worker with a 1 s TTL came back after {freed_after:?}"
    );
    let most = server.max_concurrent_requests();
    assert!(most <= 4, "{most} requests at once\n{}", logs(&workers));
    assert_eq!(
        slot_holders(&redis, server),
        vec![],
        "drained workers hold no slots"
    );
}

#[test]
fn limit_rate_holds_across_three_workers() {
    const FILES: usize = 24;
    const SIZE: usize = 256 * 1024;
    const RATE: f64 = 2.0 * 1024.0 * 1024.0;
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve_routes(
        server,
        (0..FILES)
            .map(|i| (format!("/r{i:02}.bin"), Route::ok(pattern(SIZE, i as u8))))
            .collect(),
    );
    enqueue_ok(root, &url, &list);

    let mut workers = three_workers(root, &url, &["-j", "4", "--limit-rate", "2M"], &[]);
    // The drain's span: from the first request the server sees to the
    // moment the last file has its name (so process start-up and shutdown
    // are not counted).
    // Polled every 2 ms, so the span is known to within 1 %.
    let out = root.join("out");
    let deadline = Instant::now() + WORKER_DEADLINE;
    let poll = |done: &dyn Fn() -> bool| {
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        done()
    };
    assert!(
        poll(&|| !server.requests().is_empty()),
        "no request arrived\n{}",
        logs(&workers)
    );
    let start = Instant::now();
    assert!(
        poll(&|| named(&out) >= FILES),
        "not all files arrived: {:?}\n{}",
        list_files(&out),
        logs(&workers)
    );
    let span = start.elapsed();
    assert_all_exit_0(&mut workers);
    let rate = (FILES * SIZE) as f64 / span.as_secs_f64();
    let off = (rate - RATE).abs() / RATE;
    assert!(
        off <= 0.05,
        "three workers with --limit-rate 2M --global-limits: {:.0} KiB/s over {span:?}, {:.1} % off\n{}",
        rate / 1024.0,
        off * 100.0,
        logs(&workers)
    );
}

/// Downloads in `out` that have their final name.
fn named(out: &Path) -> usize {
    list_files(out)
        .iter()
        .filter(|name| name.ends_with(".bin"))
        .count()
}
