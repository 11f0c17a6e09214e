//! Where each entry lands on disk: names from URLs, checks on explicit paths,
//! the collision rules of one run, and the list order in which names chosen
//! after the request (`--content-disposition`) are claimed.
//!
//! Rules (also in `--help` and README):
//! - The default name is the URL's last path segment, percent-decoded;
//!   `index.html` when the path ends in `/`. The query never lands in the name.
//! - Names are sanitised: `/`, `\`, NUL and control characters become `_`,
//!   `.` and `..` are never names. A file name is at most 250 bytes, so that
//!   its in-progress name `NAME.part` fits the 255 bytes most file systems
//!   allow: a longer URL or server name is cut, keeping an extension of up
//!   to 16 bytes; a numbered name `NAME-N.EXT` is cut the same way before the
//!   number. An explicit OUT is never cut: a file name over 250 bytes, or a
//!   folder name over 255, fails the line.
//! - An explicit OUT may name sub-folders but never leaves the output dir.
//! - In one run, the same URL (with the same OUT) is downloaded once; later
//!   copies are skipped as duplicates. A name `N` is taken by an earlier
//!   file `M` when `N` is `M`, `M.part`, or `N.part` is `M` (a file and its
//!   in-progress name are reserved together), and by an earlier folder `D`
//!   when `N` or `N.part` is `D`; a folder is taken by a file of the same
//!   name or whose `.part` it is. Different URLs that want a taken name get
//!   `NAME-1.EXT`, `NAME-2.EXT`, ... in list order, so the result is the same
//!   on every run of the same list. An explicit OUT that is taken fails its
//!   line, naming the earlier line.
//! - Names from `Content-Disposition` follow the same rules, claimed in list
//!   order: an entry waits for every earlier entry's claim ([`Turn`]).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::cancel::Cancel;
use crate::content_disposition;
use crate::error::LineError;
use crate::event::Origin;

/// Longest file or folder name most file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// The suffix of a download's in-progress name.
const PART: &str = ".part";
/// Longest file name: its `NAME.part` must fit in [`MAX_NAME_BYTES`] too.
const MAX_FILE_BYTES: usize = MAX_NAME_BYTES - PART.len();
/// Longest extension a cut keeps; a longer one is cut with the rest.
const MAX_EXT_BYTES: usize = 16;

/// An explicit output path from the list, already checked to stay inside the output dir.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutPath {
    /// A file path.
    File(PathBuf),
    /// A folder (OUT ended with `/`): the file inside gets the URL's name.
    Dir(PathBuf),
}

/// Check an explicit OUT from a list: relative, no `..`, each part sanitised
/// and short enough, never cut (a cut could merge two names).
pub(crate) fn check_out(text: &str) -> Result<OutPath, LineError> {
    let is_dir = text.ends_with('/');
    let path = Path::new(text);
    if path.is_absolute() {
        return Err(LineError::OutEscapes);
    }
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(clean(&part.to_string_lossy())),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(LineError::OutEscapes);
            }
        }
    }
    for (i, part) in parts.iter().enumerate() {
        let is_file = !is_dir && i + 1 == parts.len();
        let max = if is_file { MAX_FILE_BYTES } else { MAX_NAME_BYTES };
        if part.len() > max {
            return Err(LineError::OutTooLong { bytes: part.len() });
        }
    }
    let clean: PathBuf = parts.iter().collect();
    match (clean.as_os_str().is_empty(), is_dir) {
        (true, false) => Err(LineError::OutEmpty),
        (_, true) => Ok(OutPath::Dir(clean)),
        (false, false) => Ok(OutPath::File(clean)),
    }
}

/// The file name a URL gets when the list gives none.
pub(crate) fn name_from_url(url: &Url) -> String {
    let segment = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or("");
    if segment.is_empty() {
        return "index.html".to_string();
    }
    let decoded = percent_decode_str(segment).decode_utf8_lossy();
    sanitize(&decoded)
}

