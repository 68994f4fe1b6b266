//! Requests a client sends: the [`Request`] enum and its encoder.

use super::key::MetaKey;
use super::meta::MetaFlags;
use super::number::push_u64;

/// The six storage commands that carry a data block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCommand {
    /// Store unconditionally.
    Set,
    /// Store only if the key is absent.
    Add,
    /// Store only if the key is present.
    Replace,
    /// Add the data after the existing value.
    Append,
    /// Add the data before the existing value.
    Prepend,
    /// Store only if the item's cas unique still matches.
    Cas,
}

impl StoreCommand {
    /// The command's name on the wire.
    pub fn name(self) -> &'static [u8] {
        match self {
            Self::Set => b"set",
            Self::Add => b"add",
            Self::Replace => b"replace",
            Self::Append => b"append",
            Self::Prepend => b"prepend",
            Self::Cas => b"cas",
        }
    }

    pub(crate) fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"set" => Self::Set,
            b"add" => Self::Add,
            b"replace" => Self::Replace,
            b"append" => Self::Append,
            b"prepend" => Self::Prepend,
            b"cas" => Self::Cas,
            _ => return None,
        })
    }
}

/// The keys of a multi-key retrieval, kept as the space-separated run they arrived in so
/// that a get of thousands of keys allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    raw: &'a [u8],
}

