//! A reliable work queue in Redis, for running fetchq workers on many machines.
//!
//! `fetchq enqueue` pushes list entries into a queue; `fetchq worker` processes
//! on many machines claim entries, download them and record the outcome;
//! `fetchq status` and `fetchq retry-failed` inspect and manage the queue.
//! This module is the Redis layer under those commands, on the `redis` crate's
//! synchronous API. It needs Redis 6.2 or newer (`BLMOVE`, `LMOVE`); the
//! version is checked on connect.
//!
//! # Pattern: reliable queue with atomic moves between lists
//!
//! A worker claims a batch of entries with pipelined `LMOVE pending
//! inflight:{worker} LEFT RIGHT`, one per entry, sent in one write, which
//! move the oldest pending entries to the worker's own processing list (and
//! waits for the next one with `BLMOVE` when none is pending): each move is
//! atomic, so an entry is at every moment in exactly one list and is never
//! lost with a crashed worker. When downloads end, their outcomes are
//! recorded and the entries leave the processing list in one transaction
//! per batch. Workers keep a heartbeat key with a
//! TTL; when it expires, any process may move the dead worker's processing
//! list back to `pending` ([`Queue::requeue_stale`]).
//!
//! Why lists and not Redis Streams with consumer groups: the semantics are
//! those of plain lists (FIFO, one atomic move per claim), every worker's
//! in-flight entries are a list anyone can `LLEN`/`LRANGE` for `status`,
//! requeueing pushes a list back onto `pending` (with streams it is
//! `XAUTOCLAIM` on idle time, which cannot tell a slow download from a dead
//! worker, plus trimming of acknowledged entries by hand), and "done" is
//! naturally a hash keyed by entry id. Streams' strengths (history, fan-out to
//! several groups) are not needed here.
//!
//! # Keys
//!
//! All keys start with `fetchq:NAME:` (NAME = the queue name, 1 to 64 of
//! `A-Z a-z 0-9 . _ -`, so it needs no escaping in key patterns):
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `pending` | LIST | entries waiting, oldest at the head; each a compact JSON [`QueueEntry`] |
//! | `seen` | SET | ids ever enqueued: `SADD` returning 0 means duplicate, not pushed |
//! | `inflight:WORKER` | LIST | the entries claimed by that worker, in claim order: each the exact text it had in `pending` |
//! | `inflight_entries:WORKER` | HASH | id → text, beside an `inflight` list that holds ids, as a fetchq of that layout kept its claims: never written, only read to return them |
//! | `processing:WORKER`, `claimed:WORKER` | LIST, HASH | the claims of a worker of an earlier fetchq (whole entry texts, and id → text): never written, only returned to `pending` |
//! | `workers` | SET | registered worker ids |
//! | `heartbeat:WORKER` | STRING, TTL | present while the worker is alive ([`Queue::with_heartbeat_ttl`], default 15 s) |
//! | `done` | HASH | id → the caller's result JSON for a successful entry |
//! | `failed` | HASH | id → the caller's result JSON for a failed entry |
//! | `failed_entries` | HASH | id → the failed entry's JSON, for [`Queue::retry_failed`] |
//! | `bad` | LIST | claimed elements that were not valid entry JSON (never retried) |
//! | `slots:HOST`, `slot_hosts`, `rate` | | `worker --global-limits`, see `fleet.rs` |
//!
//! An entry's id is [`QueueEntry::id_for`]: SHA-256 of `url NUL out`,
//! truncated to 16 bytes (32 hex digits). Results are keyed by id; a
//! claimed entry is found in its inflight list by its exact text, which the
//! [`QueueEntry`] a claim returns keeps ([`QueueEntry::text`]).
//!
//! Atomic steps: each `LMOVE` of a claim; `MULTI` transactions for the
//! successes of a batch of outcomes (`HSET done` of every
//! result, an `LREM` per entry, `HDEL` of any earlier failure), register
//! and heartbeat (`SADD workers` + `SET heartbeat PX ttl`); Lua scripts
//! (see `scripts.rs`) where a step depends on what it finds: enqueue (`SADD
//! seen` + `RPUSH pending`), the failures of a batch (not recorded over a
//! success), release (`LREM` from `inflight` + `LPUSH pending`), requeue of
//! one dead worker (check its heartbeat is gone, move its claim lists back,
//! drop their hashes, `SREM workers`), unregister, and each batch of
//! retry-failed.
//!
//! # Workers of different fetchq versions on one queue
//!
//! Two earlier layouts of a worker's claims may meet this one on a queue:
//!
//! - fetchq builds before the `inflight` keys kept whole entry texts in
//!   `processing:WORKER` (with `claimed:WORKER` beside it). Such a build
//!   finds no `processing` list for a newer worker, so its requeue moves
//!   nothing of it (and at most drops it from `workers`, which changes
//!   nothing: the inflight list names its owner). Its `status` counts a
//!   newer worker's entries as neither pending nor processing.
//! - The builds that introduced `inflight:WORKER` kept ids in it and the
//!   texts in `inflight_entries:WORKER`. They read an element that is not
//!   a noted id as a whole entry text, so their requeue, unregister and
//!   `status` handle this build's lists as they handle their own.
//!
//! This build reads all three: [`Queue::status`] counts both lists, and
//! requeue and unregister return both to `pending` (an id as the text its
//! hash notes). It writes only whole texts to `inflight`.
//!
//! # Cost per entry
//!
//! Redis runs commands on one thread, so the work Redis does per entry
//! bounds the whole fleet. A worker claims entries in batches
//! ([`Queue::claim_many`]: one round trip for up to K entries) and records
//! outcomes in batches ([`Queue::complete_many`]: one round trip for many).
//! The common path runs no Lua: a script copies every string it touches
//! into the interpreter and back, which cost about as much as the commands
//! themselves. An entry's text is never copied in Redis: `LMOVE` moves it
//! from `pending` to the inflight list, and a success removes it with an
//! `LREM` (a C loop of `memcmp`s over the worker's few dozen in-flight
//! entries, which differ from the first bytes of their id on). Only
//! failures, releases and requeues run scripts.
//!
//! # Delivery guarantees
//!
//! At least once. An entry is downloaded twice only when a worker that was
//! presumed dead (its heartbeat expired: hung for longer than the TTL, cut
//! off from Redis, or Redis down for longer than the TTL with persistence on)
//! still finishes its download after its entries were requeued. Completing
//! such an entry still records its result, and a success is never
//! overwritten by a later failure. A connection lost after the server ran a
//! command but before its reply arrived makes a retried [`Queue::enqueue`]
//! report "duplicate" for the entry it did push, and can leave a claimed
//! entry in the worker's processing list that the worker never saw: such
//! orphans go back to `pending` at [`Queue::unregister_worker`], or via
//! [`Queue::requeue_stale`] if the worker dies. Without persistence
//! (`appendonly no`, no snapshots), a Redis restart loses the queue.
//!
//! # Connections and threads
//!
//! A [`Queue`] owns one connection and is `Send`, not shared. A blocked
//! [`Queue::claim`] holds its connection for up to `wait`, so the heartbeat
//! must run on another connection: open one per thread with
//! [`Queue::try_clone`] (cheap: one TCP connection). After a connection-level
//! error ([`QueueError::is_connection`]) the queue drops its connection and
//! the next operation reconnects; [`Queue::with_retry`] wraps an operation
//! in capped exponential backoff for a bounded time (default 60 s), so a
//! worker neither spins nor dies while Redis restarts. Every command has a
//! read/write timeout ([`Queue::with_op_timeout`], default 10 s; `BLMOVE`
//! gets `wait` on top), so a hung server surfaces as a retryable error.
//!
//! # Worker loop
//!
//! ```no_run
//! # use std::time::Duration;
//! # use fetchq::queue::{Queue, RetryPolicy, default_worker_id};
//! # fn main() -> Result<(), fetchq::queue::QueueError> {
//! let retry = RetryPolicy::default();
//! let id = default_worker_id();
//! let mut q = Queue::connect("redis://127.0.0.1/", "default")?;
//! q.with_retry(&retry, |q| q.register_worker(&id))?;
//! let mut hb = q.try_clone()?; // moved to a thread that calls, every q.heartbeat_interval():
//! hb.with_retry(&retry, |q| q.heartbeat(&id))?;
//! loop {
//!     match q.with_retry(&retry, |q| q.claim(&id, Duration::from_secs(2)))? {
//!         Some(entry) => {
//!             let ok = true; // ... download entry.url ...
//!             q.with_retry(&retry, |q| q.complete(&id, &entry, ok, "{}"))?;
//!         }
//!         None => {
//!             q.with_retry(&retry, |q| q.requeue_stale())?;
//!             if q.with_retry(&retry, |q| q.is_drained())? {
//!                 break;
//!             }
//!         }
//!     }
//! }
//! q.with_retry(&retry, |q| q.unregister_worker(&id))?;
//! # Ok(())
//! # }
//! ```

