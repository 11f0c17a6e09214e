//! `fetchq man`: manual pages made from the clap definition, one for fetchq
//! and one per subcommand (`fetchq-worker.1`, …), each with the ENVIRONMENT
//! and FILES sections that clap cannot know about.

use std::fmt::Write as _;

use clap::{Command, CommandFactory};

use crate::cli::Cli;

/// One page: its file name (`fetchq-worker.1`) and its roff text.
pub struct Page {
    /// The file name, section included.
    pub file_name: String,
    /// The page in roff.
    pub roff: Vec<u8>,
}

/// A variable that changes what a command does.
struct Variable {
    names: &'static str,
    meaning: &'static str,
}

const PROXIES: Variable = Variable {
    names: "http_proxy, https_proxy, all_proxy, no_proxy",
    meaning: "Proxy for http:// URLs, for https:// URLs, for both when the first two are unset, \
and the hosts reached directly (comma-separated names, each covering its sub-domains; * for every host). Each may \
also be upper case; lower case wins. Schemes: http, https, socks4, socks4a, socks5, socks5h; any \
other is an error, never a direct connection. --proxy and --no-proxy override them.",
};
const NO_COLOR: Variable = Variable {
    names: "NO_COLOR",
    meaning: "When set and not empty, failures are never coloured.",
};
const CONFIG_HOME: Variable = Variable {
    names: "XDG_CONFIG_HOME, HOME",
    meaning: "Where the config file and ~/.netrc are looked for (see FILES).",
};
const REDIS: Variable = Variable {
    names: "FETCHQ_REDIS",
    meaning: "The Redis URL, instead of --redis; keeps a password off the command line.",
};

/// What each page lists under ENVIRONMENT, and whether it reads the config file.
fn environment(name: &str) -> (&'static [Variable], bool) {
    match name {
        "fetchq" => (&[PROXIES, NO_COLOR, CONFIG_HOME], true),
        "worker" => (&[REDIS, PROXIES, NO_COLOR, CONFIG_HOME], true),
        "enqueue" | "status" | "retry-failed" => (&[REDIS], false),
        _ => (&[], false),
    }
}

/// Every page: fetchq's own, then one per visible subcommand.
pub fn pages() -> std::io::Result<Vec<Page>> {
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut pages = vec![page(&top, "fetchq")?];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(page(sub, sub.get_name())?);
    }
    Ok(pages)
}

fn page(command: &Command, name: &str) -> std::io::Result<Page> {
    let man = clap_mangen::Man::new(command.clone());
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    let (variables, config) = environment(name);
    let mut extra = String::new();
    if !variables.is_empty() {
        extra.push_str(".SH ENVIRONMENT\n");
        for variable in variables {
            let _ = write!(
                extra,
                ".TP\n\\fB{}\\fR\n{}\n",
                variable.names,
                escape(variable.meaning)
            );
        }
    }
    if config {
        extra.push_str(
            ".SH FILES\n.TP\n\\fB$XDG_CONFIG_HOME/fetchq/config\\fR, else \\fB~/.config/fetchq/config\\fR\n",
        );
        extra.push_str(&escape(
            "Options used on every run, one a line as on the command line (-j 16, --limit-rate 2M, \
-H \"X-Team: a\"); # starts a comment. Options on the command line win. --config FILE reads \
another file, --no-config none.",
        ));
        extra.push_str("\n.TP\n\\fB~/.netrc\\fR\n");
        extra.push_str(&escape(
            "Logins per host (machine HOST login NAME password SECRET; default for any other host), \
sent as Basic authorization to that host only and never after a redirect to another origin. \
--netrc-file FILE reads another file, --no-netrc none. Keep it private (chmod 600).",
        ));
        extra.push('\n');
    }
    roff.extend_from_slice(extra.as_bytes());
    Ok(Page {
        file_name: man.get_filename(),
        roff,
    })
}

/// Text for roff: a backslash is written `\e`, a hyphen `\-` (so options
/// copy and paste as ASCII), and no line starts with a control character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_and_the_environment_it_reads() {
        let pages = pages().expect("pages render");
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        for want in [
            "fetchq.1",
            "fetchq-worker.1",
            "fetchq-enqueue.1",
            "fetchq-status.1",
            "fetchq-retry-failed.1",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        let text = |name: &str| {
            let page = pages.iter().find(|p| p.file_name == name).expect("page");
            String::from_utf8(page.roff.clone()).expect("utf-8")
        };
        let top = text("fetchq.1");
        assert!(top.contains("\n.TH fetchq 1"), "{top}");
        for needle in [
            ".SH ENVIRONMENT",
            "http_proxy",
            "NO_COLOR",
            ".netrc",
            ".SH FILES",
            "fetchq/config",
        ] {
            assert!(top.contains(needle), "{needle}");
        }
        assert!(text("fetchq-worker.1").contains("FETCHQ_REDIS"));
        assert!(text("fetchq-status.1").contains("FETCHQ_REDIS"));
        assert!(!text("fetchq-status.1").contains(".SH FILES"));
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(escape("-j 16"), "\\-j 16");
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a\\b"), "a\\eb");
    }
}