/// The file name a `Content-Disposition` header offers (RFC 6266, parsed in
/// `content_disposition.rs`), sanitised.
pub(crate) fn name_from_disposition(value: &str) -> Option<String> {
    content_disposition::filename(value).map(|name| sanitize(&name))
}

/// Make any text a safe single file name, cut to 250 bytes (see
/// the module rules).
pub(crate) fn sanitize(name: &str) -> String {
    fit(&clean(name), "")
}

/// `/`, `\` and control characters become `_`; `.` and `..` become `_` and `__`.
fn clean(name: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        clean = clean.replace('.', "_");
        if clean.is_empty() {
            clean.push('_');
        }
    }
    clean
}

/// `name` with `tag` before its extension (`report` + `-1` + `.pdf`), cut on
/// a character boundary to [`MAX_FILE_BYTES`]: the stem is shortened, an
/// extension of up to [`MAX_EXT_BYTES`] kept, a longer one cut with the rest.
fn fit(name: &str, tag: &str) -> String {
    let (stem, ext) = split_ext(name);
    if name.len() + tag.len() <= MAX_FILE_BYTES {
        return format!("{stem}{tag}{ext}");
    }
    let (stem, ext) = if ext.len() <= MAX_EXT_BYTES {
        (stem, ext)
    } else {
        (name, "")
    };
    let mut cut = MAX_FILE_BYTES - tag.len() - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tag}{ext}", &stem[..cut])
}

/// `("report", ".pdf")`; a leading dot is part of the stem (`.bashrc` has no extension).
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    }
}

/// The `n`-th alternative for a taken name: `report-1.pdf`.
fn numbered(wanted: &Path, n: u64) -> PathBuf {
    let name = wanted.file_name().unwrap_or_default().to_string_lossy();
    wanted.with_file_name(fit(&name, &format!("-{n}")))
}

/// `x.bin.part` for `x.bin`.
fn with_part(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(PART);
    PathBuf::from(name)
}

/// `x.bin` for `x.bin.part`; `None` for any other name.
fn without_part(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(PART).filter(|stem| !stem.is_empty())?;
    Some(path.with_file_name(stem))
}

/// What the namer decided for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Write to this path, relative to the output dir.
    At(PathBuf),
    /// The same URL and OUT already came earlier in this run.
    Duplicate(Origin),
}

/// The collision rules of one run.
///
/// One table maps each claimed path (a file, or a folder a file needs) to
/// the entry that claimed it and where that entry came from, all as 64-bit
/// fingerprints: 24 bytes a slot, so a list of a million distinct lines
/// costs 50-80 MB with the table's slack (measured in README) instead
/// of the strings themselves. An entry that wants a taken name starts at the
/// number after the last one given for that name (`next`), so naming
/// is linear in the list, and is remembered (`numbered`) to find
/// its duplicates without walking the numbers. A fingerprint collision could
/// at worst give a file the next numbered name.
#[derive(Default)]
pub(crate) struct Namer {
    sources: Vec<Arc<str>>,
    claims: HashMap<u64, Claim, BuildHasherDefault<PreHashed>>,
    /// Wanted path → the next number to try, for names found taken: every
    /// smaller number is claimed already (claims are never given back).
    next: HashMap<u64, u64, BuildHasherDefault<PreHashed>>,
    /// Entry → packed origin, for entries that got a numbered name.
    numbered: HashMap<u64, u64, BuildHasherDefault<PreHashed>>,
    /// With `--content-disposition`: the list order of late claims.
    late: Option<Arc<LateOrder>>,
    turns: u64,
}

/// Who holds a path: the entry's fingerprint (or `FOLDER`, `LATE`) and its packed origin.
#[derive(Clone, Copy)]
struct Claim {
    entry: u64,
    origin: u64,
}

/// The entry of a folder's claim: folders are shared by every file in them.
const FOLDER: u64 = u64::MAX;
/// The entry of a name claimed from a response: never a duplicate of anything.
const LATE: u64 = 0;

