//! `--per-host`: at most N simultaneous downloads from one host (host and
//! port), across all workers, without idling a worker while other hosts have
//! work queued.
//!
//! A worker that draws an entry for a host already at its limit parks it and
//! draws another. Whoever finishes a download for that host first takes the
//! parked entry next. One host's entries start in queue order: an entry is
//! drawn and parked or started under one lock, and parks behind a parked entry
//! of its host. The parking lot is bounded: once it holds
//! `PARK_LIMIT` (1024) entries (a list that is all one host), workers wait for a
//! host to free up instead of draining the channel, so memory stays bounded.
//!
//! With a fleet counter (`worker --global-limits`, see [`crate::limits`]) a
//! download also needs one of the host's slots across the fleet: an entry
//! whose host has none free is parked like one at the local limit, and the
//! parked entries are offered again every `FLEET_RETRY`, since a slot freed
//! by another process wakes no one here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use url::Url;

use crate::config::Config;
use crate::limits::FleetLimits;

/// Most entries held back at once.
const PARK_LIMIT: usize = 1024;
/// How often parked entries are offered to the fleet counter again while
/// this process waits for its next entry.
const FLEET_RETRY: Duration = Duration::from_millis(50);

/// The shared per-host limiter of a channel of `T`s (the pool's jobs).
pub(crate) struct HostGate<T> {
    limit: usize,
    /// The URL whose host an item downloads from.
    url_of: fn(&T) -> &Url,
    state: Mutex<State<T>>,
    freed: Condvar,
    /// Held from drawing an entry to parking or starting it, so entries are
    /// decided in queue order (`--content-disposition` relies on it: an entry
    /// waits for every earlier one's name, see `naming::LateOrder`).
    intake: Mutex<()>,
    /// The fleet-wide counter of host slots, if the limit is shared.
    fleet: Option<Arc<dyn FleetLimits>>,
}

struct State<T> {
    active: HashMap<String, usize>,
    parked: VecDeque<(String, T)>,
    input_done: bool,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            active: HashMap::new(),
            parked: VecDeque::new(),
            input_done: false,
        }
    }
}

/// Holds one of a host's slots; gives it back when dropped.
pub(crate) struct Permit<'a, T> {
    gate: &'a HostGate<T>,
    host: String,
}

impl<T> Drop for Permit<'_, T> {
    /// Frees the slot without waking anyone: the worker dropping the permit
    /// goes straight back to [`HostGate::next`] and takes the parked entry the
    /// slot makes runnable (one release makes at most one entry runnable).
    /// Waking every waiter here cost more CPU than the downloads at `-j 64`.
    /// A waiter that needs a wake-up for another reason is covered by its
    /// timed wait.
    fn drop(&mut self) {
        {
            let mut state = self.gate.lock();
            if let Some(count) = state.active.get_mut(&self.host) {
                *count -= 1;
                if *count == 0 {
                    state.active.remove(&self.host);
                }
            }
        }
        if let Some(fleet) = &self.gate.fleet {
            fleet.give_slot(&self.host);
        }
    }
}

