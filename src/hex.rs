//! Lowercase hex text of bytes: queue entry ids and SHA-256 checksums.

/// `bytes` as lowercase hex, two digits per byte.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_lowercase_digits_per_byte() {
        let cases: &[(&[u8], &str)] = &[
            (&[], ""),
            (&[0x00], "00"),
            (&[0x0f], "0f"),
            (&[0xa0, 0xff], "a0ff"),
            (
                &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
                "0123456789abcdef",
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(encode(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn agrees_with_format() {
        let bytes: Vec<u8> = (0..=255).collect();
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(encode(&bytes), formatted);
    }
}
