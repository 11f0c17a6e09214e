//! fetchq: download lists of URLs concurrently, streaming each body to disk.
//!
//! ```text
//!  lists / stdin / queue ─▶ feed (parse, name, dedup) ─▶ bounded channel ─▶ worker pool ─▶ fetch (HTTP + part file)
//!                                                                              │
//!                                                         events ─▶ caller's Observer (progress, report)
//! ```
//! The library does the work and never prints; the binary (`src/main.rs`)
//! owns the terminal. A minimal use:
//!
//! ```no_run
//! use fetchq::{Cancel, Config, ListInput, Lists, Observer, run};
//!
//! struct Quiet;
//! impl Observer for Quiet {
//!     fn event(&mut self, _: &fetchq::Event, _: &fetchq::Live) {}
//! }
//!
//! let list = ListInput::from_reader("inline", "https://example.com/a.txt\n".as_bytes());
//! let summary = run(Config::new("downloads"), Box::new(Lists(vec![list])), &Cancel::new(), &mut Quiet)?;
//! println!("{}", summary.headline());
//! # Ok::<(), fetchq::RunError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
pub mod cancel;
pub mod client;
pub mod config;
pub mod display;
pub mod error;
pub mod event;
pub mod eventlog;
pub mod feed;
pub mod fetch;
mod hex;
pub mod hosts;
pub mod input;
pub mod jsonl;
pub mod naming;
pub mod outdir;
pub mod outputs;
pub mod part;
pub mod pool;
pub mod progress;
pub mod proxy;
pub mod queue;
pub mod rate;
pub mod report;
pub mod transport;
pub mod validators;

pub use cancel::Cancel;
pub use config::{Config, Existing, ProxyChoice};
pub use error::{FetchError, LineError, RunError};
pub use event::{EntryReport, Event, JobInfo, Outcome, Problem, SkipReason};
pub use feed::{Feeder, Lists, Source};
pub use input::{Entry, ListInput, Origin};
pub use pool::{Live, Observer, Slot, run};
pub use report::Summary;
