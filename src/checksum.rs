//! Checksums: the algorithms fetchq checks, the digests an entry expects
//! ([`Checksums`]), one [`Hasher`] that computes every algorithm asked for in
//! a single pass over the body, the comparison that names what differed, and
//! the published sums files `--checksums` reads ([`Sums`]).
//!
//! md5 and sha1 are here to match the sums projects publish. Collisions of
//! both can be made at will (whoever prepares a file can prepare a second,
//! different one with the same digest), so a match proves nothing against
//! an attacker; sha256 and longer are not known to be broken.
//!
//! Sums files are the output of `sha256sum` and its kin (`HEX  NAME`, or
//! `HEX *NAME` in binary mode, and a leading `\` when NAME holds a newline or
//! backslash, escaped as `\n` and `\\`), or the tagged form
//! `SHA256 (NAME) = HEX` that `sha256sum --tag` and the BSD tools write. The
//! untagged form's algorithm is told by the digest's length, which differs
//! for each of the five.

use std::collections::HashMap;

use sha2::Digest as _;

/// A hash algorithm a list line or a sums file may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// MD5 (RFC 1321): matches published sums only; broken against attackers.
    Md5,
    /// SHA-1 (RFC 3174): matches published sums only; broken against attackers.
    Sha1,
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA-384 (FIPS 180-4).
    Sha384,
    /// SHA-512 (FIPS 180-4).
    Sha512,
}

impl Algorithm {
    /// Every algorithm, in the order list keys are documented.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Sha256,
        Algorithm::Sha512,
        Algorithm::Sha384,
        Algorithm::Sha1,
        Algorithm::Md5,
    ];

    /// Its list key without the `=`, and the name messages use: `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The digest's length in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    /// The algorithm of a list key (`sha256`, any case).
    pub(crate) fn from_key(key: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(key))
    }

    /// The algorithm of an untagged sums line, told by its digest's length:
    /// each of the five has its own.
    fn from_hex_len(len: usize) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.hex_len() == len)
    }

    /// The algorithm of a BSD tag (`SHA256`, `MD5`; any case).
    fn from_tag(tag: &str) -> Option<Algorithm> {
        Algorithm::from_key(tag)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One expected digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// The digest's bytes.
    pub digest: Box<[u8]>,
}

impl Checksum {
    /// `hex` (either case) as a digest of `algorithm`; `None` unless it is
    /// exactly that algorithm's number of hex digits.
    pub(crate) fn from_hex(algorithm: Algorithm, hex: &str) -> Option<Checksum> {
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digest = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).ok()?;
                u8::from_str_radix(pair, 16).ok()
            })
            .collect::<Option<Box<[u8]>>>()?;
        Some(Checksum { algorithm, digest })
    }

    /// The digest as lowercase hex.
    pub fn hex(&self) -> String {
        crate::hex::encode(&self.digest)
    }
}

/// The list spelling: `sha256=HEX`.
impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.algorithm.name(), self.hex())
    }
}

/// The digests one entry must match: all of them, each by its algorithm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums(Vec<Checksum>);

impl Checksums {
    /// No digest: nothing is checked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The digests, by algorithm (md5, sha1, sha256, sha384, sha512).
    pub fn iter(&self) -> impl Iterator<Item = &Checksum> {
        self.0.iter()
    }

    /// The digest of `algorithm`, if one is expected.
    pub fn get(&self, algorithm: Algorithm) -> Option<&Checksum> {
        self.0.iter().find(|c| c.algorithm == algorithm)
    }

    /// Expect `checksum` too; the same digest twice is kept once. Two
    /// different digests of one algorithm are both kept: both are checked,
    /// so the entry fails, as it must when two sources disagree.
    /// They are kept in algorithm order, so equal sets compare equal
    /// whatever order they were given in.
    pub(crate) fn add(&mut self, checksum: Checksum) {
        let key = |c: &Checksum| (c.algorithm, c.digest.clone());
        if let Err(at) = self.0.binary_search_by_key(&key(&checksum), key) {
            self.0.insert(at, checksum);
        }
    }

    /// The digest of `algorithm` over `bytes`, as the one expected.
    #[cfg(test)]
    pub(crate) fn for_bytes(algorithm: Algorithm, bytes: &[u8]) -> Checksums {
        let mut hasher = Hasher::new(Algorithms::of(algorithm)).expect("one algorithm");
        hasher.update(bytes);
        let digest = hasher.digest(algorithm).expect("computed");
        Checksums(vec![Checksum {
            algorithm,
            digest: digest.into(),
        }])
    }

