//! How fetchq talks to servers: `-j` and connection reuse, timeouts,
//! `--per-host`, `--limit-rate`, proxies, custom headers and the user agent;
//! which address a name connects to (`-4`, `-6`, `--resolve`) is in [`addr`].
//! TLS is in [`tls`], which brings its own `openssl s_server`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

mod addr;
mod client_cert;
mod proxy;
mod tls;
mod tls_sessions;

/// Routes `count` slow files (300 ms before each answer) and writes them to `list.txt`.
fn slow_list(t: &Setup, count: usize) {
    let slow = |i: usize| Route::ok(pattern(1000, i as u8)).delay(Duration::from_millis(300));
    let routes = (0..count).map(|i| (format!("/slow{i}.bin"), slow(i))).collect();
    write_list(t.root(), "list.txt", serve_routes(&t.server, routes));
}

/// Serves `/f.bin` with `route` (which goes silent at some point) and checks
/// that `--timeout 1 --retries 0` fails the entry well within [`HANG_BOUND`],
/// saying no data arrived, and leaves no file.
fn assert_silence_times_out(route: Route) {
    let t = Setup::new();
    t.list(&[t.serve("/f.bin", route)]);

    let start = Instant::now();
    let run = t.run(&["--timeout", "1", "--retries", "0"]);
    let took = start.elapsed();

    run.assert_code(1).assert_absent("out/f.bin");
    assert!(took < HANG_BOUND, "took {took:?}\n{}", run.ctx());
    let line = run.stderr_line("list.txt:1:");
    assert!(
        line.contains("no data"),
        "the failure should say no data arrived: {line:?}\n{}",
        run.ctx()
    );
}

/// A target server with one file and a list for it.
fn proxy_setup(root: &Path) -> TestServer {
    let target = TestServer::start();
    target.route("f.bin", Route::ok(b"direct".to_vec()));
    write_list(root, "list.txt", format!("{}\n", target.url("f.bin")));
    target
}

fn proxy_url(proxy: &TestServer) -> String {
    format!("http://{}", proxy.addr())
}

/// Runs fetchq in `root` with `flags`, then `--retries 0 -d out list.txt`,
/// and the environment variables `env`.
fn fetch_proxied(root: &Path, flags: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = flags.to_vec();
    args.extend(["--retries", "0", "-d", "out", "list.txt"]);
    fetch_in_with_env(root, &args, env)
}

/// Asserts `proxy` was asked for the target (absolute-form `GET
/// http://host:port/f.bin` or a `CONNECT host:port` tunnel) and the target
/// itself was never contacted.
fn assert_went_through(run: &Run, root: &Path, proxy: &TestServer, target: &TestServer) {
    let reqs = proxy.requests();
    let host = target.addr().to_string();
    assert!(
        reqs.iter().any(|r| r.path.contains(&host)),
        "the proxy should have received a request for {host}, got {reqs:?}\n{}",
        ctx(run, root)
    );
    assert_eq!(
        target.requests().len(),
        0,
        "the target must not be contacted directly when a proxy is used\n{}",
        ctx(run, root)
    );
}

/// Asserts the download went straight to the target.
fn assert_direct(run: &Run, root: &Path, proxies: &[&TestServer], target: &TestServer) {
    assert_code(run, root, 0);
    assert_out_file(run, root, "f.bin", b"direct");
    assert_eq!(target.hits("f.bin"), 1, "{}", ctx(run, root));
    for p in proxies {
        assert!(
            p.requests().is_empty(),
            "proxy {} should not be used: {:?}\n{}",
            p.addr(),
            p.requests(),
            ctx(run, root)
        );
    }
}

/// With the environment variable `var` set to a proxy's URL, the download
/// goes through that proxy.
fn assert_env_var_routes_through_a_proxy(var: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let proxy = TestServer::start();
    let run = fetch_proxied(root, &[], &[(var, &proxy_url(&proxy))]);
    assert_went_through(&run, root, &proxy, &target);
}

// ---------------------------------------------------------------------------
// Concurrency and connection reuse
// ---------------------------------------------------------------------------

#[test]
fn jobs_1_is_serial() {
    let t = Setup::new();
    slow_list(&t, 8);

    let run = t.run(&["-j", "1"]);

    run.assert_code(0);
    assert_eq!(t.files().len(), 9, "eight files and the list\n{}", run.ctx());
    let max = t.server.max_concurrent_requests();
    assert_eq!(
        max,
        1,
        "-j 1 must never have two requests in flight\n{}",
        run.ctx()
    );
}

