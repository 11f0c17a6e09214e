//! The command line itself: `--help` and `-h`, `--version`, shell
//! completions and the man page.

use crate::support::*;

// ---------------------------------------------------------------------------
// Help and version
// ---------------------------------------------------------------------------

#[test]
fn help_mentions_exit_codes_and_examples() {
    for flag in ["--help", "-h"] {
        let run = run(fetchq().arg(flag));
        assert_eq!(run.code(), 0, "{run}");
        let text = run.stdout.to_lowercase();
        for needle in ["exit codes", "examples", "fetchq urls.txt -j 8", "usage"] {
            assert!(text.contains(needle), "{flag} should mention {needle:?}\n{run}");
        }
        for code in ["0 ", "1 ", "2 ", "130"] {
            assert!(
                run.stdout.contains(code),
                "{flag} should list exit code {code:?}\n{run}"
            );
        }
    }
}

#[test]
fn version_prints_the_version() {
    let run = run(fetchq().arg("--version"));
    assert_eq!(run.code(), 0, "{run}");
    assert_eq!(
        run.stdout.trim(),
        format!("fetchq {}", env!("CARGO_PKG_VERSION")),
        "{run}"
    );
}

// ---------------------------------------------------------------------------
// completions and man
// ---------------------------------------------------------------------------

#[test]
fn completions_for_every_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = fetch_in(root, &["completions", shell]);
        assert_code(&run, root, 0);
        assert!(
            run.stdout.len() > 100 && run.stdout.contains("fetchq"),
            "{shell} completion script should be non-empty and mention fetchq\n{}",
            ctx(&run, root)
        );
        assert!(
            run.stdout.contains("--per-host") || run.stdout.contains("per-host"),
            "{shell} completion should know the options\n{}",
            ctx(&run, root)
        );
    }
    assert!(
        list_files(root).is_empty(),
        "completions must not write files\n{:?}",
        list_files(root)
    );
}

#[test]
fn man_page_is_roff() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = fetch_in(root, &["man"]);
    assert_code(&run, root, 0);
    assert!(
        run.stdout.starts_with(".TH") || run.stdout.contains("\n.SH"),
        "man should print roff\n{}",
        ctx(&run, root)
    );
    assert!(
        run.stdout.contains("fetchq"),
        "man page should name fetchq\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// grouped help
// ---------------------------------------------------------------------------

#[test]
fn help_is_grouped_and_short_help_is_shorter() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let long = fetch_in(root, &["--help"]);
    assert_code(&long, root, 0);
    let short = fetch_in(root, &["-h"]);
    assert_code(&short, root, 0);
    // What is written to disk and what is printed have headings no one can
    // confuse ("Output" and "Output format" once stood side by side).
    for heading in ["Input:", "Files:", "Network:", "Behaviour:", "Messages:"] {
        for (which, run) in [("--help", &long), ("-h", &short)] {
            assert!(
                run.stdout.lines().any(|l| l.trim_end() == heading),
                "{which} should have a heading line {heading:?}\n{}",
                ctx(run, root)
            );
        }
    }
    for confusing in ["Output:", "Output format:"] {
        assert!(
            !long.stdout.lines().any(|l| l.trim_end() == confusing),
            "{confusing}\n{}",
            ctx(&long, root)
        );
    }
    assert!(
        short.stdout.len() < long.stdout.len(),
        "-h ({} bytes) should be shorter than --help ({} bytes)\n{}\n{}",
        short.stdout.len(),
        long.stdout.len(),
        short,
        long
    );
}
