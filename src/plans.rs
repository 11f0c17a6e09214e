//! `--dry-run` plans on stdout: one `PATH<TAB>URL` line per entry that would
//! be downloaded, for a script to read. PATH is the output directory joined
//! to the entry's path, so it is the file as seen from the current directory,
//! the same as `--json`'s `path`. Not used with `--json`, which carries the
//! plans itself.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::display;
use crate::event::{Event, Live, Observer, Outcome};

/// The observer printing plans, paths joined to the output directory.
pub(crate) struct Plans {
    dir: PathBuf,
}

impl Plans {
    /// Plans of a run writing into `dir`.
    pub(crate) fn new(dir: PathBuf) -> Plans {
        Plans { dir }
    }
}

impl Observer for Plans {
    fn event(&mut self, event: &Event, _: &Live) {
        let Event::Finished(report) = event else {
            return;
        };
        if let (Outcome::Planned, Some(job)) = (&report.outcome, &report.job) {
            let path = self.dir.join(report.path().unwrap_or(&job.path));
            let _ = writeln!(
                io::stdout().lock(),
                "{}\t{}",
                display::text(&path.to_string_lossy()),
                display::url(&job.url)
            );
        }
    }
}
