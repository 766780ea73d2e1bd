//! A consistent-hash ring with virtual nodes.

use std::hash::{Hash, Hasher};

use twox_hash::XxHash64;

/// Maps keys to nodes so that adding or removing a node moves only the keys
/// that must move (about 1/N of them).
///
/// Each node is placed at `vnodes` points on a 64-bit ring; a key belongs to
/// the first point at or after its hash.
///
/// Processes agree on owners: keys and nodes are hashed with XXH64 and the
/// fixed seed [`HashRing::SEED`] (a specified algorithm, the same output in
/// every process, release and platform; std's `DefaultHasher` promises
/// none of that), over the bytes their `Hash` implementation writes, and a
/// node's points from its hash as little-endian bytes. So two instances of
/// a service put a key on the same node when their rings hold the same
/// nodes with the same `vnodes`, as long as the key and node types' `Hash`
/// writes the same bytes in both: a `str` writes its bytes then `0xff`
/// (std does not promise to keep that across releases; this crate's tests
/// pin it, so a change shows), integers write their native bytes (they
/// agree among little-endian machines, x86-64 and ARM64, and `usize` only
/// among machines of one word size).
///
/// ```
/// use pattern_network::partition::HashRing;
///
/// let mut ring = HashRing::new(100);
/// for worker in ["w1", "w2", "w3"] {
///     ring.add(worker);
/// }
/// let before = ring.clone();
/// let owner = *ring.get(&"order-42").unwrap();
/// assert_eq!(ring.get(&"order-42"), Some(&owner), "stable");
///
/// ring.add("w4");
/// let moved = before.moved_share(&ring);
/// assert!((0.15..0.35).contains(&moved), "about a quarter moves: {moved}");
/// ```
#[derive(Clone, Debug)]
pub struct HashRing<N> {
    vnodes: usize,
    nodes: Vec<N>,
    /// (point, index into `nodes`), sorted by point.
    points: Vec<(u64, usize)>,
    /// For each bucket of the hash space (by its top bits), where its
    /// points start in `points` (one more entry for the end): a lookup
    /// searches one bucket's few points instead of the whole ring.
    buckets: Vec<u32>,
    /// 64 minus the bits that pick a bucket.
    shift: u32,
}

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = XxHash64::with_seed(HashRing::<()>::SEED);
    value.hash(&mut hasher);
    hasher.finish()
}

/// The `v`-th point of a node whose hash is `base`: XXH64 of both as
/// little-endian bytes, the same on every machine.
fn point_of(base: u64, v: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&base.to_le_bytes());
    bytes[8..].copy_from_slice(&v.to_le_bytes());
    XxHash64::oneshot(HashRing::<()>::SEED, &bytes)
}

impl<N> HashRing<N> {
    /// The seed of the ring's XXH64 hash; part of its placement, never
    /// changed.
    pub const SEED: u64 = 0x7061_7474_6572_6e73;
}

impl<N: Hash + Eq> HashRing<N> {
    /// An empty ring placing each node at `vnodes` points (at least 1; 100
    /// to 200 keeps the load within a few percent of even).
    pub fn new(vnodes: usize) -> Self {
        Self {
            vnodes: vnodes.max(1),
            nodes: Vec::new(),
            points: Vec::new(),
            buckets: Vec::new(),
            shift: 64,
        }
    }

    /// Rebuilds the bucket index after the points changed: about two
    /// points per bucket.
    fn index(&mut self) {
        let bits = (self.points.len() / 2).max(1).ilog2().min(20);
        self.shift = 64 - bits;
        let count = 1usize << bits;
        self.buckets.clear();
        self.buckets.reserve(count + 1);
        let mut at = 0;
        for bucket in 0..count as u64 {
            let start = if bits == 0 { 0 } else { bucket << self.shift };
            while at < self.points.len() && self.points[at].0 < start {
                at += 1;
            }
            self.buckets.push(at as u32);
        }
        self.buckets.push(self.points.len() as u32);
    }

