//! Scale-out through a real Redis: `fetchq enqueue` one list, run several
//! `fetchq worker` processes (the real binary) against the in-process HTTP
//! test server, and check that every entry is downloaded correctly, once in
//! the normal case, and never lost when a worker is SIGKILLed, Redis
//! restarts, or a worker is interrupted with SIGINT.
//!
//! Each test starts its own `redis-server` (`tests/support/redis.rs`) and HTTP
//! server; workers write their stderr to a file in the test's temp dir, shown
//! in assertion messages. Every wait is a poll with a deadline.

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use fetchq::queue::{Queue, QueueEntry, QueueStatus};
use serde_json::Value;

use crate::support::redis::RedisServer;
use crate::support::*;

/// Longest any worker may take in these tests.
pub(super) const WORKER_DEADLINE: Duration = Duration::from_secs(40);

/// The body of entry `i`: distinct for every `i` (length and seed differ).
pub(super) fn body(i: usize) -> Vec<u8> {
    pattern(1000 + 37 * i, (i % 251) as u8)
}

pub(super) fn path(i: usize) -> String {
    format!("/f{i:03}.bin")
}

/// Routes `n` entries (optionally slowed down) and returns the list text.
pub(super) fn serve(server: &TestServer, n: usize, delay: Duration) -> String {
    serve_routes(
        server,
        (0..n)
            .map(|i| (path(i), Route::ok(body(i)).delay(delay)))
            .collect(),
    )
}

/// `fetchq enqueue` of `list` (written to `root/name`); asserts it ran.
fn enqueue(root: &Path, redis: &str, name: &str, list: &str) -> Run {
    write_list(root, name, list);
    fetch_in(root, &["enqueue", "--redis", redis, name])
}

/// [`enqueue`] of `list` as `urls.txt`, asserting it exits 0.
pub(super) fn enqueue_ok(root: &Path, redis: &str, list: &str) -> Run {
    let r = enqueue(root, redis, "urls.txt", list);
    assert_eq!(r.code(), 0, "{r}");
    r
}

/// `fetchq status --json`, parsed.
pub(super) fn status_json(root: &Path, redis: &str) -> Value {
    let r = fetch_in(root, &["status", "--redis", redis, "--json"]);
    assert_eq!(r.code(), 0, "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{r}"))
}

pub(super) fn counts(v: &Value) -> [u64; 4] {
    ["pending", "processing", "done", "failed"].map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}")))
}

/// A direct queue handle for polling (cheaper than running `status`).
pub(super) fn poll_status(redis: &str) -> QueueStatus {
    let mut q = Queue::connect(redis, "default").unwrap();
    q.status().unwrap()
}

/// How many entries worker `id` holds in the status `s` (0 if it is not listed).
pub(super) fn held_by(s: &QueueStatus, id: &str) -> u64 {
    s.workers.iter().find(|w| w.id == id).map_or(0, |w| w.processing)
}

/// Entries in the queue of the tests that SIGKILL a worker holding a full
/// batch: slow (0.3 s each), so that it holds one when it dies.
pub(super) const BATCH_QUEUE: usize = 60;

/// A fresh Redis with a queue of [`BATCH_QUEUE`] slow entries, and worker
/// `w0` SIGKILLed once it holds a full batch of them.
pub(super) struct KilledW0 {
    pub(super) redis: RedisServer,
    pub(super) t: Setup,
    pub(super) url: String,
    /// For its log.
    pub(super) w0: Worker,
    /// How many entries it holds (checked: 10 to 16).
    pub(super) held: u64,
}

/// Sets up [`KilledW0`]. `w0` runs `--drain -j 2` with a heartbeat of 1 s:
/// 2 downloading, a channel of 8 and up to 4 claimed ahead is a full batch
/// of 12 to 14, and 2 finished entries may wait for their outcome to be
/// written; each flush of 2 outcomes makes room for a batch of 2 + 4.
pub(super) fn w0_killed_holding_a_full_batch() -> KilledW0 {
    let redis = RedisServer::start();
    let t = Setup::new();
    let url = redis.url();
    let list = serve(&t.server, BATCH_QUEUE, Duration::from_millis(300));
    enqueue_ok(t.root(), &url, &list);
    let mut w0 = Worker::spawn(t.root(), &url, "w0", &["--drain", "-j", "2"], &SHORT_HEARTBEAT);
    wait_for(Duration::from_secs(20), "w0 holding a full batch", || {
        held_by(&poll_status(&url), "w0") >= 12
    });
    w0.process.child.kill().unwrap();
    w0.wait(Duration::from_secs(5));
    let s = poll_status(&url);
    let held = held_by(&s, "w0");
    assert!((10..=16).contains(&held), "w0 died holding {held}: {s:?}");
    KilledW0 {
        redis,
        t,
        url,
        w0,
        held,
    }
}

