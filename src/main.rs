//! The `fetchq` binary: arguments → config, signals → cancel flag, run the
//! library with the chosen observers, summary → exit code. Fatal errors are
//! printed once, with every cause, as `fetchq: {error:#}`, and exit 2.

mod cli;
mod config_file;
mod man;

use std::io::{self, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches};
use fetchq::messages::{self, StdoutError};
use fetchq::outputs::Outputs;
use fetchq::queue::worker::{Level, Notice, Notify, WorkerOptions};
use fetchq::queue::{Queue, RetryPolicy, commands, default_worker_id};
use fetchq::{Cancel, Config, Cookies, Exit, ListInput, Lists, MAX_SUMS_FILE, Netrc, Sums};

use cli::{Cli, Command, EnqueueArgs, OutputArgs, QueueArgs, StatusArgs, WorkerArgs};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(err) => {
            messages::message(format_args!("{err:#}"));
            return Exit::Usage.into();
        }
    };
    let result = match cli.command {
        Some(Command::Completions { shell }) => print_completions(shell),
        Some(Command::Man { dir }) => print_man(dir.as_deref()),
        Some(Command::Enqueue(args)) => enqueue(args),
        Some(Command::Worker(args)) => worker(*args),
        Some(Command::Status(args)) => status(args),
        Some(Command::RetryFailed(args)) => retry_failed(args),
        None => download(cli),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            messages::message(format_args!("{err:#}"));
            Exit::Usage.into()
        }
    }
}

/// The command line, with the config file's options where they apply (see
/// [`config_file`]). clap's own errors and `--help` exit from here as usual.
fn parse() -> Result<Cli> {
    let argv = config_file::apply(std::env::args_os().collect())?;
    let matches = Cli::command().get_matches_from(argv);
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// Write a command's product to stdout under the one rule of
/// [`fetchq::messages`]: a reader that went away ends the command quietly,
/// any other write error is a failure with its cause.
fn print_stdout(bytes: &[u8]) -> Result<Exit> {
    match messages::write_stdout(bytes) {
        Ok(()) | Err(StdoutError::Closed) => Ok(Exit::Ok),
        Err(failed) => Err(anyhow::Error::msg(failed)),
    }
}

/// Set up a run's outputs; a log that cannot be opened is a usage error.
fn outputs(output: &OutputArgs, config: &Config, start: &str, cancel: &Cancel) -> Result<Outputs> {
    Outputs::new(&output.options(), config.jobs, &config.dir, start, cancel).with_context(|| {
        let log = output.log.as_deref().unwrap_or(Path::new("-"));
        format!("cannot open log {}", log.display())
    })
}

fn download(cli: Cli) -> Result<Exit> {
    let mut config = cli.download.to_config().map_err(anyhow::Error::msg)?;
    config.netrc = netrc(&cli.download)?;
    config.cookies = cookies(&cli.download)?;
    config.checksums = checksums(&cli.download)?;
    let jar = config.cookies.clone();
    let names = list_names(cli.input.names())?;
    let lists = open_lists(&names, cli.input.output.as_deref())?;
    if config.insecure {
        messages::warning("--insecure: TLS certificates are NOT verified");
    }

    let cancel = Cancel::new();
    watch_signals(&cancel)?;
    let start = format!("fetchq {} into {}", names.join(" "), config.dir.display());
    let mut outputs = outputs(&cli.output, &config, &start, &cancel)?;
    if let Some(path) = cli.input.save_failed {
        outputs.save_failed(path, config.content_disposition);
    }
    let summary = fetchq::run(config, Box::new(Lists(lists)), &cancel, &mut outputs.observers())?;
    let exit = outputs.finish(&summary);
    save_cookies(&cli.download, jar.as_deref())?;
    Ok(exit)
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

/// Open every list in order: an argument that is an `http://` or `https://`
/// URL is a one-entry list of its own (saved as `output` if given, which
/// needs exactly one URL), anything else a list file or `-`.
fn open_lists(names: &[String], output: Option<&str>) -> Result<Vec<ListInput>> {
    let urls = names
        .iter()
        .filter(|name| ListInput::url_argument(name).is_some())
        .count();
    if output.is_some() && urls != 1 {
        bail!("-o/--output names the file of one URL given as an argument, but {urls} were given");
    }
    let mut position = 0;
    let mut lists = Vec::with_capacity(names.len());
    for name in names {
        match ListInput::url_argument(name) {
            Some(url) => {
                position += 1;
                lists.push(ListInput::from_argument(position, &url, output));
            }
            None => lists.push(ListInput::open(name)?),
        }
    }
    Ok(lists)
}

/// The `.netrc` a run uses: `--netrc-file`, else `~/.netrc` if there is one,
/// none with `--no-netrc`. A file others can read is used with a warning, as
/// curl and wget do; one that cannot be read or parsed is a usage error.
fn netrc(args: &cli::DownloadArgs) -> Result<Option<Arc<Netrc>>> {
    use std::os::unix::fs::PermissionsExt;
    if args.no_netrc {
        return Ok(None);
    }
    let (path, explicit) = match &args.netrc_file {
        Some(path) => (path.clone(), true),
        None => match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
            Some(home) => (Path::new(&home).join(".netrc"), false),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
        messages::warning(format_args!(
            "{} can be read by other users; chmod 600 it",
            path.display()
        ));
    }
    let netrc = Netrc::parse(&text).with_context(|| format!("cannot use {}", path.display()))?;
    Ok(Some(Arc::new(netrc)))
}

/// The published sums of every `--checksums FILE`, read whole at startup
/// (each at most [`MAX_SUMS_FILE`] bytes); none without the option. A file
/// that is missing, too large, or has a malformed line is a usage error
/// naming it (and the line).
fn checksums(args: &cli::DownloadArgs) -> Result<Option<Arc<Sums>>> {
    use std::io::Read;
    if args.checksums.is_empty() {
        return Ok(None);
    }
    let mut sums = Sums::new();
    for path in &args.checksums {
        let cannot = || format!("cannot read --checksums {}", path.display());
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_SUMS_FILE + 1).read_to_string(&mut text))
            .with_context(cannot)?;
        if text.len() as u64 > MAX_SUMS_FILE {
            bail!(
                "--checksums {} is larger than {MAX_SUMS_FILE} bytes",
                path.display()
            );
        }
        sums.add_text(&path.display().to_string(), &text)
            .context("unusable --checksums file")?;
    }
    Ok(Some(Arc::new(sums)))
}

