//! `.netrc`: the login and password a user keeps for each host, in the format
//! ftp, curl, wget and aria2c read (`machine HOST login NAME password SECRET`,
//! and `default` for any other host).
//!
//! The file is parsed here and nothing else; the binary decides which file
//! (`~/.netrc`, `--netrc-file`, none with `--no-netrc`), and a request uses
//! an entry only for the host it names and only while the download is still
//! at its URL's origin (see [`crate::fetch`]): a redirect to another origin
//! never carries it. `macdef` macros are skipped; `account` is read and
//! ignored. Values may be double-quoted, with `\"` and `\\` inside, as curl
//! allows.

use std::fmt;

/// A login and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub login: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    /// Never the password: a `Config` printed in a test or a panic must not leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("password", &"***")
            .finish()
    }
}

/// A parsed `.netrc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netrc {
    /// `machine` entries in file order; the first for a host wins.
    machines: Vec<(String, Credentials)>,
    /// The `default` entry, for hosts no `machine` names.
    default: Option<Credentials>,
}

/// A `.netrc` that cannot be used, with the line where reading stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct NetrcError {
    /// 1-based line of the token that made no sense.
    pub line: usize,
    /// What was wrong, without any secret.
    pub reason: String,
}

impl Netrc {
    /// Parse the text of a `.netrc`.
    pub fn parse(text: &str) -> Result<Netrc, NetrcError> {
        let mut tokens = Tokens::new(text);
        let mut netrc = Netrc::default();
        // The entry being read: its host (`None` for `default`) and fields.
        let mut current: Option<(Option<String>, Option<String>, Option<String>)> = None;
        let finish = |entry: Option<(Option<String>, Option<String>, Option<String>)>, netrc: &mut Netrc| {
            if let Some((host, Some(login), password)) = entry {
                let credentials = Credentials {
                    login,
                    password: password.unwrap_or_default(),
                };
                match host {
                    Some(host) => netrc.machines.push((host.to_ascii_lowercase(), credentials)),
                    None => netrc.default = netrc.default.take().or(Some(credentials)),
                }
            }
        };
        while let Some((line, token)) = tokens.next()? {
            let mut value = |what: &str| -> Result<String, NetrcError> {
                match tokens.next()? {
                    Some((_, value)) => Ok(value),
                    None => Err(NetrcError {
                        line,
                        reason: format!("{what} without a value"),
                    }),
                }
            };
            match token.as_str() {
                "machine" => {
                    finish(current.take(), &mut netrc);
                    current = Some((Some(value("machine")?), None, None));
                }
                "default" => {
                    finish(current.take(), &mut netrc);
                    current = Some((None, None, None));
                }
                "login" | "password" | "account" => {
                    let field = token.clone();
                    let given = value(&field)?;
                    let Some(entry) = current.as_mut() else {
                        return Err(NetrcError {
                            line,
                            reason: format!("{field} before any machine or default"),
                        });
                    };
                    match field.as_str() {
                        "login" => entry.1 = Some(given),
                        "password" => entry.2 = Some(given),
                        _ => {}
                    }
                }
                "macdef" => {
                    finish(current.take(), &mut netrc);
                    value("macdef")?;
                    tokens.skip_macro();
                }
                // The word itself is not shown: after an unquoted password
                // with a blank in it, it is part of the password.
                _ => {
                    return Err(NetrcError {
                        line,
                        reason:
                            "unexpected word (expected machine, default, login, password, account or macdef)"
                                .into(),
                    });
                }
            }
        }
        finish(current, &mut netrc);
        Ok(netrc)
    }

    /// The credentials for `host`: its `machine` entry, else `default`.
    pub fn for_host(&self, host: &str) -> Option<&Credentials> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.machines
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(host))
            .map(|(_, credentials)| credentials)
            .or(self.default.as_ref())
    }
}