/// The key of a URL's host: `host:port`.
fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl<T> HostGate<T> {
    /// A gate allowing `limit` simultaneous downloads per host, the host of
    /// an item being that of `url_of(item)`.
    pub(crate) fn new(limit: usize, url_of: fn(&T) -> &Url) -> HostGate<T> {
        HostGate {
            limit: limit.max(1),
            url_of,
            state: Mutex::default(),
            freed: Condvar::new(),
            intake: Mutex::default(),
            fleet: None,
        }
    }

    /// The gate `config` asks for in a pool of `jobs` workers, if any: with
    /// no more workers than the per-host limit the limit cannot bind in this
    /// process, but it can across a fleet.
    pub(crate) fn of(config: &Config, jobs: usize, url_of: fn(&T) -> &Url) -> Option<HostGate<T>> {
        (config.per_host < jobs || config.fleet.is_some()).then(|| HostGate {
            fleet: config.fleet.clone(),
            ..HostGate::new(config.per_host, url_of)
        })
    }

    /// Whether the fleet grants `host` one more slot (always, without a fleet).
    /// Called under the state lock: a slot the counter does not hold already
    /// costs a round trip to it there, which the other workers wait out.
    fn fleet_slot(&self, host: &str) -> bool {
        self.fleet
            .as_ref()
            .is_none_or(|fleet| fleet.take_slot(host, self.limit))
    }

    /// The first parked entry that may start now: its host is under the
    /// local limit and the fleet gave it a slot. A host the fleet refused is
    /// not asked again in the same pass, so its entries keep their order.
    fn runnable(&self, state: &State<T>) -> Option<usize> {
        let mut refused: Vec<&str> = Vec::new();
        for (i, (host, _)) in state.parked.iter().enumerate() {
            if state.active.get(host).copied().unwrap_or(0) >= self.limit || refused.contains(&host.as_str())
            {
                continue;
            }
            if self.fleet_slot(host) {
                return Some(i);
            }
            refused.push(host);
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A worker that panicked while holding the lock left consistent counts
        // (every update is one statement); keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next job this worker may start, with its host slot; `None` once the
    /// channel is closed and nothing is parked.
    pub(crate) fn next(&self, jobs: &Receiver<T>) -> Option<(T, Permit<'_, T>)> {
        loop {
            {
                let mut state = self.lock();
                let runnable = self.runnable(&state);
                if let Some((host, job)) = runnable.and_then(|i| state.parked.remove(i)) {
                    return Some((job, self.acquire(&mut state, host)));
                }
                if state.input_done || state.parked.len() >= PARK_LIMIT {
                    if state.input_done && state.parked.is_empty() {
                        return None;
                    }
                    // Timed wait: a missed wake-up costs 100 ms, never a hang.
                    let _ = self.freed.wait_timeout(state, Duration::from_millis(100));
                    continue;
                }
            }
            let _intake = self
                .intake
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Parked entries waiting for the fleet are offered again soon
            // even if no new entry arrives.
            let received = if self.fleet.is_some() && !self.lock().parked.is_empty() {
                jobs.recv_timeout(FLEET_RETRY)
            } else {
                jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match received {
                Ok(job) => {
                    let host = host_key((self.url_of)(&job));
                    let mut state = self.lock();
                    let behind = state.parked.iter().any(|(parked, _)| *parked == host);
                    if !behind
                        && state.active.get(&host).copied().unwrap_or(0) < self.limit
                        && self.fleet_slot(&host)
                    {
                        return Some((job, self.acquire(&mut state, host)));
                    }
                    state.parked.push_back((host, job));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.lock().input_done = true;
                    self.freed.notify_all();
                }
            }
        }
    }

    fn acquire(&self, state: &mut State<T>, host: String) -> Permit<'_, T> {
        *state.active.entry(host.clone()).or_default() += 1;
        Permit { gate: self, host }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use crossbeam_channel::unbounded;
    use url::Url;

    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL")
    }

    /// The gate over a channel of bare URLs (the pool's items are jobs).
    fn gate(limit: usize) -> HostGate<Url> {
        fn itself(url: &Url) -> &Url {
            url
        }
        HostGate::new(limit, itself)
    }

    /// A closed channel holding these URLs, in order.
    fn queued(urls: &[&str]) -> Receiver<Url> {
        let (tx, rx) = unbounded();
        for text in urls {
            tx.send(url(text)).expect("queue a URL");
        }
        rx
    }

    fn url_of(next: &Option<(Url, Permit<'_, Url>)>) -> Option<String> {
        next.as_ref().map(|(url, _)| url.to_string())
    }

    #[test]
    fn host_key_is_host_and_port_with_the_scheme_default() {
        let cases = [
            ("http://a.test/x", "a.test:80"),
            ("http://a.test:80/y", "a.test:80"),
            ("https://a.test/x", "a.test:443"),
            ("http://a.test:8080/x", "a.test:8080"),
            ("http://A.Test/x", "a.test:80"),
            ("http://user:pw@a.test/x?q=1", "a.test:80"),
            ("http://127.0.0.1:9/x", "127.0.0.1:9"),
            ("http://[::1]/x", "[::1]:80"),
        ];
        for (text, key) in cases {
            assert_eq!(host_key(&url(text)), key, "{text}");
        }
    }

    #[test]
    fn a_busy_host_is_parked_and_another_host_runs_meanwhile() {
        let gate = gate(1);
        let rx = queued(&["http://a.test/1", "http://a.test/2", "http://b.test/1"]);

        let a1 = gate.next(&rx);
        assert_eq!(url_of(&a1).as_deref(), Some("http://a.test/1"));
        // a.test is at its limit: a.test/2 is parked, b.test/1 runs.
        let b1 = gate.next(&rx);
        assert_eq!(url_of(&b1).as_deref(), Some("http://b.test/1"));
        drop(a1);
        let a2 = gate.next(&rx);
        assert_eq!(url_of(&a2).as_deref(), Some("http://a.test/2"));
        drop((a2, b1));
        assert!(gate.next(&rx).is_none(), "channel closed and nothing parked");
    }

    #[test]
    fn a_parked_entry_goes_before_new_ones_when_its_host_frees_up() {
        let gate = gate(1);
        let rx = queued(&[
            "http://a.test/1",
            "http://a.test/2",
            "http://b.test/1",
            "http://c.test/1",
        ]);
        let a1 = gate.next(&rx);
        let b1 = gate.next(&rx);
        assert_eq!(url_of(&b1).as_deref(), Some("http://b.test/1"));
        drop(a1);
        let next = gate.next(&rx);
        assert_eq!(url_of(&next).as_deref(), Some("http://a.test/2"));
        assert_eq!(rx.len(), 1, "c.test/1 is still queued");
    }

    #[test]
    fn a_limit_of_zero_means_one() {
        // Asked on a thread of its own: a limit of zero would park the entry
        // for ever, and the test must fail rather than hang.
        let (tx, got) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let gate = gate(0);
            let rx = queued(&["http://a.test/1"]);
            let _ = tx.send(url_of(&gate.next(&rx)));
        });
        let got = got.recv_timeout(Duration::from_secs(10));
        assert_eq!(got, Ok(Some("http://a.test/1".to_string())));
    }

    #[test]
    fn workers_never_exceed_the_limit_and_take_every_entry_once() {
        const LIMIT: usize = 2;
        let urls: Vec<String> = (0..60)
            .map(|i| format!("http://{}.test/{i}", ["a", "b", "c"][i % 3]))
            .collect();
        let rx = queued(&urls.iter().map(String::as_str).collect::<Vec<_>>());
        let gate = gate(LIMIT);
        let active: HashMap<&str, AtomicUsize> = ["a.test", "b.test", "c.test"]
            .into_iter()
            .map(|h| (h, AtomicUsize::new(0)))
            .collect();
        let most = AtomicUsize::new(0);
        let taken = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    while let Some((job, permit)) = gate.next(&rx) {
                        let host = &active[job.host_str().unwrap_or("")];
                        let now = host.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // A download takes a while: long enough for the
                        // others to try the same host meanwhile.
                        std::thread::sleep(Duration::from_millis(2));
                        host.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                        taken.lock().unwrap().push(job.to_string());
                    }
                });
            }
        });
        let mut taken = taken.into_inner().unwrap();
        taken.sort();
        let mut want = urls.clone();
        want.sort();
        assert_eq!(taken, want);
        assert!(
            most.load(Ordering::SeqCst) <= LIMIT,
            "{most:?} at once on one host"
        );
    }

    /// A fleet counter holding `free` slots per host for the whole fleet.
    #[derive(Debug)]
    struct Fleet(Mutex<HashMap<String, usize>>);

    impl Fleet {
        fn set(&self, host: &str, free: usize) {
            self.0.lock().unwrap().insert(host.to_string(), free);
        }
        fn free(&self, host: &str) -> usize {
            self.0.lock().unwrap().get(host).copied().unwrap_or(0)
        }
    }

    impl FleetLimits for Fleet {
        fn take_slot(&self, host: &str, _: usize) -> bool {
            let mut free = self.0.lock().unwrap();
            let n = free.entry(host.to_string()).or_default();
            *n > 0 && {
                *n -= 1;
                true
            }
        }
        fn give_slot(&self, host: &str) {
            *self.0.lock().unwrap().entry(host.to_string()).or_default() += 1;
        }
        fn charge(&self, _: u64, _: u64, _: u64) -> Duration {
            Duration::ZERO
        }
    }

    #[test]
    fn a_host_the_fleet_refuses_waits_parked_and_its_slots_go_back() {
        let fleet = Arc::new(Fleet(Mutex::default()));
        fleet.set("a.test:80", 0);
        fleet.set("b.test:80", 1);
        let mut config = Config::new("unused");
        config.per_host = 4;
        config.fleet = Some(fleet.clone());
        fn itself(url: &Url) -> &Url {
            url
        }
        // With -j 1 there is no gate without a fleet: one worker cannot exceed 4.
        let gate = HostGate::of(&config, 1, itself).expect("a fleet always needs the gate");
        let rx = queued(&["http://a.test/1", "http://b.test/1", "http://b.test/2"]);

        // a.test has no fleet slot free: parked; b.test/1 takes b's only one.
        let b1 = gate.next(&rx);
        assert_eq!(url_of(&b1).as_deref(), Some("http://b.test/1"));
        // Another process frees a slot of a.test: the parked entry goes first.
        fleet.set("a.test:80", 1);
        let a1 = gate.next(&rx);
        assert_eq!(url_of(&a1).as_deref(), Some("http://a.test/1"));
        assert_eq!(fleet.free("a.test:80"), 0);
        // b.test/2 needs b.test/1's slot, which its permit gives back.
        drop(b1);
        assert_eq!(fleet.free("b.test:80"), 1);
        let b2 = gate.next(&rx);
        assert_eq!(url_of(&b2).as_deref(), Some("http://b.test/2"));
        drop((a1, b2));
        assert!(gate.next(&rx).is_none());
        assert_eq!((fleet.free("a.test:80"), fleet.free("b.test:80")), (1, 1));
    }

    /// A list that is all one host parks at most `PARK_LIMIT` entries; the
    /// rest stay in the channel until a slot frees up.
    #[test]
    fn the_parking_lot_is_bounded() {
        let urls: Vec<String> = (0..PARK_LIMIT + 11)
            .map(|i| format!("http://a.test/{i}"))
            .collect();
        let rx = queued(&urls.iter().map(String::as_str).collect::<Vec<_>>());
        let gate = gate(1);
        let first = gate.next(&rx);
        assert_eq!(url_of(&first).as_deref(), Some("http://a.test/0"));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| url_of(&gate.next(&rx)));
            let deadline = Instant::now() + Duration::from_secs(10);
            while rx.len() > 10 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(rx.len(), 10, "the waiter parks exactly PARK_LIMIT entries");
            assert!(!waiter.is_finished(), "nothing is runnable while a.test is busy");
            drop(first);
            let got = waiter.join().expect("waiter thread");
            assert_eq!(got.as_deref(), Some("http://a.test/1"), "the first parked entry");
        });
        assert_eq!(rx.len(), 10, "a freed slot takes a parked entry, not a new one");
    }
}
