//! Cookies: `--load-cookies` sends a Netscape cookies.txt's cookies only
//! where domain, path, secure flag and expiry allow (127.0.0.1 counts as a
//! secure origin, as in browsers); cookies the servers set
//! (redirects included) go with later requests of the run and into
//! `--save-cookies`; a dotless `Domain` from another host is refused; a
//! malformed line is a usage error naming the line.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use support::{Route, TestServer, assert_code, fetch_in, pattern};

/// The `Cookie` header of each request for `path`, in arrival order.
fn cookies_sent(server: &TestServer, path: &str) -> Vec<Option<String>> {
    server
        .requests_for(path)
        .iter()
        .map(|r| r.header("cookie").map(str::to_string))
        .collect()
}

#[test]
fn loaded_cookies_go_only_where_domain_path_secure_and_expiry_allow() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/pub/a", Route::ok(pattern(10, 1)));
    server.route("/private/b", Route::ok(pattern(10, 2)));
    let file = "# Netscape HTTP Cookie File\n\
        127.0.0.1\tFALSE\t/\tFALSE\t0\thost\tyes\n\
        other.example\tFALSE\t/\tFALSE\t0\tother\tno\n\
        .example.com\tTRUE\t/\tFALSE\t0\tsuffix\tno\n\
        127.0.0.1\tFALSE\t/\tFALSE\t1\texpired\tno\n\
        127.0.0.1\tFALSE\t/private\tTRUE\t0\tloopback_secure\tyes\n\
        #HttpOnly_127.0.0.1\tFALSE\t/private\tFALSE\t4102444800\tpriv\tyes\n";
    fs::write(root.join("c.txt"), file).unwrap();
    let (a, b) = (server.url("/pub/a"), server.url("/private/b"));

    let run = fetch_in(root, &["-d", "out", "--load-cookies", "c.txt", &a, &b]);

    assert_code(&run, root, 0);
    assert_eq!(
        cookies_sent(&server, "/pub/a"),
        [Some("host=yes".to_string())],
        "{run}"
    );
    let private = cookies_sent(&server, "/private/b");
    assert_eq!(private.len(), 1, "{run}");
    let mut pairs: Vec<&str> = private[0].as_deref().unwrap_or_default().split("; ").collect();
    pairs.sort_unstable();
    assert_eq!(pairs, ["host=yes", "loopback_secure=yes", "priv=yes"], "{run}");
}

#[test]
fn a_cookie_header_given_with_h_wins_over_the_jar() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route("/a", Route::ok(pattern(10, 1)));
    fs::write(root.join("c.txt"), "127.0.0.1\tFALSE\t/\tFALSE\t0\tjar\tno\n").unwrap();
    let a = server.url("/a");

    let run = fetch_in(
        root,
        &[
            "-d",
            "out",
            "--load-cookies",
            "c.txt",
            "-H",
            "Cookie: mine=yes",
            &a,
        ],
    );

    assert_code(&run, root, 0);
    let sent = server.requests_for("/a");
    let headers: Vec<&str> = sent
        .iter()
        .flat_map(|r| r.headers.iter())
        .filter(|(name, _)| name == "cookie")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(headers, ["mine=yes"], "{run}");
}

