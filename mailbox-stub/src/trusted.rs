//! `--trusted-proxies`: the networks whose connections may forward a client address
//! (IMAP ID x-originating-ip, POP3 XCLIENT/XOIP, a PROXY protocol header). The ranges are
//! common's [`CidrList`], as the proxy's `--proxy-protocol-from`, and the word `local`:
//! the networks this host or container is attached to (see
//! [`common::local_subnets`]), so a compose stack need not pin its subnet.

use std::net::IpAddr;

use common::cidr::{CidrError, CidrList};

/// The trusted networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub CidrList);

impl TrustedProxies {
    /// Parses `a/n,b/m,…` and `local` (empty: nobody is trusted).
    pub fn parse(list: &str) -> Result<Self, CidrError> {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("local") {
                ranges.extend(common::local_subnets::local_subnets());
            } else {
                ranges.push(item.parse()?);
            }
        }
        Ok(Self(CidrList(ranges)))
    }

    /// Whether `ip` may forward a client address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8").unwrap();
        for ip in ["10.1.2.3", "127.0.0.1", "::1", "fd12::1", "::ffff:10.9.9.9"] {
            assert!(t.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["11.0.0.1", "127.0.0.2", "::2", "fe80::1"] {
            assert!(!t.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nonsense").is_err());
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn local_is_this_hosts_networks_and_nothing_else() {
        let t = TrustedProxies::parse("local, 192.0.2.7").unwrap();
        assert!(t.contains("127.0.0.1".parse().unwrap()));
        assert!(t.contains("192.0.2.7".parse().unwrap()));
        assert!(
            !t.contains("8.8.8.8".parse().unwrap()),
            "the outside is not local"
        );
        assert_eq!(
            t.0 .0.len(),
            common::local_subnets::local_subnets().len() + 1
        );
    }
}
