//! What the user types: the clap definition, help text, and the one
//! conversion from parsed arguments to a validated [`fetchq::Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fetchq::outputs::OutputOptions;
use fetchq::{Config, Existing, IpFamily, ProxyChoice, parse_header};

const EXAMPLES: &str = "\
Examples:
  fetchq https://example.com/file.iso     download one file into the current directory
  fetchq urls.txt -j 8                    download every URL in urls.txt, 8 at a time
  grep -o 'https://[^\"]*\\.pdf' page.html | fetchq -d pdfs
  fetchq -q urls.txt || echo \"fetchq failed: $?\"   cron: silent unless something failed

List format: one entry a line, `URL [URL…] [OUT] [KEY=VALUE…]`; `#` after a blank starts a comment.
Exit codes: 0 all done, 1 some entries failed, 2 usage or input/output-dir error,
130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP.";

const LONG_EXAMPLES: &str = "\
Examples:
  fetchq https://example.com/file.iso -o latest.iso
      Download one URL, saved as latest.iso; several URLs and lists may be mixed.
  fetchq urls.txt -j 8
      Download every URL in urls.txt with 8 workers into the current directory.
  producer | fetchq -d out
      Read the list from a pipe; downloads start while the producer still writes.
  fetchq -q urls.txt
      For cron: prints nothing unless an entry fails.

