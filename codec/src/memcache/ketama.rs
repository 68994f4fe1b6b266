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
        if self.points.is_empty() {
            return None;
        }
        let hash = point(&md5(key), 0);
        let i = self.points.partition_point(|&(p, _)| p < hash);
        Some(self.points[if i == self.points.len() { 0 } else { i }].1)
    }
}
