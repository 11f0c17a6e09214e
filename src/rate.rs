//! `--limit-rate`: one token bucket shared by all workers, so the total
//! download rate stays at the limit however many downloads run.
//!
//! Workers take tokens for bytes they already read; a bucket in debt makes
//! the reader sleep until the debt is paid. The bucket holds at most a tenth
//! of a second of tokens, so an idle spell cannot be followed by a burst far
//! above the limit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

/// Shared token bucket.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter for `bytes_per_sec` in total.
    pub(crate) fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimiter {
            rate,
            burst: (rate / 10.0).max(16.0 * 1024.0),
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    /// Account for `bytes` just read; sleeps while the bucket is in debt.
    /// Returns early (false) if the run is cancelled.
    pub(crate) fn take(&self, bytes: usize, cancel: &Cancel) -> bool {
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