List format:
  One entry per line: URL [URL…] [OUT] [KEY=VALUE…], separated by spaces or
  TABs, in any order after the first URL, which names the file. Every other
  unquoted scheme://… field is another source of the same file (http or https
  only). OUT, at most one, is a path relative to --dir (sub-folders are
  created; a trailing / makes it a folder that gets the URL's file name). It
  may not be absolute or use .. to climb out. Keys: sha256= sha512= sha384=
  sha1= md5= give hex digests of the whole file, all checked (md5 and sha1 only
  match published sums; they prove nothing against an attacker); a mismatch
  fails the entry. header=\"Name: value\" (repeatable) is sent like -H, on
  this entry's requests only. Quote a field with spaces: \"my file.pdf\"
  (\\\" and \\\\ inside quotes); an unquoted field holding = is a key, so a
  name with = is quoted, and a quoted field after the URL is always OUT. An
  unknown key, bad digest, second OUT or non-http source fails the line.
  Blank lines are ignored, and # at the start of a line or after a blank
  starts a comment; CRLF line ends and a UTF-8 BOM are accepted.

Naming:
  Without OUT, the name is the URL's last path segment, percent-decoded
  (index.html for a path ending in /); the query string is never part of it.
  Unsafe characters (/, \\, control characters) become _, and names are cut to
  250 bytes keeping the extension, so NAME.part fits in 255 (an explicit OUT is
  never cut: a longer name fails its line). In one run, the same URL is
  downloaded once; different URLs that want a taken name (NAME and NAME.part
  are reserved together) get NAME-1.EXT, NAME-2.EXT, ... in list order. An
  explicit OUT that is taken, or that uses a file's name as a folder, fails.

Existing files:
  default       an existing file is left alone and counted as skipped
  --overwrite   download again and replace it
  -N, --update  ask the server whether it changed (ETag, Last-Modified);
                a 304 counts as unchanged, a new version replaces the file
  A file gets its NAME only when complete, so a failed or interrupted download
  never leaves a partial file under NAME (it is kept as NAME.part for -c), and
  a NAME that appears meanwhile is not replaced unless you asked for that.

Exit codes:
  0    every entry downloaded or already present
  1    at least one entry failed (all others were still done), or the --json
       report could not be written
  2    usage error, unreadable input list, or unusable output directory
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM; 129 by SIGHUP";

/// Download lists of URLs concurrently.
///
/// Downloads the URLs given as arguments and every entry of each URL list FILE,
/// in order (`-` or no argument: standard input), with a fixed pool of
/// workers, streaming each body to disk.
#[derive(Debug, Parser)]
#[command(
    name = "fetchq",
    version,
    after_help = EXAMPLES,
    after_long_help = LONG_EXAMPLES,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Cli {
    /// Other commands (the Redis queue, shell completions, man page).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Where the URL lists come from.
    #[command(flatten)]
    pub input: InputArgs,
    /// How to download.
    #[command(flatten)]
    pub download: DownloadArgs,
    /// What to print.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Which config file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The config file (see `crate::config_file`).
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Read default options from FILE [default: $XDG_CONFIG_HOME/fetchq/config, else ~/.config/fetchq/config].
    ///
    /// One option a line as on the command line (`-j 16`, `--limit-rate 2M`,
    /// `-H "X-Token: abc"`), `#` starts a comment. Options given on the
    /// command line win over the file's.
    #[arg(
        value_hint = clap::ValueHint::FilePath,
        long,
        value_name = "FILE",
        conflicts_with = "no_config",
        help_heading = "Config file"
    )]
    pub config: Option<PathBuf>,

    /// Do not read a config file.
    #[arg(long, help_heading = "Config file")]
    pub no_config: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print fetchq's man page (roff), or write every page into a folder.
    ///
    /// Without --dir, fetchq.1 goes to standard output. With --dir, fetchq.1
    /// and one page per subcommand (fetchq-worker.1, ...) are written there,
    /// and their paths printed.
    Man {
        /// Write every page into this folder (created if missing).
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
    /// Push the entries of URL lists into a Redis queue, for `fetchq worker`s on many machines.
    ///
    /// Reads each FILE in order (`-` or no FILE: standard input), in the list
    /// format of a local run, and pushes every usable entry to the queue as it
    /// is read. An entry whose URL and OUT were ever enqueued before is a
    /// duplicate and is not pushed again (`retry-failed` re-runs failures).
    /// Unusable lines are reported as FILE:LINE and make the exit code 1.
    /// Prints "queued N, duplicates M, invalid K" on stderr.
    #[command(after_help = QUEUE_HELP)]
    Enqueue(EnqueueArgs),
    /// Download the entries of a Redis queue, alongside workers on other machines.
    ///
    /// Claims entries in batches (never more than the worker pool can take
    /// soon), downloads them with the same options as a local run, and
    /// records the outcomes in the queue in batches, within 0.1 s. Runs until stopped, or with --drain
    /// until the queue is empty and no worker has anything in progress.
    /// A worker whose heartbeat stops (killed, cut off) for 15 s is presumed
    /// dead and its entries go back to the queue. Ctrl-C gives the entries
    /// this worker holds back to the queue and exits 130.
    #[command(after_help = WORKER_HELP)]
    Worker(Box<WorkerArgs>),
    /// Show a queue's counts (pending, processing, done, failed) and its workers.
    #[command(after_help = QUEUE_HELP)]
    Status(StatusArgs),
    /// Move a queue's failed entries back to pending; prints how many.
    #[command(after_help = QUEUE_HELP)]
    RetryFailed(QueueArgs),
}

const QUEUE_HELP: &str = "\
Queue commands:
  fetchq enqueue --redis redis://HOST urls.txt     push a list (once per entry, ever)
  fetchq worker --redis redis://HOST -d out -j 8   on each machine: download from the queue
  fetchq status --redis redis://HOST               counts and workers
  fetchq retry-failed --redis redis://HOST         give failures another round
The Redis URL may come from FETCHQ_REDIS instead of --redis. Redis 6.2 or newer.";

const WORKER_HELP: &str = "\
Limits are per worker process: --jobs, --per-host and --limit-rate bound this
worker only; N workers may open N x --per-host connections to one host and
download at N x --limit-rate in all.

Examples:
  fetchq worker --redis redis://queue.lan -d /data -j 16
  fetchq worker --redis redis://queue.lan --drain -q -d out && echo drained

Exit codes: 0 stopped after --drain with every entry of this worker done,
1 some entries failed, 2 usage, output-dir or Redis error, 130/143/129 stopped by
SIGINT/SIGTERM/SIGHUP (held entries were given back to the queue).";

/// Which Redis queue.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The Redis server: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB].
    ///
    /// May be given in FETCHQ_REDIS instead, which keeps a password off the
    /// command line. Needs Redis 6.2 or newer.
    #[arg(
        long,
        value_name = "URL",
        env = "FETCHQ_REDIS",
        hide_env_values = true,
        help_heading = "Queue"
    )]
    pub redis: String,

    /// Queue name (1 to 64 of A-Z a-z 0-9 . _ -); one Redis can hold many queues.
    #[arg(long, value_name = "NAME", default_value = "default", help_heading = "Queue")]
    pub queue: String,
}