#[test]
fn cookies_set_by_a_server_are_sent_later_in_the_run_and_saved() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route(
        "/login",
        Route::redirect(302, "/landing").header("Set-Cookie", "sid=abc123; Path=/"),
    );
    server.route(
        "/landing",
        Route::ok(pattern(10, 1)).header("Set-Cookie", "theme=dark; Path=/; Max-Age=3600; HttpOnly"),
    );
    server.route("/second", Route::ok(pattern(10, 2)));
    let (login, second) = (server.url("/login"), server.url("/second"));

    let run = fetch_in(
        root,
        &[
            "-d",
            "out",
            "-j",
            "1",
            "--save-cookies",
            "saved.txt",
            &login,
            &second,
        ],
    );

    assert_code(&run, root, 0);
    assert_eq!(cookies_sent(&server, "/login"), [None], "{run}");
    assert_eq!(
        cookies_sent(&server, "/landing"),
        [Some("sid=abc123".to_string())],
        "{run}"
    );
    let second_sent = cookies_sent(&server, "/second");
    let mut pairs: Vec<&str> = second_sent[0]
        .as_deref()
        .unwrap_or_default()
        .split("; ")
        .collect();
    pairs.sort_unstable();
    assert_eq!(pairs, ["sid=abc123", "theme=dark"], "{run}");
    let saved = fs::read_to_string(root.join("saved.txt")).unwrap();
    assert!(
        saved.contains("\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tabc123\n"),
        "{saved}"
    );
    let theme = saved
        .lines()
        .find(|l| l.starts_with("#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t") && l.ends_with("\ttheme\tdark"))
        .unwrap_or_else(|| panic!("no theme cookie in {saved}"));
    let expiry: u64 = theme.split('\t').nth(4).unwrap().parse().unwrap();
    assert!(expiry > 1_700_000_000, "{theme}");
    let mode = fs::metadata(root.join("saved.txt")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !fs::read_dir(root)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp")),
        "a temporary file was left behind"
    );

    // The saved file is read back by --load-cookies.
    let run = fetch_in(root, &["-d", "out2", "--load-cookies", "saved.txt", &second]);
    assert_code(&run, root, 0);
    assert_eq!(cookies_sent(&server, "/second").len(), 2, "{run}");
}

#[test]
fn a_secure_cookie_is_not_sent_over_http() {
    // The server stands in, as an HTTP proxy, for www.site.test: 127.0.0.1
    // itself counts as a secure origin, as it does in browsers and curl.
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route_target("http://www.site.test/a", Route::ok(pattern(10, 1)));
    let file = "www.site.test\tFALSE\t/\tTRUE\t0\tsecure\tno\n\
        www.site.test\tFALSE\t/\tFALSE\t0\tplain\tyes\n";
    fs::write(root.join("c.txt"), file).unwrap();
    let proxy = format!("http://{}", server.addr());

    let run = fetch_in(
        root,
        &[
            "-d",
            "out",
            "--proxy",
            &proxy,
            "--load-cookies",
            "c.txt",
            "http://www.site.test/a",
        ],
    );

    assert_code(&run, root, 0);
    let sent: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("cookie").map(str::to_string))
        .collect();
    assert_eq!(sent, [Some("plain=yes".to_string())], "{run}");
}

#[test]
fn a_dotless_domain_from_another_host_is_not_stored() {
    // The server stands in, as an HTTP proxy, for www.evil.test and other.test.
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    server.route_target(
        "http://www.evil.test/set",
        Route::ok(pattern(10, 1)).header("Set-Cookie", "wide=1; Domain=test; Path=/"),
    );
    server.route_target("http://other.test/get", Route::ok(pattern(10, 2)));
    let proxy = format!("http://{}", server.addr());

    let run = fetch_in(
        root,
        &[
            "-d",
            "out",
            "-j",
            "1",
            "--proxy",
            &proxy,
            "--save-cookies",
            "saved.txt",
            "http://www.evil.test/set",
            "http://other.test/get",
        ],
    );

    assert_code(&run, root, 0);
    let sent: Vec<_> = server
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.header("cookie").map(str::to_string)))
        .collect();
    assert_eq!(sent.len(), 2, "{run}\n{sent:?}");
    assert!(sent.iter().all(|(_, cookie)| cookie.is_none()), "{sent:?}");
    let saved = fs::read_to_string(root.join("saved.txt")).unwrap();
    assert!(!saved.contains("wide"), "{saved}");
}

#[test]
fn a_malformed_cookies_file_is_a_usage_error_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file =
        "# comment\n127.0.0.1\tFALSE\t/\tFALSE\t0\tok\tfine\n127.0.0.1\tMAYBE\t/\tFALSE\t0\tsid\tTOPSECRET\n";
    fs::write(root.join("c.txt"), file).unwrap();

    let run = fetch_in(
        root,
        &["-d", "out", "--load-cookies", "c.txt", "http://127.0.0.1:9/a"],
    );

    assert_code(&run, root, 2);
    assert!(run.stderr.contains("c.txt:3:"), "{run}");
    assert!(!run.stderr.contains("TOPSECRET"), "{run}");
    assert!(!root.join("out").exists(), "{run}");
}
