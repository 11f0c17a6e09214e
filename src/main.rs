//! The `fetchq` binary: arguments → config, signals → cancel flag, run the
//! library with a terminal observer, summary → exit code. Fatal errors are
//! printed once, as `fetchq: {error}`.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use fetchq::progress::{Mode, Terminal};
use fetchq::report::EXIT_USAGE;
use fetchq::{Cancel, ListInput, Lists};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fetchq: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(cli: cli::Cli) -> Result<u8> {
    let args = cli.download;
    let config = args.to_config().map_err(anyhow::Error::msg)?;
    let mut names = args.files.clone();
    if names.is_empty() {
        if std::io::stdin().is_terminal() {
            bail!(
                "no URL list given and standard input is a terminal\n\nUsage: fetchq [OPTIONS] [FILE]...\nTry 'fetchq --help' for more."
            );
        }
        names.push("-".to_string());
    }
    let lists = names
        .iter()
        .map(|name| ListInput::open(name))
        .collect::<Result<Vec<_>, _>>()?;

    let cancel = Cancel::new();
    watch_signals(&cancel)?;
    let mode = if args.quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Plain
    };
    let mut terminal = Terminal::new(mode, args.verbose, config.jobs);
    let summary = fetchq::run(config, Box::new(Lists(lists)), &cancel, &mut terminal)?;
    terminal.finish(&summary);
    if let Some(error) = &summary.input_error {
        eprintln!("fetchq: {error}");
    }
    Ok(summary.exit_code())
}

/// First SIGINT/SIGTERM: ask the run to stop (in-flight parts are kept).
/// Second: exit at once, the way a user hammering Ctrl-C expects.
fn watch_signals(cancel: &Cancel) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    let cancel = cancel.clone();
    std::thread::Builder::new()
        .name("fetchq-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if cancel.is_requested() {
                    eprintln!("\nfetchq: interrupted again, exiting now");
                    std::process::exit(128 + signal);
                }
                cancel.request(signal);
            }
        })
        .context("cannot start signal thread")?;
    Ok(())
}
