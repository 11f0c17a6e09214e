//! The Redis job queue: the library's [`fetchq::queue::Queue`] against a real
//! `redis-server` ([`library`]), and `fetchq enqueue` with several
//! `fetchq worker` processes sharing one list ([`distributed`]), and
//! `--per-host` and `--limit-rate` held across them ([`global_limits`]),
//! and workers of an earlier fetchq on the same queue ([`mixed_versions`]).

mod distributed;
mod errors;
mod global_limits;
mod library;
mod list_format;
mod mixed_versions;