/// Worker `w1` (`--drain -j 16`) finishes the queue of `n` entries after
/// `w0` was killed holding `held`: it exits 0, says it requeued those, and
/// every file is whole and done once. Returns the final `status --json`.
pub(super) fn w1_finishes_after_w0(root: &Path, redis: &str, n: usize, w0: Worker, held: u64) -> Value {
    let w1 = Worker::spawn(root, redis, "w1", &["--drain", "-j", "16"], &SHORT_HEARTBEAT);
    let mut survivors = vec![w1];
    assert_all_exit_0(&mut survivors);
    survivors.push(w0);
    assert_all_files(root, n, &survivors);
    let s = status_json(root, redis);
    assert_eq!(counts(&s), [0, 0, n as u64, 0], "{s}");
    let log = survivors[0].stderr();
    assert!(
        log.contains(&format!("requeued {held} entries of dead workers")),
        "{log}"
    );
    s
}

/// A heartbeat of 1 s, so a killed worker counts as dead soon.
pub(super) const SHORT_HEARTBEAT: [(&str, &str); 1] = [("FETCHQ_HEARTBEAT_TTL_MS", "1000")];

/// A `fetchq worker` process with its output in files in the test's root.
pub(super) struct Worker {
    pub(super) name: String,
    pub(super) process: Running,
}

impl Worker {
    pub(super) fn spawn(root: &Path, redis: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut cmd: Command = fetchq();
        cmd.current_dir(root)
            .args(["worker", "--redis", redis, "--worker-id", name, "-d", "out"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (stdout, stderr) = (
            root.join(format!("{name}.stdout")),
            root.join(format!("{name}.stderr")),
        );
        Worker {
            name: name.to_string(),
            process: Running::spawn(cmd, &stdout, &stderr),
        }
    }

    pub(super) fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Waits for the exit, killing the worker and failing the test after `limit`.
    pub(super) fn wait(&mut self, limit: Duration) -> ExitStatus {
        let name = self.name.clone();
        self.process.wait_status(limit, || format!("worker {name}"))
    }

    /// Waits for the exit and returns the exit code (-1 for a signal).
    pub(super) fn code(&mut self, limit: Duration) -> i32 {
        self.wait(limit).code().unwrap_or(-1)
    }

    /// Sends SIGINT, by pid.
    fn interrupt(&self) {
        self.process.signal("-INT");
    }
}

/// Workers `w0`..`w{n-1}` running `--drain -j 4` with the extra environment `env`.
fn spawn_drain_workers(root: &Path, redis: &str, n: usize, env: &[(&str, &str)]) -> Vec<Worker> {
    (0..n)
        .map(|i| Worker::spawn(root, redis, &format!("w{i}"), &["--drain", "-j", "4"], env))
        .collect()
}

/// Waits (at most [`WORKER_DEADLINE`] each) for every worker to exit 0.
pub(super) fn assert_all_exit_0(workers: &mut [Worker]) {
    for w in workers {
        let code = w.code(WORKER_DEADLINE);
        assert_eq!(code, 0, "worker {}:\n{}", w.name, w.stderr());
    }
}

/// Every file `0..n` in `root/out` holds its body; no `.part` is left over.
pub(super) fn assert_all_files(root: &Path, n: usize, workers: &[Worker]) {
    let out = root.join("out");
    let logs = || {
        workers
            .iter()
            .map(|w| format!("--- {} ---\n{}", w.name, w.stderr()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for i in 0..n {
        let file = out.join(&path(i)[1..]);
        let got = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), logs()));
        assert!(got == body(i), "{} has wrong content\n{}", file.display(), logs());
    }
    let files = list_files(&out);
    assert_eq!(files.len(), n, "unexpected files: {files:?}\n{}", logs());
}

#[test]
fn three_workers_share_one_list_and_fetch_each_url_once() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 300, Duration::ZERO);
    let r = enqueue_ok(root, &url, &list);
    assert!(r.stderr.contains("queued 300, duplicates 0, invalid 0"), "{r}");