pub mod commands;
mod entry;
mod error;
mod fleet;
mod retry;
mod scripts;
pub mod worker;

use std::time::Duration;

use redis::{Client, Connection, ConnectionLike, RedisError, RedisResult, Value};
use serde::Serialize;

pub use entry::{MalformedEntry, QueueEntry};
pub use error::{QueueError, RedisCause};
pub use retry::RetryPolicy;

/// The default heartbeat TTL: a worker silent this long is presumed dead.
pub const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// The default read/write timeout of one Redis command.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries per enqueue script call.
const ENQUEUE_BATCH: usize = 500;

/// Enqueue batches sent before the first reply is read: two keep Redis
/// busy (one runs while the next arrives). 1,000,000 lines from two
/// `enqueue` processes at once took 6.8 s, against 10 s from one that waited
/// for each reply.
const ENQUEUE_IN_FLIGHT: usize = 2;
/// Most entries one claim moves (one pipelined `LMOVE` each: a claim on an
/// almost empty queue pays for the nil replies).
const MAX_CLAIM: usize = 1000;
/// Outcomes per complete round trip (a longer batch is split).
const COMPLETE_BATCH: usize = 200;
/// Upper bound on SCAN/HSCAN rounds in one operation (a guard; real runs end
/// when the cursor returns to 0, after about size/COUNT rounds).
const MAX_SCAN_ROUNDS: usize = 1_000_000;

