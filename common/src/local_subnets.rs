//! The networks this host is directly attached to, read from the kernel's routing tables
//! (`/proc/net/route`, `/proc/net/ipv6_route`): the routes without a gateway. In a
//! container these are the container's own networks, whatever subnet the engine picked,
//! so `--trusted-proxies local` trusts the compose network without pinning its subnet,
//! and nothing outside it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cidr::Cidr;

/// Loopback, always local.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// The directly attached networks and loopback; an unreadable table adds nothing.
pub fn local_subnets() -> Vec<Cidr> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let mut out: Vec<Cidr> = LOOPBACK.iter().filter_map(|c| c.parse().ok()).collect();
    for c in parse_ipv4_routes(&v4)
        .into_iter()
        .chain(parse_ipv6_routes(&v6))
    {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// `/proc/net/route`: Iface, Destination, Gateway, Flags, …, Mask, in little-endian hex.
fn parse_ipv4_routes(table: &str) -> Vec<Cidr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gateway, mask) = (f.get(1)?, f.get(2)?, f.get(7)?);
            let dest = u32::from_str_radix(dest, 16).ok()?;
            let gateway = u32::from_str_radix(gateway, 16).ok()?;
            let mask = u32::from_str_radix(mask, 16).ok()?;
            // Directly attached: no gateway; the default route is not a network of ours.
            if gateway != 0 || mask == 0 {
                return None;
            }
            let addr = Ipv4Addr::from(dest.swap_bytes());
            let len = mask.count_ones();
            format!("{addr}/{len}").parse().ok()
        })
        .collect()
}

/// `/proc/net/ipv6_route`: destination, prefix length, source, source length, next hop,
/// metric, refcount, use, flags, device, in hex.
fn parse_ipv6_routes(table: &str) -> Vec<Cidr> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, len, next_hop, device) = (f.first()?, f.get(1)?, f.get(4)?, f.get(9)?);
            let len = u8::from_str_radix(len, 16).ok()?;
            let dest = Ipv6Addr::from(u128::from_str_radix(dest, 16).ok()?);
            let next_hop = u128::from_str_radix(next_hop, 16).ok()?;
            // Directly attached, not the default route, not loopback's own entries, not
            // link-local (fe80::/10 is on every interface and says nothing of a network).
            if next_hop != 0
                || len == 0
                || *device == "lo"
                || (dest.segments()[0] & 0xffc0) == 0xfe80
            {
                return None;
            }
            format!("{}/{len}", IpAddr::V6(dest)).parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(list: &[Cidr], ip: &str) -> bool {
        list.iter().any(|c| c.contains(ip.parse().unwrap()))
    }

    #[test]
    fn attached_networks_from_the_tables() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth1\t00001EAC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                  eth0\t0002000A\t0101A8C0\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let nets = parse_ipv4_routes(v4);
        assert_eq!(nets.len(), 2, "{nets:?}");
        assert!(contains(&nets, "192.168.0.77"));
        assert!(contains(&nets, "172.30.9.9"));
        assert!(
            !contains(&nets, "10.0.2.5"),
            "reached through a gateway: not attached"
        );
        assert!(
            !contains(&nets, "8.8.8.8"),
            "the default route is not a network of ours"
        );

        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                  fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
                  00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";
        let nets = parse_ipv6_routes(v6);
        assert_eq!(nets.len(), 1, "{nets:?}");
        assert!(contains(&nets, "fd00::1234"));
        assert!(!contains(&nets, "fe80::1"));
        assert!(parse_ipv4_routes("garbage\nmore garbage").is_empty());
    }

    #[test]
    fn this_host_has_loopback_and_its_own_network() {
        let nets = local_subnets();
        assert!(contains(&nets, "127.0.0.1") && contains(&nets, "::1"));
        // On Linux with a network, at least one attached network besides loopback.
        if std::path::Path::new("/proc/net/route").exists() {
            assert!(nets.len() > 2, "{nets:?}");
        }
    }
}
