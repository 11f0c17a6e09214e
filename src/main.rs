//! The `fetchq` binary: arguments → config, signals → cancel flag, run the
//! library with the chosen observers, summary → exit code. Fatal errors are
//! printed once, as `fetchq: {error}`, and exit 2.

mod cli;

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use fetchq::outputs::Outputs;
use fetchq::queue::worker::{Level, Notice, Notify, WorkerOptions};
use fetchq::queue::{Queue, RetryPolicy, commands, default_worker_id};
use fetchq::report::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use fetchq::{Cancel, Config, ListInput, Lists};

use cli::{Cli, Command, EnqueueArgs, OutputArgs, QueueArgs, StatusArgs, WorkerArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Completions { shell }) => print_completions(shell),
        Some(Command::Man) => print_man(),
        Some(Command::Enqueue(args)) => enqueue(args),
        Some(Command::Worker(args)) => worker(*args),
        Some(Command::Status(args)) => status(args),
        Some(Command::RetryFailed(args)) => retry_failed(args),
        None => download(cli),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fetchq: {}", fetchq::display::text(&format!("{err:#}")));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Set up a run's outputs; a log that cannot be opened is a usage error.
fn outputs(output: &OutputArgs, config: &Config, start: &str, cancel: &Cancel) -> Result<Outputs> {
    Outputs::new(&output.options(), config.jobs, &config.dir, start, cancel).with_context(|| {
        let log = output.log.as_deref().unwrap_or(Path::new("-"));
        format!("cannot open log {}", log.display())
    })
}

fn download(cli: Cli) -> Result<u8> {
    let config = cli.download.to_config().map_err(anyhow::Error::msg)?;
    let names = list_names(cli.input.names())?;
    let lists = names
        .iter()
        .map(|name| ListInput::open(name))
        .collect::<Result<Vec<_>, _>>()?;
    if config.insecure {
        eprintln!("fetchq: warning: --insecure: TLS certificates are NOT verified");
    }

    let cancel = Cancel::new();
    watch_signals(&cancel)?;
    let start = format!("fetchq {} into {}", names.join(" "), config.dir.display());
    let mut outputs = outputs(&cli.output, &config, &start, &cancel)?;
    let summary = fetchq::run(config, Box::new(Lists(lists)), &cancel, &mut outputs.observers())?;
    outputs.finish(&summary);
    Ok(summary.exit_code())
}

/// The lists to read; standard input when none is named, unless it is a terminal.
fn list_names(mut names: Vec<String>) -> Result<Vec<String>> {
    if names.is_empty() {
        if io::stdin().is_terminal() {
            let usage = Cli::command().render_usage();
            bail!(
                "no URL list given and standard input is a terminal\n\n{usage}\n\nFor more information, try '--help'."
            );
        }
        names.push("-".to_string());
    }
    Ok(names)
}

/// Connects at once, so a wrong address or an old server is a usage error.
fn connect(args: &QueueArgs) -> Result<Queue> {
    Queue::connect(&args.redis, &args.queue).map_err(flat)
}

/// A queue error as one message: its text already includes its causes, so
/// `{:#}` must not repeat them.
fn flat(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::msg(error.to_string())
}

fn redis_retry_notice(error: &fetchq::queue::QueueError, wait: Duration) {
    eprintln!(
        "fetchq: warning: Redis unavailable: {error}; retrying in {:.1} s",
        wait.as_secs_f64()
    );
}

fn enqueue(args: EnqueueArgs) -> Result<u8> {
    let names = list_names(args.files)?;
    let lists = names
        .iter()
        .map(|name| ListInput::open(name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut queue = connect(&args.queue)?;
    let report = commands::enqueue_lists(
        &mut queue,
        lists,
        &RetryPolicy::default(),
        |origin, error, text| {
            // The same line a local run prints for an unusable entry.
            let text = fetchq::display::line(text);
            let text = if text.is_empty() {
                text
            } else {
                format!("{text}: ")
            };
            eprintln!(
                "{}: {text}{}",
                fetchq::display::text(&origin.to_string()),
                fetchq::display::text(&error.to_string())
            );
        },
        redis_retry_notice,
    )
    .map_err(flat)?;
    eprintln!(
        "queued {}, duplicates {}, invalid {}",
        report.queued, report.duplicates, report.invalid
    );
    if let Some(error) = &report.input_error {
        eprintln!("fetchq: {}", fetchq::display::chain(error));
        return Ok(EXIT_USAGE);
    }
    Ok(if report.invalid > 0 { EXIT_FAILED } else { EXIT_OK })
}

fn worker(args: WorkerArgs) -> Result<u8> {
    if args.download.dry_run {
        bail!(
            "--dry-run cannot be used with `worker`: it would mark queue entries done without downloading them"
        );
    }
    let config = args.download.to_config().map_err(anyhow::Error::msg)?;
    if config.insecure {
        eprintln!("fetchq: warning: --insecure: TLS certificates are NOT verified");
    }
    let mut queue = connect(&args.queue)?;
    if let Some(ms) = args.heartbeat_ttl_ms {
        queue = queue.with_heartbeat_ttl(Duration::from_millis(ms));
    }
    let mut options = WorkerOptions::new(args.worker_id.unwrap_or_else(default_worker_id));
    options.drain = args.drain;

    let cancel = Cancel::new();
    watch_signals(&cancel)?;
    let start = format!(
        "fetchq worker {} on queue {} at {} into {}",
        options.worker_id,
        queue.name(),
        queue.url(),
        config.dir.display()
    );
    let mut outputs = outputs(&args.output, &config, &start, &cancel)?;
    let quiet = args.output.quiet;
    let notify: Notify = Arc::new(move |notice: Notice| {
        if !(quiet && notice.level == Level::Info) {
            eprintln!("fetchq: {}", fetchq::display::text(&notice.to_string()));
        }
    });
    let queue_name = queue.name().to_string();
    let report =
        fetchq::queue::worker::work(queue, config, options, &cancel, &mut outputs.observers(), notify)
            .map_err(flat)?;
    outputs.finish(&report.summary);
    if report.released > 0 && !quiet {
        eprintln!(
            "fetchq: gave {} unfinished entries back to queue {queue_name}",
            report.released
        );
    }
    Ok(report.summary.exit_code())
}

fn status(args: StatusArgs) -> Result<u8> {
    let mut queue = connect(&args.queue)?;
    let retry = RetryPolicy::give_up_after(Duration::from_secs(10));
    if args.requeue_stale {
        let n = queue
            .with_retry_notify(&retry, |q| q.requeue_stale(), redis_retry_notice)
            .map_err(flat)?;
        eprintln!("requeued {n} entries of dead workers");
    }
    let status = queue
        .with_retry_notify(&retry, |q| q.status(), redis_retry_notice)
        .map_err(flat)?;
    let mut out = io::stdout().lock();
    if args.json {
        fetchq::jsonl::to_writer(&mut out, &status)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", commands::status_table(&status))?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

fn retry_failed(args: QueueArgs) -> Result<u8> {
    let mut queue = connect(&args)?;
    let retry = RetryPolicy::give_up_after(Duration::from_secs(10));
    let n = queue
        .with_retry_notify(&retry, |q| q.retry_failed(), redis_retry_notice)
        .map_err(flat)?;
    println!("moved {n} failed entries back to queue {}", queue.name());
    Ok(EXIT_OK)
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
