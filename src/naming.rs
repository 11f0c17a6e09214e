//! Where each entry lands on disk: names from URLs, checks on explicit paths,
//! and the collision rules of one run.
//!
//! Rules (also in `--help` and README):
//! - The default name is the URL's last path segment, percent-decoded;
//!   `index.html` when the path ends in `/`. The query never lands in the name.
//! - Names are sanitised: `/`, `\`, NUL and control characters become `_`,
//!   `.` and `..` are never names, and a name is at most 255 bytes (shortened
//!   keeping its extension).
//! - An explicit OUT may name sub-folders but never leaves the output dir.
//! - In one run, the same URL (with the same OUT) is downloaded once; later
//!   copies are skipped as duplicates. Different URLs that want the same
//!   default name get `NAME-1.EXT`, `NAME-2.EXT`, ... in list order, so the
//!   result is the same on every run of the same list. Two entries naming the
//!   same explicit OUT are a conflict: the later one fails.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::error::LineError;
use crate::input::{Origin, OutPath};

/// Longest file name most file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Room kept for the `.part` suffix and a collision counter, so the
/// in-progress name fits too.
const NAME_BUDGET: usize = MAX_NAME_BYTES - ".part".len() - "-99999".len();

/// Check an explicit OUT from a list: relative, no `..`, each part sanitised.
pub fn check_out(text: &str) -> Result<OutPath, LineError> {
    let is_dir = text.ends_with('/');
    let path = Path::new(text);
    if path.is_absolute() {
        return Err(LineError::OutEscapes);
    }
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(sanitize(&part.to_string_lossy())),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(LineError::OutEscapes);
            }
        }
    }
    match (clean.as_os_str().is_empty(), is_dir) {
        (true, false) => Err(LineError::OutEmpty),
        (_, true) => Ok(OutPath::Dir(clean)),
        (false, false) => Ok(OutPath::File(clean)),
    }
}

/// The file name a URL gets when the list gives none.
pub fn name_from_url(url: &Url) -> String {
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

/// The file name a `Content-Disposition` header offers (RFC 6266), sanitised.
/// `filename*` (RFC 8187, percent-encoded UTF-8) wins over `filename`; any
/// folder part is dropped, as browsers do, so `../../x` becomes `x`.
pub fn name_from_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                // charset'language'percent-encoded
                let mut parts = raw.trim().splitn(3, '\'');
                let charset = parts.next().unwrap_or("").to_ascii_lowercase();
                let encoded = parts.nth(1)?;
                let bytes: Vec<u8> = percent_decode_str(encoded).collect();
                extended = Some(if charset == "utf-8" {
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    // ISO-8859-1: every byte is the code point of the same value.
                    bytes.iter().map(|&b| char::from(b)).collect()
                });
            }
            "filename" => plain = Some(unquote(raw.trim())),
            _ => {}
        }
    }
    let name = extended.or(plain)?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    (!base.is_empty()).then(|| sanitize(base))
}

/// Split a header value on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<&str> {
    let mut params = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                params.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    params.push(&value[start..]);
    params
}

/// A quoted-string's content (RFC 9110 §5.6.4), or a token as is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

/// Make any text a safe single file name (see the module rules).
pub fn sanitize(name: &str) -> String {
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
    shorten(clean, NAME_BUDGET)
}

/// Cut a name to `max` bytes on a character boundary, keeping a short extension.
fn shorten(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    let (stem, ext) = split_ext(&name);
    let ext = if ext.len() <= 16 { ext } else { "" };
    let mut cut = max - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &stem[..cut], ext)
}

/// `("report", ".pdf")`; a leading dot is part of the stem (`.bashrc` has no extension).
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    }
}

/// The `n`-th alternative name for a collision: `report-1.pdf`.
fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = split_ext(name);
    format!("{stem}-{n}{ext}")
}

/// What the namer decided for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Write to this path, relative to the output dir.
    At(PathBuf),
    /// The same URL and OUT already came earlier in this run.
    Duplicate(Origin),
}

/// The collision rules of one run.
///
/// One table maps each claimed path to the entry that claimed it and where
/// that entry came from, all as 64-bit fingerprints: 24 bytes a slot, so a
/// list of a million distinct lines costs about 50 MB at the table's worst
/// fill (measured in README) instead of the strings themselves. Duplicates are
/// found through the same table: an entry walks the names it may get (`x.bin`,
/// `x-1.bin`, ...) and meets its own earlier claim before any free slot. A
/// fingerprint collision could at worst give a file the next numbered name.
#[derive(Default)]
pub struct Namer {
    sources: Vec<Arc<str>>,
    claims: HashMap<u64, Claim, BuildHasherDefault<PreHashed>>,
}