#[test]
fn jobs_8_is_parallel() {
    let t = Setup::new();
    slow_list(&t, 16);

    let run = t.run(&["-j", "8"]);

    run.assert_code(0);
    assert_eq!(t.files().len(), 17, "sixteen files and the list\n{}", run.ctx());
    for i in 0..16 {
        run.assert_out_file(&format!("slow{i}.bin"), &pattern(1000, i as u8));
    }
    let max = t.server.max_concurrent_requests();
    assert!(
        (4..=8).contains(&max),
        "-j 8 should keep 4..=8 requests in flight, saw {max}\n{}",
        run.ctx()
    );
}

#[test]
fn connections_are_reused_across_entries() {
    let t = Setup::new();
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}.txt"), pattern(500 + i, i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    t.serve_list(&refs);

    let run = t.run(&["-j", "4"]);

    run.assert_code(0);
    for (name, body) in &files {
        run.assert_out_file(name, body);
    }
    let opened = t.server.connections_opened();
    assert!(
        opened <= 8,
        "20 small files with -j 4 should reuse connections, but {opened} were opened\n{}",
        run.ctx()
    );
}

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

#[test]
fn silent_server_before_headers_times_out() {
    assert_silence_times_out(Route::ok(b"x".to_vec()).stall_before_headers());
}

#[test]
fn server_stalling_mid_body_times_out() {
    assert_silence_times_out(Route::ok(pattern(5_000, 20)).stall_after(1000));
}

#[test]
fn slow_but_steady_transfer_is_never_killed_by_the_idle_timeout() {
    let t = Setup::new();
    // 12 pieces 200 ms apart: about 2.2 s in all, well over --timeout 1,
    // but never a second without data.
    let body = pattern(6_000, 21);
    t.list(&[t.serve(
        "/f.bin",
        Route::ok(body.clone()).drip(500, Duration::from_millis(200)),
    )]);

    let run = t.run(&["--timeout", "1", "--retries", "0"]);

    run.assert_code(0).assert_out_file("f.bin", &body);
    t.assert_hits(&run, "/f.bin", 1);
}

#[test]
fn max_time_cuts_a_long_transfer() {
    let t = Setup::new();
    // 100 pieces 200 ms apart: 20 s, far beyond --max-time 1.
    let drip = Route::ok(pattern(10_000, 22)).drip(100, Duration::from_millis(200));
    t.list(&[t.serve("/f.bin", drip)]);

    let start = Instant::now();
    let run = t.run(&["--max-time", "1", "--retries", "3"]);
    let took = start.elapsed();

    run.assert_no_panic()
        .assert_code(1)
        .assert_stderr_has("timed out")
        .assert_absent("out/f.bin");
    assert!(took < HANG_BOUND, "took {took:?}\n{}", run.ctx());
    // --max-time bounds the entry, not each attempt: no retry after it.
    t.assert_hits(&run, "/f.bin", 1);
}

// ---------------------------------------------------------------------------
// --per-host
// ---------------------------------------------------------------------------

#[test]
fn per_host_caps_simultaneous_requests_to_one_host() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut list = String::new();
    for i in 0..12 {
        let name = format!("f{i}.bin");
        server.route(
            &name,
            Route::ok(format!("file {i}").into_bytes()).delay(Duration::from_millis(300)),
        );
        list.push_str(&server.url(&name));
        list.push('\n');
    }
    write_list(root, "list.txt", list);

    let run = fetch_in(root, &["-j", "8", "--per-host", "2", "-d", "out", "list.txt"]);
    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)).len(), 12, "{}", ctx(&run, root));
    assert_eq!(
        server.max_concurrent_requests(),
        2,
        "-j 8 --per-host 2 against one host: exactly 2 requests at once\n{}",
        ctx(&run, root)
    );
}