/// The words of a `.netrc` with their line numbers.
struct Tokens<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Tokens<'a> {
        Tokens { rest: text, line: 1 }
    }

    /// Skip blanks and `#` comments (a `#` that starts a word runs to the end of its line).
    fn skip_blanks(&mut self) {
        loop {
            let trimmed = self
                .rest
                .trim_start_matches(|c: char| c.is_whitespace() && c != '\n');
            if let Some(after) = trimmed.strip_prefix('\n') {
                self.line += 1;
                self.rest = after;
            } else if trimmed.starts_with('#') {
                self.rest = trimmed.find('\n').map_or("", |i| &trimmed[i..]);
            } else {
                self.rest = trimmed;
                return;
            }
        }
    }

    fn next(&mut self) -> Result<Option<(usize, String)>, NetrcError> {
        self.skip_blanks();
        if self.rest.is_empty() {
            return Ok(None);
        }
        let line = self.line;
        let Some(quoted) = self.rest.strip_prefix('"') else {
            let end = self.rest.find(char::is_whitespace).unwrap_or(self.rest.len());
            let word = self.rest[..end].to_string();
            self.rest = &self.rest[end..];
            return Ok(Some((line, word)));
        };
        let mut word = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &quoted[i + 1..];
                    return Ok(Some((line, word)));
                }
                '\\' => match chars.next() {
                    Some((_, c)) => word.push(c),
                    None => break,
                },
                '\n' => break,
                c => word.push(c),
            }
        }
        Err(NetrcError {
            line,
            reason: "a quoted value is not closed on its line".into(),
        })
    }

    /// A `macdef` body starts on the line after its name and runs to the
    /// first empty line.
    fn skip_macro(&mut self) {
        match self.rest.find('\n') {
            Some(end) => {
                self.rest = &self.rest[end + 1..];
                self.line += 1;
            }
            None => self.rest = "",
        }
        loop {
            let Some(end) = self.rest.find('\n') else {
                self.rest = "";
                return;
            };
            let this = &self.rest[..end];
            self.rest = &self.rest[end + 1..];
            self.line += 1;
            if this.trim().is_empty() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(login: &str, password: &str) -> Credentials {
        Credentials {
            login: login.into(),
            password: password.into(),
        }
    }

    #[test]
    fn machines_and_default_are_found_by_host() {
        let netrc = Netrc::parse(
            "# my hosts\nmachine files.example.com login alice password s3cret\n\
             machine Other.Example login bob\n  password \"with space \\\" quote\"\n\
             default login anonymous password guest@\n",
        )
        .expect("parses");
        assert_eq!(
            netrc.for_host("files.example.com"),
            Some(&creds("alice", "s3cret"))
        );
        assert_eq!(
            netrc.for_host("other.example"),
            Some(&creds("bob", "with space \" quote"))
        );
        assert_eq!(netrc.for_host("elsewhere"), Some(&creds("anonymous", "guest@")));
        let one_line = Netrc::parse("machine h login u password p").expect("parses");
        assert_eq!(one_line.for_host("h"), Some(&creds("u", "p")));
        assert_eq!(one_line.for_host("x"), None, "no default, no credentials");
    }

    #[test]
    fn the_first_entry_for_a_host_wins_and_macros_are_skipped() {
        let netrc = Netrc::parse(
            "machine h login first password 1\nmacdef init\ncd /pub\nmachine h login evil password 2\n\n\
             machine h login second password 3\nmachine ipv6 login v password 6 account x\n",
        )
        .expect("parses");
        assert_eq!(netrc.for_host("h"), Some(&creds("first", "1")));
        assert_eq!(netrc.machines.len(), 3, "the macro's words are not entries");
        assert_eq!(netrc.for_host("[ipv6]"), Some(&creds("v", "6")));
    }

    #[test]
    fn broken_files_name_the_line_and_never_the_secret() {
        for (text, line) in [
            ("machine h login u password", 1),
            ("login u password p", 1),
            ("machine h\nlogin u\npasword s3cret", 3),
            ("machine h login u password \"s3cret", 1),
        ] {
            let error = Netrc::parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
        }
        let error = Netrc::parse("machine h login u password my s3cret").expect_err("bad word");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(format!("{:?}", creds("u", "s3cret")).contains("***"));
        assert!(!format!("{:?}", creds("u", "s3cret")).contains("s3cret"));
    }
}
