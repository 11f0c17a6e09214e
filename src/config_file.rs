//! The config file: options a user wants on every run (`-j 16`,
//! `--limit-rate 2M`, `--retries 5`), one per line as on the command line.
//!
//! It is read from `$XDG_CONFIG_HOME/fetchq/config`, else
//! `~/.config/fetchq/config`, or from `--config FILE`; `--no-config` skips it.
//! It applies to download runs and `fetchq worker`, the commands that take
//! download options. A line holds one option with its value, in the
//! command line's own spelling and quoting (`-H "X-Token: abc"`); `#` at the
//! start of a line or after a blank starts a comment.
//!
//! The command line wins: a config option is dropped when the command line
//! sets the same option or one that conflicts with it (`-N` on the command
//! line drops `--overwrite` from the file). Each line is checked on its own
//! with clap before it is used, so a bad line is an error naming the file and
//! line, never a puzzle about an argument the user did not type.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory};

use crate::cli::Cli;

/// Where the config file is looked for when `--config` is not given.
pub fn default_path() -> Option<PathBuf> {
    let from_env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("XDG_CONFIG_HOME")
        .or_else(|| from_env("HOME").map(|home| home.join(".config")))
        .map(|dir| dir.join("fetchq").join("config"))
}

/// The command line with the config file's options put in front of the
/// user's own (so clap sees the user's last and they win), for the commands
/// the file applies to. Any other command line comes back unchanged, and so
/// does one clap rejects: the real parse reports that error as usual.
pub fn apply(argv: Vec<OsString>) -> Result<Vec<OsString>> {
    let Ok(matches) = Cli::command().try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let (scope, after) = match matches.subcommand() {
        None => (&matches, 1),
        Some(("worker", sub)) => (sub, 2),
        Some(_) => return Ok(argv),
    };
    if scope.get_flag("no_config") {
        return Ok(argv);
    }
    let (path, explicit) = match scope.get_one::<PathBuf>("config") {
        Some(path) => (path.clone(), true),
        None => match default_path() {
            Some(path) => (path, false),
            None => return Ok(argv),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(argv),
        Err(e) => return Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    };
    let options = options(&path, &text)?;

    let command = Cli::command();
    let typed = set_on_command_line(scope);
    let mut merged: Vec<OsString> = argv[..after].to_vec();
    for option in options {
        let overridden = option.ids.iter().any(|id| {
            typed.contains(id) || conflicts(&command, id).iter().any(|other| typed.contains(other))
        });
        if !overridden {
            merged.extend(option.words.into_iter().map(OsString::from));
        }
    }
    merged.extend_from_slice(&argv[after..]);
    Ok(merged)
}

/// One usable line of the file.
struct ConfigOption {
    words: Vec<String>,
    /// The clap ids the line sets.
    ids: Vec<String>,
}

/// Every option in `text`, each checked on its own.
fn options(path: &Path, text: &str) -> Result<Vec<ConfigOption>> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), index + 1);
        let words = split_words(line).map_err(|why| anyhow::anyhow!("{at}: {why}"))?;
        if words.is_empty() {
            continue;
        }
        if !words[0].starts_with('-') {
            bail!(
                "{at}: expected an option such as --retries 5, found {:?}",
                words[0]
            );
        }
        let argv = std::iter::once("fetchq".to_string()).chain(words.iter().cloned());
        let matches = Cli::command().try_get_matches_from(argv).map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            anyhow::anyhow!("{at}: {}", first.trim_start_matches("error: "))
        })?;
        let ids = set_on_command_line(&matches);
        if let Some(id) = ids.iter().find(|id| NOT_IN_CONFIG.contains(&id.as_str())) {
            bail!("{at}: {} cannot be set in the config file", display_id(id));
        }
        found.push(ConfigOption {
            words,
            ids: ids.into_iter().collect(),
        });
    }
    Ok(found)
}

/// What names the lists to read, or the config file itself: these belong
/// on the command line of each run.
const NOT_IN_CONFIG: [&str; 4] = ["files", "input_files", "config", "no_config"];

fn display_id(id: &str) -> String {
    match id {
        "files" => "a list FILE".to_string(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// The ids of the arguments the user typed (not defaults, not environment).
/// Group ids are left out: clap's derive makes a group of each `Args`
/// struct, present whenever any member is typed, so keeping it would make
/// every option of that struct look typed (`-j 2` dropping the file's
/// `--limit-rate`).
fn set_on_command_line(matches: &ArgMatches) -> HashSet<String> {
    let groups: HashSet<String> = Cli::command()
        .get_groups()
        .map(|group| group.get_id().as_str().to_string())
        .collect();
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .filter(|id| !groups.contains(id))
        .collect()
}

/// The ids of the arguments that conflict with `id` in a download run.
fn conflicts(command: &Command, id: &str) -> Vec<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_id() == id)
        .map(|arg| {
            command
                .get_arg_conflicts_with(arg)
                .into_iter()
                .map(|other| other.get_id().as_str().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A line split into words as a POSIX shell would for the simple cases:
/// blanks separate words, `'…'` keeps everything, `"…"` keeps everything but
/// `\"` and `\\`, and `#` at the start of a word starts a comment.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '#' if word.is_none() => break,
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("unbalanced ' quote".into()),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => current.push(c),
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err("unbalanced \" quote".into()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("unbalanced \" quote".into()),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_a_shell_for_the_simple_cases() {
        let table: [(&str, &[&str]); 9] = [
            ("", &[]),
            ("   # a comment", &[]),
            ("--retries 5", &["--retries", "5"]),
            ("-j 16   # many", &["-j", "16"]),
            ("-H \"X-Token: a b\"", &["-H", "X-Token: a b"]),
            ("-H 'X-Q: \"x\"'", &["-H", "X-Q: \"x\""]),
            ("-A \"say \\\"hi\\\"\"", &["-A", "say \"hi\""]),
            ("--header=a#b", &["--header=a#b"]),
            ("-H x#y", &["-H", "x#y"]),
        ];
        for (line, want) in table {
            let want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            assert_eq!(split_words(line), Ok(want), "{line:?}");
        }
        assert!(split_words("-H \"open").is_err());
        assert!(split_words("-H 'open").is_err());
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let path = Path::new("/etc/x");
        let error = |text: &str| {
            options(path, text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            error("-j 4\n--retries many\n").starts_with("/etc/x:2: "),
            "{}",
            error("-j 4\n--retries many\n")
        );
        assert!(error("--no-such-flag\n").starts_with("/etc/x:1: "));
        assert!(error("urls.txt\n").contains("expected an option"));
        assert!(error("-i more.txt\n").contains("cannot be set in the config file"));
        assert!(options(path, "# nothing\n\n-j 4\n--limit-rate 2M\n").is_ok_and(|o| o.len() == 2));
    }
}
