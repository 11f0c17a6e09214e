//! fetchq: download lists of URLs concurrently, streaming each body to disk.
//!
//! Data flows one way: lists (or the queue) → feed (parse, name, dedup) →
//! bounded channel → worker pool → fetch (HTTP + part file) → events → the
//! caller's [`Observer`]. The modules import the same way, each only from the
//! rows below it (the binary's modules in brackets):
//!
//! ```text
//!  [main] ─▶ [config_file] [man] ─▶ [cli]     the command line
//!    │
//!    ▼
//!  outputs        queue                        what the user sees; the Redis queue worker
//!    │              │
//!    ▼              ▼
//!  progress plans jsonl eventlog     pool      observers of events; threads and channels
//!  failed_list
//!                                      │
//!                                      ▼
//!                            feed   hosts            the channel's tasks; --per-host
//!                              │  ╲
//!                              │   ▼
//!                              │  fetch (mod redirect headers classify stream split sources)
//!                              ▼               │
//!                            input     client  rate  proxy  pieces
//!                              │         │
//!                              │         ▼
//!                              │        tls                   TLS over fetchq's sockets
//!                              ▼         │
//!         naming   outdir   transport ◀──┘                    names; the output directory; sockets
//!           │        │         │
//!           ▼        ▼         ▼
//!  content_disposition   part   socks  forward
//!                          │
//!                          ▼
//!          folder   resume   validators   report       open folders; what a part records; the summary
//!                │                     │
//!                ▼                     ▼
//!  event   messages                                    the contract: events, observers, live counters
//!    │        │
//!    ▼        ▼
//!  error display cancel config exit backoff hex base64 netrc cookies   leaves: import nothing of fetchq
//!  checksum aligned                          (but one another: config holds netrc's and checksum's types)
//!                           │                                          (but config names limits)
//!                           ▼
//!                         limits       the hook for limits shared across processes (queue implements it)
//! ```
//! `event` is the contract every stage shares: what workers report
//! ([`Event`], [`Slot`]), how they send it (`event::Events`) and what
//! observers receive ([`Observer`], [`Live`]). It imports nothing of the
//! stages, so the orchestrator (`pool`) uses the contract without owning it.
//!
//! The engine ([`run`], the worker pool, [`queue`]) never prints: it reports
//! events to the caller's [`Observer`]. What the command line shows is built
//! from those events by [`outputs`] (the terminal view of [`progress`],
//! `--dry-run` plans, `--json` in [`jsonl`], `--log` in [`eventlog`]) and
//! [`messages`], which
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
//!
//! # What is public
//!
//! The public API is what a library caller needs to run downloads and show
//! them: the items re-exported below (the [`Config`] that drives a [`run`],
//! the [`Source`] it reads, the events an [`Observer`] receives and the
//! [`Summary`] it returns, with their error types), the Redis [`queue`], and
//! the outputs the binary prints with ([`outputs`], [`progress`], [`jsonl`],
//! [`eventlog`], [`messages`], [`display`]). Every other module is private and
//! its items `pub(crate)`, so rustc reports what nothing uses and
//! `missing_docs` asks only for docs a caller reads.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod aligned;
mod backoff;
mod base64;
mod cancel;
mod checksum;
mod client;
mod config;
mod content_disposition;
mod cookies;
pub mod display;
mod error;
mod event;
pub mod eventlog;
mod exit;
mod failed_list;
mod feed;
mod fetch;
mod folder;
mod forward;
mod hex;
mod hosts;
mod input;
pub mod jsonl;
mod limits;
pub mod messages;
mod naming;
mod netrc;
mod outdir;
pub mod outputs;
mod part;
mod pieces;
mod plans;
mod pool;
pub mod progress;
mod proxy;
pub mod queue;
mod rate;
mod report;
mod resume;
mod socks;
mod tls;
mod transport;
mod validators;

pub use cancel::Cancel;
pub use checksum::{Algorithm, Checksum, Checksums, MAX_SUMS_FILE, Sums, SumsError};
pub use config::{Config, Existing, IpFamily, Pin, ProxyChoice};
pub use cookies::{Cookies, CookiesError};
pub use error::{FetchError, LineError, ProxyError, RunError};
pub use event::{
    EntryReport, Event, JobInfo, Origin, Outcome, Problem, Resume, SkipReason, SourceReport, StartOver,
    Ticket,
};
pub use event::{Live, Observer, Slot, Tee};
pub use exit::Exit;
pub use feed::{Feeder, Lists, Source};
pub use input::{Entry, ListInput, parse_header};
pub use naming::OutPath;
pub use netrc::{Credentials, Netrc, NetrcError};
pub use pool::run;
pub use rate::parse_rate;
pub use report::{FailureLine, Summary};