    let mut workers = spawn_drain_workers(root, &url, 3, &[]);
    assert_all_exit_0(&mut workers);
    assert_all_files(root, 300, &workers);
    for i in 0..300 {
        assert_eq!(server.hits(&path(i)), 1, "{} fetched more than once", path(i));
    }
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, 300, 0], "{s}");
    assert_eq!(
        s["workers"],
        Value::Array(vec![]),
        "drained workers unregister: {s}"
    );
}

#[test]
fn a_killed_workers_entries_are_finished_by_the_others() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 300, Duration::from_millis(30));
    enqueue_ok(root, &url, &list);

    let env = [("FETCHQ_HEARTBEAT_TTL_MS", "1000")];
    let mut workers = spawn_drain_workers(root, &url, 3, &env);
    // Kill w0 while it holds entries and the queue is well under way.
    wait_for(Duration::from_secs(20), "w0 mid-run", || {
        let s = poll_status(&url);
        s.done >= 40 && held_by(&s, "w0") >= 4
    });
    workers[0].process.child.kill().unwrap();
    workers[0].wait(Duration::from_secs(5));
    let held = held_by(&poll_status(&url), "w0");
    assert!(held > 0, "w0 should have died holding entries");

    assert_all_exit_0(&mut workers[1..]);
    assert_all_files(root, 300, &workers);
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, 300, 0], "{s}");
    let requeued = workers[1..]
        .iter()
        .any(|w| w.stderr().contains("entries of dead workers"));
    assert!(requeued, "a survivor requeued w0's entries");
}

#[test]
fn workers_ride_out_a_redis_restart() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 300, Duration::from_millis(20));
    enqueue_ok(root, &url, &list);

    let env = [("FETCHQ_HEARTBEAT_TTL_MS", "5000")];
    let mut workers = spawn_drain_workers(root, &url, 3, &env);
    wait_for(Duration::from_secs(20), "some entries done", || {
        poll_status(&url).done >= 60
    });
    redis.restart();
    // The restart happened mid-run, and the data survived it.
    let s = poll_status(&url);
    assert!(s.done >= 60 && s.pending + s.processing > 0, "{s:?}");
    assert_eq!(s.seen, 300, "{s:?}");
    assert_all_exit_0(&mut workers);
    assert_all_files(root, 300, &workers);
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, 300, 0], "{s}");
    // With appendfsync always no claim or result is lost, so even across the
    // restart every URL is fetched once (an orphaned claim is returned, not
    // downloaded by the worker that lost its reply).
    for i in 0..300 {
        assert_eq!(server.hits(&path(i)), 1, "{} fetch count", path(i));
    }
}

#[test]
fn status_counts_match_reality() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let mut list = serve(server, 50, Duration::ZERO);
    // Two entries the server answers with 404.
    list.push_str(&format!(
        "{}\n{}\n",
        server.url("/gone1.bin"),
        server.url("/gone2.bin")
    ));
    enqueue_ok(root, &url, &list);

    let s = status_json(root, &url);
    assert_eq!(counts(&s), [52, 0, 0, 0], "{s}");
    assert_eq!(s["seen"], 52, "{s}");
    let table = fetch_in(root, &["status", "--redis", &url]);
    assert_eq!(table.code(), 0, "{table}");
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["pending", "52"])),
        "{table}"
    );

    let mut workers = spawn_drain_workers(root, &url, 2, &[]);
    let codes: Vec<i32> = workers.iter_mut().map(|w| w.code(WORKER_DEADLINE)).collect();
    assert!(codes.iter().all(|c| [0, 1].contains(c)), "{codes:?}");
    assert!(
        codes.contains(&1),
        "a worker with a failed entry exits 1: {codes:?}"
    );
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, 50, 2], "{s}");
    let stderr: String = workers.iter().map(Worker::stderr).collect();
    assert!(
        stderr.contains("urls.txt:51: ") && stderr.contains("HTTP 404"),
        "{stderr}"
    );

    let r = fetch_in(root, &["retry-failed", "--redis", &url]);
    assert_eq!(r.code(), 0, "{r}");
    assert!(r.stdout.contains("moved 2 "), "{r}");
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [2, 0, 50, 0], "{s}");
}