/// `fetchq enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,

    /// URLs (http:// or https://) and URL lists to read, in order; `-` is standard input.
    #[arg(value_hint = clap::ValueHint::FilePath, value_name = "FILE")]
    pub files: Vec<String>,
}

/// `fetchq worker`.
#[derive(Debug, Args)]
#[command(
    args_override_self = true,
    mut_arg("dry_run", |a| a.hide(true)),
    mut_arg("per_host", |a| a
        .help("Most simultaneous connections to one host from this worker (each worker counts its own)")
        .long_help("Most simultaneous connections to one host (host and port) from this worker.\n\n\
            Per worker process: workers do not coordinate, so N workers may open N times this \
            many connections to one host.")),
    mut_arg("limit_rate", |a| a
        .help("Download rate of this worker, e.g. 500K or 2M (bytes/s, K = 1024; each worker counts its own)")
        .long_help("Total download rate across this worker's downloads, e.g. 500K or 2M (bytes/s, K = 1024).\n\n\
            Per worker process: N workers together download at up to N times this rate.")),
)]
pub struct WorkerArgs {
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,

    /// Exit once the queue is drained: nothing pending and nothing in progress on any worker.
    ///
    /// Entries of dead workers are requeued and finished first. Without
    /// --drain the worker waits for new entries until stopped.
    #[arg(long, help_heading = "Queue")]
    pub drain: bool,

    /// This worker's id in the queue [default: HOSTNAME:PID:RANDOM].
    ///
    /// Two live workers must never share an id.
    #[arg(long, value_name = "ID", help_heading = "Queue")]
    pub worker_id: Option<String>,

    /// Heartbeat TTL in milliseconds: a worker silent this long is presumed
    /// dead. Every worker of a queue should use the same value. For tests.
    #[arg(
        long,
        value_name = "MS",
        env = "FETCHQ_HEARTBEAT_TTL_MS",
        hide = true,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000)
    )]
    pub heartbeat_ttl_ms: Option<u64>,

    /// How to download.
    #[command(flatten)]
    pub download: DownloadArgs,

    /// What to print.
    #[command(flatten)]
    pub output: OutputArgs,

    /// Which config file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `fetchq status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,

    /// Print one JSON object instead of a table.
    ///
    /// Fields: queue, pending, processing, done, failed, seen, bad, and
    /// workers: [{id, alive, registered, processing}].
    #[arg(long)]
    pub json: bool,

    /// First move the entries of dead workers (heartbeat expired) back to pending.
    #[arg(long)]
    pub requeue_stale: bool,
}

/// The URL lists.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// URLs (http:// or https://) and URL lists to read, in order; `-` is standard input.
    #[arg(value_hint = clap::ValueHint::FilePath, value_name = "FILE", help_heading = "Input")]
    pub files: Vec<String>,

    /// Another URL list to read (repeatable; the habit of wget -i and aria2c -i).
    ///
    /// Lists given with -i are read before the FILE arguments.
    #[arg(value_hint = clap::ValueHint::FilePath, short = 'i', long = "input-file", value_name = "FILE", help_heading = "Input")]
    pub input_files: Vec<String>,

    /// Save the one URL given as an argument under this name (relative to --dir).
    #[arg(short = 'o', long = "output", value_name = "NAME", help_heading = "Files")]
    pub output: Option<String>,

    /// After the run, write the entries that failed or were interrupted to FILE as a list.
    ///
    /// One line per entry, in list order: its URL, the path it had (relative to --dir;
    /// left out for a name from --content-disposition), its other URLs, checksums and header=s.
    /// `fetchq -c --save-failed FILE FILE` retries them and leaves FILE empty
    /// once all are done. Invalid lines and entries never started because of
    /// Ctrl-C are not written. FILE is replaced atomically.
    #[arg(value_hint = clap::ValueHint::FilePath, long, value_name = "FILE", help_heading = "Files")]
    pub save_failed: Option<PathBuf>,
}

