//! Which address a host name connects to: `-4` / `-6`, `--resolve`, and
//! what a dead address among a host's addresses costs.

use std::time::{Duration, Instant};

use super::*;

/// The test server's port, for URLs that name it by another host.
fn port(t: &Setup) -> u16 {
    t.server.addr().port()
}

#[test]
fn ipv4_only_reaches_a_v4_listener_by_name_and_ipv6_only_does_not() {
    let t = Setup::new();
    t.server.route("/f.bin", Route::ok(b"by name".to_vec()));
    t.list(&[format!("http://localhost:{}/f.bin", port(&t))]);

    t.run(&["-4", "--retries", "0"])
        .assert_code(0)
        .assert_out_file("f.bin", b"by name");
    std::fs::remove_file(t.out().join("f.bin")).expect("remove the first download");

    // The server listens on 127.0.0.1 only: over IPv6, `localhost` either has
    // no address at all (/etc/hosts without ::1) or refuses on ::1.
    let run = t.run(&["--ipv6", "--retries", "0"]);
    run.assert_code(1).assert_absent("out/f.bin");
    let line = run.stderr_line("list.txt:1:");
    assert!(
        line.contains("host not found") || line.contains("refused"),
        "the failure should say why: {line:?}\n{}",
        run.ctx()
    );
    t.assert_hits(&run, "/f.bin", 1);
}

#[test]
fn ipv4_and_ipv6_conflict() {
    let t = Setup::new();
    t.list(&[t.serve("/f.bin", Route::ok(b"x".to_vec()))]);
    t.run(&["-4", "-6"]).assert_code(2).assert_stderr_has("--ipv6");
}

#[test]
fn resolve_pins_the_address_and_keeps_the_name_for_host() {
    let t = Setup::new();
    t.server.route("/x.bin", Route::ok(b"pinned".to_vec()));
    let port = port(&t);
    t.list(&[format!("http://files.example.test:{port}/x.bin")]);
    let pin = format!("files.example.test:{port}:127.0.0.1");

    let run = t.run(&["--resolve", &pin, "--retries", "0"]);
    run.assert_code(0).assert_out_file("x.bin", b"pinned");
    let host = format!("files.example.test:{port}");
    t.assert_sent_header(&run, "/x.bin", 0, "host", Some(&host));
}

#[test]
fn resolve_applies_only_to_its_host_and_port() {
    let t = Setup::new();
    t.server.route("/x.bin", Route::ok(b"pinned".to_vec()));
    let port = port(&t);
    t.list(&[format!("http://files.example.test:{port}/x.bin")]);
    // Another port: DNS is asked and the made-up name does not resolve.
    let pin = format!("files.example.test:{}:127.0.0.1", port.wrapping_add(1));

    let run = t.run(&["--resolve", &pin, "--retries", "0"]);
    run.assert_code(1).assert_absent("out/x.bin");
    t.assert_hits(&run, "/x.bin", 0);
}

#[test]
fn a_bad_resolve_is_a_usage_error_naming_it() {
    let t = Setup::new();
    t.list(&[t.serve("/f.bin", Route::ok(b"x".to_vec()))]);
    for bad in ["files.example.test:80", "h:port:127.0.0.1", "h:80:not-an-ip"] {
        let run = t.run(&["--resolve", bad]);
        run.assert_code(2)
            .assert_stderr_has(bad)
            .assert_stderr_has("--resolve");
    }
}

/// A first address that refuses costs nothing measurable: the next is tried at once.
#[test]
fn a_refusing_first_address_is_skipped_at_once() {
    let t = Setup::new();
    t.server.route("/x.bin", Route::ok(b"second".to_vec()));
    let port = port(&t);
    t.list(&[format!("http://files.example.test:{port}/x.bin")]);
    // Nothing listens on 127.0.0.3.
    let refused = format!("files.example.test:{port}:127.0.0.3");
    let live = format!("files.example.test:{port}:127.0.0.1");

    let start = Instant::now();
    let run = t.run(&[
        "--resolve",
        &refused,
        "--resolve",
        &live,
        "--connect-timeout",
        "4",
        "--retries",
        "0",
    ]);
    let took = start.elapsed();
    run.assert_code(0).assert_out_file("x.bin", b"second");
    assert!(took < Duration::from_millis(1500), "took {took:?}\n{}", run.ctx());
}

/// A listener on 127.0.0.2:`port` that never accepts, with its one-slot
/// backlog taken: a connect to it hangs, as to a dead address family's
/// address, until the connector gives up. Keep both values alive.
fn black_hole(port: u16) -> (socket2::Socket, std::net::TcpStream) {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = ([127, 0, 0, 2], port).into();
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener.bind(&addr.into()).expect("bind 127.0.0.2");
    listener.listen(0).expect("listen");
    let filler =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("fill the backlog");
    (listener, filler)
}

/// A host whose first address hangs and whose second answers: the downloads
/// succeed once the first has had its share of `--connect-timeout` (half,
/// with two addresses), not the whole of it, and only once: the second file
/// reuses the connection.
#[test]
fn a_hanging_first_address_costs_a_share_of_the_connect_timeout_once() {
    let t = Setup::new();
    t.server.route("/x.bin", Route::ok(b"first".to_vec()));
    t.server.route("/y.bin", Route::ok(b"second".to_vec()));
    let port = port(&t);
    let _hole = black_hole(port);
    t.list(&[
        format!("http://files.example.test:{port}/x.bin"),
        format!("http://files.example.test:{port}/y.bin"),
    ]);
    let dead = format!("files.example.test:{port}:127.0.0.2");
    let live = format!("files.example.test:{port}:127.0.0.1");

    let start = Instant::now();
    let run = t.run(&[
        "-j",
        "1",
        "--resolve",
        &dead,
        "--resolve",
        &live,
        "--connect-timeout",
        "4",
        "--retries",
        "0",
    ]);
    let took = start.elapsed();
    run.assert_code(0)
        .assert_out_file("x.bin", b"first")
        .assert_out_file("y.bin", b"second");
    assert!(
        (Duration::from_millis(1500)..Duration::from_millis(3500)).contains(&took),
        "the first address should cost about 2 s of the 4, once: took {took:?}\n{}",
        run.ctx()
    );
    assert_eq!(t.server.connections_opened(), 1, "{}", run.ctx());
}
