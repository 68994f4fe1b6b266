//! Flag tokens of the meta commands: one letter, optionally followed by an argument
//! (`v`, `T60`, `Oabc`). Return flags are echoed in the order the client sent them, so the
//! raw run is kept beside the decoded values.
//!
//! Refusals follow memcached 1.6.18's `_meta_flag_preparse`: the tokens are read in order;
//! a repeated first byte (or one of 127 and above) stops at once with `duplicate flag`, an
//! unknown letter with `invalid flag`; a bad argument only marks the run as failed and
//! names its own error, the last such name winning (a bad `F` names none, leaving `bad
//! command line format`). `ms` and `mg` send that text, `md` and `ma` always send
//! `invalid or duplicate flag` (see the parser). A too-long opaque is not a flag error:
//! each command checks it where memcached does ([`MetaFlag::opaque_too_long`]).

use super::number::{read_i32, read_u32, read_u64};

/// Letters memcached 1.6 knows (others get `CLIENT_ERROR invalid flag`). `E`, `x` and `S`
/// are memcached 1.6.21's; the rest are 1.6.18's.
const KNOWN: &[u8] = b"bcfhklqstuvxOPLTNREFCIMDJS";

/// Longest opaque token (`O` and its argument) memcached echoes.
const MAX_OPAQUE_TOKEN: usize = 32;

const DUPLICATE: &str = "CLIENT_ERROR duplicate flag";
const INVALID: &str = "CLIENT_ERROR invalid flag";
const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
const BAD_KEY: &str = "CLIENT_ERROR error decoding key";
const BAD_M: &str = "CLIENT_ERROR incorrect length for M token";
const BAD_INITIAL: &str = "CLIENT_ERROR invalid numeric initial value";
const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta value";

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