impl InputArgs {
    /// Every list in reading order; empty if none was named.
    pub fn names(&self) -> Vec<String> {
        self.input_files.iter().chain(&self.files).cloned().collect()
    }
}

/// What to print and where.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print nothing unless an entry fails (for cron).
    #[arg(short, long, conflicts_with = "verbose", help_heading = "Messages")]
    pub quiet: bool,

    /// Print a line for every entry and every retry.
    #[arg(short, long, help_heading = "Messages")]
    pub verbose: bool,

    /// Print one JSON object per finished entry on stdout, then a summary object.
    ///
    /// Newline-delimited JSON (one object per line), written as each entry
    /// finishes. Human text and progress stay on stderr. An entry object has
    /// type "entry", source, line, url, final_url, path, outcome (downloaded,
    /// skipped, unchanged, planned, failed), reason, status, bytes, attempts,
    /// elapsed_ms, error_kind and error; the last object has type "summary",
    /// the counts (downloaded, skipped, unchanged, planned, failed,
    /// interrupted_entries, not_started), bytes, elapsed_ms, interrupted and
    /// exit_code.
    #[arg(long, help_heading = "Messages")]
    pub json: bool,

    /// Append one line per event, with an RFC 3339 timestamp, to this file.
    #[arg(value_hint = clap::ValueHint::FilePath, long, value_name = "FILE", help_heading = "Messages")]
    pub log: Option<PathBuf>,

    /// When stderr is not a terminal, print a status line (files done/total,
    /// bytes, rate) this often (e.g. 30s, 5m). Off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Messages")]
    pub progress_interval: Option<Duration>,
}

impl OutputArgs {
    /// The library's view of these flags.
    pub fn options(&self) -> OutputOptions {
        OutputOptions {
            quiet: self.quiet,
            verbose: self.verbose,
            json: self.json,
            progress_interval: self.progress_interval.filter(|d| !d.is_zero()),
            log: self.log.clone(),
        }
    }
}