#[test]
fn enqueueing_the_same_list_twice_queues_it_once() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let root = t.root();
    let url = redis.url();
    let mut list: String = (0..40).map(|i| format!("http://h.test/f{i}.bin\n")).collect();
    list.push_str("ftp://h.test/x\n");
    let first = enqueue(root, &url, "urls.txt", &list);
    assert_eq!(first.code(), 1, "an invalid line exits 1: {first}");
    assert!(
        first.stderr.contains("queued 40, duplicates 0, invalid 1"),
        "{first}"
    );
    assert!(
        first
            .stderr
            .contains("urls.txt:41: ftp://h.test/x: unsupported scheme"),
        "{first}"
    );
    let second = enqueue(root, &url, "urls.txt", &list);
    assert!(
        second.stderr.contains("queued 0, duplicates 40, invalid 1"),
        "{second}"
    );
    // Same downloads from another list (and via stdin) are duplicates too.
    let third = fetch_in_with_stdin(
        root,
        &["enqueue", "--redis", &url, "urls.txt", "-"],
        list.as_bytes(),
    );
    assert!(
        third.stderr.contains("queued 0, duplicates 80, invalid 2"),
        "{third}"
    );
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [40, 0, 0, 0], "{s}");
    assert_eq!(s["seen"], 40, "{s}");
}

#[test]
fn sigint_gives_held_entries_back_and_exits_130() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 30, Duration::from_secs(20));
    enqueue_ok(root, &url, &list);

    let mut worker = Worker::spawn(root, &url, "w0", &["-j", "2"], &[]);
    // -j 2: 2 downloading + 8 in the channel + up to 4 claimed ahead
    // (the first batch is the channel's room, 8, plus 4: 2 of them wait).
    let mut most = 0;
    wait_for(Duration::from_secs(20), "w0 holding entries", || {
        let held = poll_status(&url).processing;
        most = most.max(held);
        held >= 12 && server.requests().len() >= 2
    });
    // Claims stay bounded by what the pool can take.
    for _ in 0..10 {
        most = most.max(poll_status(&url).processing);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(most <= 14, "claimed {most} entries with -j 2");

    worker.interrupt();
    let started = Instant::now();
    let code = worker.code(Duration::from_secs(10));
    assert_eq!(code, 130, "{}", worker.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        started.elapsed()
    );
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [30, 0, 0, 0], "{s}\n{}", worker.stderr());
    assert_eq!(s["workers"], Value::Array(vec![]), "{s}");
    assert!(
        worker.stderr().contains("back to queue default"),
        "{}",
        worker.stderr()
    );
    // The queue order is kept: the oldest entry is claimed first again.
    let mut q = Queue::connect(&url, "default").unwrap();
    let first = q.claim("probe", Duration::ZERO).unwrap().unwrap();
    assert_eq!(first.line, 1, "{first:?}");
}

#[test]
fn unusable_queue_entries_fail_like_bad_lines() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 3, Duration::ZERO);
    enqueue_ok(root, &url, &list);
    // Entries pushed by another producer than `fetchq enqueue`.
    let mut q = Queue::connect(&url, "default").unwrap();
    let bad = QueueEntry::new("ftp://h.test/x", None, None, "feed.txt", 7);
    let escaping = QueueEntry::new(server.url("/f000.bin"), Some("../x".into()), None, "feed.txt", 8);
    assert_eq!(q.enqueue_many(&[bad.clone(), escaping]).unwrap(), [true, true]);

    let mut worker = Worker::spawn(root, &url, "w0", &["--drain", "--json"], &[]);
    assert_eq!(worker.code(WORKER_DEADLINE), 1, "{}", worker.stderr());
    let stderr = worker.stderr();
    assert!(
        stderr.contains("feed.txt:7: ftp://h.test/x: unsupported scheme"),
        "{stderr}"
    );
    assert!(stderr.contains("feed.txt:8: "), "{stderr}");
    let s = status_json(root, &url);
    assert_eq!(counts(&s), [0, 0, 3, 2], "{s}");
    let mut con = redis.connection();
    let result: String = ::redis::cmd("HGET")
        .arg("fetchq:default:failed")
        .arg(&bad.id)
        .query(&mut con)
        .unwrap();
    let result: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["error_kind"], "invalid_line", "{result}");
    assert_eq!(result["line"], 7, "{result}");
}

