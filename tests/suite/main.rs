//! fetchq's integration tests, in one binary with a module per feature.
//!
//! Every test runs the real `fetchq` binary (or the library's queue against a
//! real `redis-server`) against servers of its own on 127.0.0.1: the
//! in-process HTTP server of `support::server`, `openssl s_server` for TLS,
//! `redis-server` for the queue. A test starts from [`support::Setup`]: a
//! fresh temp dir that is the run's working directory and holds `list.txt`,
//! downloads in `out/`, so "nothing else was written" is a check on the temp
//! dir as a whole; assertion messages carry the command, exit status, stdout,
//! stderr and the files present.
//!
//! Run one feature with `cargo test --test suite naming::`, one test by
//! (part of) its name.

// The support module lives beside the suite (`tests/support/`), where a
// test file of its own can still include it with `mod support;`. No module
// uses every helper.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod checksums;
mod cli;
mod config_file;
mod cookies;
mod cron;
mod existing_files;
mod exit_codes;
mod file_safety;
mod hostile_text;
mod input;
mod list_format;
mod man_pages;
mod mirrors;
mod naming;
mod naming_reserved;
mod netrc;
mod network;
mod outputs;
mod queue;
mod redirects;
mod resume_across_runs;
mod retries_resume;
mod safety;
mod server_selftest;
mod split;
mod stdout;
mod terminal;
mod unattended;
mod url_arguments;
