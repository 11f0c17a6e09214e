//! What the queue commands print when something fails: the same `fetchq:`
//! line with every cause, once, as a local run prints, and never a Redis
//! password. Each test runs the real binary; those that need a server start
//! their own `redis-server` (`tests/support_redis`).

use crate::support;

use std::fs::{self, File};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fetchq::queue::Queue;
use support::redis::RedisServer;
use support::{assert_code, ctx, fetch_in, fetchq, stderr_line, write_list};

/// A loopback port nothing listens on (bound, read, released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

#[test]
fn a_worker_with_an_unusable_output_directory_says_why_as_a_local_run_does() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("file"), b"a plain file").unwrap();
    write_list(root, "list.txt", "http://127.0.0.1:1/a\n");

    let local = fetch_in(root, &["-d", "file/sub", "list.txt"]);
    assert_code(&local, root, 2);
    let local_line = stderr_line(&local, root, "unusable output directory");

    let worker = fetch_in(
        root,
        &["worker", "--redis", &redis.url(), "--drain", "-d", "file/sub"],
    );
    assert_code(&worker, root, 2);
    let line = stderr_line(&worker, root, "unusable output directory");
    assert!(line.contains(": Not a directory"), "{}", ctx(&worker, root));
    assert_eq!(line, local_line, "{}\n{local}", ctx(&worker, root));
    assert_eq!(
        worker.stderr.matches("Not a directory").count(),
        1,
        "{}",
        ctx(&worker, root)
    );
}

#[test]
fn a_redis_connection_error_shows_its_cause_once_and_no_password() {
    let port = closed_port();
    let url = format!("redis://:s3cret@127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_list(root, "urls.txt", "http://127.0.0.1:1/a\n");
    for args in [
        vec!["worker", "--redis", &url, "-d", "out"],
        vec!["status", "--redis", &url],
        vec!["enqueue", "--redis", &url, "urls.txt"],
    ] {
        let r = fetch_in(root, &args);
        assert_code(&r, root, 2);
        let line = stderr_line(&r, root, "cannot connect to Redis");
        assert_eq!(
            line,
            format!(
                "fetchq: cannot connect to Redis at redis://***@127.0.0.1:{port}/: Connection refused (os error 111)"
            ),
            "{}",
            ctx(&r, root)
        );
        assert!(!r.stderr.contains("s3cret"), "{}", ctx(&r, root));
        assert_eq!(r.stderr.matches("refused").count(), 1, "{}", ctx(&r, root));
    }
}

/// A worker `w1` on its own Redis, started and seen to register and open
/// its connections, its stderr in a file.
struct LosingRedis {
    redis: RedisServer,
    child: Child,
    stderr_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LosingRedis {
    fn start() -> LosingRedis {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("worker.stderr");
        let child: Child = fetchq()
            .current_dir(dir.path())
            .args([
                "worker",
                "--redis",
                &redis.url(),
                "--worker-id",
                "w1",
                "-d",
                "out",
            ])
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let w = LosingRedis {
            redis,
            child,
            stderr_path,
            _dir: dir,
        };
        let url = w.redis.url();
        w.wait_for("the worker to register", &mut || {
            Queue::connect(&url, "default")
                .and_then(|mut q| q.status())
                .is_ok_and(|s| s.workers.iter().any(|w| w.id == "w1"))
        });
        // And to open its three connections (registration comes first): a
        // worker stopped while it starts up exits 2 instead, rightly.
        let mut probe = w.redis.connection();
        w.wait_for("the worker's connections", &mut || {
            let clients: String = ::redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut probe)
                .unwrap_or_default();
            clients.lines().count() >= 4
        });
        w
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls `cond` (bounded: 20 s).
    fn wait_for(&self, what: &str, cond: &mut dyn FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops Redis and waits for the worker's warning.
    fn lose_redis(&mut self) {
        self.redis.stop();
        let path = self.stderr_path.clone();
        self.wait_for("a warning", &mut || {
            fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("Redis unavailable")
        });
    }

    /// Sends SIGINT and waits (bounded: 30 s) for the exit; returns its
    /// status and how long it took.
    fn interrupt(&mut self) -> (std::process::ExitStatus, Duration) {
        support::kill(self.child.id(), "-INT");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() >= Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("worker still running after SIGINT; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A worker whose Redis goes away warns with the cause of each failure, and
/// gives its entries back when Redis returns and it is interrupted.
#[test]
fn a_worker_that_loses_redis_warns_with_the_cause() {
    let mut w = LosingRedis::start();
    w.lose_redis();
    w.redis.start_again();
    let (status, _) = w.interrupt();
    assert_eq!(status.code(), Some(130), "{}", w.stderr());
    let text = w.stderr();
    let port = w.redis.port();
    let warning = text
        .lines()
        .find(|l| l.contains("Redis unavailable"))
        .unwrap_or_else(|| panic!("no warning:\n{text}"));
    assert!(
        warning.starts_with("fetchq: warning: Redis unavailable (")
            && warning.contains(&format!("at redis://127.0.0.1:{port}/: "))
            && warning.contains("; retrying in "),
        "{text}"
    );
    // The cause after the queue's own words, once.
    let cause = warning
        .split(&format!("127.0.0.1:{port}/: "))
        .nth(1)
        .and_then(|rest| rest.split("; retrying").next())
        .unwrap_or_default();
    assert!(!cause.is_empty(), "{text}");
    let parts: Vec<&str> = cause.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(part), "{part:?} repeated:\n{text}");
    }
}

/// Interrupted while Redis is still away, a worker stops as any
/// interrupted run does (130, not a broken queue's 2), within its shutdown
/// limit, saying that what it held comes back when its heartbeat expires.
#[test]
fn a_worker_interrupted_while_redis_is_away_stops_in_bounded_time() {
    let mut w = LosingRedis::start();
    w.lose_redis();
    let (status, took) = w.interrupt();
    assert_eq!(status.code(), Some(130), "{}", w.stderr());
    // The shutdown limit is 10 s, for releasing and unregistering.
    assert!(took < Duration::from_secs(20), "took {took:?}: {}", w.stderr());
    let text = w.stderr();
    assert!(
        text.contains("cannot unregister worker w1") && text.contains("heartbeat expires"),
        "{text}"
    );
    // A stop, not a queue that could not be read.
    assert!(!text.contains("cannot read the Redis queue"), "{text}");
}

/// A queue error that retrying does not cure ends the worker's input like
/// an unreadable list, with the server's reason printed once.
#[test]
fn a_queue_that_breaks_mid_run_says_why_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // `pending` as a string: BLMOVE fails with WRONGTYPE, not a connection error.
    let _: () = redis::cmd("SET")
        .arg("fetchq:default:pending")
        .arg("not a list")
        .query(&mut redis.connection())
        .unwrap();
    let r = fetch_in(root, &["worker", "--redis", &redis.url(), "--drain", "-d", "out"]);
    assert_code(&r, root, 2);
    let line = stderr_line(&r, root, "cannot read the Redis queue");
    assert!(
        line.starts_with(&format!(
            "fetchq: cannot read the Redis queue: Redis error on queue \"default\" at {}: ",
            redis.url()
        )),
        "{}",
        ctx(&r, root)
    );
    assert_eq!(line.matches("WRONGTYPE").count(), 1, "{}", ctx(&r, root));
    assert_eq!(
        line.matches("wrong kind of value").count(),
        1,
        "{}",
        ctx(&r, root)
    );
}