/// Results are stored under the entry's id, so an element whose id does not
/// match its URL and OUT (written by hand or by a hostile producer) must not
/// run: it would record its outcome over another entry's result.
#[test]
fn an_entry_whose_id_does_not_match_its_url_goes_to_bad() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 1, Duration::ZERO);
    enqueue_ok(root, &url, &list);
    let mut first = Worker::spawn(root, &url, "w0", &["--drain"], &[]);
    assert_eq!(first.code(WORKER_DEADLINE), 0, "{}", first.stderr());
    let genuine = QueueEntry::new(server.url(&path(0)), None, None, "urls.txt", 1);

    server.route("/other.bin", Route::ok(b"other".to_vec()));
    let mut forged = QueueEntry::new(server.url("/other.bin"), None, None, "feed.txt", 9);
    forged.id = genuine.id.clone();
    let mut con = redis.connection();
    let _: i64 = ::redis::cmd("RPUSH")
        .arg("fetchq:default:pending")
        .arg(forged.to_json())
        .query(&mut con)
        .unwrap();

    let mut second = Worker::spawn(root, &url, "w1", &["--drain"], &[]);
    second.code(WORKER_DEADLINE);
    let stderr = second.stderr();
    assert!(stderr.contains("moved to the `bad` list"), "{stderr}");
    assert!(stderr.contains("does not match its URL and OUT"), "{stderr}");
    assert!(
        !list_files(root).iter().any(|f| f.ends_with("other.bin")),
        "the forged entry ran: {:?}\n{stderr}",
        list_files(root)
    );
    let result: String = ::redis::cmd("HGET")
        .arg("fetchq:default:done")
        .arg(&genuine.id)
        .query(&mut con)
        .unwrap();
    let result: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["url"], server.url(&path(0)), "{result}\n{stderr}");
    let bad: i64 = ::redis::cmd("LLEN")
        .arg("fetchq:default:bad")
        .query(&mut con)
        .unwrap();
    assert_eq!(bad, 1, "{stderr}");
}

#[test]
fn an_orphaned_claim_is_returned_and_downloaded() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    let list = serve(server, 3, Duration::ZERO);
    enqueue_ok(root, &url, &list);
    // A claim whose reply w0 never saw (connection lost after BLMOVE ran).
    let mut q = Queue::connect(&url, "default").unwrap();
    assert!(q.claim("w0", Duration::ZERO).unwrap().is_some());

    let mut worker = Worker::spawn(root, &url, "w0", &["--drain"], &[]);
    assert_eq!(worker.code(WORKER_DEADLINE), 0, "{}", worker.stderr());
    assert!(
        worker.stderr().contains("returned 1 orphaned"),
        "{}",
        worker.stderr()
    );
    assert_all_files(root, 3, std::slice::from_ref(&worker));
    assert_eq!(counts(&status_json(root, &url)), [0, 0, 3, 0]);
}

#[test]
fn a_running_worker_downloads_retried_failures_again() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let (server, root) = (&t.server, t.root());
    let url = redis.url();
    // /f000.bin fails once; /f001.bin keeps the worker busy meanwhile, so
    // the retried entry arrives in the same run of the pipeline.
    server.route(&path(0), Route::ok(body(0)).fail_times(1, 404));
    server.route(&path(1), Route::ok(body(1)).delay(Duration::from_secs(2)));
    let list = format!("{}\n{}\n", server.url(&path(0)), server.url(&path(1)));
    enqueue_ok(root, &url, &list);

    let mut worker = Worker::spawn(root, &url, "w0", &["-j", "2"], &[]);
    wait_for(Duration::from_secs(10), "the first attempt to fail", || {
        poll_status(&url).failed == 1
    });
    assert_eq!(
        poll_status(&url).processing,
        1,
        "the slow entry is still in flight"
    );
    let r = fetch_in(root, &["retry-failed", "--redis", &url]);
    assert!(r.stdout.contains("moved 1 "), "{r}");
    wait_for(Duration::from_secs(15), "both entries done", || {
        poll_status(&url).done == 2
    });
    worker.interrupt();
    assert_eq!(worker.code(Duration::from_secs(10)), 130, "{}", worker.stderr());
    assert_eq!((server.hits(&path(0)), server.hits(&path(1))), (2, 1));
    assert_all_files(root, 2, std::slice::from_ref(&worker));
    assert_eq!(counts(&status_json(root, &url)), [0, 0, 2, 0]);
}

#[test]
fn a_worker_killed_holding_a_full_batch_loses_nothing() {
    let k = w0_killed_holding_a_full_batch();
    w1_finishes_after_w0(k.t.root(), &k.url, BATCH_QUEUE, k.w0, k.held);
}
