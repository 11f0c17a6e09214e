//! The list format's second version through the queue: `fetchq enqueue`
//! keeps a line's other URLs, digests and `header=` fields with the entry,
//! and a worker checks and sends them as a local run would.

use md5::Md5;
use serde_json::Value;
use sha2::{Digest, Sha512};

use crate::support::redis::RedisServer;
use crate::support::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_worker_checks_every_digest_and_sends_the_entrys_headers() {
    let redis = RedisServer::start();
    let t = Setup::new();
    let url = redis.url();
    let body = pattern(5000, 3);
    let md5 = hex(&Md5::digest(&body));
    let sha512 = hex(&Sha512::digest(&body));
    let wrong512 = hex(&Sha512::digest(b"other"));
    let good = t.serve("/good.bin", Route::ok(body.clone()));
    let bad = t.serve("/bad.bin", Route::ok(body.clone()));
    let mirror = t.server.url("/mirror/good.bin");
    t.list_as(
        "urls.txt",
        &[
            format!("{good} {mirror} md5={md5} sha512={sha512} header=\"X-Token: a b\""),
            format!("{bad} md5={md5} sha512={wrong512}"),
        ],
    );

    let enqueued = t.run_raw(&["enqueue", "--redis", &url, "urls.txt"]);
    enqueued.assert_code(0);
    let mut con = redis.connection();
    let pending: Vec<String> = ::redis::cmd("LRANGE")
        .arg("fetchq:default:pending")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    let first: Value = serde_json::from_str(&pending[0]).unwrap();
    assert_eq!(
        first["extras"],
        serde_json::json!([
            mirror,
            format!("md5={md5}"),
            format!("sha512={sha512}"),
            "header=\"X-Token: a b\""
        ]),
        "{pending:?}"
    );

    let run = t.run_raw(&["worker", "--redis", &url, "--drain", "-d", "out"]);

    run.assert_code(1)
        .assert_out_files(&["good.bin"])
        .assert_out_file("good.bin", &body)
        .assert_no_part()
        .assert_stderr_has(&format!(
            "checksum mismatch: expected sha512 {wrong512}, got {sha512}"
        ));
    t.assert_sent_header(&run, "/good.bin", 0, "x-token", Some("a b"));
    t.assert_sent_header(&run, "/bad.bin", 0, "x-token", None);
}
