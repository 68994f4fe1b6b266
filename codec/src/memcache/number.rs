//! Decimal numbers in both directions.
//!
//! - [`parse_u64`] and friends are strict (digits only, no overflow): what a server
//!   writes, read by a client.
//! - [`read_u64`], [`read_u32`] and [`read_i32`] read a request token as memcached 1.6's
//!   `safe_strtoull`, `safe_strtoul` and `safe_strtol` do (C `strtoul`: leading white
//!   space, an optional sign, digits, then the end, a NUL or white space, after which
//!   anything is ignored; `-0` is zero, other negative unsigned numbers are refused), except
//!   that where memcached silently changes the number (a 64-bit value truncated to 32 bits,
//!   a negation wrapped modulo 2^64) they refuse it.

/// Parses an unsigned 64-bit decimal; `None` on anything but 1..=20 digits that fit.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parses an unsigned 32-bit decimal (client flags).
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Parses a signed decimal that fits in 32 bits (exptime, lengths), returned widened.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let v = parse_u64(digits)?;
    let v = if neg {
        -i64::try_from(v).ok()?
    } else {
        i64::try_from(v).ok()?
    };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&v)
        .then_some(v)
}

/// C's `isspace` in the C locale.
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C `strtoull` in base 10 with memcached's end check: `(negative, magnitude)`, or `None`
/// when there are no digits, the magnitude overflows 64 bits (`ERANGE`), or the digits are
/// followed by something other than the end of the token, a NUL or white space.
fn scan(token: &[u8]) -> Option<(bool, u64)> {
    let mut i = token.iter().take_while(|&&b| c_space(b)).count();
    let negative = token.get(i) == Some(&b'-');
    if matches!(token.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = token[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &d in &token[i..i + digits] {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    match token.get(i + digits) {
        None | Some(0) => {}
        Some(&b) if c_space(b) => {}
        Some(_) => return None,
    }
    Some((negative, magnitude))
}

/// An unsigned 64-bit request number (`safe_strtoull`): a cas unique, an `incr` delta.
/// memcached also refuses a value of 2^63 or more when the token holds a `-` anywhere.
pub fn read_u64(token: &[u8]) -> Option<u64> {
    match scan(token)? {
        (true, 0) => Some(0),
        // memcached reads -N as 2^64 - N: refused for N <= 2^63, silently wrapped above.
        (true, _) => None,
        (false, v) if v > i64::MAX as u64 && token.contains(&b'-') => None,
        (false, v) => Some(v),
    }
}

/// An unsigned 32-bit request number (`safe_strtoul`): client flags, a verbosity level.
/// memcached truncates a larger 64-bit value to 32 bits; refused here.
pub fn read_u32(token: &[u8]) -> Option<u32> {
    read_u64(token).and_then(|v| u32::try_from(v).ok())
}

/// A signed 32-bit request number (`safe_strtol`): an exptime, a data length.
/// memcached truncates a 64-bit value outside the 32-bit range; refused here.
pub fn read_i32(token: &[u8]) -> Option<i32> {
    let (negative, magnitude) = scan(token)?;
    let v = i64::try_from(magnitude).ok()?;
    i32::try_from(if negative { -v } else { v }).ok()
}

/// Appends the decimal form of `v` without allocating.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_bounds() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
    }

    #[test]
    fn signed_bounds() {
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"2147483647"), Some(2147483647));
        assert_eq!(parse_i64(b"2147483648"), None);
        assert_eq!(parse_i64(b"-2147483648"), Some(-2147483648));
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"--1"), None);
    }

    /// Tokens as memcached 1.6.18 reads them (measured), with the three readers' results.
    /// `W` marks a value memcached accepts after silently changing it: refused here.
    #[test]
    fn request_numbers_read_as_memcached_reads_them() {
        const W: Option<u64> = None;
        type Row = (&'static [u8], Option<u64>, Option<u32>, Option<i32>);
        let table: &[Row] = &[
            (b"0", Some(0), Some(0), Some(0)),
            (b"42", Some(42), Some(42), Some(42)),
            (b"007", Some(7), Some(7), Some(7)),
            (b"+5", Some(5), Some(5), Some(5)),
            (b"-0", Some(0), Some(0), Some(0)),
            (b"+0", Some(0), Some(0), Some(0)),
            (b"-1", None, None, Some(-1)),
            (b"-9223372036854775808", None, None, None),
            // strtoull negates modulo 2^64: 1, which memcached accepts.
            (b"-18446744073709551615", W, None, None),
            (b"\t5", Some(5), Some(5), Some(5)),
            (b"5\r", Some(5), Some(5), Some(5)),
            (b"5\tjunk", Some(5), Some(5), Some(5)),
            (b"5\0junk", Some(5), Some(5), Some(5)),
            (b"5x", None, None, None),
            (b"0x10", None, None, None),
            (b"", None, None, None),
            (b"+", None, None, None),
            (b"-", None, None, None),
            (b"+-1", None, None, None),
            (b" 5", Some(5), Some(5), Some(5)),
            (b"4294967295", Some(4_294_967_295), Some(u32::MAX), None),
            // memcached: flags 0, exptime 0 (truncated to 32 bits).
            (b"4294967296", Some(4_294_967_296), None, None),
            (
                b"2147483647",
                Some(2_147_483_647),
                Some(2_147_483_647),
                Some(i32::MAX),
            ),
            (
                b"2147483648",
                Some(2_147_483_648),
                Some(2_147_483_648),
                None,
            ),
            (b"-2147483648", None, None, Some(i32::MIN)),
            (b"-2147483649", None, None, None),
            (b"18446744073709551615", Some(u64::MAX), None, None),
            (b"18446744073709551615\t-", None, None, None),
            (b"18446744073709551616", None, None, None),
            (b"99999999999999999999", None, None, None),
        ];
        for &(token, u64_, u32_, i32_) in table {
            let shown = token.escape_ascii();
            assert_eq!(read_u64(token), u64_, "u64 {shown}");
            assert_eq!(read_u32(token), u32_, "u32 {shown}");
            assert_eq!(read_i32(token), i32_, "i32 {shown}");
        }
    }

    #[test]
    fn formatting() {
        for v in [0, 1, 9, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}
