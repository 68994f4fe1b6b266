//! Flag tokens of the meta commands: one letter, optionally followed by an argument
//! (`v`, `T60`, `Oabc`). Return flags are echoed in the order the client sent them, so the
//! raw run is kept beside the decoded values.

use super::number::{parse_i64, parse_u32, parse_u64};

/// Letters memcached 1.6 knows (others get `CLIENT_ERROR invalid flag`). `b` (base64 keys)
/// is deliberately absent: we do not decode base64 keys, and accepting the flag without
/// honouring it would store under the wrong key.
const KNOWN: &[u8] = b"cfhklqstuvxOPLTNREFCIMDJS";

/// Longest opaque token memcached echoes.
const MAX_OPAQUE: usize = 32;

/// The operation an `ms` (`M` flag) or `ma` performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaMode {
    /// `ms` `ME`: add.
    Add,
    /// `ms` `MA`: append.
    Append,
    /// `ms` `MP`: prepend.
    Prepend,
    /// `ms` `MR`: replace.
    Replace,
    /// `ms` `MS`: set (the default).
    Set,
    /// `ma` `MI` / `M+`: increment (the default).
    Increment,
    /// `ma` `MD` / `M-`: decrement.
    Decrement,
}

/// One flag letter with its (possibly empty) argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFlag<'a> {
    /// The letter.
    pub letter: u8,
    /// Everything after the letter.
    pub arg: &'a [u8],
}

/// The decoded flags of one meta command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaFlags<'a> {
    raw: &'a [u8],
    present: u64,
    /// `O`: echoed back verbatim.
    pub opaque: Option<&'a [u8]>,
    /// `T`: new TTL.
    pub ttl: Option<i64>,
    /// `N`: autovivify on miss with this TTL.
    pub vivify: Option<i64>,
    /// `R`: win the recache if the remaining TTL is below this.
    pub recache: Option<i64>,
    /// `C`: compare cas.
    pub compare_cas: Option<u64>,
    /// `E`: explicit new cas value.
    pub new_cas: Option<u64>,
    /// `F`: client flags to store.
    pub client_flags: Option<u32>,
    /// `M`: mode switch.
    pub mode_letter: Option<u8>,
    /// `D`: arithmetic delta.
    pub delta: Option<u64>,
    /// `J`: arithmetic initial value on autovivify.
    pub initial: Option<u64>,
}

/// Why a flag run was refused; the text is memcached's client error.
pub(crate) type FlagError = &'static str;

fn bit(letter: u8) -> u64 {
    match letter {
        b'a'..=b'z' => 1 << (letter - b'a'),
        b'A'..=b'Z' => 1 << (26 + letter - b'A'),
        _ => 0,
    }
}