/// Origins packed as 16 bits of list index and 48 bits of line number.
const LINE_BITS: u32 = 48;
const LINE_MASK: u64 = (1 << LINE_BITS) - 1;

/// How a file name is taken by an earlier claim.
enum Clash {
    /// The same path, claimed as a file.
    Same,
    /// The same path, claimed as a folder.
    Folder,
    /// This is the earlier file's `NAME.part`.
    PartOf,
    /// The earlier path is this file's `NAME.part`.
    HasPart,
}

impl Namer {
    /// A namer with nothing claimed. With `late_names` (`--content-disposition`)
    /// it hands out a [`Turn`] per entry named by its URL ([`Namer::turn`]).
    pub(crate) fn new(late_names: bool) -> Namer {
        Namer {
            late: late_names.then(Arc::default),
            ..Namer::default()
        }
    }

    /// Decide where an entry goes, claiming its path for this run.
    pub(crate) fn place(
        &mut self,
        origin: &Origin,
        url: &Url,
        out: Option<&OutPath>,
    ) -> Result<Placement, LineError> {
        let here = self.pack(origin);
        let entry = fingerprint(&(url.as_str(), out));
        let wanted = match out {
            Some(OutPath::File(path)) => return self.place_explicit(path, entry, here),
            Some(OutPath::Dir(dir)) => {
                if let Some((folder, origin)) = self.folder_clash(dir) {
                    return Err(LineError::OutFolderTaken {
                        path: dir.display().to_string(),
                        folder: folder.as_os_str().len(),
                        line: origin & LINE_MASK,
                    });
                }
                dir.join(name_from_url(url))
            }
            None => PathBuf::from(name_from_url(url)),
        };
        let first = match self.claims.get(&fingerprint(&wanted)) {
            Some(claim) if claim.entry == entry => Some(claim.origin),
            _ => self.numbered.get(&entry).copied(),
        };
        if let Some(first) = first {
            return Ok(Placement::Duplicate(self.unpack(first)));
        }
        Ok(Placement::At(self.walk(wanted, entry, here)))
    }

    /// An explicit OUT is claimed as given or fails its line.
    fn place_explicit(&mut self, path: &Path, entry: u64, here: u64) -> Result<Placement, LineError> {
        let key = fingerprint(path);
        if let Some(claim) = self.claims.get(&key)
            && claim.entry == entry
        {
            return Ok(Placement::Duplicate(self.unpack(claim.origin)));
        }
        let shown = || path.display().to_string();
        if let Some((folder, origin)) = path.parent().and_then(|dir| self.folder_clash(dir)) {
            return Err(LineError::OutFolderTaken {
                path: shown(),
                folder: folder.as_os_str().len(),
                line: origin & LINE_MASK,
            });
        }
        if let Some((clash, origin)) = self.file_clash(path) {
            let line = origin & LINE_MASK;
            return Err(match clash {
                Clash::Same => LineError::OutTaken { path: shown(), line },
                Clash::Folder => LineError::OutIsFolder { path: shown(), line },
                Clash::PartOf => LineError::OutPartOf { path: shown(), line },
                Clash::HasPart => LineError::OutPartTaken { path: shown(), line },
            });
        }
        self.claim(key, path, entry, here);
        Ok(Placement::At(path.to_path_buf()))
    }

    /// Claim a name chosen after the request (`--content-disposition`), or
    /// the first free numbered alternative, for the entry at `origin`.
    pub(crate) fn claim_late(&mut self, wanted: PathBuf, origin: &Origin) -> PathBuf {
        let here = self.pack(origin);
        self.walk(wanted, LATE, here)
    }

    /// The next entry's place in the order of late claims, when names may
    /// come from responses; entries must ask in the order they are queued.
    pub(crate) fn turn(&mut self) -> Option<Turn> {
        let order = self.late.clone()?;
        let seq = self.turns;
        self.turns += 1;
        Some(Turn { order, seq })
    }