/// The Redis keys of one queue.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    pending: String,
    seen: String,
    workers: String,
    done: String,
    failed: String,
    failed_entries: String,
    bad: String,
}

impl Keys {
    fn new(queue: &str) -> Keys {
        let prefix = format!("fetchq:{queue}:");
        let k = |s: &str| format!("{prefix}{s}");
        Keys {
            pending: k("pending"),
            seen: k("seen"),
            workers: k("workers"),
            done: k("done"),
            failed: k("failed"),
            failed_entries: k("failed_entries"),
            bad: k("bad"),
            prefix,
        }
    }

    /// The worker's list of claimed ids.
    fn inflight(&self, worker: &str) -> String {
        format!("{}inflight:{worker}", self.prefix)
    }

    /// The worker's hash of claimed entry texts, by id.
    fn inflight_entries(&self, worker: &str) -> String {
        format!("{}inflight_entries:{worker}", self.prefix)
    }

    /// A worker's list of whole entry texts, as fetchq builds without the
    /// `inflight` keys keep their claims: read only, to return its entries.
    fn processing(&self, worker: &str) -> String {
        format!("{}processing:{worker}", self.prefix)
    }

    fn heartbeat(&self, worker: &str) -> String {
        format!("{}heartbeat:{worker}", self.prefix)
    }

    /// The id → text notes beside a [`processing`](Self::processing) list.
    fn claimed(&self, worker: &str) -> String {
        format!("{}claimed:{worker}", self.prefix)
    }
}

/// A snapshot of a queue, from [`Queue::status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// The queue name.
    pub queue: String,
    /// Entries waiting.
    pub pending: u64,
    /// Entries claimed and not yet completed, all workers together.
    pub processing: u64,
    /// Entries completed successfully.
    pub done: u64,
    /// Entries that failed (and were not retried since).
    pub failed: u64,
    /// Distinct ids ever enqueued.
    pub seen: u64,
    /// Malformed elements set aside by [`Queue::claim`].
    pub bad: u64,
    /// Every registered worker, and every worker with a processing list,
    /// sorted by id.
    pub workers: Vec<WorkerStatus>,
}

/// What one [`Queue::claim_many`] brought.
#[derive(Debug, Default)]
pub struct ClaimBatch {
    /// The entries claimed, oldest first; each is in the worker's processing list.
    pub entries: Vec<QueueEntry>,
    /// Elements that were not valid entries, each with why: moved to `bad`.
    pub bad: Vec<(String, MalformedEntry)>,
}

/// One outcome for [`Queue::complete_many`].
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    /// The claimed entry.
    pub entry: &'a QueueEntry,
    /// `done` (true) or `failed`.
    pub ok: bool,
    /// The result, stored as given.
    pub result_json: &'a str,
}

/// One worker in a [`QueueStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    /// The worker id.
    pub id: String,
    /// Its heartbeat key exists.
    pub alive: bool,
    /// It is in the `workers` set (false: only a leftover processing list).
    pub registered: bool,
    /// Entries it holds (in either kind of claim list).
    pub processing: u64,
}

/// A queue in one Redis database, with one connection.
pub struct Queue {
    client: Client,
    con: Option<Connection>,
    name: String,
    /// The URL with any password removed, for messages.
    url: String,
    keys: Keys,
    heartbeat_ttl: Duration,
    op_timeout: Duration,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("connected", &self.con.is_some())
            .field("heartbeat_ttl", &self.heartbeat_ttl)
            .field("op_timeout", &self.op_timeout)
            .finish()
    }
}

/// A worker id for this process: `HOSTNAME:PID:RANDOM` (8 hex digits), with
/// the host name from `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else
/// `unknown`; whitespace and control characters become `_`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    let host: String = host
        .trim()
        .chars()
        .take(100)
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

fn check_name(name: &str) -> Result<(), QueueError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(QueueError::BadName {
            name: name.to_string(),
        })
    }
}

fn check_worker(id: &str) -> Result<(), QueueError> {
    let ok =
        (1..=200).contains(&id.chars().count()) && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(QueueError::BadWorkerId { id: id.to_string() })
    }
}

/// Parses `major.minor` of `redis_version:` in `INFO server` output.
fn server_version(info: &str) -> Option<(String, (u32, u32))> {
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((v.to_string(), (major, minor)))
}

