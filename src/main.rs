//! The `fetchq` binary: arguments → config, signals → cancel flag, run the
//! library with the chosen observers, summary → exit code. Fatal errors are
//! printed once, as `fetchq: {error}`, and exit 2.

mod cli;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use fetchq::eventlog::EventLog;
use fetchq::jsonl::JsonLines;
use fetchq::pool::Tee;
use fetchq::progress::{Mode, Terminal};
use fetchq::report::EXIT_USAGE;
use fetchq::{Cancel, ListInput, Lists, Observer};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Completions { shell }) => print_completions(shell),
        Some(Command::Man) => print_man(),
        None => download(cli),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fetchq: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn download(cli: Cli) -> Result<u8> {
    let config = cli.download.to_config().map_err(anyhow::Error::msg)?;
    let mut names = cli.input.names();
    if names.is_empty() {
        if io::stdin().is_terminal() {
            let usage = Cli::command().render_usage();
            bail!(
                "no URL list given and standard input is a terminal\n\n{usage}\n\nFor more information, try '--help'."
            );
        }
        names.push("-".to_string());
    }
    let lists = names
        .iter()
        .map(|name| ListInput::open(name))
        .collect::<Result<Vec<_>, _>>()?;
    if config.insecure {
        eprintln!("fetchq: warning: --insecure: TLS certificates are NOT verified");
    }

    let cancel = Cancel::new();
    watch_signals(&cancel)?;
    let mode = if cli.output.quiet {
        Mode::Quiet
    } else if io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Plain
    };
    let mut terminal = Terminal::new(mode, cli.output.verbose, config.jobs);
    terminal.set_plan_output(!cli.output.json);
    let mut json = cli
        .output
        .json
        .then(|| JsonLines::new(io::stdout().lock(), &config.dir));
    let mut log = match &cli.output.log {
        Some(path) => {
            Some(EventLog::open(path).with_context(|| format!("cannot open log {}", path.display()))?)
        }
        None => None,
    };
    if let Some(log) = log.as_mut() {
        log.start(&format!(
            "fetchq {} into {}",
            names.join(" "),
            config.dir.display()
        ));
    }

    let mut observers: Vec<&mut dyn Observer> = vec![&mut terminal];
    if let Some(json) = json.as_mut() {
        observers.push(json);
    }
    if let Some(log) = log.as_mut() {
        observers.push(log);
    }
    let summary = fetchq::run(config, Box::new(Lists(lists)), &cancel, &mut Tee(observers))?;

    terminal.finish(&summary);
    if let Some(json) = json.as_mut() {
        json.finish(&summary);
    }
    if let Some(log) = log.as_mut() {
        log.finish(&summary);
    }
    if let Some(error) = &summary.input_error {
        eprintln!("fetchq: {error}");
    }
    Ok(summary.exit_code())
}

fn print_completions(shell: clap_complete::Shell) -> Result<u8> {
    clap_complete::generate(shell, &mut Cli::command(), "fetchq", &mut io::stdout());
    Ok(0)
}

fn print_man() -> Result<u8> {
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .and_then(|()| out.flush())
        .context("cannot write the man page")?;
    Ok(0)
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