    /// The algorithms a [`Hasher`] must compute to check these.
    pub(crate) fn algorithms(&self) -> Algorithms {
        Algorithms(self.0.iter().fold(0, |bits, c| bits | c.algorithm.bit()))
    }

    /// Compare with what `hasher` computed: the first digest that differs,
    /// or one whose algorithm it did not compute, fails.
    pub(crate) fn verify(&self, hasher: Option<&Hasher>) -> Result<(), Mismatch> {
        for want in &self.0 {
            let got = hasher.and_then(|h| h.digest(want.algorithm));
            if got.as_deref() != Some(&*want.digest) {
                return Err(Mismatch {
                    algorithm: want.algorithm,
                    expected: want.hex(),
                    actual: got.map_or_else(|| "nothing (not computed)".into(), |d| crate::hex::encode(&d)),
                });
            }
        }
        Ok(())
    }
}

/// A set of algorithms, for a [`Hasher`] to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Algorithms(u8);

impl Algorithms {
    /// No algorithm.
    #[cfg(test)]
    pub(crate) const NONE: Algorithms = Algorithms(0);

    /// Just `algorithm`.
    #[cfg(test)]
    pub(crate) const fn of(algorithm: Algorithm) -> Algorithms {
        Algorithms(1 << (algorithm as u8))
    }

    /// No algorithm: nothing to hash.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn contains(self, algorithm: Algorithm) -> bool {
        self.0 & algorithm.bit() != 0
    }
}

/// A digest that differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// Which algorithm.
    pub(crate) algorithm: Algorithm,
    /// Expected, lowercase hex.
    pub(crate) expected: String,
    /// Computed, lowercase hex.
    pub(crate) actual: String,
}