impl<'a> MetaFlags<'a> {
    /// Decodes a run of space-separated flag tokens (possibly empty).
    pub fn parse(raw: &'a [u8]) -> Result<Self, FlagError> {
        let mut flags = MetaFlags {
            raw,
            ..Default::default()
        };
        for token in raw.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            let letter = token[0];
            let arg = &token[1..];
            if !KNOWN.contains(&letter) {
                return Err("CLIENT_ERROR invalid flag");
            }
            let b = bit(letter);
            if flags.present & b != 0 {
                return Err("CLIENT_ERROR duplicate flag");
            }
            flags.present |= b;
            let bad = "CLIENT_ERROR bad token in command line format";
            match letter {
                b'O' => {
                    if arg.len() > MAX_OPAQUE {
                        return Err("CLIENT_ERROR opaque token too long");
                    }
                    flags.opaque = Some(arg);
                }
                b'T' => flags.ttl = Some(parse_i64(arg).ok_or(bad)?),
                b'N' => flags.vivify = Some(parse_i64(arg).ok_or(bad)?),
                b'R' => flags.recache = Some(parse_i64(arg).ok_or(bad)?),
                b'C' => flags.compare_cas = Some(parse_u64(arg).ok_or(bad)?),
                b'E' => flags.new_cas = Some(parse_u64(arg).ok_or(bad)?),
                b'F' => flags.client_flags = Some(parse_u32(arg).ok_or(bad)?),
                b'D' => flags.delta = Some(parse_u64(arg).ok_or(bad)?),
                b'J' => flags.initial = Some(parse_u64(arg).ok_or(bad)?),
                b'M' => {
                    if arg.len() != 1 {
                        return Err("CLIENT_ERROR incorrect length for M token");
                    }
                    flags.mode_letter = Some(arg[0]);
                }
                _ => {}
            }
        }
        Ok(flags)
    }

    /// Whether the letter was given.
    pub fn has(&self, letter: u8) -> bool {
        self.present & bit(letter) != 0
    }

    /// The flags in the order they were sent.
    pub fn iter(&self) -> impl Iterator<Item = MetaFlag<'a>> + 'a {
        self.raw
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .map(|t| MetaFlag {
                letter: t[0],
                arg: &t[1..],
            })
    }

    /// The raw run as sent.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The `ms` mode (`M` flag); set when absent.
    pub fn set_mode(&self) -> Result<MetaMode, FlagError> {
        Ok(match self.mode_letter.map(|m| m.to_ascii_uppercase()) {
            None | Some(b'S') => MetaMode::Set,
            Some(b'E') => MetaMode::Add,
            Some(b'A') => MetaMode::Append,
            Some(b'P') => MetaMode::Prepend,
            Some(b'R') => MetaMode::Replace,
            Some(_) => return Err("CLIENT_ERROR invalid mode for ms M token"),
        })
    }

    /// The `ma` mode (`M` flag); increment when absent.
    pub fn arithmetic_mode(&self) -> Result<MetaMode, FlagError> {
        Ok(match self.mode_letter {
            None | Some(b'I' | b'i' | b'+') => MetaMode::Increment,
            Some(b'D' | b'd' | b'-') => MetaMode::Decrement,
            Some(_) => return Err("CLIENT_ERROR invalid mode for ma M token"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values_and_keeps_order() {
        let f = MetaFlags::parse(b"v T60 F7 k O123 q").unwrap();
        assert!(f.has(b'v') && f.has(b'k') && f.has(b'q') && !f.has(b'c'));
        assert_eq!(f.ttl, Some(60));
        assert_eq!(f.client_flags, Some(7));
        assert_eq!(f.opaque, Some(&b"123"[..]));
        let letters: Vec<u8> = f.iter().map(|f| f.letter).collect();
        assert_eq!(letters, b"vTFkOq");
    }

    #[test]
    fn refuses_unknown_duplicate_and_bad_tokens() {
        assert_eq!(MetaFlags::parse(b"z"), Err("CLIENT_ERROR invalid flag"));
        assert_eq!(MetaFlags::parse(b"v v"), Err("CLIENT_ERROR duplicate flag"));
        assert_eq!(
            MetaFlags::parse(b"Tabc"),
            Err("CLIENT_ERROR bad token in command line format")
        );
        assert_eq!(
            MetaFlags::parse(b"MEE"),
            Err("CLIENT_ERROR incorrect length for M token")
        );
        let long = [b"O".as_slice(), &[b'x'; 33]].concat();
        assert_eq!(
            MetaFlags::parse(&long),
            Err("CLIENT_ERROR opaque token too long")
        );
    }

    #[test]
    fn modes() {
        assert_eq!(
            MetaFlags::parse(b"ME").unwrap().set_mode(),
            Ok(MetaMode::Add)
        );
        assert_eq!(MetaFlags::parse(b"").unwrap().set_mode(), Ok(MetaMode::Set));
        assert!(MetaFlags::parse(b"MX").unwrap().set_mode().is_err());
        assert_eq!(
            MetaFlags::parse(b"M-").unwrap().arithmetic_mode(),
            Ok(MetaMode::Decrement)
        );
    }
}
