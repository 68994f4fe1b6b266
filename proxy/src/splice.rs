//! Zero-copy relaying of bulk transfers: bytes go socket → pipe → socket with splice(2),
//! so a large FETCH never passes through the proxy's memory. Pipes are taken only while a
//! bulk transfer runs and kept in a small per-thread pool between transfers, so an idle
//! session holds none and a busy worker does not create two descriptors per burst.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};

/// Bytes one splice into a pipe may move: the capacity each pipe is given.
pub const PIPE_CAPACITY: usize = 256 * 1024;

/// Empty pipes kept per thread for the next transfer.
const POOL_SIZE: usize = 32;

/// A pipe: splice into `write`, out of `read`. Only empty pipes go back to the pool.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    /// An empty pipe from this thread's pool, or a new one (non-blocking, close-on-exec).
    pub fn take() -> io::Result<Self> {
        if let Some(p) = POOL.with(|pool| pool.borrow_mut().pop()) {
            return Ok(p);
        }
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // Fewer, larger splices; a pipe's pages are only held while bytes sit in it. Where
        // the system caps pipe sizes lower, the default size serves.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_CAPACITY);
        Ok(Self { read, write })
    }

    /// Returns an empty pipe to the pool (or closes it when the pool is full).
    pub fn give_back(self) {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_SIZE {
                pool.push(self);
            }
        });
    }

    /// Moves up to a pipe's capacity from the socket `from` into the pipe; 0 at the end of
    /// the stream, `WouldBlock` when the socket has nothing now.
    pub fn fill_from<F: AsFd>(&self, from: F) -> io::Result<usize> {
        Ok(splice(
            from,
            None,
            &self.write,
            None,
            PIPE_CAPACITY,
            flags(),
        )?)
    }

    /// Moves up to `len` bytes from the pipe into the socket `to`; `WouldBlock` when the
    /// socket's send buffer is full.
    pub fn drain_into<T: AsFd>(&self, to: T, len: usize) -> io::Result<usize> {
        Ok(splice(&self.read, None, to, None, len, flags())?)
    }
}

/// Whether a splice failed because these descriptors cannot be spliced here (EINVAL,
/// ENOSYS), not because of the sockets: the relay copies instead.
pub fn unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(e), Some(Errno::INVAL | Errno::NOSYS))
}

/// Never block (the sockets are non-blocking too); move pages rather than copy them.
fn flags() -> SpliceFlags {
    SpliceFlags::NONBLOCK | SpliceFlags::MOVE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn bytes_go_socket_to_pipe_to_socket() {
        let (mut client, from) = pair();
        let (to, mut backend) = pair();
        from.set_nonblocking(true).unwrap();
        let pipe = Pipe::take().unwrap();
        // Nothing sent yet: the splice would block, and says so.
        let e = pipe.fill_from(&from).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        client
            .write_all(b"* 1 FETCH (BODY[] {5}\r\nhello)\r\n")
            .unwrap();
        let mut moved = 0;
        while moved < 31 {
            match pipe.fill_from(&from) {
                Ok(n) => {
                    assert_eq!(pipe.drain_into(&to, n).unwrap(), n);
                    moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let mut got = [0u8; 31];
        backend.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"* 1 FETCH (BODY[] {5}\r\nhello)\r\n");
        // The end of the stream reads as 0.
        drop(client);
        loop {
            match pipe.fill_from(&from) {
                Ok(n) => {
                    assert_eq!(n, 0);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        pipe.give_back();
        assert_eq!(POOL.with(|p| p.borrow().len()), 1, "an empty pipe is kept");
    }

    #[test]
    fn only_einval_and_enosys_mean_unsupported() {
        let errno = |n| io::Error::from_raw_os_error(n);
        assert!(unsupported(&errno(rustix::io::Errno::INVAL.raw_os_error())));
        assert!(unsupported(&errno(rustix::io::Errno::NOSYS.raw_os_error())));
        assert!(!unsupported(&errno(
            rustix::io::Errno::AGAIN.raw_os_error()
        )));
        assert!(!unsupported(&errno(rustix::io::Errno::PIPE.raw_os_error())));
        assert!(!unsupported(&io::Error::other("not an OS error")));
    }
}
