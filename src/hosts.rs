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

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Receiver;
use url::Url;

/// Most entries held back at once.
const PARK_LIMIT: usize = 1024;

/// The shared per-host limiter of a channel of `T`s (the pool's jobs).
pub struct HostGate<T> {
    limit: usize,
    /// The URL whose host an item downloads from.
    url_of: fn(&T) -> &Url,
    state: Mutex<State<T>>,
    freed: Condvar,
    /// Held from drawing an entry to parking or starting it, so entries are
    /// decided in queue order (`--content-disposition` relies on it: an entry
    /// waits for every earlier one's name, see `naming::LateOrder`).
    intake: Mutex<()>,
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
pub struct Permit<'a, T> {
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
        let mut state = self.gate.lock();
        if let Some(count) = state.active.get_mut(&self.host) {
            *count -= 1;
            if *count == 0 {
                state.active.remove(&self.host);
            }
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
    pub fn new(limit: usize, url_of: fn(&T) -> &Url) -> HostGate<T> {
        HostGate {
            limit: limit.max(1),
            url_of,
            state: Mutex::default(),
            freed: Condvar::new(),
            intake: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A worker that panicked while holding the lock left consistent counts
        // (every update is one statement); keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next job this worker may start, with its host slot; `None` once the
    /// channel is closed and nothing is parked.
    pub fn next(&self, jobs: &Receiver<T>) -> Option<(T, Permit<'_, T>)> {
        loop {
            {
                let mut state = self.lock();
                let limit = self.limit;
                let runnable = state
                    .parked
                    .iter()
                    .position(|(host, _)| state.active.get(host).copied().unwrap_or(0) < limit);
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
            match jobs.recv() {
                Ok(job) => {
                    let host = host_key((self.url_of)(&job));
                    let mut state = self.lock();
                    let behind = state.parked.iter().any(|(parked, _)| *parked == host);
                    if !behind && state.active.get(&host).copied().unwrap_or(0) < self.limit {
                        return Some((job, self.acquire(&mut state, host)));
                    }
                    state.parked.push_back((host, job));
                }
                Err(_) => {
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
