//! `--limit-rate`: one token bucket shared by all workers, so the total
//! download rate stays at the limit however many downloads run.
//!
//! Workers take tokens for bytes they already read; a bucket in debt makes
//! the reader sleep until the debt is paid. The bucket holds at most a tenth
//! of a second of tokens, so an idle spell cannot be followed by a burst far
//! above the limit.
//!
//! With a fleet counter (`worker --global-limits`, see [`crate::limits`]) the
//! bucket is the fleet's, kept by the counter: bytes read are added up here
//! and charged to it once a grant's worth (a sixty-fourth of a second at
//! the rate, 32 KiB to 1 MiB) is owed, so the fleet makes about 64 calls a
//! second in all, however many workers share the rate (fewer above 64 MiB/s).
//! The counter answers with a pause that every download of this process
//! then honours, as all workers honour a local bucket's debt. The fleet's
//! bucket holds two grants (so a pause overslept by a busy machine does not
//! waste the rate), and at most one grant per process is read but not yet
//! charged: that, over the run's length, is how far the fleet can run above
//! the rate (for three workers at 2 MiB/s, 160 KiB: 2.6 % of a 3-second
//! run). Larger grants would cost Redis less and overshoot more.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::config::Config;
use crate::limits::FleetLimits;

/// Smallest and largest amount charged to the fleet's bucket at once.
const GRANT_RANGE: (u64, u64) = (32 * 1024, 1024 * 1024);

/// Shared token bucket.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    /// The fleet's bucket, which replaces the local one when present.
    fleet: Option<Fleet>,
}

/// This process's side of the fleet's bucket.
struct Fleet {
    counter: Arc<dyn FleetLimits>,
    /// Bytes owed before they are charged.
    grant: u64,
    state: Mutex<Owed>,
}

struct Owed {
    /// Read and not yet charged.
    bytes: u64,
    /// A download thread is charging right now (the others go on).
    charging: bool,
    /// Reads pause until then: the fleet's bucket is in debt.
    until: Instant,
}

impl Fleet {
    fn lock(&self) -> MutexGuard<'_, Owed> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `bytes` to what is owed, charges the fleet when a grant is due,
    /// and returns how long reads must pause from now.
    fn take(&self, bytes: usize, rate: u64) -> Duration {
        let due = {
            let mut owed = self.lock();
            owed.bytes = owed.bytes.saturating_add(bytes as u64);
            let due = !owed.charging && owed.bytes >= self.grant;
            if due {
                owed.charging = true;
            }
            due.then(|| std::mem::take(&mut owed.bytes))
        };
        if let Some(bytes) = due {
            let pause = self.counter.charge(bytes, rate, 2 * self.grant);
            let mut owed = self.lock();
            owed.charging = false;
            owed.until = owed.until.max(Instant::now() + pause);
        }
        self.lock().until.saturating_duration_since(Instant::now())
    }
}

/// How much is charged to the fleet's bucket at once at `rate` bytes/s.
fn grant_for(rate: u64) -> u64 {
    (rate / 64).clamp(GRANT_RANGE.0, GRANT_RANGE.1)
}

impl RateLimiter {
    /// A limiter for `bytes_per_sec` in total.
    pub(crate) fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimiter {
            rate,
            burst: (rate / 10.0).max(16.0 * 1024.0),
            state: Mutex::new((0.0, Instant::now())),
            fleet: None,
        }
    }

    /// The limiter `config` asks for: none without `limit_rate`, the fleet's
    /// bucket when `config` has a fleet counter.
    pub(crate) fn of(config: &Config) -> Option<RateLimiter> {
        let rate = config.limit_rate?;
        let mut limiter = RateLimiter::new(rate);
        limiter.fleet = config.fleet.clone().map(|counter| Fleet {
            counter,
            grant: grant_for(rate),
            state: Mutex::new(Owed {
                bytes: 0,
                charging: false,
                until: Instant::now(),
            }),
        });
        Some(limiter)
    }

    /// Account for `bytes` just read; sleeps while the bucket is in debt.
    /// Returns early (false) if the run is cancelled.
    pub(crate) fn take(&self, bytes: usize, cancel: &Cancel) -> bool {
        if let Some(fleet) = &self.fleet {
            return cancel.sleep(fleet.take(bytes, self.rate as u64));
        }
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
            *last = now;
            *tokens -= bytes as f64;
            if *tokens < 0.0 {
                Duration::from_secs_f64(-*tokens / self.rate)
            } else {
                Duration::ZERO
            }
        };
        cancel.sleep(wait)
    }
}