impl Queue {
    /// A queue handle that has not connected yet (it connects on first use).
    /// Checks the queue name and parses the URL
    /// (`redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`).
    pub fn new(redis_url: &str, queue: &str) -> Result<Queue, QueueError> {
        check_name(queue)?;
        let url = error::redact_url(redis_url);
        let client = Client::open(redis_url).map_err(|source| QueueError::BadUrl {
            url: url.clone(),
            source: source.into(),
        })?;
        Ok(Queue {
            client,
            con: None,
            name: queue.to_string(),
            url,
            keys: Keys::new(queue),
            heartbeat_ttl: DEFAULT_HEARTBEAT_TTL,
            op_timeout: DEFAULT_OP_TIMEOUT,
        })
    }

    /// [`Queue::new`], then connects and checks the server version, so a
    /// wrong address or an old server is reported at once.
    pub fn connect(redis_url: &str, queue: &str) -> Result<Queue, QueueError> {
        let mut q = Queue::new(redis_url, queue)?;
        q.reconnect()?;
        Ok(q)
    }

    /// Sets the heartbeat TTL used by [`register_worker`](Self::register_worker)
    /// and [`heartbeat`](Self::heartbeat) (default 15 s; at least 1 ms).
    /// Every worker of a queue should use the same value.
    pub fn with_heartbeat_ttl(mut self, ttl: Duration) -> Queue {
        self.heartbeat_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// Sets the read/write timeout of one command (default 10 s; at least 1 ms).
    pub fn with_op_timeout(mut self, timeout: Duration) -> Queue {
        self.op_timeout = timeout.max(Duration::from_millis(1));
        if let Some(con) = &self.con
            && (con.set_read_timeout(Some(self.op_timeout)).is_err()
                || con.set_write_timeout(Some(self.op_timeout)).is_err())
        {
            self.con = None;
        }
        self
    }

    /// The heartbeat TTL.
    pub fn heartbeat_ttl(&self) -> Duration {
        self.heartbeat_ttl
    }

    /// How often a worker should call [`heartbeat`](Self::heartbeat): a third
    /// of the TTL, so two missed beats in a row are survived.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_ttl / 3
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis URL, password removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix of all this queue's keys: `fetchq:NAME:`.
    pub fn key_prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// Another handle on the same queue with its own connection (opened now),
    /// e.g. for a heartbeat thread. Settings are copied.
    pub fn try_clone(&self) -> Result<Queue, QueueError> {
        let mut q = Queue {
            client: self.client.clone(),
            con: None,
            name: self.name.clone(),
            url: self.url.clone(),
            keys: self.keys.clone(),
            heartbeat_ttl: self.heartbeat_ttl,
            op_timeout: self.op_timeout,
        };
        q.reconnect()?;
        Ok(q)
    }

    /// Drops the current connection (if any) and opens a new one.
    pub fn reconnect(&mut self) -> Result<(), QueueError> {
        self.con = None;
        self.con = Some(self.open()?);
        Ok(())
    }

    fn open(&self) -> Result<Connection, QueueError> {
        let connect_err = |source: redis::RedisError| QueueError::Connect {
            url: self.url.clone(),
            source: source.into(),
        };
        let mut con = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(connect_err)?;
        con.set_read_timeout(Some(self.op_timeout)).map_err(connect_err)?;
        con.set_write_timeout(Some(self.op_timeout))
            .map_err(connect_err)?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut con)
            .map_err(connect_err)?;
        if let Some((version, v)) = server_version(&info)
            && v < (6, 2)
        {
            return Err(QueueError::Unsupported {
                url: self.url.clone(),
                version,
            });
        }
        Ok(con)
    }

    /// Runs `f` on the connection (opening one if needed); a connection-level
    /// failure drops the connection so the next call reconnects.
    fn run<T>(&mut self, f: impl FnOnce(&mut Connection, &Keys) -> RedisResult<T>) -> Result<T, QueueError> {
        let mut con = match self.con.take() {
            Some(c) => c,
            None => self.open()?,
        };
        match f(&mut con, &self.keys) {
            Ok(v) => {
                self.con = Some(con);
                Ok(v)
            }
            Err(source) => {
                let source = first_failure(source);
                if !error::is_retryable(&source) {
                    self.con = Some(con);
                }
                Err(QueueError::Redis {
                    queue: self.name.clone(),
                    url: self.url.clone(),
                    source: source.into(),
                })
            }
        }
    }

