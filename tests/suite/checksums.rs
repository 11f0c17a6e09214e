//! `--checksums FILE`: published sums files (`sha256sum` output, its binary
//! `*NAME` form, the tagged BSD form) checked against every entry whose path
//! under `--dir` they name, together with the line's own digests; a bad sums
//! file stops the run before anything is downloaded.

use md5::Md5;
use sha2::{Digest, Sha512};

use crate::support::*;

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha512_hex(data: &[u8]) -> String {
    Sha512::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Each form: a sums line for `name` with digest `hex`, and the algorithm
/// its messages name.
type Form = (&'static str, fn(&[u8]) -> String, fn(&str, &str) -> String);

const FORMS: [(&str, Form); 3] = [
    (
        "sha256sum",
        ("sha256", sha256_hex, |hex, name| format!("{hex}  {name}")),
    ),
    (
        "md5sum -b",
        ("md5", md5_hex, |hex, name| format!("{hex} *{name}")),
    ),
    (
        "tagged",
        ("sha512", sha512_hex, |hex, name| {
            format!("SHA512 ({name}) = {hex}")
        }),
    ),
];

#[test]
fn each_form_checks_the_files_it_names() {
    for (form, (algorithm, digest, line)) in FORMS {
        let t = Setup::new();
        let good = pattern(40_000, 1);
        let bad = pattern(40_000, 2);
        let good_url = t.serve("/good.bin", Route::ok(good.clone()));
        let bad_url = t.serve("/bad.bin", Route::ok(bad.clone()));
        let other_url = t.serve("/other.bin", Route::ok(b"not listed".to_vec()));
        t.list(&[good_url, bad_url, other_url]);
        let wrong = digest(b"something else");
        write_list(
            t.root(),
            "SUMS",
            format!(
                "# {form}\n\n{}\n{}\n",
                line(&digest(&good), "good.bin"),
                line(&wrong, "./bad.bin")
            ),
        );

        let run = t.run(&["--checksums", "SUMS"]);

        run.assert_code(1)
            .assert_out_files(&["good.bin", "other.bin"])
            .assert_out_file("good.bin", &good)
            .assert_out_file("other.bin", b"not listed")
            .assert_no_part();
        let failed = run.stderr_line("bad.bin");
        let want = format!(
            "checksum mismatch: expected {algorithm} {wrong}, got {}",
            digest(&bad)
        );
        assert!(failed.contains(&want), "{form}: {failed}\n{}", run.ctx());
    }
}

#[test]
fn sums_files_and_the_lines_own_digests_must_all_match() {
    let t = Setup::new();
    let body = pattern(10_000, 9);
    let both = t.serve("/both.bin", Route::ok(body.clone()));
    let line_wrong = t.serve("/line-wrong.bin", Route::ok(body.clone()));
    let file_wrong = t.serve("/file-wrong.bin", Route::ok(body.clone()));
    let nested = t.serve("/nested.bin", Route::ok(body.clone()));
    let md5 = md5_hex(&body);
    t.list(&[
        format!("{both} md5={md5}"),
        format!("{line_wrong} md5={}", md5_hex(b"x")),
        format!("{file_wrong} md5={md5}"),
        format!("{nested} sub/n.bin"),
    ]);
    let sha256 = sha256_hex(&body);
    write_list(
        t.root(),
        "SHA256SUMS",
        format!(
            "{sha256}  both.bin\n{sha256}  line-wrong.bin\n{}  file-wrong.bin\n",
            sha256_hex(b"x")
        ),
    );
    write_list(
        t.root(),
        "SHA512SUMS",
        format!("{}  ./sub/n.bin\n", sha512_hex(b"x")),
    );

    let run = t.run(&["--checksums", "SHA256SUMS", "--checksums", "SHA512SUMS"]);

    run.assert_code(1)
        .assert_out_files(&["both.bin"])
        .assert_no_part();
    assert!(
        run.stderr_line("line-wrong.bin").contains("expected md5"),
        "{}",
        run.ctx()
    );
    assert!(
        run.stderr_line("file-wrong.bin").contains("expected sha256"),
        "{}",
        run.ctx()
    );
    assert!(
        run.stderr_line("nested.bin").contains("expected sha512"),
        "{}",
        run.ctx()
    );
}

#[test]
fn a_bad_or_missing_sums_file_stops_the_run_before_any_download() {
    let t = Setup::new();
    t.list(&[t.serve("/a.bin", Route::ok(b"a".to_vec()))]);
    write_list(
        t.root(),
        "SUMS",
        format!("# fine\n{}  a.bin\nnot a sums line\n", sha256_hex(b"a")),
    );

    let run = t.run(&["--checksums", "SUMS"]);

    run.assert_code(2)
        .assert_stderr_has("unusable --checksums file: SUMS:3: ")
        .assert_files(&["SUMS", "list.txt"]);
    t.assert_hits(&run, "/a.bin", 0);

    let run = t.run(&["--checksums", "MISSING"]);

    run.assert_code(2)
        .assert_stderr_has("cannot read --checksums MISSING")
        .assert_files(&["SUMS", "list.txt"]);
    t.assert_hits(&run, "/a.bin", 0);

    // Sparse: one byte over the limit costs no disk.
    let big = std::fs::File::create(t.root().join("BIG")).unwrap();
    big.set_len(fetchq::MAX_SUMS_FILE + 1).unwrap();
    let run = t.run(&["--checksums", "BIG"]);

    run.assert_code(2)
        .assert_stderr_has("--checksums BIG is larger than 67108864 bytes")
        .assert_files(&["BIG", "SUMS", "list.txt"]);
    t.assert_hits(&run, "/a.bin", 0);
}

/// The name looked up is the one known before the request: a name the
/// server gives with `--content-disposition` is not checked.
#[test]
fn a_content_disposition_name_is_not_looked_up() {
    let t = Setup::new();
    let url = t.serve(
        "/get",
        Route::ok(b"served".to_vec()).header("Content-Disposition", "attachment; filename=\"real.bin\""),
    );
    t.list(&[url]);
    write_list(t.root(), "SUMS", format!("{}  real.bin\n", sha256_hex(b"x")));

    t.run(&["--content-disposition", "--checksums", "SUMS"])
        .assert_code(0)
        .assert_out_files(&["real.bin"])
        .assert_out_file("real.bin", b"served");
}

/// `--checksums` in the config file applies, also when the command line
/// sets other download options (`-d`, `-j`).
#[test]
fn the_config_files_checksums_apply_beside_other_typed_options() {
    let t = Setup::new();
    t.list(&[t.serve("/a.bin", Route::ok(b"served".to_vec()))]);
    write_list(t.root(), "SUMS", format!("{}  a.bin\n", sha256_hex(b"x")));
    let xdg = t.root().join("xdg");
    std::fs::create_dir_all(xdg.join("fetchq")).unwrap();
    std::fs::write(xdg.join("fetchq/config"), "--checksums SUMS\n").unwrap();
    let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];

    let run = fetch_in_with_env(t.root(), &["-d", "out", "-j", "2", "list.txt"], &env);

    assert_code(&run, t.root(), 1);
    assert_stderr_has(&run, t.root(), "checksum mismatch: expected sha256");
    assert!(!t.out().join("a.bin").exists(), "{}", ctx(&run, t.root()));
}

/// A big body is written on 64 KiB boundaries, its tail held back while
/// more arrives and written while the server pauses (`src/fetch/tail.rs`).
/// Pieces of an odd size with pauses between them take every road: held,
/// written in front of the next piece, written during a pause, and the
/// last bytes at the end. The file and the line's digest (hashed as the
/// bytes are counted) must both come out whole and in order.
#[test]
fn a_big_body_paused_mid_stretch_is_whole_and_hashed_in_order() {
    let t = Setup::new();
    let body = pattern(9 * 1024 * 1024 + 12_345, 7);
    let url = t.serve(
        "/big.bin",
        Route::ok(body.clone()).drip(1_500_007, std::time::Duration::from_millis(100)),
    );
    t.list(&[format!("{url} sha256={}", sha256_hex(&body))]);
    let run = t.run(&[]);
    run.assert_code(0)
        .assert_out_file("big.bin", &body)
        .assert_no_part();
    // Right the first time: a retry would hide bytes lost or misplaced.
    t.assert_hits(&run, "/big.bin", 1);
}