    /// Claim `wanted`, or the first free numbered alternative after the
    /// ones given before.
    fn walk(&mut self, wanted: PathBuf, entry: u64, here: u64) -> PathBuf {
        let key = fingerprint(&wanted);
        let mut n = self.next.get(&key).copied().unwrap_or(0);
        loop {
            let candidate = if n == 0 {
                wanted.clone()
            } else {
                numbered(&wanted, n)
            };
            if self.file_clash(&candidate).is_none() {
                self.claim(fingerprint(&candidate), &candidate, entry, here);
                if n > 0 {
                    self.next.insert(key, n + 1);
                    if entry != LATE {
                        self.numbered.insert(entry, here);
                    }
                }
                return candidate;
            }
            n += 1;
        }
    }

    /// Record `path` as a file of `entry`, and its folders as folders.
    fn claim(&mut self, key: u64, path: &Path, entry: u64, here: u64) {
        self.claims.insert(key, Claim { entry, origin: here });
        let folder = Claim {
            entry: FOLDER,
            origin: here,
        };
        for dir in path.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                break;
            }
            self.claims.entry(fingerprint(dir)).or_insert(folder);
        }
    }

    /// Whether a file at `path` collides with an earlier claim: the same
    /// path, its `NAME.part`, or the file whose `NAME.part` it is.
    fn file_clash(&self, path: &Path) -> Option<(Clash, u64)> {
        if let Some(claim) = self.claims.get(&fingerprint(path)) {
            let clash = if claim.entry == FOLDER {
                Clash::Folder
            } else {
                Clash::Same
            };
            return Some((clash, claim.origin));
        }
        if let Some(claim) = self.claims.get(&fingerprint(&with_part(path))) {
            return Some((Clash::HasPart, claim.origin));
        }
        let stem = without_part(path)?;
        match self.claims.get(&fingerprint(&stem)) {
            Some(claim) if claim.entry != FOLDER => Some((Clash::PartOf, claim.origin)),
            _ => None,
        }
    }

    /// The first folder of `dir` (itself or a parent) that an earlier entry
    /// writes as a file, or as a file's `NAME.part`.
    fn folder_clash(&self, dir: &Path) -> Option<(PathBuf, u64)> {
        let file_at = |path: &Path| {
            self.claims
                .get(&fingerprint(path))
                .filter(|claim| claim.entry != FOLDER)
                .map(|claim| claim.origin)
        };
        dir.ancestors()
            .take_while(|d| !d.as_os_str().is_empty())
            .find_map(|d| {
                let origin = file_at(d).or_else(|| without_part(d).and_then(|stem| file_at(&stem)))?;
                Some((d.to_path_buf(), origin))
            })
    }

    fn pack(&mut self, origin: &Origin) -> u64 {
        let index = self.source_index(&origin.source).min(0xFFFF);
        (u64::from(index) << LINE_BITS) | (origin.line & LINE_MASK)
    }

    fn unpack(&self, packed: u64) -> Origin {
        let index = (packed >> LINE_BITS) as usize;
        Origin {
            source: self.sources.get(index).cloned().unwrap_or_else(|| "?".into()),
            line: packed & LINE_MASK,
        }
    }

    fn source_index(&mut self, source: &Arc<str>) -> u32 {
        // Lists are few and read in order: the current one is almost always last.
        if let Some(i) = self
            .sources
            .iter()
            .rposition(|s| Arc::ptr_eq(s, source) || s == source)
        {
            return i as u32;
        }
        self.sources.push(source.clone());
        (self.sources.len() - 1) as u32
    }
}