/// The cookie jar of a run: empty when only `--save-cookies` is given, none
/// without either flag. A file that cannot be read or has a malformed line
/// is a usage error naming FILE:LINE (never the cookie's value).
fn cookies(args: &cli::DownloadArgs) -> Result<Option<Arc<Cookies>>> {
    let jar = match &args.load_cookies {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Cookies::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.reason))?
        }
        None if args.save_cookies.is_some() => Cookies::new(),
        None => return Ok(None),
    };
    Ok(Some(Arc::new(jar)))
}

/// Write the jar to `--save-cookies` FILE: a temporary file of mode 0600 in
/// the same folder, renamed over FILE, so a reader never sees half a file.
fn save_cookies(args: &cli::DownloadArgs, jar: Option<&Cookies>) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(path), Some(jar)) = (&args.save_cookies, jar) else {
        return Ok(());
    };
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(jar.to_netscape().as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot save cookies to {}", path.display()));
    }
    Ok(())
}

/// Connects at once, so a wrong address or an old server is a usage error.
fn connect(args: &QueueArgs) -> Result<Queue> {
    Ok(Queue::connect(&args.redis, &args.queue)?)
}

fn redis_retry_notice(error: &fetchq::queue::QueueError, wait: Duration) {
    messages::warning(format_args!(
        "Redis unavailable: {}; retrying in {:.1} s",
        fetchq::display::chain(error),
        wait.as_secs_f64()
    ));
}