    /// Adds `entry` at the tail of `pending` unless its id was ever enqueued
    /// before. Returns `false` for such a duplicate (nothing pushed).
    pub fn enqueue(&mut self, entry: &QueueEntry) -> Result<bool, QueueError> {
        Ok(self
            .enqueue_many(std::slice::from_ref(entry))?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// [`enqueue`](Self::enqueue) for many entries with few round trips
    /// (batches of 500, each atomic). Returns one flag per entry, in order:
    /// `true` = pushed, `false` = duplicate (also of an earlier entry of the
    /// same slice).
    ///
    /// The batches are pipelined on the one connection, two
    /// at a time, so Redis runs the next one as soon as it is done with one
    /// instead of waiting for the round trip; one connection keeps them in
    /// order. A connection lost mid-way fails the call: batches Redis ran
    /// stay queued, and a retry reports their entries as duplicates.
    pub fn enqueue_many(&mut self, entries: &[QueueEntry]) -> Result<Vec<bool>, QueueError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|con, keys| {
            // EVALSHA below needs the script loaded (after a restart, it is not).
            scripts::ENQUEUE.load(con)?;
            let hash = scripts::ENQUEUE.get_hash();
            let batches: Vec<&[QueueEntry]> = entries.chunks(ENQUEUE_BATCH).collect();
            let mut out = Vec::with_capacity(entries.len());
            let mut sent = 0;
            for received in 0..batches.len() {
                while sent < batches.len() && sent - received < ENQUEUE_IN_FLIGHT {
                    let mut cmd = redis::cmd("EVALSHA");
                    cmd.arg(hash).arg(2).arg(&keys.seen).arg(&keys.pending);
                    for e in batches[sent] {
                        cmd.arg(&e.id).arg(e.to_json());
                    }
                    con.send_packed_command(&cmd.get_packed_command())?;
                    sent += 1;
                }
                let reply = con.recv_response()?.extract_error()?;
                let flags: Vec<i64> = redis::from_redis_value(reply)?;
                out.extend(flags.into_iter().map(|f| f == 1));
            }
            Ok(out)
        })
    }

    /// Announces a worker: adds it to `workers` and sets its heartbeat.
    /// Call before the first [`claim`](Self::claim).
    pub fn register_worker(&mut self, worker_id: &str) -> Result<(), QueueError> {
        self.heartbeat(worker_id)
    }

