//! The Redis side of `worker --global-limits`: per-host slots leased to
//! workers, and the fleet's token bucket for `--limit-rate`.
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `slots:HOST:PORT` | HASH | worker id → slots of that host it holds |
//! | `slot_hosts` | SET | hosts whose slots hash is not empty |
//! | `rate` | HASH | the bucket: `tokens` (bytes, negative in debt), `at` (µs, Redis's clock) |
//!
//! A slot is a lease tied to its holder's heartbeat: taking slots counts
//! only holders whose `heartbeat:WORKER` key exists, so a SIGKILLed worker's
//! slots are free again once its heartbeat expires (the TTL), without anyone
//! cleaning up. Every step is one Lua script (`scripts.rs`).

use std::time::Duration;

use super::{Queue, QueueError, check_worker, scripts};

impl Queue {
    /// Takes up to `want` of `host`'s `limit` slots for `worker_id`; returns
    /// how many it got (0 when live workers hold them all).
    pub(crate) fn take_slots(
        &mut self,
        worker_id: &str,
        host: &str,
        limit: usize,
        want: usize,
    ) -> Result<usize, QueueError> {
        check_worker(worker_id)?;
        let n: i64 = self.run(|con, keys| {
            scripts::TAKE_SLOTS
                .key(format!("{}slots:{host}", keys.prefix))
                .key(format!("{}slot_hosts", keys.prefix))
                .arg(worker_id)
                .arg(limit)
                .arg(want)
                .arg(keys.heartbeat(""))
                .arg(host)
                .invoke(con)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Gives back `worker_id`'s slots: (host, count) pairs, in one call.
    pub(crate) fn give_slots(
        &mut self,
        worker_id: &str,
        slots: &[(String, usize)],
    ) -> Result<(), QueueError> {
        check_worker(worker_id)?;
        if slots.is_empty() {
            return Ok(());
        }
        self.run(|con, keys| {
            let mut call = scripts::GIVE_SLOTS.prepare_invoke();
            call.key(format!("{}slot_hosts", keys.prefix)).arg(worker_id);
            for (host, n) in slots {
                call.key(format!("{}slots:{host}", keys.prefix)).arg(host).arg(n);
            }
            call.invoke::<i64>(con)
        })?;
        Ok(())
    }

    /// Drops every slot `worker_id` holds, on every host.
    pub(crate) fn give_all_slots(&mut self, worker_id: &str) -> Result<(), QueueError> {
        check_worker(worker_id)?;
        self.run(|con, keys| {
            scripts::GIVE_ALL_SLOTS
                .key(format!("{}slot_hosts", keys.prefix))
                .arg(worker_id)
                .arg(format!("{}slots:", keys.prefix))
                .invoke::<i64>(con)
        })?;
        Ok(())
    }

    /// Charges `bytes` to the queue's bucket of `rate` bytes/s (holding at
    /// most `burst`); returns how long the caller should pause.
    pub(crate) fn charge(&mut self, bytes: u64, rate: u64, burst: u64) -> Result<Duration, QueueError> {
        let micros: i64 = self.run(|con, keys| {
            scripts::CHARGE
                .key(format!("{}rate", keys.prefix))
                .arg(rate.max(1))
                .arg(burst)
                .arg(bytes)
                .invoke(con)
        })?;
        Ok(Duration::from_micros(u64::try_from(micros).unwrap_or(0)))
    }
}
