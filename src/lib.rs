//! fetchq: download lists of URLs concurrently, streaming each body to disk.
//!
//! ```text
//!  lists / stdin / queue ─▶ feed (parse, name, dedup) ─▶ bounded channel ─▶ worker pool ─▶ fetch (HTTP + part file)
//!                                                                              │
//!                                                         events ─▶ caller's Observer (progress, report)
//! ```
//! The engine ([`run`], the worker pool, [`queue`]) never prints: it reports
//! events to the caller's [`Observer`]. What the command line shows is built
//! from those events by [`outputs`] (the terminal view of [`progress`],
//! `--json` in [`jsonl`], `--log` in [`eventlog`]) and [`messages`], which
//! live here so the binary and a library caller (see `examples/demo.rs`)
//! print the same way; only they write to stderr or stdout. A minimal use:
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

pub mod cancel;
pub mod client;
pub mod config;
pub mod display;
pub mod error;
pub mod event;
pub mod eventlog;
pub mod exit;
pub mod feed;
pub mod fetch;
mod forward;
pub mod hosts;
pub mod input;
pub mod jsonl;
pub mod messages;
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
pub mod resume;
mod socks;
mod tls;
pub mod transport;
pub mod validators;

pub use cancel::Cancel;
pub use config::{Config, Existing, ProxyChoice};
pub use error::{FetchError, LineError, RunError};
pub use event::{EntryReport, Event, JobInfo, Outcome, Problem, SkipReason};
pub use exit::Exit;
pub use feed::{Feeder, Lists, Source};
pub use input::{Entry, ListInput, Origin};
pub use pool::{Live, Observer, Slot, run};
pub use report::Summary;
