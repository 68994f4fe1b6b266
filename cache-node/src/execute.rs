//! One request against the store, its reply appended to the connection's output buffer.
//! Pure and synchronous: no I/O, the time is an argument, so every reply byte is testable.

use std::sync::atomic::Ordering;

use codec::memcache::{push_u64, MetaFlag, MetaFlags, MetaMode, Request, Response, StoreCommand};

use crate::clock::Now;
use crate::stats::{self, ServerStats};
use crate::storage::{
    ArithOutcome, ArithRequest, DeleteOutcome, DeleteRequest, FetchOptions, Fetched, Store,
    StoreMode, StoreOutcome, StoreRequest,
};

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on reading.
    Continue,
    /// Flush what is buffered and close (`quit`).
    Close,
}

const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
/// memcached's answer to `flush_all` when started with `-F`.
pub const FLUSH_REFUSED: &[u8] = b"CLIENT_ERROR flush_all not allowed\r\n";

/// Executes `req`, appending its reply (if any) to `out`.
pub fn execute(
    req: &Request<'_>,
    store: &Store,
    server: &ServerStats,
    now: Now,
    out: &mut Vec<u8>,
) -> Next {
    match req {
        Request::Get { keys, with_cas } | Request::GetAndTouch { keys, with_cas, .. } => {
            let touch = match req {
                Request::GetAndTouch { exptime, .. } => Some(*exptime),
                _ => None,
            };
            for key in keys.iter() {
                write_value(store, key, now, touch, *with_cas, out);
            }
            out.extend_from_slice(b"END\r\n");
        }
        Request::Store {
            command,
            key,
            flags,
            exptime,
            data,
            cas_unique,
            noreply,
        } => {
            let (mode, compare_cas) = match command {
                StoreCommand::Set => (StoreMode::Set, None),
                StoreCommand::Add => (StoreMode::Add, None),
                StoreCommand::Replace => (StoreMode::Replace, None),
                StoreCommand::Append => (StoreMode::Append, None),
                StoreCommand::Prepend => (StoreMode::Prepend, None),
                StoreCommand::Cas => (StoreMode::Set, Some(*cas_unique)),
            };
            let outcome = store.store(
                StoreRequest {
                    mode,
                    key,
                    data,
                    flags: *flags,
                    exptime: *exptime,
                    compare_cas,
                    new_cas: None,
                    vivify: None,
                    invalidate: false,
                },
                now,
            );
            if !noreply {
                match outcome {
                    StoreOutcome::Stored { .. } => Response::Stored.encode(out),
                    StoreOutcome::NotStored => Response::NotStored.encode(out),
                    StoreOutcome::Exists => Response::Exists.encode(out),
                    StoreOutcome::NotFound => Response::NotFound.encode(out),
                    StoreOutcome::OutOfMemory => out.extend_from_slice(NO_MEMORY),
                }
            }
        }
        Request::StoreTooLarge {
            command,
            key,
            noreply,
            ..
        } => {
            // As memcached: a refused `set` must not leave the previous value readable.
            if *command == StoreCommand::Set {
                store.remove(key, now);
            }
            if !noreply {
                out.extend_from_slice(TOO_LARGE);
            }
        }
        Request::Delete { key, noreply } => {
            let outcome = store.delete(key, now, DeleteRequest::default());
            if !noreply {
                match outcome {
                    DeleteOutcome::Deleted => Response::Deleted.encode(out),
                    _ => Response::NotFound.encode(out),
                }
            }
        }
        Request::Arithmetic {
            key,
            delta,
            decrement,
            noreply,
        } => {
            let outcome = store.arith(
                ArithRequest {
                    key,
                    decrement: *decrement,
                    delta: *delta,
                    vivify: None,
                    compare_cas: None,
                    new_cas: None,
                    touch: None,
                },
                now,
            );
            if !noreply {
                match outcome {
                    ArithOutcome::Value { value, .. } => Response::Number(value).encode(out),
                    ArithOutcome::NotFound | ArithOutcome::Exists => Response::NotFound.encode(out),
                    ArithOutcome::NonNumeric => out.extend_from_slice(NON_NUMERIC),
                    ArithOutcome::OutOfMemory => out.extend_from_slice(NO_MEMORY),
                }
            }
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            let hit = store.touch(key, now, *exptime);
            if !noreply {
                if hit {
                    Response::Touched.encode(out)
                } else {
                    Response::NotFound.encode(out)
                }
            }
        }
        Request::FlushAll { .. } if !server.settings.flush_enabled => {
            refuse_flush(server, req, out)
        }
        Request::FlushAll { delay, noreply } => {
            store.flush_all(now, *delay);
            if !noreply {
                Response::Ok.encode(out);
            }
        }
        Request::Version => Response::Version(stats::VERSION.as_bytes()).encode(out),
        Request::Verbosity { noreply, .. } => {
            if !noreply {
                Response::Ok.encode(out);
            }
        }
        Request::Stats { group } => write_stats(*group, store, server, now, out),
        Request::Quit => return Next::Close,
        Request::Shutdown => out.extend_from_slice(b"ERROR: shutdown not enabled\r\n"),
        Request::MetaGet { key, flags } => meta_get(store, key, flags, now, out),
        Request::MetaSet { key, data, flags } => meta_set(store, key, data, flags, now, out),
        Request::MetaSetTooLarge { key, .. } => {
            store.remove(key, now);
            out.extend_from_slice(TOO_LARGE);
        }
        Request::MetaDelete { key, flags } => meta_delete(store, key, flags, now, out),
        Request::MetaArithmetic { key, flags } => meta_arith(store, key, flags, now, out),
        Request::MetaNoop => out.extend_from_slice(b"MN\r\n"),
        Request::MetaDebug { key } => match store.debug(key, now) {
            Some(info) => {
                out.extend_from_slice(b"ME ");
                out.extend_from_slice(key);
                out.push(b' ');
                out.extend_from_slice(info.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(b"EN\r\n"),
        },
    }
    Next::Continue
}

/// memcached's `-F` answer; counted in `cmd_flush` as memcached counts it.
fn refuse_flush(server: &ServerStats, req: &Request<'_>, out: &mut Vec<u8>) {
    server.flush_refused.fetch_add(1, Ordering::Relaxed);
    if !matches!(req, Request::FlushAll { noreply: true, .. }) {
        out.extend_from_slice(FLUSH_REFUSED);
    }
}

/// Whether a request line the parser refused is a `flush_all` that `--disable-flush-all`
/// must answer instead: memcached checks `-F` before it reads the delay, so `flush_all x`
/// is "not allowed" rather than "invalid exptime" (a wrong token count stays `ERROR`).
pub fn flush_refused_instead(server: &ServerStats, line: &[u8], reply: &str) -> bool {
    let refused = !server.settings.flush_enabled
        && reply.starts_with("CLIENT_ERROR")
        && line.split(|&b| b == b' ').find(|t| !t.is_empty()) == Some(b"flush_all");
    if refused {
        server.flush_refused.fetch_add(1, Ordering::Relaxed);
    }
    refused
}

pub(crate) fn write_value(
    store: &Store,
    key: &[u8],
    now: Now,
    touch: Option<i64>,
    with_cas: bool,
    out: &mut Vec<u8>,
) {
    let opts = FetchOptions {
        touch,
        ..Default::default()
    };
    store.fetch(key, now, opts, |item| {
        if let Some(item) = item {
            Response::Value {
                key: item.key,
                flags: item.flags,
                data: item.value,
                cas: with_cas.then_some(item.cas),
            }
            .encode(out);
        }
    });
}

fn write_stats(
    group: Option<&[u8]>,
    store: &Store,
    server: &ServerStats,
    now: Now,
    out: &mut Vec<u8>,
) {
    let mut args = group
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty());
    match (args.next(), args.next(), args.next()) {
        (None, _, _) => stats::write_general(out, server, &store.stats(), now),
        (Some(b"settings"), None, _) => stats::write_settings(out, server),
        (Some(b"reset"), None, _) => {
            store.reset_stats();
            Response::Reset.encode(out);
        }
        (Some(b"items" | b"slabs" | b"sizes" | b"conns"), None, _) => Response::End.encode(out),
        (Some(b"detail"), Some(b"on" | b"off"), None) => Response::Ok.encode(out),
        (Some(b"detail"), Some(b"dump"), None) => Response::End.encode(out),
        (Some(b"detail"), _, _) => {
            out.extend_from_slice(b"CLIENT_ERROR usage: stats detail on|off|dump\r\n")
        }
        _ => Response::Error.encode(out),
    }
}

/// Appends ` <letter><value>` for a meta return flag.
fn flag_num(out: &mut Vec<u8>, letter: u8, value: u64) {
    out.push(b' ');
    out.push(letter);
    push_u64(out, value);
}

fn flag_signed(out: &mut Vec<u8>, letter: u8, value: i64) {
    out.push(b' ');
    out.push(letter);
    if value < 0 {
        out.push(b'-');
    }
    push_u64(out, value.unsigned_abs());
}

/// Writes the `O` (opaque, echoed verbatim) or `k` (the key) return flag.
fn echo_flag(out: &mut Vec<u8>, flag: MetaFlag<'_>, key: &[u8]) {
    out.push(b' ');
    out.push(flag.letter);
    out.extend_from_slice(if flag.letter == b'O' { flag.arg } else { key });
}

/// Echoes the `O` and `k` flags, which every meta reply carries, even a miss.
fn echo_opaque_and_key(out: &mut Vec<u8>, flags: &MetaFlags<'_>, key: &[u8]) {
    for f in flags.iter().filter(|f| matches!(f.letter, b'O' | b'k')) {
        echo_flag(out, f, key);
    }
}

fn meta_get(store: &Store, key: &[u8], flags: &MetaFlags<'_>, now: Now, out: &mut Vec<u8>) {
    let opts = FetchOptions {
        touch: flags.ttl,
        vivify: flags.vivify,
        recache: flags.recache,
        no_bump: flags.has(b'u'),
    };
    store.fetch(key, now, opts, |item| match item {
        Some(item) => write_meta_hit(out, flags, &item),
        None => {
            if !flags.has(b'q') {
                out.extend_from_slice(b"EN");
                echo_opaque_and_key(out, flags, key);
                out.extend_from_slice(b"\r\n");
            }
        }
    });
}

fn write_meta_hit(out: &mut Vec<u8>, flags: &MetaFlags<'_>, item: &Fetched<'_>) {
    let with_value = flags.has(b'v');
    if with_value {
        out.extend_from_slice(b"VA ");
        push_u64(out, item.value.len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    for f in flags.iter() {
        match f.letter {
            b's' => flag_num(out, b's', item.value.len() as u64),
            b't' => flag_signed(out, b't', item.ttl),
            b'c' => flag_num(out, b'c', item.cas),
            b'f' => flag_num(out, b'f', u64::from(item.flags)),
            b'l' => flag_num(out, b'l', u64::from(item.idle)),
            b'h' => flag_num(out, b'h', u64::from(item.hit_before)),
            b'O' | b'k' => echo_flag(out, f, item.key),
            _ => {}
        }
    }
    if item.token_taken {
        out.extend_from_slice(b" Z");
    }
    if item.stale {
        out.extend_from_slice(b" X");
    }
    if item.won {
        out.extend_from_slice(b" W");
    }
    out.extend_from_slice(b"\r\n");
    if with_value {
        out.extend_from_slice(item.value);
        out.extend_from_slice(b"\r\n");
    }
}

fn meta_set(
    store: &Store,
    key: &[u8],
    data: &[u8],
    flags: &MetaFlags<'_>,
    now: Now,
    out: &mut Vec<u8>,
) {
    let mode = match flags.set_mode() {
        Ok(m) => m,
        Err(reply) => {
            out.extend_from_slice(reply.as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        }
    };
    let mode = match mode {
        MetaMode::Add => StoreMode::Add,
        MetaMode::Append => StoreMode::Append,
        MetaMode::Prepend => StoreMode::Prepend,
        MetaMode::Replace => StoreMode::Replace,
        _ => StoreMode::Set,
    };
    let outcome = store.store(
        StoreRequest {
            mode,
            key,
            data,
            flags: flags.client_flags.unwrap_or(0),
            exptime: flags.ttl.unwrap_or(0),
            compare_cas: flags.compare_cas,
            new_cas: flags.new_cas,
            vivify: flags.vivify,
            invalidate: flags.has(b'I'),
        },
        now,
    );
    let (code, cas, len): (&[u8], u64, usize) = match outcome {
        StoreOutcome::Stored { cas, len } => {
            if flags.has(b'q') {
                return;
            }
            (b"HD", cas, len)
        }
        StoreOutcome::NotStored => (b"NS", 0, data.len()),
        StoreOutcome::Exists => (b"EX", 0, data.len()),
        StoreOutcome::NotFound => (b"NF", 0, data.len()),
        StoreOutcome::OutOfMemory => {
            out.extend_from_slice(NO_MEMORY);
            return;
        }
    };
    out.extend_from_slice(code);
    for f in flags.iter() {
        match f.letter {
            b'O' | b'k' => echo_flag(out, f, key),
            b'c' => flag_num(out, b'c', cas),
            b's' => flag_num(out, b's', len as u64),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn meta_delete(store: &Store, key: &[u8], flags: &MetaFlags<'_>, now: Now, out: &mut Vec<u8>) {
    let outcome = store.delete(
        key,
        now,
        DeleteRequest {
            compare_cas: flags.compare_cas,
            invalidate: flags.has(b'I'),
            ttl: flags.ttl,
            remove_value: flags.has(b'x'),
            flags: flags.client_flags.unwrap_or(0),
            new_cas: flags.new_cas,
        },
    );
    let code: &[u8] = match outcome {
        DeleteOutcome::Deleted if flags.has(b'q') => return,
        DeleteOutcome::Deleted => b"HD",
        DeleteOutcome::NotFound => b"NF",
        DeleteOutcome::Exists => b"EX",
    };
    out.extend_from_slice(code);
    echo_opaque_and_key(out, flags, key);
    out.extend_from_slice(b"\r\n");
}

fn meta_arith(store: &Store, key: &[u8], flags: &MetaFlags<'_>, now: Now, out: &mut Vec<u8>) {
    let decrement = match flags.arithmetic_mode() {
        Ok(mode) => mode == MetaMode::Decrement,
        Err(reply) => {
            out.extend_from_slice(reply.as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        }
    };
    let outcome = store.arith(
        ArithRequest {
            key,
            decrement,
            delta: flags.delta.unwrap_or(1),
            vivify: flags.vivify.map(|ttl| (ttl, flags.initial.unwrap_or(0))),
            compare_cas: flags.compare_cas,
            new_cas: flags.new_cas,
            touch: flags.ttl,
        },
        now,
    );
    match outcome {
        ArithOutcome::Value { value, cas, ttl } => {
            if flags.has(b'q') {
                return;
            }
            let mut digits = Vec::with_capacity(20);
            push_u64(&mut digits, value);
            let with_value = flags.has(b'v');
            if with_value {
                out.extend_from_slice(b"VA ");
                push_u64(out, digits.len() as u64);
            } else {
                out.extend_from_slice(b"HD");
            }
            for f in flags.iter() {
                match f.letter {
                    b'c' => flag_num(out, b'c', cas),
                    b't' => flag_signed(out, b't', ttl),
                    b'O' | b'k' => echo_flag(out, f, key),
                    _ => {}
                }
            }
            out.extend_from_slice(b"\r\n");
            if with_value {
                out.extend_from_slice(&digits);
                out.extend_from_slice(b"\r\n");
            }
        }
        ArithOutcome::NotFound | ArithOutcome::Exists => {
            out.extend_from_slice(if outcome == ArithOutcome::NotFound {
                b"NF"
            } else {
                b"EX"
            });
            echo_opaque_and_key(out, flags, key);
            out.extend_from_slice(b"\r\n");
        }
        ArithOutcome::NonNumeric => out.extend_from_slice(NON_NUMERIC),
        ArithOutcome::OutOfMemory => out.extend_from_slice(b"SERVER_ERROR out of memory\r\n"),
    }
}
