//! The Redis job queue: the library's [`fetchq::queue::Queue`] against a real
//! `redis-server` ([`library`]), and `fetchq enqueue` with several
//! `fetchq worker` processes sharing one list ([`distributed`]).

mod distributed;
mod errors;
mod library;
mod list_format;