    /// Refreshes a worker's heartbeat (and re-adds it to `workers` should it
    /// have been presumed dead meanwhile). Call every
    /// [`heartbeat_interval`](Self::heartbeat_interval), from a thread with
    /// its own [`Queue`].
    pub fn heartbeat(&mut self, worker_id: &str) -> Result<(), QueueError> {
        check_worker(worker_id)?;
        let ttl_ms = u64::try_from(self.heartbeat_ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(|con, keys| {
            redis::pipe()
                .atomic()
                .cmd("SADD")
                .arg(&keys.workers)
                .arg(worker_id)
                .ignore()
                .cmd("SET")
                .arg(keys.heartbeat(worker_id))
                .arg(1)
                .arg("PX")
                .arg(ttl_ms)
                .ignore()
                .query::<()>(con)
        })
    }

    /// Claims the oldest pending entry for `worker_id`, moving it to the
    /// worker's processing list; waits up to `wait` for one to arrive
    /// (`Duration::ZERO`: don't wait). `None` when none came in time.
    ///
    /// A malformed element is moved to the `bad` list and reported as
    /// [`QueueError::BadEntry`]; claim again after reporting it.
    pub fn claim(&mut self, worker_id: &str, wait: Duration) -> Result<Option<QueueEntry>, QueueError> {
        let mut batch = self.claim_many(worker_id, 1, wait)?;
        if let Some((raw, source)) = batch.bad.pop() {
            return Err(QueueError::BadEntry {
                queue: self.name.clone(),
                raw,
                source,
            });
        }
        Ok(batch.entries.pop())
    }

    /// Claims up to `max` (at least 1, at most 1000) of the oldest pending entries for
    /// `worker_id` in one round trip, moving them to the worker's processing
    /// list in order. Only when none is pending does it wait, up to `wait`,
    /// for one to arrive (`Duration::ZERO`: don't wait); the batch is empty
    /// when none came in time.
    ///
    /// Claim no more than the caller can start soon: a worker that dies
    /// strands what it holds until its heartbeat expires. Malformed elements
    /// are moved to the `bad` list and returned in [`ClaimBatch::bad`].
    pub fn claim_many(
        &mut self,
        worker_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<ClaimBatch, QueueError> {
        check_worker(worker_id)?;
        let max = max.clamp(1, MAX_CLAIM);
        let mut raws = self.run(|con, keys| move_pending(con, keys, worker_id, max))?;
        if raws.is_empty() && !wait.is_zero() {
            raws.extend(self.claim_blocking(worker_id, wait)?);
        }
        let mut batch = ClaimBatch::default();
        for raw in raws {
            match QueueEntry::from_claimed(raw) {
                Ok(e) => batch.entries.push(e),
                Err((raw, source)) => {
                    self.run(|con, keys| {
                        scripts::QUARANTINE
                            .key(keys.inflight(worker_id))
                            .key(&keys.bad)
                            .arg(&raw)
                            .invoke::<i64>(con)
                    })?;
                    batch.bad.push((raw, source));
                }
            }
        }
        Ok(batch)
    }

    /// Waits up to `wait` for one entry with `BLMOVE`, which moves it to the
    /// inflight list as a batch claim does.
    fn claim_blocking(&mut self, worker_id: &str, wait: Duration) -> Result<Option<String>, QueueError> {
        let op_timeout = self.op_timeout;
        self.run(|con, keys| {
            // A zero BLMOVE timeout blocks forever: round up to 1 ms.
            let secs = wait.as_millis().max(1) as f64 / 1000.0;
            con.set_read_timeout(Some(wait.saturating_add(op_timeout)))?;
            let r = redis::cmd("BLMOVE")
                .arg(&keys.pending)
                .arg(keys.inflight(worker_id))
                .arg("LEFT")
                .arg("RIGHT")
                .arg(secs)
                .query(con);
            let restored = con.set_read_timeout(Some(op_timeout));
            let r = r?;
            restored?;
            Ok(r)
        })
    }

    /// Records the outcome of a claimed entry and removes it from the
    /// worker's processing list, atomically. `ok` selects `done` or `failed`;
    /// `result_json` is stored as given. A failure also stores the entry for
    /// [`retry_failed`](Self::retry_failed); a success clears an earlier
    /// failure; a failure never overwrites a success.
    ///
    /// Returns whether the entry was still in the processing list (`false`
    /// if it had been requeued as stale, or a retry after a lost reply).
    pub fn complete(
        &mut self,
        worker_id: &str,
        entry: &QueueEntry,
        ok: bool,
        result_json: &str,
    ) -> Result<bool, QueueError> {
        let found = self.complete_many(
            worker_id,
            &[Completion {
                entry,
                ok,
                result_json,
            }],
        )?;
        Ok(found.first().copied().unwrap_or(false))
    }

    /// [`complete`](Self::complete) for many outcomes in one round trip per
    /// 200 (two when a batch has failures). Each batch's successes are one
    /// transaction, and its failures one script run after them; retrying a
    /// whole batch after a lost reply is safe (results are stored again,
    /// nothing is removed twice). Returns one flag per outcome, in order.
    pub fn complete_many(
        &mut self,
        worker_id: &str,
        outcomes: &[Completion<'_>],
    ) -> Result<Vec<bool>, QueueError> {
        check_worker(worker_id)?;
        let mut out = Vec::with_capacity(outcomes.len());
        for chunk in outcomes.chunks(COMPLETE_BATCH) {
            let (ok, failed): (Vec<&Completion>, Vec<&Completion>) = chunk.iter().partition(|c| c.ok);
            let ok_found = if ok.is_empty() {
                Vec::new()
            } else {
                self.run(|con, keys| succeed(con, keys, worker_id, &ok))?
            };
            let failed_found: Vec<i64> = if failed.is_empty() {
                Vec::new()
            } else {
                self.run(|con, keys| {
                    let mut inv = scripts::FAIL.key(keys.inflight(worker_id));
                    inv.key(&keys.done).key(&keys.failed).key(&keys.failed_entries);
                    for c in &failed {
                        inv.arg(&c.entry.id)
                            .arg(c.result_json)
                            .arg(c.entry.text().as_ref());
                    }
                    inv.invoke(con)
                })?
            };
            let (mut ok_found, mut failed_found) = (ok_found.into_iter(), failed_found.into_iter());
            out.extend(chunk.iter().map(|c| {
                let found = if c.ok {
                    ok_found.next()
                } else {
                    failed_found.next()
                };
                found.unwrap_or(0) > 0
            }));
        }
        Ok(out)
    }

    /// Gives back a claimed entry that was not started (clean shutdown): it
    /// moves to the head of `pending`, so it is the next one claimed.
    /// Returns whether it was in the worker's processing list.
    pub fn release(&mut self, worker_id: &str, entry: &QueueEntry) -> Result<bool, QueueError> {
        check_worker(worker_id)?;
        let found: i64 = self.run(|con, keys| {
            scripts::RELEASE
                .key(keys.inflight(worker_id))
                .key(&keys.pending)
                .arg(entry.text().as_ref())
                .invoke(con)
        })?;
        Ok(found == 1)
    }

    /// Clean worker exit: whatever is left in its processing list goes back
    /// to the head of `pending` (release or complete in-flight entries
    /// first), its heartbeat is deleted and it leaves `workers`. Returns how
    /// many entries were requeued.
    pub fn unregister_worker(&mut self, worker_id: &str) -> Result<usize, QueueError> {
        check_worker(worker_id)?;
        let n: i64 = self.run(|con, keys| {
            scripts::UNREGISTER
                .key(&keys.workers)
                .key(keys.heartbeat(worker_id))
                .key(&keys.pending)
                .key(keys.inflight(worker_id))
                .key(keys.inflight_entries(worker_id))
                .key(keys.processing(worker_id))
                .key(keys.claimed(worker_id))
                .arg(worker_id)
                .invoke(con)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Every worker id known to the queue: the `workers` set plus the owners
    /// of processing lists (a list may outlive its worker's registration).
    /// Sorted, deduplicated.
    fn known_workers(&mut self) -> Result<Vec<String>, QueueError> {
        self.run(|con, keys| {
            let mut ids: Vec<String> = redis::cmd("SMEMBERS").arg(&keys.workers).query(con)?;
            // Both kinds of claim list, in one walk of the key space.
            let lists = [keys.inflight(""), keys.processing("")];
            let pattern = format!("{}*", keys.prefix);
            let mut cursor = String::from("0");
            for _ in 0..MAX_SCAN_ROUNDS {
                let (next, found): (String, Vec<String>) = redis::cmd("SCAN")
                    .arg(&cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)?;
                ids.extend(
                    found
                        .iter()
                        .filter_map(|k| lists.iter().find_map(|l| k.strip_prefix(l.as_str())))
                        .map(str::to_string),
                );
                if next == "0" {
                    break;
                }
                cursor = next;
            }
            ids.sort();
            ids.dedup();
            Ok(ids)
        })
    }

    /// For every worker whose heartbeat key has expired, moves all entries of
    /// its processing list back to the head of `pending` and forgets the
    /// worker; each worker in one atomic step that re-checks its heartbeat.
    /// Live workers are not touched. Returns how many entries moved.
    pub fn requeue_stale(&mut self) -> Result<usize, QueueError> {
        let mut moved = 0usize;
        for w in self.known_workers()? {
            let n: i64 = self.run(|con, keys| {
                scripts::REQUEUE_IF_DEAD
                    .key(&keys.workers)
                    .key(keys.heartbeat(&w))
                    .key(&keys.pending)
                    .key(keys.inflight(&w))
                    .key(keys.inflight_entries(&w))
                    .key(keys.processing(&w))
                    .key(keys.claimed(&w))
                    .arg(&w)
                    .invoke(con)
            })?;
            moved += usize::try_from(n).unwrap_or(0);
        }
        Ok(moved)
    }

    /// Moves every failed entry to the tail of `pending` and clears its
    /// failure record. Returns how many moved. Atomic per batch of about 500.
    pub fn retry_failed(&mut self) -> Result<usize, QueueError> {
        let mut moved = 0usize;
        let mut cursor = String::from("0");
        for _ in 0..MAX_SCAN_ROUNDS {
            let (next, n): (String, i64) = self.run(|con, keys| {
                scripts::RETRY_FAILED_STEP
                    .key(&keys.failed)
                    .key(&keys.failed_entries)
                    .key(&keys.pending)
                    .arg(&cursor)
                    .arg(ENQUEUE_BATCH)
                    .invoke(con)
            })?;
            moved += usize::try_from(n).unwrap_or(0);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        Ok(moved)
    }

    /// Counts of every part of the queue, and each worker with its state.
    pub fn status(&mut self) -> Result<QueueStatus, QueueError> {
        let (pending, done, failed, seen, bad): (u64, u64, u64, u64, u64) = self.run(|con, keys| {
            redis::pipe()
                .atomic()
                .cmd("LLEN")
                .arg(&keys.pending)
                .cmd("HLEN")
                .arg(&keys.done)
                .cmd("HLEN")
                .arg(&keys.failed)
                .cmd("SCARD")
                .arg(&keys.seen)
                .cmd("LLEN")
                .arg(&keys.bad)
                .query(con)
        })?;
        let ids = self.known_workers()?;
        let rows: Vec<(bool, bool, u64)> = if ids.is_empty() {
            Vec::new()
        } else {
            self.run(|con, keys| {
                let mut p = redis::pipe();
                for w in &ids {
                    p.cmd("EXISTS")
                        .arg(keys.heartbeat(w))
                        .cmd("SISMEMBER")
                        .arg(&keys.workers)
                        .arg(w)
                        .cmd("LLEN")
                        .arg(keys.inflight(w))
                        .cmd("LLEN")
                        .arg(keys.processing(w));
                }
                let flat: Vec<u64> = p.query(con)?;
                Ok(flat
                    .chunks(4)
                    .map(|c| (c[0] == 1, c[1] == 1, c[2] + c[3]))
                    .collect())
            })?
        };
        let workers: Vec<WorkerStatus> = ids
            .into_iter()
            .zip(rows)
            .map(|(id, (alive, registered, processing))| WorkerStatus {
                id,
                alive,
                registered,
                processing,
            })
            .collect();
        Ok(QueueStatus {
            queue: self.name.clone(),
            pending,
            processing: workers.iter().map(|w| w.processing).sum(),
            done,
            failed,
            seen,
            bad,
            workers,
        })
    }

    /// True when nothing is left to do: `pending` is empty and no processing
    /// list has entries. Entries of dead workers count as not done (they are
    /// not lost): call [`requeue_stale`](Self::requeue_stale) first so they
    /// go back to `pending` for the live workers.
    pub fn is_drained(&mut self) -> Result<bool, QueueError> {
        let s = self.status()?;
        Ok(s.pending == 0 && s.processing == 0)
    }
}

/// Moves up to `max` entries from the head of pending to the tail of the
/// worker's inflight list: `max` pipelined `LMOVE`s in one write, each
/// moving one text as it is (no copy, no script), so an entry is at every
/// moment in exactly one list. No `MULTI` around them: each move is atomic
/// on its own, and a batch cut off half-way leaves orphans the worker
/// returns as it returns any claim whose reply it lost. An empty pending
/// answers the rest with nil. Returns the texts moved, in order; the first
/// error if a move failed.
fn move_pending(con: &mut Connection, keys: &Keys, worker_id: &str, max: usize) -> RedisResult<Vec<String>> {
    let one = redis::cmd("LMOVE")
        .arg(&keys.pending)
        .arg(keys.inflight(worker_id))
        .arg("LEFT")
        .arg("RIGHT")
        .get_packed_command();
    let packed = one.repeat(max);
    let mut moved = Vec::with_capacity(max);
    for reply in con.req_packed_commands(&packed, 0, max)? {
        match reply {
            Value::Nil => {}
            Value::ServerError(e) => return Err(e.into()),
            text => moved.push(redis::from_redis_value(text)?),
        }
    }
    Ok(moved)
}

/// The first command's error of a failed transaction, as a plain server
/// error: the crate lists every command's (each of a batch fails alike on
/// `WRONGTYPE`), and calls a transaction Redis refused while loading its
/// data `EXECABORT`, where the first error says `LOADING`, which is worth
/// retrying. Any other error as it is.
fn first_failure(e: RedisError) -> RedisError {
    match e.clone().into_server_errors() {
        Some(errors) => match errors.first() {
            Some((_, first)) => RedisError::from(first.clone()),
            None => e,
        },
        None => e,
    }
}

/// Records successes as one transaction, without a script: each result
/// goes into `done` (clearing an earlier failure) and each entry's text
/// leaves the inflight list (`LREM`, a C loop of `memcmp`s over a few
/// dozen elements). Returns the `LREM` counts, in order.
fn succeed(con: &mut Connection, keys: &Keys, worker_id: &str, ok: &[&Completion]) -> RedisResult<Vec<i64>> {
    let ids: Vec<&str> = ok.iter().map(|c| c.entry.id.as_str()).collect();
    let inflight = keys.inflight(worker_id);
    let mut p = redis::pipe();
    p.atomic().cmd("HSET").arg(&keys.done);
    for c in ok {
        p.arg(&c.entry.id).arg(c.result_json);
    }
    p.ignore();
    for c in ok {
        p.cmd("LREM").arg(&inflight).arg(1).arg(c.entry.text().as_ref());
    }
    p.cmd("HDEL").arg(&keys.failed).arg(&ids).ignore();
    p.cmd("HDEL").arg(&keys.failed_entries).arg(&ids).ignore();
    p.query(con)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_worker_ids_are_checked() {
        assert!(check_name("default").is_ok());
        assert!(check_name("a.b_c-9").is_ok());
        for bad in ["", "a b", "a:b", "q*", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_worker("host:12:abcd").is_ok());
        assert!(check_worker("").is_err());
        assert!(check_worker("a b").is_err());
        assert!(check_worker(&default_worker_id()).is_ok());
    }

    #[test]
    fn worker_id_has_three_parts() {
        let id = default_worker_id();
        let parts: Vec<&str> = id.rsplitn(3, ':').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0].len(), 8);
        assert_eq!(parts[1], std::process::id().to_string());
        assert_ne!(default_worker_id(), id);
    }

    #[test]
    fn keys_are_under_the_prefix() {
        let k = Keys::new("q1");
        assert_eq!(k.pending, "fetchq:q1:pending");
        assert_eq!(k.failed_entries, "fetchq:q1:failed_entries");
        assert_eq!(k.inflight("h:1:ab"), "fetchq:q1:inflight:h:1:ab");
        assert_eq!(k.inflight_entries("w"), "fetchq:q1:inflight_entries:w");
        assert_eq!(k.processing("h:1:ab"), "fetchq:q1:processing:h:1:ab");
        assert_eq!(k.heartbeat("w"), "fetchq:q1:heartbeat:w");
        assert_eq!(k.claimed("w"), "fetchq:q1:claimed:w");
    }

    #[test]
    fn server_version_parses_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n";
        assert_eq!(server_version(info), Some(("7.0.15".into(), (7, 0))));
        assert!(server_version("redis_version:6.0.9").unwrap().1 < (6, 2));
        assert_eq!(server_version("nothing"), None);
    }

    #[test]
    fn new_rejects_bad_input_without_io() {
        assert!(matches!(
            Queue::new("redis://127.0.0.1/", "bad name"),
            Err(QueueError::BadName { .. })
        ));
        let e = Queue::new("nope://u:s3cret@h/", "q").unwrap_err();
        assert!(matches!(e, QueueError::BadUrl { .. }), "{e:?}");
        let shown = crate::display::chain(&e);
        assert!(!shown.contains("s3cret"), "{shown}");
        let q = Queue::new("redis://127.0.0.1:1/", "q").unwrap();
        assert_eq!(q.key_prefix(), "fetchq:q:");
        assert_eq!(q.heartbeat_interval(), Duration::from_secs(5));
    }
}
