//! The ketama ring against libmemcached's own answers (tests/data/ketama_libmemcached.txt,
//! produced by tests/data/ketama_oracle.py through libmemcached.so), and the share of keys
//! that move when a node joins.

use codec::memcache::{KetamaNode, KetamaRing};

fn parse_cluster(line: &str) -> Vec<KetamaNode> {
    line.trim_start_matches("cluster ")
        .split(' ')
        .map(|s| {
            let (hostport, weight) = s.split_once('*').unwrap();
            let (host, port) = hostport.rsplit_once(':').unwrap();
            KetamaNode {
                host: host.to_string(),
                port: port.parse().unwrap(),
                weight: weight.parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn agrees_with_libmemcached() {
    let fixture = include_str!("data/ketama_libmemcached.txt");
    let mut ring = KetamaRing::default();
    let (mut checked, mut wrong) = (0, Vec::new());
    for line in fixture.lines() {
        if line.starts_with("cluster ") {
            ring = KetamaRing::new(&parse_cluster(line));
            continue;
        }
        let (key, want) = line.rsplit_once(' ').unwrap();
        let want: usize = want.parse().unwrap();
        checked += 1;
        if ring.node_for(key.as_bytes()) != Some(want) {
            wrong.push(format!(
                "{key}: want {want}, got {:?}",
                ring.node_for(key.as_bytes())
            ));
        }
    }
    assert_eq!(checked, 3000);
    assert!(
        wrong.is_empty(),
        "{} of {checked} differ, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn a_joining_node_moves_about_one_in_n_keys() {
    let node = |i: u16| KetamaNode {
        host: "10.0.0.1".into(),
        port: 11211 + i,
        weight: 1,
    };
    let before = KetamaRing::new(&[node(0), node(1), node(2), node(3)]);
    let after = KetamaRing::new(&[node(0), node(1), node(2), node(3), node(4)]);
    let keys: Vec<String> = (0..20_000).map(|i| format!("route:user=u{i}")).collect();
    let moved = keys
        .iter()
        .filter(|k| before.node_for(k.as_bytes()) != after.node_for(k.as_bytes()))
        .count();
    // Ideal is 1/5 = 20%; every moved key must have gone to the new node.
    assert!((2_800..5_200).contains(&moved), "moved {moved} of 20000");
    assert!(keys
        .iter()
        .filter(|k| before.node_for(k.as_bytes()) != after.node_for(k.as_bytes()))
        .all(|k| after.node_for(k.as_bytes()) == Some(4)));
    assert_eq!(KetamaRing::new(&[]).node_for(b"k"), None);
}
