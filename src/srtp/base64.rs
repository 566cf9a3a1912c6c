//! Strict standard-alphabet base64 (RFC 4648 §4), as RFC 4568 key material
//! uses it. Decoding writes into a caller-provided buffer so secret bytes
//! never land in a growable allocation; nothing here echoes its input.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base64Error {
    /// A character outside the alphabet, misplaced padding, an impossible
    /// length, or non-zero bits after the last full byte.
    Invalid,
    /// Valid so far but decodes to more bytes than the buffer holds; the
    /// value is the decoded length.
    TooLong(usize),
}

fn value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes `input` into the front of `out` and returns the decoded length.
/// Padding is optional, but when present the input length must be a multiple
/// of four. On error `out` may hold a partial decode: callers wipe it.
pub(crate) fn decode(input: &[u8], out: &mut [u8]) -> Result<usize, Base64Error> {
    let unpadded = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="))
        .unwrap_or(input);
    if unpadded.len() != input.len() && input.len() % 4 != 0 {
        return Err(Base64Error::Invalid);
    }
    // 4 characters carry 3 bytes; a lone trailing character carries none.
    let (full, rest) = (unpadded.len() / 4, unpadded.len() % 4);
    if rest == 1 {
        return Err(Base64Error::Invalid);
    }
    let decoded = full * 3 + rest.saturating_sub(1);
    if decoded > out.len() {
        // Still report a bad character before a bad length: it is the more
        // useful message for a mangled key.
        if unpadded.iter().any(|&c| value(c).is_none()) {
            return Err(Base64Error::Invalid);
        }
        return Err(Base64Error::TooLong(decoded));
    }
    let mut written = 0;
    for chunk in unpadded.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c).ok_or(Base64Error::Invalid)?;
        }
        // Left-align a short final chunk to 24 bits.
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = chunk.len() - 1;
        let be = acc.to_be_bytes();
        // The bits below the last whole byte must be zero (canonical form).
        let used_bits = 8 * bytes as u32;
        if used_bits < 24 && acc & ((1 << (24 - used_bits)) - 1) != 0 {
            return Err(Base64Error::Invalid);
        }
        out[written..written + bytes].copy_from_slice(&be[1..1 + bytes]);
        written += bytes;
    }
    Ok(written)
}

/// Encodes with padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut b = [0u8; 3];
        b[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Vec<u8>, Base64Error> {
        let mut buf = [0u8; 64];
        decode(s.as_bytes(), &mut buf).map(|n| buf[..n].to_vec())
    }

    #[test]
    fn rfc4648_section10_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(dec(enc).unwrap(), plain.as_bytes());
            // Padding is optional on input.
            assert_eq!(dec(enc.trim_end_matches('=')).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "Zg=", "Z", "Zm9vY", "Zm 9v", "Zm9v\n", "Zm-v", "Zm_v", "Zh==", "Zm9=", "=Zm9", "Zg==Zg==",
        ] {
            assert_eq!(dec(bad), Err(Base64Error::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn too_long_reports_the_decoded_length() {
        let mut small = [0u8; 2];
        assert_eq!(decode(b"Zm9vYmFy", &mut small), Err(Base64Error::TooLong(6)));
        assert_eq!(decode(b"Zm9v!mFy", &mut small), Err(Base64Error::Invalid));
    }

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0u8..=63).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        for n in 0..=data.len() {
            assert_eq!(dec(&encode(&data[..n])).unwrap(), &data[..n]);
        }
    }
}
