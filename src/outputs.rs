//! Everything a command-line run prints through, built in one place from the
//! output options: the terminal view on stderr, `--json` on stdout, the
//! `--log` file and the `--save-failed` list, fed the same events and
//! finished together.

use std::io::{self, IsTerminal, StdoutLock};
use std::path::{Path, PathBuf};

use crate::cancel::Cancel;
use crate::event::{Observer, Tee};
use crate::eventlog::EventLog;
use crate::exit::Exit;
use crate::failed_list::FailedList;
use crate::jsonl::JsonLines;
use crate::messages::{self, StdoutError};
use crate::plans::Plans;
use crate::progress::{Mode, Terminal};
use crate::report::Summary;

/// What the user asked to see.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// `-q`: failures only.
    pub quiet: bool,
    /// `-v`: a line per entry and per retry.
    pub verbose: bool,
    /// `--json`: NDJSON on stdout.
    pub json: bool,
    /// `--log FILE`: append timestamped event lines.
    pub log: Option<PathBuf>,
    /// `--progress-interval`: a status line this often when stderr is not a
    /// terminal.
    pub progress_interval: Option<std::time::Duration>,
}

/// The observers of one run.
pub struct Outputs {
    plans: Option<Plans>,
    terminal: Terminal,
    json: Option<JsonLines<StdoutLock<'static>>>,
    log: Option<EventLog>,
    failed: Option<FailedList>,
}

impl Outputs {
    /// Set up the outputs of a run with `jobs` workers writing into `dir`;
    /// `start` describes the run for the log. Bars only when stderr is a
    /// terminal; on Ctrl-C (`cancel`) they freeze rather than tear.
    pub fn new(
        options: &OutputOptions,
        jobs: usize,
        dir: &Path,
        start: &str,
        cancel: &Cancel,
    ) -> io::Result<Outputs> {
        let mode = if options.quiet {
            Mode::Quiet
        } else if io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        };
        let mut terminal = Terminal::new(mode, options.verbose, jobs);
        terminal.watch(cancel);
        if mode == Mode::Plain {
            terminal.status_every(options.progress_interval);
        }
        // --json carries the plans itself.
        let plans = (!options.json).then(|| Plans::new(dir.to_path_buf()));
        let json = options.json.then(|| JsonLines::new(io::stdout().lock(), dir));
        let log = match &options.log {
            Some(path) => {
                let mut log = EventLog::open(path)?;
                log.start(start);
                Some(log)
            }
            None => None,
        };
        Ok(Outputs {
            plans,
            terminal,
            json,
            log,
            failed: None,
        })
    }

    /// `--save-failed FILE`: after the run, write the entries that failed or
    /// were interrupted to `path` as a list (see [`Outputs::finish`]);
    /// `server_names` is `--content-disposition`, whose names are not pinned.
    pub fn save_failed(&mut self, path: PathBuf, server_names: bool) {
        self.failed = Some(FailedList::new(path, server_names));
    }

    /// All of them as one observer for [`crate::run`].
    pub fn observers(&mut self) -> Tee<'_> {
        // Plans first: a plan line is on stdout before the terminal's line
        // about the same entry is on stderr.
        let mut observers: Vec<&mut dyn Observer> = Vec::new();
        if let Some(plans) = self.plans.as_mut() {
            observers.push(plans);
        }
        observers.push(&mut self.terminal);
        if let Some(json) = self.json.as_mut() {
            observers.push(json);
        }
        if let Some(log) = self.log.as_mut() {
            observers.push(log);
        }
        if let Some(failed) = self.failed.as_mut() {
            observers.push(failed);
        }
        Tee(observers)
    }

    /// Print the closing report, the JSON summary and the log's last line,
    /// write the `--save-failed` list, and say how the run ends: the
    /// summary's [`Exit`], or a failure if `--json` output was lost to a write
    /// error other than a closed pipe or the list could not be written.
    pub fn finish(&mut self, summary: &Summary) -> Exit {
        self.terminal.finish(summary);
        let mut exit = summary.exit();
        if let Some(json) = self.json.as_mut() {
            json.finish(summary);
            if let Some(lost @ StdoutError::Failed(_)) = json.stopped() {
                messages::message(format_args!("--json: {lost}"));
                exit = exit.merge(Exit::Failed);
            }
        }
        if let Some(log) = self.log.as_mut() {
            log.finish(summary);
        }
        if let Some(error) = &summary.input_error {
            messages::message(crate::display::chain(error));
        }
        if let Some(failed) = &self.failed
            && let Err(error) = failed.write()
        {
            messages::message(format_args!(
                "--save-failed {}: {}",
                failed.path().display(),
                crate::display::chain(&error)
            ));
            exit = exit.merge(Exit::Failed);
        }
        exit
    }
}