#[test]
fn per_host_keeps_workers_busy_on_other_hosts() {
    let a = TestServer::start();
    let b = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // All of host A first, then all of host B: a pool that idles workers at
    // A's limit would not touch B until A's entries were all started.
    let mut list = String::new();
    for (tag, server) in [("a", &a), ("b", &b)] {
        for i in 0..8 {
            let name = format!("{tag}{i}.bin");
            server.route(
                &name,
                Route::ok(name.clone().into_bytes()).delay(Duration::from_millis(300)),
            );
            list.push_str(&server.url(&name));
            list.push('\n');
        }
    }
    write_list(root, "list.txt", list);

    let mut overlap = false;
    let run = std::thread::scope(|s| {
        let handle = s.spawn(|| fetch_in(root, &["-j", "4", "--per-host", "2", "-d", "out", "list.txt"]));
        while !handle.is_finished() {
            // Read B first: the counts only grow, so if B had started and A
            // still had entries not yet requested, both held at the first read.
            let b_started = !b.requests().is_empty();
            let a_pending = a.requests().len() < 8;
            overlap |= b_started && a_pending;
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().unwrap()
    });
    assert_code(&run, root, 0);
    assert_eq!(list_files(&out(root)).len(), 16, "{}", ctx(&run, root));
    assert_eq!(
        (a.max_concurrent_requests(), b.max_concurrent_requests()),
        (2, 2),
        "-j 4 --per-host 2 over two hosts: each host at most 2, and both used fully\n{}",
        ctx(&run, root)
    );
    assert!(
        overlap,
        "host B was not requested while host A still had entries waiting: workers idled at A's limit\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// --limit-rate
// ---------------------------------------------------------------------------

#[test]
fn limit_rate_caps_the_total_rate() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("m{i}.bin"), pattern(1 << 20, 40 + i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_list(root, "list.txt", serve_all(&server, &refs));

    let started = Instant::now();
    let run = fetch_in(root, &["-j", "4", "--limit-rate", "1M", "-d", "out", "list.txt"]);
    let elapsed = started.elapsed();
    assert_code(&run, root, 0);
    for (name, body) in &files {
        assert_out_file(&run, root, name, body);
    }
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed <= Duration::from_secs(15),
        "4 MiB at 1 MiB/s in total should take about 4 s, took {elapsed:?}\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// Proxies
// ---------------------------------------------------------------------------

#[test]
fn http_proxy_env_routes_through_the_proxy() {
    assert_env_var_routes_through_a_proxy("http_proxy");
}

#[test]
fn upper_case_http_proxy_env_works() {
    assert_env_var_routes_through_a_proxy("HTTP_PROXY");
}

#[test]
fn no_proxy_env_connects_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let proxy = TestServer::start();
    let run = fetch_proxied(
        root,
        &[],
        &[("http_proxy", &proxy_url(&proxy)), ("no_proxy", "127.0.0.1")],
    );
    assert_direct(&run, root, &[&proxy], &target);
}

#[test]
fn no_proxy_flag_ignores_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let proxy = TestServer::start();
    let run = fetch_proxied(
        root,
        &["--no-proxy"],
        &[
            ("http_proxy", &proxy_url(&proxy)),
            ("HTTP_PROXY", &proxy_url(&proxy)),
            ("all_proxy", &proxy_url(&proxy)),
        ],
    );
    assert_direct(&run, root, &[&proxy], &target);
}

#[test]
fn proxy_flag_overrides_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = proxy_setup(root);
    let chosen = TestServer::start();
    let from_env = TestServer::start();
    let run = fetch_proxied(
        root,
        &["--proxy", &proxy_url(&chosen)],
        &[("http_proxy", &proxy_url(&from_env)), ("no_proxy", "127.0.0.1")],
    );
    assert_went_through(&run, root, &chosen, &target);
    assert!(
        from_env.requests().is_empty(),
        "the environment's proxy must not be used with --proxy\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// Custom headers and user agent
// ---------------------------------------------------------------------------

#[test]
fn custom_headers_and_user_agent_on_every_request() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("flaky.bin", Route::ok(b"flaky".to_vec()).fail_times(1, 503));
    server.route("moved.bin", Route::redirect(302, "/dest.bin"));
    server.route("dest.bin", Route::ok(b"dest".to_vec()));
    write_list(
        root,
        "list.txt",
        format!("{}\n{}\n", server.url("flaky.bin"), server.url("moved.bin")),
    );

    let run = fetch_in(
        root,
        &[
            "-H",
            "X-Token: abc",
            "-A",
            "agent/1",
            "--retry-wait",
            "0",
            "-d",
            "out",
            "list.txt",
        ],
    );
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "flaky.bin", b"flaky");
    assert_out_file(&run, root, "moved.bin", b"dest");
    assert_eq!(server.hits("flaky.bin"), 2, "one retry\n{}", ctx(&run, root));
    assert_eq!(server.hits("dest.bin"), 1, "{}", ctx(&run, root));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4, "{reqs:?}\n{}", ctx(&run, root));
    for r in &reqs {
        assert_eq!(
            (r.header("x-token"), r.header("user-agent")),
            (Some("abc"), Some("agent/1")),
            "request {} {} lacks the custom header or agent: {r:?}\n{}",
            r.method,
            r.path,
            ctx(&run, root)
        );
        assert_eq!(
            r.headers.iter().filter(|(n, _)| n == "user-agent").count(),
            1,
            "exactly one User-Agent: {r:?}\n{}",
            ctx(&run, root)
        );
    }
}

#[test]
fn default_user_agent_is_fetchq_version() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_list(root, "list.txt", serve_all(&server, &[("ua.txt", b"x".to_vec())]));
    let run = fetch_in(root, &["-d", "out", "list.txt"]);
    assert_code(&run, root, 0);
    let want = format!("fetchq/{}", env!("CARGO_PKG_VERSION"));
    let reqs = server.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.header("user-agent") == Some(want.as_str())),
        "User-Agent should be {want:?}: {reqs:?}\n{}",
        ctx(&run, root)
    );
}
