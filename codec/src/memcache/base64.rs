//! Base64 as memcached 1.6 applies it to meta command keys (the `b` flag): standard
//! alphabet, padded output; a decoder as lenient as memcached's (`base64.c`).
//!
//! memcached's decoder skips every byte outside the alphabet, needs a positive multiple
//! of four alphabet bytes (`=` counts as one), and stops after the first group that holds
//! padding: one `=` drops a byte of that group, two drop two, three or four make the whole
//! key undecodable. So `Zm9v`, `!Zm9v!` and `Zg==Zm9v` decode (to `foo`, `foo`, `f`),
//! while `abc`, `Zg===` and `Zm9v====` do not. The reimplementation is ours; the rules
//! were read from memcached's source and checked against memcached 1.6.18.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 6-bit value of an alphabet byte (`=` reads as 0), `None` for a byte memcached skips.
fn sextet(b: u8) -> Option<u8> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        b'=' => 0,
        _ => return None,
    })
}

/// Decodes `src` into `out` by memcached's rules; the decoded length, or `None` where
/// memcached fails (it then answers a client error). `out` must hold `src.len() / 4 * 3`
/// bytes; the result is never empty.
pub(crate) fn decode_into(src: &[u8], out: &mut [u8]) -> Option<usize> {
    let count = src.iter().filter(|&&b| sextet(b).is_some()).count();
    if count == 0 || count % 4 != 0 {
        return None;
    }
    let mut len = 0;
    let mut group = [0u8; 4];
    let mut filled = 0;
    let mut pad = 0;
    for &b in src {
        let Some(v) = sextet(b) else { continue };
        if b == b'=' {
            pad += 1;
        }
        group[filled] = v;
        filled += 1;
        if filled < 4 {
            continue;
        }
        filled = 0;
        out[len] = (group[0] << 2) | (group[1] >> 4);
        out[len + 1] = (group[1] << 4) | (group[2] >> 2);
        out[len + 2] = (group[2] << 6) | group[3];
        len += 3;
        if pad > 0 {
            if pad > 2 {
                return None;
            }
            len -= pad;
            break;
        }
    }
    Some(len)
}

/// Appends the padded base64 form of `src`.
pub(crate) fn encode(src: &[u8], out: &mut Vec<u8>) {
    for chunk in src.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(src: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; src.len() / 4 * 3 + 3];
        decode_into(src, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn decodes_as_memcached_1_6_18() {
        // Every row was sent to memcached 1.6.18 as `mg <key> b k`: a decodable key is
        // echoed re-encoded, an undecodable one answered `CLIENT_ERROR error decoding key`.
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"Zm9v", Some(b"foo")),
            (b"Zm9vMQ==", Some(b"foo1")),
            (b"Zg==", Some(b"f")),
            (b"Zm8=", Some(b"fo")),
            (b"AAEC", Some(b"\x00\x01\x02")),
            (b"!!Zm9v!!", Some(b"foo")),
            (b"Zg==Zm9v", Some(b"f")),
            (b"=Zm9", Some(b"\x01\x99")),
            (b"abc", None),
            (b"a", None),
            (b"", None),
            (b"!!!!", None),
            (b"Zg===", None),
            (b"Zm9v====", None),
            (b"Z===", None),
            (b"====", None),
        ];
        for &(src, want) in table {
            assert_eq!(decode(src).as_deref(), want, "{}", src.escape_ascii());
        }
    }

    #[test]
    fn encodes_with_padding_and_round_trips() {
        for (src, want) in [
            (&b""[..], &b""[..]),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foo1", b"Zm9vMQ=="),
            (b"\x00\x01\x02", b"AAEC"),
            (b"\xff\xfe", b"//4="),
        ] {
            let mut out = Vec::new();
            encode(src, &mut out);
            assert_eq!(out, want);
            if !src.is_empty() {
                assert_eq!(decode(&out).as_deref(), Some(src));
            }
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        encode(&all, &mut out);
        assert_eq!(decode(&out), Some(all));
    }
}