fn enqueue(args: EnqueueArgs) -> Result<Exit> {
    let names = list_names(args.files)?;
    let lists = open_lists(&names, None)?;
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
    )?;
    eprintln!(
        "queued {}, duplicates {}, invalid {}",
        report.queued, report.duplicates, report.invalid
    );
    if let Some(error) = &report.input_error {
        messages::message(fetchq::display::chain(error));
        return Ok(Exit::Usage);
    }
    Ok(if report.invalid > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

fn worker(args: WorkerArgs) -> Result<Exit> {
    if args.download.dry_run {
        bail!(
            "--dry-run cannot be used with `worker`: it would mark queue entries done without downloading them"
        );
    }
    let mut config = args.download.to_config().map_err(anyhow::Error::msg)?;
    config.netrc = netrc(&args.download)?;
    config.cookies = cookies(&args.download)?;
    config.checksums = checksums(&args.download)?;
    let jar = config.cookies.clone();
    if config.insecure {
        messages::warning("--insecure: TLS certificates are NOT verified");
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
            messages::message(&notice);
        }
    });
    let queue_name = queue.name().to_string();
    let report =
        fetchq::queue::worker::work(queue, config, options, &cancel, &mut outputs.observers(), notify)?;
    let exit = outputs.finish(&report.summary);
    if report.released > 0 && !quiet {
        messages::message(format_args!(
            "gave {} unfinished entries back to queue {queue_name}",
            report.released
        ));
    }
    save_cookies(&args.download, jar.as_deref())?;
    Ok(exit)
}

fn status(args: StatusArgs) -> Result<Exit> {
    let mut queue = connect(&args.queue)?;
    let retry = RetryPolicy::give_up_after(Duration::from_secs(10));
    if args.requeue_stale {
        let n = queue.with_retry_notify(&retry, |q| q.requeue_stale(), redis_retry_notice)?;
        eprintln!("requeued {n} entries of dead workers");
    }
    let status = queue.with_retry_notify(&retry, |q| q.status(), redis_retry_notice)?;
    let text = if args.json {
        let mut json = Vec::new();
        fetchq::jsonl::to_writer(&mut json, &status)?;
        json.push(b'\n');
        json
    } else {
        commands::status_table(&status).into_bytes()
    };
    print_stdout(&text)
}

fn retry_failed(args: QueueArgs) -> Result<Exit> {
    let mut queue = connect(&args)?;
    let retry = RetryPolicy::give_up_after(Duration::from_secs(10));
    let n = queue.with_retry_notify(&retry, |q| q.retry_failed(), redis_retry_notice)?;
    print_stdout(format!("moved {n} failed entries back to queue {}\n", queue.name()).as_bytes())
}

fn print_completions(shell: clap_complete::Shell) -> Result<Exit> {
    // Generated in memory: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "fetchq", &mut script);
    print_stdout(&script)
}

fn print_man(dir: Option<&Path>) -> Result<Exit> {
    let pages = man::pages().context("cannot render the man pages")?;
    let Some(dir) = dir else {
        let top = pages.first().map_or(&[][..], |page| &page.roff[..]);
        return print_stdout(top);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = String::new();
    for page in pages {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.roff).with_context(|| format!("cannot write {}", path.display()))?;
        written.push_str(&format!("{}\n", path.display()));
    }
    print_stdout(written.as_bytes())
}

/// First SIGINT, SIGTERM or SIGHUP: ask the run to stop (in-flight parts are
/// kept, the report is printed). SIGHUP is among them because a closed
/// terminal or an ssh session that drops sends it, and its default action
/// would kill the run without a report. Second signal: exit at once, the way a
/// user hammering Ctrl-C expects.
fn watch_signals(cancel: &Cancel) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    let cancel = cancel.clone();
    std::thread::Builder::new()
        .name("fetchq-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if cancel.is_requested() {
                    eprintln!();
                    messages::message("interrupted again, exiting now");
                    std::process::exit(i32::from(Exit::Signal(signal).code()));
                }
                cancel.request(signal);
            }
        })
        .context("cannot start signal thread")?;
    Ok(())
}
