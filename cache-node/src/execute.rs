//! One request against the store, its reply appended to the connection's output buffer.
//! Pure and synchronous: no I/O, the time is an argument, so every reply byte is testable.

use std::sync::atomic::Ordering;

use codec::memcache::{Request, Response, StoreCommand};

use crate::clock::Now;
use crate::meta;
use crate::stats::{self, ServerStats};
use crate::storage::{
    ArithOutcome, ArithRequest, DeleteOutcome, DeleteRequest, FetchOptions, Store, StoreMode,
    StoreOutcome, StoreRequest,
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
                    binary_key: false,
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
            let req = ArithRequest {
                key,
                decrement: *decrement,
                delta: *delta,
                vivify: None,
                compare_cas: None,
                new_cas: None,
            };
            let outcome = store.arith(req, now, |outcome, _| outcome);
            if !noreply {
                match outcome {
                    ArithOutcome::Value(value) => Response::Number(value).encode(out),
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
        Request::MetaGet { key, flags } => meta::meta_get(store, key, flags, now, out),
        Request::MetaSet { key, data, flags } => meta::meta_set(store, key, data, flags, now, out),
        Request::MetaSetTooLarge { key, .. } => meta::meta_set_too_large(store, key, now, out),
        Request::MetaDelete { key, flags } => meta::meta_delete(store, key, flags, now, out),
        Request::MetaArithmetic { key, flags } => meta::meta_arith(store, key, flags, now, out),
        Request::MetaNoop => out.extend_from_slice(b"MN\r\n"),
        Request::MetaDebug { key } => meta::meta_debug(store, key, now, out),
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
    store.fetch(key, now, FetchOptions { touch }, |item| {
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