    /// Adds `node` (no effect if present).
    pub fn add(&mut self, node: N) {
        if self.nodes.contains(&node) {
            return;
        }
        let index = self.nodes.len();
        let base = hash_of(&node);
        for v in 0..self.vnodes {
            self.points.push((point_of(base, v as u64), index));
        }
        self.nodes.push(node);
        self.points.sort_unstable();
        self.index();
    }

    /// Removes `node`; returns whether it was there.
    pub fn remove(&mut self, node: &N) -> bool {
        let Some(index) = self.nodes.iter().position(|n| n == node) else {
            return false;
        };
        self.nodes.swap_remove(index);
        let moved_from = self.nodes.len();
        self.points.retain(|&(_, i)| i != index);
        for point in &mut self.points {
            if point.1 == moved_from {
                point.1 = index;
            }
        }
        self.index();
        true
    }

    /// The node `key` belongs to; `None` on an empty ring.
    #[inline]
    pub fn get<K: Hash + ?Sized>(&self, key: &K) -> Option<&N> {
        self.owner_of(hash_of(key)).map(|i| &self.nodes[i])
    }

    /// The first node for `key`, in ring order from its owner, that
    /// `usable` accepts: the owner if it is, else the node that would own
    /// the key without it (and so on). `None` if no node is accepted.
    pub fn get_where<K: Hash + ?Sized>(
        &self,
        key: &K,
        mut usable: impl FnMut(&N) -> bool,
    ) -> Option<&N> {
        let hash = hash_of(key);
        let start = self.point_of(hash)?;
        let len = self.points.len();
        let mut last = usize::MAX;
        for step in 0..len {
            let node = self.points[(start + step) % len].1;
            if node != last {
                last = node;
                if usable(&self.nodes[node]) {
                    return Some(&self.nodes[node]);
                }
            }
        }
        None
    }

    fn owner_of(&self, hash: u64) -> Option<usize> {
        self.point_of(hash).map(|at| self.points[at].1)
    }

    /// The index in `points` of the first point at or after `hash`.
    fn point_of(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        // The bucket's points, then the first at or after `hash` (past
        // the last point, the ring wraps to the first).
        let bucket = if self.shift == 64 {
            0
        } else {
            (hash >> self.shift) as usize
        };
        let (from, to) = (
            self.buckets[bucket] as usize,
            self.buckets[bucket + 1] as usize,
        );
        let at = from + self.points[from..to].partition_point(|&(p, _)| p < hash);
        Some(at % self.points.len())
    }