impl<'a> Keys<'a> {
    /// Wraps a run of keys separated by spaces. The parser only builds it from validated
    /// keys; a client builds it from keys it checked with [`super::valid_key`].
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw }
    }

    /// The keys in order (empty tokens from repeated spaces are skipped).
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.raw.split(|&b| b == b' ').filter(|k| !k.is_empty())
    }

    /// The raw run as sent.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// One command from client to server, borrowing its key and data from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get` (without cas) or `gets` (with cas).
    Get {
        /// The keys to fetch.
        keys: Keys<'a>,
        /// `gets`: return cas uniques.
        with_cas: bool,
    },
    /// `gat` / `gats`: fetch and update the expiry.
    GetAndTouch {
        /// New expiry (memcached's exptime rules).
        exptime: i64,
        /// The keys to fetch.
        keys: Keys<'a>,
        /// `gats`: return cas uniques.
        with_cas: bool,
    },
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store {
        /// Which of the six.
        command: StoreCommand,
        /// The key.
        key: &'a [u8],
        /// Opaque client flags.
        flags: u32,
        /// Expiry (memcached's exptime rules).
        exptime: i64,
        /// The data block, without its trailing CRLF.
        data: &'a [u8],
        /// The compare value of `cas`; 0 for the others.
        cas_unique: u64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// A storage command whose data block is over the item size limit. The server answers
    /// `SERVER_ERROR object too large for cache` (a `set` also drops the old value, as
    /// memcached does) and the data block is skipped (see [`super::Parsed::swallow`]).
    StoreTooLarge {
        /// Which command it was.
        command: StoreCommand,
        /// The key.
        key: &'a [u8],
        /// Suppress the reply.
        noreply: bool,
    },
    /// `delete <key>`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Suppress the reply.
        noreply: bool,
    },
    /// `incr` / `decr`.
    Arithmetic {
        /// The key.
        key: &'a [u8],
        /// Amount to add or subtract.
        delta: u64,
        /// `decr` (saturates at 0) rather than `incr` (wraps at 2^64).
        decrement: bool,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `touch <key> <exptime>`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// New expiry.
        exptime: i64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `flush_all [delay]`.
    FlushAll {
        /// Seconds (or absolute time) until the flush takes effect; 0 = now.
        delay: i64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `verbosity <level>`.
    Verbosity {
        /// Requested level.
        level: u32,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `stats [group]`.
    Stats {
        /// The group (`settings`, `slabs`, `items`, …), none for the general counters.
        group: Option<&'a [u8]>,
    },
    /// `quit`: the server closes the connection without a reply.
    Quit,
    /// `shutdown`: refused, as memcached does unless started with `-A`.
    Shutdown,
    /// `mg <key> <flags>*`.
    MetaGet {
        /// The key (decoded, with `b`).
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// `ms <key> <datalen> <flags>*` + data.
    MetaSet {
        /// The key (decoded, with `b`).
        key: MetaKey<'a>,
        /// The data block, without its trailing CRLF.
        data: &'a [u8],
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// An `ms` whose data block is over the item size limit (the block is skipped).
    MetaSetTooLarge {
        /// The key (decoded, with `b`).
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// `md <key> <flags>*`.
    MetaDelete {
        /// The key (decoded, with `b`).
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// `ma <key> <flags>*`.
    MetaArithmetic {
        /// The key (decoded, with `b`).
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// `mn`: answered with `MN`, a pipeline terminator.
    MetaNoop,
    /// `me <key> [b]`: debug dump of one item.
    MetaDebug {
        /// The key (decoded, with `b`).
        key: MetaKey<'a>,
    },
}

impl Request<'_> {
    /// Appends the request's wire form (with its data block, if any) to `out`.
    ///
    /// [`Request::StoreTooLarge`] and [`Request::MetaSetTooLarge`] have no data to send and
    /// encode as a zero-length store; they exist only on the server side.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Get { keys, with_cas } => {
                out.extend_from_slice(if *with_cas { b"gets " } else { b"get " });
                out.extend_from_slice(keys.as_bytes());
            }
            Self::GetAndTouch {
                exptime,
                keys,
                with_cas,
            } => {
                out.extend_from_slice(if *with_cas { b"gats " } else { b"gat " });
                push_i64(out, *exptime);
                out.push(b' ');
                out.extend_from_slice(keys.as_bytes());
            }
            Self::Store {
                command,
                key,
                flags,
                exptime,
                data,
                cas_unique,
                noreply,
            } => {
                out.extend_from_slice(command.name());
                out.push(b' ');
                out.extend_from_slice(key);
                out.push(b' ');
                push_u64(out, u64::from(*flags));
                out.push(b' ');
                push_i64(out, *exptime);
                out.push(b' ');
                push_u64(out, data.len() as u64);
                if *command == StoreCommand::Cas {
                    out.push(b' ');
                    push_u64(out, *cas_unique);
                }
                noreply_suffix(out, *noreply);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
            }
            Self::StoreTooLarge {
                command,
                key,
                noreply,
            } => {
                out.extend_from_slice(command.name());
                out.push(b' ');
                out.extend_from_slice(key);
                out.extend_from_slice(b" 0 0 0");
                if *command == StoreCommand::Cas {
                    out.extend_from_slice(b" 0");
                }
                noreply_suffix(out, *noreply);
                out.extend_from_slice(b"\r\n");
            }
            Self::Delete { key, noreply } => {
                out.extend_from_slice(b"delete ");
                out.extend_from_slice(key);
                noreply_suffix(out, *noreply);
            }
            Self::Arithmetic {
                key,
                delta,
                decrement,
                noreply,
            } => {
                out.extend_from_slice(if *decrement { b"decr " } else { b"incr " });
                out.extend_from_slice(key);
                out.push(b' ');
                push_u64(out, *delta);
                noreply_suffix(out, *noreply);
            }
            Self::Touch {
                key,
                exptime,
                noreply,
            } => {
                out.extend_from_slice(b"touch ");
                out.extend_from_slice(key);
                out.push(b' ');
                push_i64(out, *exptime);
                noreply_suffix(out, *noreply);
            }
            Self::FlushAll { delay, noreply } => {
                out.extend_from_slice(b"flush_all ");
                push_i64(out, *delay);
                noreply_suffix(out, *noreply);
            }
            Self::Version => out.extend_from_slice(b"version"),
            Self::Verbosity { level, noreply } => {
                out.extend_from_slice(b"verbosity ");
                push_u64(out, u64::from(*level));
                noreply_suffix(out, *noreply);
            }
            Self::Stats { group } => {
                out.extend_from_slice(b"stats");
                if let Some(g) = group {
                    out.push(b' ');
                    out.extend_from_slice(g);
                }
            }
            Self::Quit => out.extend_from_slice(b"quit"),
            Self::Shutdown => out.extend_from_slice(b"shutdown"),
            Self::MetaGet { key, flags } => meta_line(out, b"mg ", key, None, flags),
            Self::MetaSet { key, data, flags } => {
                meta_line(out, b"ms ", key, Some(data.len()), flags);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
            }
            Self::MetaSetTooLarge { key, flags } => meta_line(out, b"ms ", key, Some(0), flags),
            Self::MetaDelete { key, flags } => meta_line(out, b"md ", key, None, flags),
            Self::MetaArithmetic { key, flags } => meta_line(out, b"ma ", key, None, flags),
            Self::MetaNoop => out.extend_from_slice(b"mn"),
            Self::MetaDebug { key } => {
                out.extend_from_slice(b"me ");
                key.encode(out);
                if key.is_binary() {
                    out.extend_from_slice(b" b");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn meta_line(
    out: &mut Vec<u8>,
    cmd: &[u8],
    key: &MetaKey<'_>,
    len: Option<usize>,
    flags: &MetaFlags<'_>,
) {
    out.extend_from_slice(cmd);
    key.encode(out);
    if let Some(len) = len {
        out.push(b' ');
        push_u64(out, len as u64);
    }
    if !flags.as_bytes().is_empty() {
        out.push(b' ');
        out.extend_from_slice(flags.as_bytes());
    }
}

fn noreply_suffix(out: &mut Vec<u8>, noreply: bool) {
    if noreply {
        out.extend_from_slice(b" noreply");
    }
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}