/// The list order of names claimed from responses (`--content-disposition`).
///
/// Each entry named by its URL holds a [`Turn`], numbered in queue order.
/// Before claiming a server's name, a worker waits until every earlier turn
/// has passed: an earlier entry passes once its name is settled (after its
/// first response with a body) or when it ends in any way, so two entries
/// offered the same name get it and `NAME-1` in list order, whichever
/// answers first. The wait never deadlocks the pool: entries start in queue
/// order (per host too, see the `hosts` module), so the earliest open turn
/// belongs to a started entry that waits for nobody, and its attempts are
/// bounded by the timeouts and retries.
#[derive(Default)]
struct LateOrder {
    turns: Mutex<Turns>,
    passed: Condvar,
}

/// Which turns have passed: all before `open`, and those in `ahead`.
#[derive(Default)]
struct Turns {
    open: u64,
    ahead: BTreeSet<u64>,
}

impl LateOrder {
    fn lock(&self) -> MutexGuard<'_, Turns> {
        // Every update leaves the state consistent: keep going after a panic.
        self.turns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One entry's place in the order of late claims; passes when dropped, so
/// an entry that ends before it got a response never holds others up.
pub(crate) struct Turn {
    order: Arc<LateOrder>,
    seq: u64,
}

/// A turn being taken: passes when dropped, after the name is claimed.
pub(crate) struct Taking<'a>(&'a Turn);

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        self.0.pass();
    }
}