/// One algorithm's running state.
#[derive(Clone)]
enum State {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl State {
    fn new(algorithm: Algorithm) -> State {
        match algorithm {
            Algorithm::Md5 => State::Md5(md5::Md5::new()),
            Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => State::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            State::Md5(h) => h.update(bytes),
            State::Sha1(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
            State::Sha384(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    fn digest(&self) -> Vec<u8> {
        match self.clone() {
            State::Md5(h) => h.finalize().to_vec(),
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
            State::Sha384(h) => h.finalize().to_vec(),
            State::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Computes the digests of several algorithms over the same bytes as they
/// stream by: each chunk is fed once to each algorithm asked for, and none
/// other is computed.
#[derive(Clone)]
pub(crate) struct Hasher {
    states: Vec<(Algorithm, State)>,
}

impl Hasher {
    /// A hasher for `algorithms`; `None` when there are none.
    pub(crate) fn new(algorithms: Algorithms) -> Option<Hasher> {
        let states: Vec<_> = Algorithm::ALL
            .into_iter()
            .filter(|a| algorithms.contains(*a))
            .map(|a| (a, State::new(a)))
            .collect();
        (!states.is_empty()).then_some(Hasher { states })
    }

    /// Feed the next bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for (_, state) in &mut self.states {
            state.update(bytes);
        }
    }

    /// Start again from no bytes.
    pub(crate) fn reset(&mut self) {
        for (algorithm, state) in &mut self.states {
            *state = State::new(*algorithm);
        }
    }

    /// The digest of `algorithm` over everything fed so far, if it computes that one.
    pub(crate) fn digest(&self, algorithm: Algorithm) -> Option<Vec<u8>> {
        self.states
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, state)| state.digest())
    }
}

/// The longest sums file read, in bytes: 64 MiB holds about 600,000 sha256
/// lines of 100-byte names, far beyond any release's; a larger file is
/// refused rather than read into memory.
pub const MAX_SUMS_FILE: u64 = 64 * 1024 * 1024;

/// Why a sums file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {why}")]
pub struct SumsError {
    /// The file as the user named it.
    pub file: String,
    /// The 1-based line.
    pub line: u64,
    /// What is wrong with it.
    pub why: String,
}

/// The digests published sums files give, by file name (relative, with no
/// leading `./`), from every `--checksums` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    by_name: HashMap<String, Checksums>,
}

impl Sums {
    /// No sums.
    pub fn new() -> Sums {
        Sums::default()
    }

    /// Add the sums in `text`, the content of the file named `file` (for
    /// messages). Blank lines and lines starting with `#` are skipped; any
    /// other line must be one of the three forms, or the whole file is
    /// refused with the first bad line's number.
    pub fn add_text(&mut self, file: &str, text: &str) -> Result<(), SumsError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, line) in text.lines().enumerate() {
            let bad = |why: &str| SumsError {
                file: file.to_string(),
                line: index as u64 + 1,
                why: why.to_string(),
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (name, checksum) = parse_sums_line(line).map_err(|why| bad(&why))?;
            self.by_name.entry(name).or_default().add(checksum);
        }
        Ok(())
    }

    /// The digests published for `path` (relative to the output directory,
    /// `/`-separated), if any.
    pub fn get(&self, path: &str) -> Option<&Checksums> {
        self.by_name.get(path)
    }

    /// How many names have sums.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// No name has sums.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// One sums line: `HEX  NAME`, `HEX *NAME`, `\HEX  ESCAPED` or `TAG (NAME) = HEX`.
fn parse_sums_line(line: &str) -> Result<(String, Checksum), String> {
    if let Some((head, hex)) = line.rsplit_once(") = ")
        && let Some((tag, name)) = head.split_once(" (")
        && !tag.is_empty()
        && !tag.contains(char::is_whitespace)
    {
        let escaped = tag.starts_with('\\');
        let tag = tag.strip_prefix('\\').unwrap_or(tag);
        let algorithm = Algorithm::from_tag(tag).ok_or_else(|| {
            format!("unknown algorithm {tag:?} (expected MD5, SHA1, SHA256, SHA384 or SHA512)")
        })?;
        let checksum = Checksum::from_hex(algorithm, hex.trim_end())
            .ok_or_else(|| format!("{tag} takes {} hex digits", algorithm.hex_len()))?;
        return Ok((clean_name(name, escaped)?, checksum));
    }
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let Some((hex, rest)) = line.split_once(' ') else {
        return Err("expected \"HEX  NAME\", \"HEX *NAME\" or \"SHA256 (NAME) = HEX\"".into());
    };
    let name = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('*'))
        .ok_or_else(|| "expected two spaces or \" *\" between the digest and the name".to_string())?;
    let algorithm = Algorithm::from_hex_len(hex.len())
        .filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| "the digest is not 32, 40, 64, 96 or 128 hex digits".to_string())?;
    let checksum = Checksum::from_hex(algorithm, hex).ok_or_else(|| "bad hex digest".to_string())?;
    Ok((clean_name(name, escaped)?, checksum))
}

/// A sums file's name as a path relative to the output directory:
/// unescaped (`\\`, `\n`) if the line was marked, without a leading `./`.
fn clean_name(name: &str, escaped: bool) -> Result<String, String> {
    let mut name = if escaped {
        let mut out = String::with_capacity(name.len());
        let mut chars = name.chars();
        while let Some(c) = chars.next() {
            match (c, c == '\\') {
                (_, true) => match chars.next() {
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    _ => return Err("bad escape in the name".into()),
                },
                (c, false) => out.push(c),
            }
        }
        out
    } else {
        name.to_string()
    };
    while let Some(rest) = name.strip_prefix("./") {
        name = rest.to_string();
    }
    if name.is_empty() {
        return Err("no file name".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(algorithm: Algorithm, bytes: &[u8]) -> String {
        let mut hasher = Hasher::new(Algorithms(algorithm.bit())).unwrap();
        hasher.update(bytes);
        crate::hex::encode(&hasher.digest(algorithm).unwrap())
    }

    #[test]
    fn each_algorithm_gives_its_known_digest_of_abc() {
        // FIPS 180-4 and RFC 1321 test vectors.
        let table = [
            (Algorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (Algorithm::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                Algorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algorithm::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                Algorithm::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algorithm, want) in table {
            assert_eq!(hex_of(algorithm, b"abc"), want, "{algorithm:?}");
            assert_eq!(want.len(), algorithm.hex_len());
        }
    }

    #[test]
    fn one_pass_checks_every_digest_and_names_the_one_that_differs() {
        let mut sums = Checksums::default();
        sums.add(Checksum::from_hex(Algorithm::Md5, "900150983cd24fb0d6963f7d28e17f72").unwrap());
        sums.add(Checksum::from_hex(Algorithm::Sha1, "A9993E364706816ABA3E25717850C26C9CD0D89D").unwrap());
        let mut hasher = Hasher::new(sums.algorithms()).unwrap();
        // In pieces: the digest is of the whole stream.
        hasher.update(b"a");
        hasher.update(b"bc");
        assert_eq!(sums.verify(Some(&hasher)), Ok(()));
        assert_eq!(
            hasher.digest(Algorithm::Sha256),
            None,
            "not asked for, not computed"
        );
        hasher.update(b"d");
        let mismatch = sums.verify(Some(&hasher)).unwrap_err();
        assert_eq!(mismatch.algorithm, Algorithm::Md5);
        assert_eq!(mismatch.expected, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(mismatch.actual, hex_of(Algorithm::Md5, b"abcd"));
        hasher.reset();
        hasher.update(b"abc");
        assert_eq!(sums.verify(Some(&hasher)), Ok(()), "reset starts from no bytes");
        assert!(sums.verify(None).is_err(), "nothing computed never passes");
        assert_eq!(Checksums::default().verify(None), Ok(()));
        assert!(Hasher::new(Checksums::default().algorithms()).is_none());
    }

    #[test]
    fn hex_must_have_the_algorithms_length() {
        for algorithm in Algorithm::ALL {
            let n = algorithm.hex_len();
            assert!(
                Checksum::from_hex(algorithm, &"a".repeat(n)).is_some(),
                "{algorithm:?}"
            );
            for bad in [
                "a".repeat(n - 1),
                "a".repeat(n + 1),
                "g".repeat(n),
                "é".repeat(n / 2),
                String::new(),
            ] {
                assert!(
                    Checksum::from_hex(algorithm, &bad).is_none(),
                    "{algorithm:?} {bad}"
                );
            }
        }
        let c = Checksum::from_hex(Algorithm::Sha1, &"AB".repeat(20)).unwrap();
        assert_eq!(c.to_string(), format!("sha1={}", "ab".repeat(20)));
        assert_eq!(Algorithm::from_key("SHA512"), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::from_key("sha3"), None);
    }

    #[test]
    fn sums_files_in_all_three_forms() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let sha512 = "ab".repeat(64);
        let text = format!(
            "\u{feff}# published sums\n\n{sha256}  a.iso\r\n{md5} *./sub/b bin\n\
             SHA512 (c.txt) = {sha512}\nMD5 (./d (1).txt) = {md5}\n\\{md5}  e\\nf\\\\g\n{md5}   lead space\n"
        );
        let mut sums = Sums::new();
        sums.add_text("SUMS", &text).unwrap();
        fn all(sums: &Sums, name: &str) -> String {
            let found = sums.get(name).unwrap_or_else(|| panic!("{name:?} in {sums:?}"));
            let all: Vec<String> = found.iter().map(Checksum::to_string).collect();
            all.join(" ")
        }
        let one = |name: &str| all(&sums, name);
        assert_eq!(one("a.iso"), format!("sha256={sha256}"));
        assert_eq!(one("sub/b bin"), format!("md5={md5}"));
        assert_eq!(one("c.txt"), format!("sha512={sha512}"));
        assert_eq!(one("d (1).txt"), format!("md5={md5}"));
        assert_eq!(one("e\nf\\g"), format!("md5={md5}"));
        assert_eq!(one(" lead space"), format!("md5={md5}"));
        assert_eq!(sums.len(), 6);
        // A second file adds to the first; the same digest is kept once.
        sums.add_text("MD5SUMS", &format!("{md5}  a.iso\n{sha256}  a.iso\n"))
            .unwrap();
        assert_eq!(all(&sums, "a.iso"), format!("md5={md5} sha256={sha256}"));
    }

    #[test]
    fn a_bad_sums_line_names_file_and_line() {
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for (text, why) in [
            ("abc  x\n", "not 32, 40, 64"),
            (&format!("{sha256}x  a\n") as &str, "not 32, 40, 64"),
            (&format!("{sha256} a\n"), "two spaces"),
            (&format!("{sha256}\n"), "expected \"HEX  NAME\""),
            (&format!("{sha256}  \n"), "no file name"),
            (&format!("{sha256}  ./\n"), "no file name"),
            ("SHA3 (a) = 00\n", "unknown algorithm"),
            (&format!("SHA512 (a) = {sha256}\n"), "SHA512 takes 128"),
            (&format!("\\{sha256}  a\\q\n"), "bad escape"),
        ] {
            let text = format!("# ok\n{text}");
            let err = Sums::new().add_text("S", &text).unwrap_err();
            assert_eq!((err.file.as_str(), err.line), ("S", 2), "{text:?}");
            assert!(err.why.contains(why), "{text:?}: {err}");
            assert!(err.to_string().starts_with("S:2: "), "{err}");
        }
    }
}