/// Parse a rate like `500K`, `2M`, `1.5M`, `100000` (bytes per second; K = 1024).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let multiplier: f64 = match unit
        .to_ascii_uppercase()
        .trim_end_matches("/S")
        .trim_end_matches('B')
    {
        "" => 1.0,
        "K" | "KI" => 1024.0,
        "M" | "MI" => 1024.0 * 1024.0,
        "G" | "GI" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("unknown unit in rate {text:?} (use K, M or G)")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (examples: 500K, 2M)"))?;
    let bytes = value * multiplier;
    if !(1.0..1e15).contains(&bytes) {
        return Err(format!("rate {text:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet counter that records charges and answers each with `pause`.
    #[derive(Debug, Default)]
    struct Recorder {
        charges: Mutex<Vec<(u64, u64)>>,
        pause: Duration,
    }

    impl FleetLimits for Recorder {
        fn take_slot(&self, _: &str, _: usize) -> bool {
            true
        }
        fn give_slot(&self, _: &str) {}
        fn charge(&self, bytes: u64, rate: u64, burst: u64) -> Duration {
            assert_eq!(burst, 2 * grant_for(rate), "the fleet's bucket holds two grants");
            self.charges.lock().unwrap().push((bytes, rate));
            self.pause
        }
    }

    fn fleet_limiter(rate: u64, counter: Arc<Recorder>) -> RateLimiter {
        let mut config = Config::new("unused");
        config.limit_rate = Some(rate);
        config.fleet = Some(counter);
        RateLimiter::of(&config).expect("a limiter")
    }

    #[test]
    fn grants_are_a_sixty_fourth_of_a_second_within_bounds() {
        let cases = [
            (1024, 32 * 1024),
            (2 * 1024 * 1024, 32 * 1024),
            (16 * 1024 * 1024, 256 * 1024),
            (64 * 1024 * 1024, 1024 * 1024),
            (1 << 40, 1024 * 1024),
        ];
        for (rate, grant) in cases {
            assert_eq!(grant_for(rate), grant, "rate {rate}");
        }
    }

    #[test]
    fn the_fleet_is_charged_per_grant_not_per_chunk() {
        let counter = Arc::new(Recorder::default());
        let limiter = fleet_limiter(2 * 1024 * 1024, counter.clone());
        let cancel = Cancel::new();
        // 100 reads of 8 KiB: 800 KiB, 25 grants of 32 KiB.
        for _ in 0..100 {
            assert!(limiter.take(8 * 1024, &cancel));
        }
        let charges = counter.charges.lock().unwrap().clone();
        assert_eq!(charges.len(), 25, "{charges:?}");
        assert!(
            charges.iter().all(|&c| c == (32 * 1024, 2 * 1024 * 1024)),
            "{charges:?}"
        );
    }

    #[test]
    fn a_pause_from_the_fleet_is_waited_out_and_small_reads_are_free() {
        let pause = Duration::from_millis(150);
        let counter = Arc::new(Recorder {
            pause,
            ..Recorder::default()
        });
        let limiter = fleet_limiter(2 * 1024 * 1024, counter.clone());
        let cancel = Cancel::new();
        let start = Instant::now();
        // One grant's worth: charged, then paused.
        assert!(limiter.take(32 * 1024, &cancel));
        assert!(start.elapsed() >= pause, "{:?}", start.elapsed());
        // A small read right after is not charged and does not pause.
        let again = Instant::now();
        assert!(limiter.take(10, &cancel));
        assert!(again.elapsed() < pause, "{:?}", again.elapsed());
        assert_eq!(counter.charges.lock().unwrap().len(), 1);
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_rate("1.5m"), Ok(1536 * 1024));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("2MB/s"), Ok(2 * 1024 * 1024));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("3X").is_err());
    }

    #[test]
    fn debt_is_paid_by_waiting() {
        // 1 MiB/s, a bucket of a tenth of a second (~102 KiB). Taking 200 KiB
        // at once leaves a debt of at least 200 KiB minus a full bucket, which
        // takes at least `least` to pay at the rate. Sleeping never ends
        // early, so this lower bound holds however loaded the machine is.
        let rate = 1024 * 1024;
        let limiter = RateLimiter::new(rate);
        let cancel = Cancel::new();
        let taken = 200 * 1024;
        let least = Duration::from_secs_f64((taken as f64 - limiter.burst) / rate as f64);
        assert!(least >= Duration::from_millis(90), "{least:?}");
        let start = Instant::now();
        assert!(limiter.take(taken, &cancel));
        let waited = start.elapsed();
        assert!(waited >= least, "waited {waited:?}, the debt needs {least:?}");

        // A cancel cuts the wait short: ten seconds of debt end at once.
        cancel.request(2);
        let start = Instant::now();
        assert!(!limiter.take(10 * rate as usize, &cancel));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