impl Turn {
    /// Wait until every earlier turn has passed; `None` if the run is
    /// stopping first.
    pub(crate) fn wait(&self, cancel: &Cancel) -> Option<Taking<'_>> {
        let mut turns = self.order.lock();
        while turns.open < self.seq {
            if cancel.is_requested() {
                return None;
            }
            // Timed, to notice a stop request; a pass wakes it at once.
            turns = match self.order.passed.wait_timeout(turns, Duration::from_millis(50)) {
                Ok((turns, _)) => turns,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        Some(Taking(self))
    }

    /// Let later turns go; passing twice is harmless.
    fn pass(&self) {
        let mut turns = self.order.lock();
        if self.seq < turns.open {
            return;
        }
        if self.seq > turns.open {
            turns.ahead.insert(self.seq);
            return;
        }
        turns.open += 1;
        loop {
            let next = turns.open;
            if !turns.ahead.remove(&next) {
                break;
            }
            turns.open += 1;
        }
        self.order.passed.notify_all();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.pass();
    }
}

/// A SipHash fingerprint of a value (fixed keys, so stable within a run).
fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The table's keys are already SipHash outputs: hashing them again is waste.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn names_come_from_the_last_segment() {
        let cases = [
            ("http://h/a/b/file.tar.gz", "file.tar.gz"),
            ("http://h/caf%C3%A9.txt", "café.txt"),
            ("http://h/dir/", "index.html"),
            ("http://h", "index.html"),
            ("http://h/a.txt?x=1&y=/etc/passwd", "a.txt"),
            ("http://h/..%2F..%2F.bashrc", ".._.._.bashrc"),
            // The URL standard already resolves %2e%2e as a dot-segment.
            ("http://h/a/%2e%2e", "index.html"),
            ("http://h/a%00b%1b[31m", "a_b_[31m"),
            ("http://h/back%5Cslash", "back_slash"),
            ("http://h/%FF.bin", "\u{FFFD}.bin"),
        ];
        for (input, want) in cases {
            assert_eq!(name_from_url(&url(input)), want, "{input}");
        }
    }

    #[test]
    fn disposition_names_are_sanitised() {
        let cases = [
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("attachment; filename=\"..\"", Some("__")),
            ("attachment; filename=\"a\x1bb\"", Some("a_b")),
            ("inline", None),
        ];
        for (header, want) in cases {
            assert_eq!(name_from_disposition(header).as_deref(), want, "{header}");
        }
    }

    #[test]
    fn dot_names_never_survive() {
        assert_eq!(sanitize(".."), "__");
        assert_eq!(sanitize("."), "_");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("..."), "...");
    }

    #[test]
    fn long_names_are_cut_to_leave_room_for_part_and_numbers() {
        let long = format!("{}.pdf", "a".repeat(300));
        let short = sanitize(&long);
        assert_eq!(short.len(), MAX_FILE_BYTES);
        assert!(short.ends_with("a.pdf"));
        assert!(with_part(Path::new(&short)).as_os_str().len() <= MAX_NAME_BYTES);

        let accented = sanitize(&format!("{}.pdf", "é".repeat(200)));
        assert!(accented.len() <= MAX_FILE_BYTES, "{}", accented.len());
        assert!(accented.starts_with('é') && accented.ends_with("é.pdf"));

        // A numbered name is cut before the number, whatever its size.
        let big = numbered(Path::new(&short), 1_000_000);
        let big = big.to_str().unwrap();
        assert_eq!(big.len(), MAX_FILE_BYTES);
        assert!(big.ends_with("a-1000000.pdf"), "{big}");
        assert_eq!(numbered(Path::new("d/x.bin"), 3), Path::new("d/x-3.bin"));

        // An extension over 16 bytes is cut with the rest.
        let odd = sanitize(&format!("a.{}", "e".repeat(300)));
        assert_eq!(odd.len(), MAX_FILE_BYTES);
        assert!(odd.starts_with("a.eee"));
        // Short names are untouched, a long extension included.
        assert_eq!(
            sanitize("a.averyveryverylongextension"),
            "a.averyveryverylongextension"
        );
    }

    #[test]
    fn explicit_out_names_are_never_cut() {
        let name = |n: usize| "n".repeat(n);
        let cases = [
            (name(250), Ok(OutPath::File(name(250).into()))),
            (name(251), Err(LineError::OutTooLong { bytes: 251 })),
            (
                format!("{}/f", name(255)),
                Ok(OutPath::File(format!("{}/f", name(255)).into())),
            ),
            (
                format!("{}/f", name(256)),
                Err(LineError::OutTooLong { bytes: 256 }),
            ),
            (format!("{}/", name(255)), Ok(OutPath::Dir(name(255).into()))),
            (
                format!("{}/", name(256)),
                Err(LineError::OutTooLong { bytes: 256 }),
            ),
        ];
        for (out, want) in cases {
            assert_eq!(check_out(&out), want, "{} bytes", out.len());
        }
    }

    #[test]
    fn explicit_out_stays_inside() {
        assert_eq!(check_out("a/b.txt"), Ok(OutPath::File("a/b.txt".into())));
        assert_eq!(check_out("./a/./b.txt"), Ok(OutPath::File("a/b.txt".into())));
        assert_eq!(check_out("docs/"), Ok(OutPath::Dir("docs".into())));
        assert_eq!(check_out("/etc/passwd"), Err(LineError::OutEscapes));
        assert_eq!(check_out("a/../../b"), Err(LineError::OutEscapes));
        assert_eq!(check_out(".."), Err(LineError::OutEscapes));
        assert_eq!(check_out("."), Err(LineError::OutEmpty));
    }

    #[test]
    fn collisions_get_numbered_and_duplicates_detected() {
        let mut namer = Namer::new(false);
        let src: Arc<str> = "list".into();
        let at = |line| Origin {
            source: src.clone(),
            line,
        };
        let mut place = |line, u: &str, out: Option<OutPath>| namer.place(&at(line), &url(u), out.as_ref());
        assert_eq!(
            place(1, "http://a/x.pdf", None),
            Ok(Placement::At("x.pdf".into()))
        );
        assert_eq!(
            place(2, "http://b/x.pdf", None),
            Ok(Placement::At("x-1.pdf".into()))
        );
        assert_eq!(place(3, "http://a/x.pdf", None), Ok(Placement::Duplicate(at(1))));
        assert_eq!(
            place(4, "http://c/x.pdf", None),
            Ok(Placement::At("x-2.pdf".into()))
        );
        assert_eq!(
            place(5, "http://d/x-1.pdf", None),
            Ok(Placement::At("x-1-1.pdf".into()))
        );
        assert_eq!(
            place(6, "http://e/y", Some(OutPath::File("x.pdf".into()))),
            Err(LineError::OutTaken {
                path: "x.pdf".into(),
                line: 1
            })
        );
        assert_eq!(
            place(7, "http://a/x.pdf", Some(OutPath::Dir("sub".into()))),
            Ok(Placement::At("sub/x.pdf".into()))
        );
    }

    /// Entries (URL, OUT) in list order, and what each should get.
    type Case<'a> = (
        &'a [(&'a str, Option<&'a str>)],
        &'a [Result<Placement, LineError>],
    );

    /// Runs `steps` (line, URL, OUT) through one namer and returns what each got.
    fn place_all(steps: &[(&str, Option<&str>)]) -> Vec<Result<Placement, LineError>> {
        let mut namer = Namer::new(false);
        let src: Arc<str> = "list".into();
        steps
            .iter()
            .enumerate()
            .map(|(i, (u, out))| {
                let origin = Origin {
                    source: src.clone(),
                    line: i as u64 + 1,
                };
                let out = out.map(|o| check_out(o).unwrap());
                namer.place(&origin, &url(u), out.as_ref())
            })
            .collect()
    }

    fn at(path: &str) -> Result<Placement, LineError> {
        Ok(Placement::At(path.into()))
    }

    #[test]
    fn a_name_and_its_part_are_reserved_together() {
        let cases: [Case<'_>; 6] = [
            (
                &[("http://a/x.bin", None), ("http://b/x.bin.part", None)],
                &[at("x.bin"), at("x.bin-1.part")],
            ),
            (
                &[("http://a/x.bin.part", None), ("http://b/x.bin", None)],
                &[at("x.bin.part"), at("x-1.bin")],
            ),
            (
                &[("http://a/x.bin", None), ("http://b/y", Some("x.bin.part"))],
                &[
                    at("x.bin"),
                    Err(LineError::OutPartOf {
                        path: "x.bin.part".into(),
                        line: 1,
                    }),
                ],
            ),
            (
                &[("http://a/y", Some("x.bin.part")), ("http://b/z", Some("x.bin"))],
                &[
                    at("x.bin.part"),
                    Err(LineError::OutPartTaken {
                        path: "x.bin".into(),
                        line: 1,
                    }),
                ],
            ),
            (
                // Only the `.part` relation counts: `x.part` and `x.bin` are unrelated.
                &[
                    ("http://a/x.part", None),
                    ("http://b/x.bin", None),
                    ("http://c/.part", None),
                ],
                &[at("x.part"), at("x.bin"), at(".part")],
            ),
            (
                &[
                    ("http://a/d/x.bin", Some("d/")),
                    ("http://b/x.bin.part", Some("d/")),
                ],
                &[at("d/x.bin"), at("d/x.bin-1.part")],
            ),
        ];
        for (steps, want) in cases {
            assert_eq!(place_all(steps), want, "{steps:?}");
        }
    }

    #[test]
    fn one_name_is_never_both_a_file_and_a_folder() {
        let folder_taken = |path: &str, folder: &str, line| {
            assert!(path.starts_with(folder));
            Err(LineError::OutFolderTaken {
                path: path.into(),
                folder: folder.len(),
                line,
            })
        };
        let cases: [Case<'_>; 7] = [
            (
                &[("http://h/x.bin", Some("a")), ("http://h/y.bin", Some("a/b"))],
                &[at("a"), folder_taken("a/b", "a", 1)],
            ),
            (
                &[("http://h/y.bin", Some("a/b")), ("http://h/x.bin", Some("a"))],
                &[
                    at("a/b"),
                    Err(LineError::OutIsFolder {
                        path: "a".into(),
                        line: 1,
                    }),
                ],
            ),
            (
                &[("http://h/a", None), ("http://h/y.bin", Some("a/b/c"))],
                &[at("a"), folder_taken("a/b/c", "a", 1)],
            ),
            (
                &[("http://h/a", None), ("http://h/y.bin", Some("a/"))],
                &[at("a"), folder_taken("a", "a", 1)],
            ),
            (
                // A URL name gives way to a folder by numbering.
                &[
                    ("http://h/y.bin", Some("a/b")),
                    ("http://h/a", None),
                    ("http://h/z", Some("a/c")),
                ],
                &[at("a/b"), at("a-1"), at("a/c")],
            ),
            (
                // `x.bin.part` as a folder would block `x.bin`'s in-progress file.
                &[("http://h/x.bin", None), ("http://h/y", Some("x.bin.part/y"))],
                &[at("x.bin"), folder_taken("x.bin.part/y", "x.bin.part", 1)],
            ),
            (
                &[("http://h/y", Some("x.bin.part/y")), ("http://h/x.bin", None)],
                &[at("x.bin.part/y"), at("x-1.bin")],
            ),
        ];
        for (steps, want) in cases {
            assert_eq!(place_all(steps), want, "{steps:?}");
        }
    }

    #[test]
    fn numbering_resumes_after_the_last_number_given() {
        let mut steps: Vec<(String, Option<&str>)> =
            (0..1000).map(|i| (format!("http://h{i}/x.bin"), None)).collect();
        // A URL literally named like a numbered name, before and after its number is reached.
        steps.push(("http://lit/x-1000.bin".into(), None));
        steps.push(("http://lit/x-5.bin".into(), None));
        steps.push(("http://late/x.bin".into(), None));
        steps.push(("http://h7/x.bin".into(), None));
        let steps: Vec<(&str, Option<&str>)> = steps.iter().map(|(u, o)| (u.as_str(), *o)).collect();
        let got = place_all(&steps);
        assert_eq!(got[0], at("x.bin"));
        assert_eq!(got[999], at("x-999.bin"));
        assert_eq!(got[1000], at("x-1000.bin"));
        assert_eq!(got[1001], at("x-5-1.bin"));
        assert_eq!(got[1002], at("x-1001.bin"));
        let Ok(Placement::Duplicate(first)) = &got[1003] else {
            panic!("{:?}", got[1003]);
        };
        assert_eq!(first.line, 8);
    }

    #[test]
    fn late_names_follow_the_same_rules() {
        let mut namer = Namer::new(true);
        let origin = Origin {
            source: "list".into(),
            line: 1,
        };
        let placed = namer.place(&origin, &url("http://h/other.bin"), None);
        assert_eq!(placed, at("other.bin"));
        assert_eq!(
            namer.claim_late("other.bin.part".into(), &origin),
            Path::new("other.bin-1.part")
        );
        assert_eq!(
            namer.claim_late("other.bin".into(), &origin),
            Path::new("other-1.bin")
        );
        assert_eq!(
            namer.claim_late("other.bin".into(), &origin),
            Path::new("other-2.bin")
        );
    }

    #[test]
    fn turns_open_in_order_whatever_order_they_pass() {
        let mut namer = Namer::new(true);
        let turns: Vec<Turn> = (0..4).map(|_| namer.turn().unwrap()).collect();
        let stopped = Cancel::new();
        stopped.request(15);
        assert!(turns[0].wait(&stopped).is_some(), "the first turn never waits");
        assert!(turns[2].wait(&stopped).is_none(), "turn 2 waits for 0 and 1");
        turns[1].pass();
        turns[0].pass();
        assert!(turns[2].wait(&stopped).is_some());
        let mut turns = turns.into_iter();
        let first_three: Vec<Turn> = turns.by_ref().take(3).collect();
        drop(first_three);
        let last = turns.next().unwrap();
        assert!(last.wait(&stopped).is_some(), "dropped turns pass");
        assert!(Namer::new(false).turn().is_none());
    }
}