impl MetaFlag<'_> {
    /// An `O` token longer than memcached echoes (32 bytes, letter included), which it
    /// answers with `CLIENT_ERROR opaque token too long`.
    pub fn opaque_too_long(&self) -> bool {
        self.letter == b'O' && 1 + self.arg.len() > MAX_OPAQUE_TOKEN
    }
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
    /// Decodes a run of space-separated flag tokens (possibly empty). A `b` is taken as
    /// given; the parser checks that the key decodes ([`MetaFlags::parse_checked`]).
    pub fn parse(raw: &'a [u8]) -> Result<Self, FlagError> {
        Self::parse_checked(raw, || true)
    }

    /// [`MetaFlags::parse`], with `key_decodes` asked when the `b` token is reached, so
    /// that an undecodable key takes its place among the errors as in memcached.
    pub(crate) fn parse_checked(
        raw: &'a [u8],
        mut key_decodes: impl FnMut() -> bool,
    ) -> Result<Self, FlagError> {
        let mut flags = MetaFlags {
            raw,
            ..Default::default()
        };
        let mut failed: Option<FlagError> = None;
        for token in raw.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            let letter = token[0];
            let arg = &token[1..];
            let b = bit(letter);
            if letter >= 127 || flags.present & b != 0 {
                return Err(DUPLICATE);
            }
            if !KNOWN.contains(&letter) {
                return Err(INVALID);
            }
            flags.present |= b;
            let error = match letter {
                b'b' => (!key_decodes()).then_some(BAD_KEY),
                b'O' => {
                    flags.opaque = Some(arg);
                    None
                }
                b'T' | b'N' | b'R' => match read_i32(arg).map(i64::from) {
                    Some(v) => {
                        *match letter {
                            b'T' => &mut flags.ttl,
                            b'N' => &mut flags.vivify,
                            _ => &mut flags.recache,
                        } = Some(v);
                        None
                    }
                    None => Some(BAD_TOKEN),
                },
                // A bad `F` fails the run without naming an error of its own.
                b'F' => read_u32(arg).map_or(Some(failed.unwrap_or(BAD_FORMAT)), |v| {
                    flags.client_flags = Some(v);
                    None
                }),
                b'C' => read_u64(arg).map_or(Some(BAD_TOKEN), |v| {
                    flags.compare_cas = Some(v);
                    None
                }),
                b'E' => read_u64(arg).map_or(Some(BAD_TOKEN), |v| {
                    flags.new_cas = Some(v);
                    None
                }),
                b'D' => read_u64(arg).map_or(Some(BAD_DELTA), |v| {
                    flags.delta = Some(v);
                    None
                }),
                b'J' => read_u64(arg).map_or(Some(BAD_INITIAL), |v| {
                    flags.initial = Some(v);
                    None
                }),
                b'M' => match arg {
                    [mode] => {
                        flags.mode_letter = Some(*mode);
                        None
                    }
                    _ => Some(BAD_M),
                },
                _ => None,
            };
            if error.is_some() {
                failed = error;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(flags),
        }
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
    fn refuses_as_memcached_1_6_18() {
        // Each row was sent to memcached 1.6.18 as `mg a <flags>` (the text `mg` sends).
        let table: &[(&[u8], &str)] = &[
            (b"z", INVALID),
            (b"1", INVALID),
            (b"v v", DUPLICATE),
            (b"\x80", DUPLICATE),
            (b"v \xff", DUPLICATE),
            (b"Tabc", BAD_TOKEN),
            (b"T", BAD_TOKEN),
            (b"Cx", BAD_TOKEN),
            (b"C-1", BAD_TOKEN),
            (b"Fx", BAD_FORMAT),
            (b"F-1", BAD_FORMAT),
            (b"Jx", BAD_INITIAL),
            (b"Dx", BAD_DELTA),
            (b"MEE", BAD_M),
            (b"M", BAD_M),
            // The last bad argument names the error; a bad F keeps an earlier name.
            (b"Tx Jx", BAD_INITIAL),
            (b"Jx Tx", BAD_TOKEN),
            (b"Tx Fx", BAD_TOKEN),
            (b"Fx Tx", BAD_TOKEN),
            // Unknown and repeated flags stop at once, whatever came before.
            (b"Tx z", INVALID),
            (b"Tx v v", DUPLICATE),
            (b"z v v", INVALID),
        ];
        for &(raw, want) in table {
            assert_eq!(MetaFlags::parse(raw), Err(want), "{}", raw.escape_ascii());
        }
        let check = |raw, decodes| MetaFlags::parse_checked(raw, || decodes);
        assert_eq!(check(b"b k", false), Err(BAD_KEY));
        assert_eq!(check(b"Tx b", false), Err(BAD_KEY));
        assert_eq!(check(b"b Tx", false), Err(BAD_TOKEN));
        assert!(check(b"b k", true).is_ok());
        // memcached truncates this to T0; refused here (see `number`).
        assert_eq!(MetaFlags::parse(b"T4294967296"), Err(BAD_TOKEN));
    }

    #[test]
    fn numbers_read_as_memcached_reads_them() {
        let f = MetaFlags::parse(b"T+5 F+3 C-0 D007 J+0 N-1 R\t9").unwrap();
        assert_eq!(f.ttl, Some(5));
        assert_eq!(f.client_flags, Some(3));
        assert_eq!(f.compare_cas, Some(0));
        assert_eq!(f.delta, Some(7));
        assert_eq!(f.initial, Some(0));
        assert_eq!(f.vivify, Some(-1));
        assert_eq!(f.recache, Some(9));
    }

    #[test]
    fn opaque_length_is_checked_by_the_commands() {
        let o31 = [b"O".as_slice(), &[b'1'; 31]].concat();
        let o32 = [b"O".as_slice(), &[b'1'; 32]].concat();
        let opaque = |raw| MetaFlags::parse(raw).unwrap().iter().next().unwrap();
        assert!(!opaque(&o31).opaque_too_long());
        assert!(opaque(&o32).opaque_too_long());
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
