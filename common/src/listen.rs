//! The value of every `--*-listen` flag: `HOST:PORT` (port 0 picks a free port) or `off`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Where a listener binds, or that it is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// Bind this address.
    Addr(SocketAddr),
    /// The listener is switched off.
    Off,
}

impl ListenAddr {
    /// The address, unless the listener is off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Self::Addr(a) => Some(a),
            Self::Off => None,
        }
    }
}

/// A `--*-listen` value that is neither `HOST:PORT` nor `off`; clap prints it as the reason.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not HOST:PORT or `off`")]
pub struct ListenAddrError {
    /// The value given.
    pub text: String,
    /// Why the host did not resolve, when resolving was tried and failed.
    #[source]
    pub source: Option<io::Error>,
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self::Addr(addr));
        }
        // Host names (e.g. `localhost:11211`) resolve once at start; a listen address that
        // does not resolve is a configuration error, not something to retry.
        let refused = |source| ListenAddrError {
            text: s.to_string(),
            source,
        };
        s.to_socket_addrs()
            .map_err(|e| refused(Some(e)))?
            .next()
            .map(Self::Addr)
            .ok_or_else(|| refused(None))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => a.fmt(f),
            Self::Off => f.write_str("off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_off() {
        assert_eq!(
            "127.0.0.1:0".parse::<ListenAddr>().unwrap(),
            ListenAddr::Addr("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!("OFF".parse::<ListenAddr>().unwrap(), ListenAddr::Off);
        assert!("[::1]:11211".parse::<ListenAddr>().is_ok());
        assert!("nonsense".parse::<ListenAddr>().is_err());
        assert!("127.0.0.1".parse::<ListenAddr>().is_err());
        // clap prints this text as the reason; e2e scripts look for it.
        assert_eq!(
            "nonsense".parse::<ListenAddr>().unwrap_err().to_string(),
            "`nonsense` is not HOST:PORT or `off`"
        );
    }
}