/// Options of a download run (also used by `fetchq worker`).
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Number of simultaneous downloads.
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024), help_heading = "Behaviour")]
    pub jobs: u16,

    /// Retries of a failed attempt (connection errors, timeouts, short bodies, 408, 429, 5xx, --retry-on-http-error).
    #[arg(
        long,
        visible_alias = "retry",
        value_name = "N",
        default_value_t = 3,
        help_heading = "Behaviour"
    )]
    pub retries: u32,

    /// More error statuses to retry, comma-separated, e.g. 403,404.
    ///
    /// They are retried like 408, 429 and 5xx: up to --retries times, with the
    /// same backoff, honouring Retry-After (for a CDN that throttles with 403).
    #[arg(
        long,
        value_name = "CODES",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u16).range(400..=599),
        help_heading = "Behaviour"
    )]
    pub retry_on_http_error: Vec<u16>,

    /// Base wait before a retry (seconds, or 500ms, 30s, 2m); doubles each attempt, with full jitter.
    ///
    /// The n-th retry waits a random time between 0 and min(--retry-wait-max,
    /// RETRY_WAIT * 2^(n-1)). A server's Retry-After (seconds or HTTP date)
    /// replaces the random wait, capped at --retry-wait-max.
    #[arg(long, value_name = "DURATION", default_value = "0.5", value_parser = parse_duration, help_heading = "Behaviour")]
    pub retry_wait: Duration,

    /// Longest wait between attempts (caps Retry-After too).
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_duration, help_heading = "Behaviour")]
    pub retry_wait_max: Duration,

    /// Show where each entry would be written, without touching the network.
    #[arg(long, help_heading = "Behaviour")]
    pub dry_run: bool,

    /// Directory to write into (created if missing).
    #[arg(
        value_hint = clap::ValueHint::DirPath,
        short,
        long,
        visible_short_alias = 'P',
        visible_alias = "output-dir",
        value_name = "DIR",
        default_value = ".",
        help_heading = "Files"
    )]
    pub dir: PathBuf,

    /// Check files against a published SHA256SUMS, SHA512SUMS or md5sum-style FILE (repeatable).
    ///
    /// Lines are `HEX  NAME`, `HEX *NAME` or the tagged `SHA256 (NAME) = HEX`; the
    /// algorithm is told by the digest's length or the tag (md5, sha1, sha256,
    /// sha384, sha512), `#` lines and blank lines are skipped, and a leading ./
    /// of NAME is dropped. An entry whose path relative to --dir is a NAME there
    /// is checked against it as well as against its line's own sums; a mismatch
    /// fails the entry and leaves no file. The path is the one known before the
    /// request (from OUT or the URL); a --content-disposition name is not looked
    /// up. A missing or malformed FILE, or one over 64 MiB, stops the run before
    /// any download.
    #[arg(
        value_hint = clap::ValueHint::FilePath,
        long = "checksums",
        value_name = "FILE",
        help_heading = "Files"
    )]
    pub checksums: Vec<PathBuf>,

    /// Replace files that already exist instead of skipping them.
    #[arg(long, conflicts_with = "update", help_heading = "Files")]
    pub overwrite: bool,

    /// Re-download an existing file only if the server's copy changed.
    ///
    /// Sends If-None-Match (the ETag kept from the last download) and
    /// If-Modified-Since (the file's mtime, set from Last-Modified); a 304
    /// counts as "unchanged". A changed file is replaced atomically.
    #[arg(short = 'N', long, visible_alias = "timestamping", help_heading = "Files")]
    pub update: bool,

    /// Continue NAME.part files left by an earlier run instead of starting over.
    ///
    /// The rest is requested with a Range request; if the server sends the
    /// whole file or a different version, the download starts over from zero.
    /// Without -c, a leftover NAME.part is replaced.
    #[arg(short = 'c', long = "continue", help_heading = "Files")]
    pub resume: bool,

    /// fsync each file before it gets its name, and its folder after (durable across power loss).
    #[arg(long, help_heading = "Files")]
    pub sync: bool,

    /// Name files from the server's Content-Disposition header when the list gives no OUT.
    ///
    /// The name is sanitised like any other and stays in the entry's folder;
    /// colliding names are numbered in list order.
    #[arg(long, help_heading = "Files")]
    pub content_disposition: bool,

    /// Extra request header, `Name: value` (repeatable).
    ///
    /// Sent on every request, retry and redirect; Authorization, Cookie and
    /// Proxy-Authorization are dropped when a redirect leaves the original
    /// scheme, host and port.
    #[arg(short = 'H', long = "header", value_name = "HEADER", help_heading = "Network")]
    pub headers: Vec<String>,

    /// User-Agent header [default: fetchq/VERSION].
    #[arg(
        short = 'A',
        visible_short_alias = 'U',
        long,
        value_name = "UA",
        help_heading = "Network"
    )]
    pub user_agent: Option<String>,

    /// Time allowed to establish a connection (seconds, or 500ms, 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_duration, help_heading = "Network")]
    pub connect_timeout: Duration,

    /// Time without receiving a single byte before an attempt fails (seconds, or 30s, 2m).
    ///
    /// An idle timeout, not a deadline: a slow but steady transfer is never cut
    /// off. 0 disables it.
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_duration, help_heading = "Network")]
    pub timeout: Duration,

    /// Longest time one entry may take in all, retries included (0: no limit).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration, help_heading = "Network")]
    pub max_time: Duration,

    /// Redirects to follow per entry; a loop fails the entry.
    #[arg(long, visible_aliases = ["max-redirect", "max-redirs"], value_name = "N", default_value_t = 10, help_heading = "Network")]
    pub max_redirects: u32,

    /// Most simultaneous connections to one host (host and port), across all workers.
    ///
    /// Equal to the default --jobs, so a one-host list uses every worker, while
    /// -j 64 over many hosts never opens more than 8 connections to any one of
    /// them (browsers use 6; aria2 defaults to 1 per download but runs 5
    /// downloads at once).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Network")]
    pub per_host: u16,

    /// Total download rate across all workers, e.g. 500K or 2M (bytes/s, K = 1024).
    #[arg(long, value_name = "RATE", value_parser = fetchq::parse_rate, help_heading = "Network")]
    pub limit_rate: Option<u64>,

    /// Most connections for one file: a big file is fetched in pieces by idle workers.
    ///
    /// A file is split when its server takes byte ranges, it has a known
    /// length of at least --split-min and a version tag (ETag or
    /// Last-Modified), and workers would otherwise idle: splitting never
    /// delays another entry. Every connection counts against -j and
    /// --per-host, and --limit-rate is shared. 1 turns splitting off.
    #[arg(short = 's', long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64), help_heading = "Behaviour")]
    pub split: u16,

    /// Smallest file to split over several connections, e.g. 16M (K = 1024).
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = fetchq::parse_rate, help_heading = "Behaviour")]
    pub split_min: u64,

    /// How long an entry with several sources (mirrors) waits for an answer before asking the next one too.
    ///
    /// The first usable answer wins and the others are closed unread; 0 asks
    /// every source at once. A source that fails is set aside and the next is
    /// used; the entry fails only when all have failed.
    #[arg(long, value_name = "DURATION", default_value = "1", value_parser = parse_duration, help_heading = "Network")]
    pub race_after: Duration,

    /// Largest file to accept, e.g. 500M or 2G (K = 1024).
    ///
    /// An entry whose Content-Length, or whose body as it arrives, passes SIZE
    /// fails with error_kind too_large, is not retried, and leaves no file and
    /// no .part.
    #[arg(long, value_name = "SIZE", value_parser = fetchq::parse_rate, help_heading = "Behaviour")]
    pub max_filesize: Option<u64>,

    /// Send every request through this proxy (overrides http_proxy/https_proxy/no_proxy).
    ///
    /// http:// or https:// (an HTTP proxy), socks5:// (fetchq resolves names),
    /// socks5h:// (the proxy does), socks4:// or socks4a://; `user:password@`
    /// goes to the proxy. Any other scheme is an error (exit 2).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "no_proxy",
        help_heading = "Network"
    )]
    pub proxy: Option<String>,

    /// Connect over IPv4 only.
    #[arg(short = '4', long, conflicts_with = "ipv6", help_heading = "Network")]
    pub ipv4: bool,

    /// Connect over IPv6 only.
    #[arg(short = '6', long, help_heading = "Network")]
    pub ipv6: bool,

    /// Connect to ADDR for HOST on PORT instead of asking DNS (repeatable).
    ///
    /// curl's syntax: files.example.com:443:192.0.2.7, or [2001:db8::7] for
    /// IPv6. The URL keeps HOST, so TLS verifies it and Host carries it.
    #[arg(long, value_name = "HOST:PORT:ADDR", value_parser = fetchq::Pin::parse, help_heading = "Network")]
    pub resolve: Vec<fetchq::Pin>,

    /// Ignore proxy settings from the environment and connect directly.
    #[arg(long, help_heading = "Network")]
    pub no_proxy: bool,

    /// Accept any TLS certificate (prints a warning; never the default).
    #[arg(short = 'k', long, help_heading = "Network")]
    pub insecure: bool,

    /// Also trust the CA certificates in this PEM file.
    #[arg(
        value_hint = clap::ValueHint::FilePath,
        long,
        visible_alias = "ca-certificate",
        value_name = "FILE",
        help_heading = "Network"
    )]
    pub cacert: Option<PathBuf>,

    /// Present this PEM client certificate (chain) to servers that ask for one.
    ///
    /// If FILE also holds the private key and --key is not given, that key
    /// is used. An unreadable file, or a key that does not match the
    /// certificate, is an error (exit 2).
    #[arg(
        long,
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        help_heading = "Network"
    )]
    pub cert: Option<PathBuf>,

    /// The PEM private key for --cert (PKCS#8, PKCS#1 RSA or SEC1 EC); needs --cert.
    #[arg(
        long,
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        requires = "cert",
        help_heading = "Network"
    )]
    pub key: Option<PathBuf>,

    /// Read logins from FILE instead of ~/.netrc (read by default, as wget and aria2c do).
    ///
    /// A `machine HOST login NAME password SECRET` entry is sent as Basic
    /// authorization to HOST only, and never after a redirect to another
    /// origin; `user:password@` in a URL and an Authorization given with -H
    /// win over it. A .netrc that other users can read gets a warning.
    #[arg(
        long,
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        conflicts_with = "no_netrc",
        help_heading = "Network"
    )]
    pub netrc_file: Option<PathBuf>,

    /// Do not read ~/.netrc.
    #[arg(long, help_heading = "Network")]
    pub no_netrc: bool,

    /// Send cookies from FILE, a Netscape cookies.txt (as browser extensions export).
    ///
    /// Each cookie goes only where its domain, path, secure flag and expiry
    /// allow; cookies the servers set during the run are sent too.
    #[arg(
        long,
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        help_heading = "Network"
    )]
    pub load_cookies: Option<PathBuf>,

    /// After the run, write every unexpired cookie (loaded or set by the
    /// servers, session cookies included) to FILE, mode 0600.
    #[arg(
        long,
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        help_heading = "Network"
    )]
    pub save_cookies: Option<PathBuf>,
}

