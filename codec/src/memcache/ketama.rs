//! Client-side placement of keys on memcached nodes: libmemcached's weighted ketama
//! (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`: MD5, 160 points per server at equal weights, four
//! points per digest), so that our proxy and any libmemcached-based client (pylibmc,
//! PHP memcached, the memc* tools) put every key on the same node. Adding or removing one
//! of N nodes moves only about 1/N of the keys.

use md5::{Digest, Md5};

/// Points per server per unit of average weight, as libmemcached.
const POINTS_PER_SERVER: f32 = 160.0;
const POINTS_PER_HASH: usize = 4;
/// libmemcached leaves the port out of a point's name when it is the default.
const DEFAULT_PORT: u16 = 11211;

/// One node of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Host as configured (a name or an address; it is hashed as written, not resolved).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Relative weight (1 for equal shares).
    pub weight: u32,
}

/// The continuum: sorted points, each naming the index of a node.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    points: Vec<(u32, usize)>,
}

fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

fn point(digest: &[u8; 16], i: usize) -> u32 {
    u32::from_le_bytes([
        digest[i * 4],
        digest[i * 4 + 1],
        digest[i * 4 + 2],
        digest[i * 4 + 3],
    ])
}

impl Ring {
    /// Builds the ring over `nodes`; the result indexes into that slice.
    pub fn new(nodes: &[Node]) -> Self {
        let total: f32 = nodes.iter().map(|n| n.weight as f32).sum();
        let mut points = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            if node.weight == 0 {
                continue;
            }
            // libmemcached computes this in single precision; so do we, to round alike.
            let pct = node.weight as f32 / total;
            let hashes = (pct * (POINTS_PER_SERVER / POINTS_PER_HASH as f32) * nodes.len() as f32
                + 0.000_000_000_1)
                .floor() as usize;
            let per_server = hashes * POINTS_PER_HASH;
            for p in 0..per_server / POINTS_PER_HASH {
                let name = if node.port == DEFAULT_PORT {
                    format!("{}-{p}", node.host)
                } else {
                    format!("{}:{}-{p}", node.host, node.port)
                };
                let digest = md5(name.as_bytes());
                for i in 0..POINTS_PER_HASH {
                    points.push((point(&digest, i), index));
                }
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The node index that holds `key`, or `None` for an empty ring.
    pub fn node_for(&self, key: &[u8]) -> Option<usize> {
        self.node_for_among(key, |_| true)
    }

    /// The node index that holds `key` among the nodes `usable` accepts: the first usable
    /// point clockwise from the key's. With equal weights this is where libmemcached's
    /// auto-eject puts the key (it rebuilds the continuum without the ejected node, whose
    /// points are the only ones that go); `None` when no node is usable.
    pub fn node_for_among(&self, key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let hash = point(&md5(key), 0);
        let start = self.points.partition_point(|&(p, _)| p < hash);
        let (after, before) = self.points.split_at(start);
        before
            .iter()
            .chain(after)
            .map(|&(_, node)| node)
            .find(|&node| usable(node))
    }
}

#[cfg(test)]
mod among_tests {
    use super::*;

    fn nodes(n: u16) -> Vec<Node> {
        (0..n)
            .map(|i| Node {
                host: "10.0.0.1".into(),
                port: 11211 + i,
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn skipping_a_node_places_keys_as_a_ring_without_it() {
        let all = nodes(4);
        let ring = Ring::new(&all);
        let without: Vec<Node> = all.iter().filter(|n| n.port != 11213).cloned().collect();
        let smaller = Ring::new(&without);
        let mut moved = 0;
        for k in 0..2000 {
            let key = format!("route:proto=imap;user=u{k}@example.com");
            let chosen = ring.node_for_among(key.as_bytes(), |i| all[i].port != 11213);
            let expected = smaller.node_for(key.as_bytes()).map(|i| without[i].port);
            assert_eq!(chosen.map(|i| all[i].port), expected, "{key}");
            // Only the skipped node's keys move.
            let home = ring.node_for(key.as_bytes()).map(|i| all[i].port);
            if home != expected {
                assert_eq!(home, Some(11213));
                moved += 1;
            }
        }
        assert!(
            (300..700).contains(&moved),
            "about a quarter of the keys moved: {moved}"
        );
        assert_eq!(ring.node_for_among(b"k", |_| false), None);
    }
}
