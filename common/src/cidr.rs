//! Address ranges in flags (`--proxy-protocol-from`, `--trusted-proxies`): `ADDR` or
//! `ADDR/LEN`, comma-separated; IPv4-mapped IPv6 peers match IPv4 ranges.

use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// A range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    /// Not an IP address.
    #[error("`{0}` is not an address or CIDR")]
    Address(String),
    /// A prefix length that is not a number or too long for the family.
    #[error("`{0}` has a bad prefix length")]
    Length(String),
}

/// One range, `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| CidrError::Address(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| CidrError::Length(s.to_string()))?,
            None => max,
        };
        Ok(Self { addr, len })
    }
}

impl Cidr {
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A list of ranges; empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Cidr>);

impl FromStr for CidrList {
    type Err = CidrError;

    /// Parses `a/n,b/m,…` (empty: none).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl CidrList {
    /// Whether `ip` is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let l: CidrList = "127.0.0.1, 10.0.0.0/8,2001:db8::/32".parse().unwrap();
        for (ip, inside) in [
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("10.200.3.4", true),
            ("::ffff:10.1.2.3", true),
            ("2001:db8:1::5", true),
            ("2001:db9::5", false),
        ] {
            assert_eq!(l.contains(ip.parse().unwrap()), inside, "{ip}");
        }
        assert!("".parse::<CidrList>().unwrap().is_empty());
        assert!("0.0.0.0/0"
            .parse::<CidrList>()
            .unwrap()
            .contains("192.0.2.1".parse().unwrap()));
        assert_eq!(
            "10.0.0.0/33".parse::<CidrList>(),
            Err(CidrError::Length("10.0.0.0/33".into()))
        );
        assert_eq!(
            "example.com".parse::<CidrList>(),
            Err(CidrError::Address("example.com".into()))
        );
    }
}