/// The longest duration accepted anywhere: about 31 years, far beyond any
/// sensible timeout, and small enough that adding it to an `Instant` cannot
/// overflow.
const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

/// A duration as plain seconds (`30`, `0.5`) or with a unit (`500ms`, `30s`,
/// `2m`, `1h`, `1h30m`); `0` means no limit where that makes sense.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(secs) if (0.0..=MAX_DURATION.as_secs_f64()).contains(&secs) => Duration::from_secs_f64(secs),
        Ok(_) => return Err(format!("{text:?} is out of range")),
        Err(_) => humantime::parse_duration(text).map_err(|_| {
            format!("{text:?} is not a duration (a number of seconds, or e.g. 500ms, 30s, 2m)")
        })?,
    };
    if duration > MAX_DURATION {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(duration)
}

impl DownloadArgs {
    /// The one conversion from what was typed to a validated configuration.
    pub fn to_config(&self) -> Result<Config, String> {
        let mut config = Config::new(&self.dir);
        config.jobs = usize::from(self.jobs);
        config.existing = match (self.overwrite, self.update) {
            (true, _) => Existing::Overwrite,
            (_, true) => Existing::Update,
            _ => Existing::Skip,
        };
        config.resume = self.resume;
        config.headers = self
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<_, _>>()?;
        if let Some(ua) = &self.user_agent {
            config.user_agent = ua.clone();
        }
        config.connect_timeout = non_zero(self.connect_timeout);
        config.idle_timeout = non_zero(self.timeout);
        config.max_time = non_zero(self.max_time);
        config.retries = self.retries;
        config.retry_statuses = self.retry_on_http_error.clone();
        config.retry_wait = self.retry_wait;
        config.retry_wait_max = self.retry_wait_max.max(self.retry_wait);
        config.max_redirects = self.max_redirects;
        config.sync = self.sync;
        config.content_disposition = self.content_disposition;
        config.dry_run = self.dry_run;
        config.insecure = self.insecure;
        config.cacert = self.cacert.clone();
        config.cert = self.cert.clone();
        config.key = self.key.clone();
        config.per_host = usize::from(self.per_host);
        config.limit_rate = self.limit_rate;
        config.max_filesize = self.max_filesize;
        config.split = usize::from(self.split);
        config.split_min = self.split_min;
        config.race_after = self.race_after;
        config.ip_family = match (self.ipv4, self.ipv6) {
            (true, _) => IpFamily::V4,
            (_, true) => IpFamily::V6,
            _ => IpFamily::Any,
        };
        config.resolve = self.resolve.clone();
        config.proxy = match (&self.proxy, self.no_proxy) {
            (Some(url), _) => ProxyChoice::Url(url.clone()),
            (None, true) => ProxyChoice::Off,
            (None, false) => ProxyChoice::FromEnv,
        };
        Ok(config)
    }
}

fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_take_seconds_or_units() {
        let ok = [
            ("30", Duration::from_secs(30)),
            ("0.5", Duration::from_millis(500)),
            ("1.5", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            (" 2m ", Duration::from_secs(120)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
        for bad in ["", "-1", "soon", "1e12", "40000 years", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    /// Spellings from curl, wget and aria2c reach the same settings.
    #[test]
    fn peers_spellings_are_aliases() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["fetchq"];
            argv.extend_from_slice(args);
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            format!("{:?}", cli.download.to_config().expect("valid"))
        };
        let pairs: [(&[&str], &[&str]); 10] = [
            (&["-P", "x"], &["-d", "x"]),
            (&["--output-dir", "x"], &["--dir", "x"]),
            (&["-U", "ua/1"], &["-A", "ua/1"]),
            (&["-k"], &["--insecure"]),
            (&["--timestamping"], &["-N"]),
            (&["--ca-certificate", "ca.pem"], &["--cacert", "ca.pem"]),
            (&["--retry", "7"], &["--retries", "7"]),
            (&["--max-redirect", "2"], &["--max-redirects", "2"]),
            (&["--max-redirs", "2"], &["--max-redirects", "2"]),
            (&["--timeout", "2m"], &["--timeout", "120"]),
        ];
        for (alias, canonical) in pairs {
            assert_eq!(parse(alias), parse(canonical), "{alias:?} vs {canonical:?}");
        }
        assert_ne!(parse(&["-k"]), parse(&[]), "the alias does something");
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    /// `--help` shows clap's defaults and a library caller gets `Config::new`'s:
    /// they must be the same settings.
    #[test]
    fn command_line_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["fetchq"]).expect("no arguments parse");
        let from_cli = cli.download.to_config().expect("the defaults are valid");
        assert_eq!(format!("{from_cli:?}"), format!("{:?}", Config::new(".")));
    }

    #[test]
    fn worker_help_says_limits_are_per_worker() {
        let mut cmd = Cli::command();
        let worker = cmd.find_subcommand_mut("worker").unwrap();
        let help = worker.render_long_help().to_string();
        assert!(help.contains("Per worker process"), "{help}");
        assert!(help.contains("--per-host"), "{help}");
        assert!(!help.contains("heartbeat-ttl"), "{help}");
    }

    #[test]
    fn queue_commands_parse() {
        let cli =
            Cli::try_parse_from(["fetchq", "worker", "--redis", "redis://h/", "--drain", "-j", "3"]).unwrap();
        match cli.command {
            Some(Command::Worker(w)) => {
                assert!(w.drain);
                assert_eq!(w.download.jobs, 3);
                assert_eq!(w.queue.queue, "default");
            }
            other => panic!("{other:?}"),
        }
        let cli =
            Cli::try_parse_from(["fetchq", "retry-failed", "--redis", "redis://h/", "--queue", "q"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::RetryFailed(QueueArgs { ref queue, .. })) if queue == "q")
        );
    }

    #[test]
    fn headers_are_validated() {
        assert_eq!(parse_header("X-A: b c"), Ok(("X-A".into(), "b c".into())));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header(": x").is_err());
    }
}
