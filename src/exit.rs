//! The exit status a script sees, in one place. `--help` and README list the
//! same codes for users.

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every entry downloaded, unchanged or already present.
    Ok,
    /// 1: at least one entry failed (or its report could not be written); all
    /// the others were still done.
    Failed,
    /// 2: a usage error, an unreadable input list, an unusable output
    /// directory or queue: nothing was downloaded.
    Usage,
    /// 128 + N: stopped by signal N, as a shell reports it (130 for SIGINT,
    /// 143 for SIGTERM, 129 for SIGHUP).
    Signal(i32),
}

impl Exit {
    /// The numeric status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            // Signal numbers are 1..=64 on Linux; anything else is still a stop.
            Exit::Signal(signal) => 128u8.saturating_add(signal.clamp(1, 127) as u8),
        }
    }

    /// The one of `self` and `other` a script should hear about: a signal over
    /// a usage error, over a failure, over success.
    pub fn merge(self, other: Exit) -> Exit {
        fn rank(exit: Exit) -> u8 {
            match exit {
                Exit::Ok => 0,
                Exit::Failed => 1,
                Exit::Usage => 2,
                Exit::Signal(_) => 3,
            }
        }
        if rank(other) > rank(self) { other } else { self }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let table = [
            (Exit::Ok, 0),
            (Exit::Failed, 1),
            (Exit::Usage, 2),
            (Exit::Signal(libc::SIGHUP), 129),
            (Exit::Signal(libc::SIGINT), 130),
            (Exit::Signal(libc::SIGTERM), 143),
            (Exit::Signal(0), 129),
            (Exit::Signal(1000), 255),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn merge_keeps_the_most_serious() {
        assert_eq!(Exit::Ok.merge(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Failed.merge(Exit::Ok), Exit::Failed);
        assert_eq!(Exit::Usage.merge(Exit::Failed), Exit::Usage);
        assert_eq!(Exit::Failed.merge(Exit::Signal(2)), Exit::Signal(2));
        assert_eq!(Exit::Signal(15).merge(Exit::Usage), Exit::Signal(15));
    }
}
