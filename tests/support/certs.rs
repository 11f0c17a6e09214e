//! Test certificates made with the `openssl` command-line tool at test time:
//! a CA, leaves it signs, and the extensions a server or client leaf needs.
//! No key material is kept in the repository.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

/// A new P-256 key, unencrypted, for `openssl req`.
const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Extensions of a server certificate valid for the names in `san`
/// (e.g. `IP:127.0.0.1,DNS:localhost`).
pub fn server_ext(san: &str) -> String {
    format!(
        "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
}

/// Extensions of a client certificate.
pub const CLIENT_EXT: &str =
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";

/// Runs `openssl ARGS` in `dir`; panics with its output if it fails, and with
/// an install hint if the tool is missing (the TLS tests fail, never skip).
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            if e.kind() == ErrorKind::NotFound {
                panic!(
                    "the TLS tests need the `openssl` command-line tool, which was not found on PATH \
                     ({e}); install openssl (e.g. `apt-get install openssl`)"
                )
            }
            panic!("cannot run openssl {args:?}: {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed ({})\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA `NAME.pem` (`CA:TRUE`) with its key `NAME.key` in `dir`, subject `cn`.
pub fn make_ca(dir: &Path, name: &str, cn: &str) {
    let (key, pem, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={cn}"));
    let mut ca = vec!["req", "-x509"];
    ca.extend(EC);
    ca.extend([
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
}

/// `NAME.pem` and `NAME.key` in `dir`: a leaf signed by `ca.pem`/`ca.key`
/// with subject `cn` and the extensions `ext` (see [`server_ext`], [`CLIENT_EXT`]).
pub fn make_leaf(dir: &Path, name: &str, cn: &str, ext: &str) {
    let (key, csr, pem, extfile, subject) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
        format!("/CN={cn}"),
    );
    let mut req = vec!["req"];
    req.extend(EC);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(dir, &req);
    fs::write(dir.join(&extfile), ext).expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extfile,
            "-out",
            &pem,
        ],
    );
}