/// Who holds a path: the entry's fingerprint and its packed origin.
#[derive(Clone, Copy)]
struct Claim {
    entry: u64,
    origin: u64,
}

/// Origins packed as 16 bits of list index and 48 bits of line number.
const LINE_BITS: u32 = 48;

impl Namer {
    /// A namer with nothing claimed.
    pub fn new() -> Namer {
        Namer::default()
    }

    /// Decide where an entry goes, claiming its path for this run.
    pub fn place(
        &mut self,
        origin: &Origin,
        url: &Url,
        out: Option<&OutPath>,
    ) -> Result<Placement, LineError> {
        let here = self.pack(origin);
        let entry = fingerprint(&(url.as_str(), out));
        match out {
            Some(OutPath::File(path)) => match self.claims.get(&fingerprint(path)) {
                Some(claim) if claim.entry == entry => Ok(Placement::Duplicate(self.unpack(claim.origin))),
                Some(claim) => Err(LineError::OutTaken {
                    path: path.display().to_string(),
                    line: claim.origin & ((1 << LINE_BITS) - 1),
                }),
                None => {
                    self.claims
                        .insert(fingerprint(path), Claim { entry, origin: here });
                    Ok(Placement::At(path.clone()))
                }
            },
            Some(OutPath::Dir(dir)) => Ok(self.walk(dir.join(name_from_url(url)), Some(entry), here)),
            None => Ok(self.walk(PathBuf::from(name_from_url(url)), Some(entry), here)),
        }
    }

    /// Claim a name chosen after the request (`--content-disposition`), or
    /// the first free numbered alternative, for the entry at `origin`.
    pub fn claim_late(&mut self, wanted: PathBuf, origin: &Origin) -> PathBuf {
        let here = self.pack(origin);
        match self.walk(wanted, None, here) {
            Placement::At(path) => path,
            Placement::Duplicate(_) => unreachable!("an entry-less walk never meets its own claim"),
        }
    }

    /// Walk `wanted`, `wanted-1`, ... to the first free name, unless `entry`
    /// already holds one of them (a duplicate).
    fn walk(&mut self, wanted: PathBuf, entry: Option<u64>, here: u64) -> Placement {
        let name = wanted
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut candidate = wanted.clone();
        let mut n = 0;
        loop {
            match self.claims.get(&fingerprint(&candidate)) {
                Some(claim) if Some(claim.entry) == entry => {
                    return Placement::Duplicate(self.unpack(claim.origin));
                }
                Some(_) => {
                    n += 1;
                    candidate = wanted.with_file_name(numbered(&name, n));
                }
                None => {
                    let claim = Claim {
                        entry: entry.unwrap_or(0),
                        origin: here,
                    };
                    self.claims.insert(fingerprint(&candidate), claim);
                    return Placement::At(candidate);
                }
            }
        }
    }

    fn pack(&mut self, origin: &Origin) -> u64 {
        let index = self.source_index(&origin.source).min(0xFFFF);
        (u64::from(index) << LINE_BITS) | (origin.line & ((1 << LINE_BITS) - 1))
    }

    fn unpack(&self, packed: u64) -> Origin {
        let index = (packed >> LINE_BITS) as usize;
        Origin {
            source: self.sources.get(index).cloned().unwrap_or_else(|| "?".into()),
            line: packed & ((1 << LINE_BITS) - 1),
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

/// A SipHash fingerprint of a value (fixed keys, so stable within a run).
fn fingerprint(value: &impl Hash) -> u64 {
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
    fn disposition_names() {
        let cases = [
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("attachment; filename=plain.txt", Some("plain.txt")),
            ("attachment; filename=\"../../evil.sh\"", Some("evil.sh")),
            ("attachment; filename=\"a\\\\b\"", Some("b")),
            ("attachment; filename=\"semi;colon.txt\"", Some("semi;colon.txt")),
            (
                "attachment; filename=\"x.bin\"; filename*=UTF-8''caf%C3%A9.bin",
                Some("café.bin"),
            ),
            ("attachment; filename*=iso-8859-1'en'%E9t%E9.txt", Some("été.txt")),
            ("inline", None),
            ("attachment; filename=\"\"", None),
            ("attachment; filename=\"..\"", Some("__")),
            ("attachment; filename=\"a\x1bb\"", Some("a_b")),
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
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.pdf", "é".repeat(200));
        let short = sanitize(&long);
        assert!(short.len() <= NAME_BUDGET, "{}", short.len());
        assert!(short.ends_with(".pdf"));
        assert!(short.starts_with('é'));
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
        let mut namer = Namer::new();
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
}