    /// The nodes, in the order they were added (removals reorder).
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The share of the key space (0 to 1) owned by a different node in
    /// `other` than in `self`: what a change from `self` to `other` moves.
    pub fn moved_share(&self, other: &HashRing<N>) -> f64 {
        // Walk the union of both rings' points: between two consecutive
        // points each ring has one owner for the whole segment.
        let mut bounds: Vec<u64> = self
            .points
            .iter()
            .chain(&other.points)
            .map(|p| p.0)
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        if bounds.is_empty() {
            return 0.0;
        }
        let mut moved = 0u128;
        for (i, &end) in bounds.iter().enumerate() {
            // The segment (previous bound, end] is owned by end's owner.
            let start = if i == 0 {
                *bounds.last().unwrap_or(&0)
            } else {
                bounds[i - 1]
            };
            let len = end.wrapping_sub(start) as u128;
            let len = if bounds.len() == 1 { 1u128 << 64 } else { len };
            let a = self.owner_of(end).map(|i| &self.nodes[i]);
            let b = other.owner_of(end).map(|i| &other.nodes[i]);
            if a != b {
                moved += len;
            }
        }
        moved as f64 / (1u128 << 64) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: [&str; 12] = [
        "node-b", "node-d", "node-d", "node-a", "node-c", "node-b", "node-d", "node-c", "node-c",
        "node-a", "node-c", "node-d",
    ];
    /// XXH64 with the ring's seed, from the reference implementation (the
    /// C library, through Python's `xxhash`), of `"order-0"` as `str`
    /// hashes it (its bytes, then 0xff) and of 42 as `u64` (8 bytes, little
    /// endian).
    const PINNED_HASH: u64 = 1_774_435_053_648_370_164;
    const PINNED_U64_HASH: u64 = 17_320_887_011_758_499_756;
    /// And of the 16 bytes 7 and 3 as little-endian `u64`s.
    const PINNED_POINT: u64 = 11_305_321_312_974_121_493;

    #[test]
    fn adding_and_removing_moves_about_one_nth() {
        let mut ring = HashRing::new(150);
        for n in 0..10u32 {
            ring.add(n);
        }
        let before = ring.clone();
        ring.add(10);
        let added = before.moved_share(&ring);
        assert!((0.05..0.14).contains(&added), "{added}");
        // Every moved key moved to the new node.
        for key in 0..10_000u32 {
            let (a, b) = (before.get(&key).unwrap(), ring.get(&key).unwrap());
            assert!(a == b || *b == 10, "key {key} moved from {a} to {b}");
        }
        let mut removed = ring.clone();
        assert!(removed.remove(&3));
        let share = ring.moved_share(&removed);
        assert!((0.05..0.14).contains(&share), "{share}");
        assert_eq!(before.moved_share(&before), 0.0);
    }

    /// Owners are pinned: a change of hash (or of what it hashes) would
    /// move keys between processes built from different code, and fails
    /// here first.
    #[test]
    fn placement_is_the_same_in_every_build() {
        let mut ring = HashRing::new(100);
        for node in ["node-a", "node-b", "node-c", "node-d"] {
            ring.add(node.to_owned());
        }
        let owners: Vec<&str> = (0..12)
            .map(|k| ring.get(&format!("order-{k}")).unwrap().as_str())
            .collect();
        assert_eq!(owners, PINNED);
        assert_eq!(hash_of("order-0"), PINNED_HASH);
        assert_eq!(hash_of(&42u64), PINNED_U64_HASH);
        assert_eq!(point_of(7, 3), PINNED_POINT);
    }

    /// Without its owner, a key goes to the node that would own it if the
    /// owner were removed: the same one for every process.
    #[test]
    fn without_its_owner_a_key_goes_to_the_ring_successor() {
        let mut ring = HashRing::new(50);
        for n in 0..6u32 {
            ring.add(n);
        }
        for key in 0..2_000u32 {
            let owner = *ring.get(&key).unwrap();
            assert_eq!(ring.get_where(&key, |_| true), Some(&owner));
            let mut without = ring.clone();
            without.remove(&owner);
            assert_eq!(
                ring.get_where(&key, |n| *n != owner),
                without.get(&key),
                "key {key}"
            );
        }
        assert_eq!(ring.get_where(&1u32, |_| false), None);
    }

    #[test]
    fn load_is_close_to_even() {
        let mut ring = HashRing::new(200);
        for n in 0..8u32 {
            ring.add(n);
        }
        let mut counts = [0u32; 8];
        for key in 0..80_000u32 {
            counts[*ring.get(&key).unwrap() as usize] += 1;
        }
        for c in counts {
            assert!((7_000..13_000).contains(&c), "{counts:?}");
        }
    }

    /// The bucket index finds the same owner as a search of the whole ring,
    /// for rings of every size, keys across the hash space and at points.
    #[test]
    fn the_bucket_index_agrees_with_a_full_search() {
        let mut ring = HashRing::new(7);
        for n in 0..300u32 {
            ring.add(n);
            if n % 3 == 0 {
                ring.remove(&(n / 2));
            }
            if ring.points.is_empty() {
                assert_eq!(ring.owner_of(1), None);
                continue;
            }
            let full = |hash: u64| {
                let at = ring.points.partition_point(|&(p, _)| p < hash);
                ring.points[at % ring.points.len()].1
            };
            let mut hash = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for _ in 0..200 {
                hash = hash.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                assert_eq!(ring.owner_of(hash), Some(full(hash)));
            }
            for &(point, _) in ring.points.iter().step_by(5) {
                for probe in [point.wrapping_sub(1), point, point.wrapping_add(1)] {
                    assert_eq!(ring.owner_of(probe), Some(full(probe)));
                }
            }
            assert_eq!(ring.owner_of(u64::MAX), Some(full(u64::MAX)));
            assert_eq!(ring.owner_of(0), Some(full(0)));
        }
    }
}
