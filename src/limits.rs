//! The hook through which `--per-host` and `--limit-rate` hold across many
//! processes (`worker --global-limits`): what the per-host gate
//! ([`crate::hosts`]) and the rate bucket ([`crate::rate`]) ask of a shared
//! counter before they let a download go on.
//!
//! Implemented over Redis by the queue (`queue::worker::fleet`); the gate and
//! the bucket see only this trait, so they know nothing of Redis and a run
//! without one pays nothing.

use std::fmt;
use std::time::Duration;

/// Limits shared with other processes. Calls come from download threads,
/// so each should answer within a round trip, and fail closed (no slot) or
/// towards this process's own share (a pause) when the counter is away.
pub(crate) trait FleetLimits: Send + Sync + fmt::Debug {
    /// Takes one of `host`'s `limit` slots across the fleet; false when all
    /// are held (the caller parks the download and asks again later).
    /// `host` is `host:port`.
    fn take_slot(&self, host: &str, limit: usize) -> bool;

    /// Gives back a slot [`take_slot`](Self::take_slot) gave.
    fn give_slot(&self, host: &str);

    /// Charges `bytes` just read to the fleet's bucket of `rate` bytes per
    /// second, which holds at most `burst` bytes of tokens; returns how long
    /// this process should pause its reads so the fleet stays at the rate.
    fn charge(&self, bytes: u64, rate: u64, burst: u64) -> Duration;
}
