//! The map under each shard's flow table: flow key -> flow, built for the one access pattern
//! that dominates a run, a lookup per packet at a random place in a table far larger than the
//! CPU caches.
//!
//! Entries (key and flow, 96 bytes) sit densely in one vector; a separate index of 8-byte slots,
//! probed linearly, maps a 32-bit hash to an entry. The hash is computed once per packet (the
//! engine needs it to pick the shard anyway) and travels with the packet, so the shard can
//! prefetch the index slot and then the entry of packets a few places ahead while it handles the
//! current one: the cache misses of several lookups overlap instead of following each other.
//! (With a general-purpose hash map, 30 % of a run was spent waiting in its lookup.)

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

use crate::flow::{Flow, FlowKey};

/// The hash the engine computes once per packet: 64 bits of FxHash over the key.
pub fn hash_key(key: &FlowKey) -> u64 {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// The part of a key's hash the map uses (FxHash mixes best into its high bits; the top six
/// choose the shard, so the map takes the 32 below them).
pub fn map_hash(h: u64) -> u32 {
    (h >> 26) as u32
}

/// An index slot: 0 when empty, else `hash << 32 | (entry + 1)`.
type Slot = u64;

#[derive(Clone, Copy)]
struct Entry {
    key: FlowKey,
    flow: Flow,
}

pub struct FlowMap {
    index: Vec<Slot>,
    entries: Vec<Entry>,
}

impl Default for FlowMap {
    fn default() -> Self {
        FlowMap {
            index: vec![0; 16],
            entries: Vec::new(),
        }
    }
}

impl FlowMap {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// First stage of a prefetch: the index slot where `h`'s probe starts.
    #[inline]
    pub fn prefetch_slot(&self, h: u32) {
        prefetch(&self.index[h as usize & self.mask()]);
    }

    /// Second stage: the entry `h` probably names (by hash alone; a wrong guess costs nothing
    /// but the prefetch).
    #[inline]
    pub fn prefetch_entry(&self, h: u32) {
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let s = self.index[i];
            if s == 0 {
                return;
            }
            if (s >> 32) as u32 == h {
                if let Some(e) = self.entries.get((s as u32 - 1) as usize) {
                    prefetch(e);
                }
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// The position in `entries` of `key`, whose map hash is `h`.
    #[inline]
    fn find(&self, key: &FlowKey, h: u32) -> Option<usize> {
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let s = self.index[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == h {
                let e = (s as u32 - 1) as usize;
                if self.entries[e].key == *key {
                    return Some(e);
                }
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub fn get_mut(&mut self, key: &FlowKey, h: u32) -> Option<&mut Flow> {
        let e = self.find(key, h)?;
        Some(&mut self.entries[e].flow)
    }

    /// Adds a flow whose key is not in the map.
    pub fn insert_new(&mut self, key: FlowKey, h: u32, flow: Flow) {
        debug_assert!(self.find(&key, h).is_none());
        // At most half the slots in use keeps probes short (about 1.5 slots to find a key).
        if (self.entries.len() + 1) * 2 > self.index.len() {
            self.grow_index();
        }
        if self.entries.len() == self.entries.capacity() {
            // Grow by half rather than double: the entries are most of a run's memory.
            let extra = (self.entries.len() / 2).max(16);
            self.entries.reserve_exact(extra);
        }
        self.entries.push(Entry { key, flow });
        let e = self.entries.len() as u32;
        self.place(h, e);
    }

    fn place(&mut self, h: u32, entry_plus_one: u32) {
        let mask = self.mask();
        let mut i = h as usize & mask;
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = (h as u64) << 32 | entry_plus_one as u64;
    }

    fn grow_index(&mut self) {
        let size = (self.index.len() * 2).max(16);
        self.rebuild_index(size);
    }

    fn rebuild_index(&mut self, size: usize) {
        self.index.clear();
        self.index.resize(size, 0);
        for e in 0..self.entries.len() {
            let h = map_hash(hash_key(&self.entries[e].key));
            self.place(h, e as u32 + 1);
        }
    }

    /// Keeps the flows for which `keep` is true, in one pass, and shrinks the index to fit.
    pub fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &Flow) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|e| keep(&e.key, &e.flow));
        if self.entries.len() == before {
            return;
        }
        let mut size = 16;
        while size < self.entries.len() * 2 {
            size *= 2;
        }
        // A table that held a burst of flows gives its memory back.
        if self.entries.capacity() > 2 * self.entries.len() + 1024 {
            self.entries
                .shrink_to(self.entries.len() + self.entries.len() / 2);
        }
        self.rebuild_index(size);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &Flow)> {
        self.entries.iter().map(|e| (&e.key, &e.flow))
    }

    /// Every flow, leaving the map empty and its memory freed.
    pub fn drain(&mut self) -> impl Iterator<Item = (FlowKey, Flow)> {
        self.index = vec![0; 16];
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| (e.key, e.flow))
    }
}

#[inline]
/// Asks the CPU to bring `p`'s cache line in; used on the flow table and on mapped captures.
pub(crate) fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it never faults, reads nothing into the program and
        // is given the address of a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const T as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;
    use crate::flow::Basis;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            vlan: 0,
            proto: 6,
            a: Addr::v4(i.to_be_bytes()),
            a_port: 1000,
            b: Addr::v4([10, 0, 0, 1]),
            b_port: 443,
        }
    }

    fn flow(ts: i64) -> Flow {
        Flow {
            first_ts: ts,
            last_ts: ts,
            packets: [1, 0],
            bytes: [60, 0],
            flags: [2, 0],
            hist: [0, 0],
            client_is_a: true,
            basis: Basis::Syn,
            icmp_unreachable: false,
            evicted: false,
        }
    }

    /// Against std's HashMap as the reference: inserts, lookups, updates and retains in
    /// random order give the same contents.
    #[test]
    fn behaves_like_a_hash_map() {
        let mut m = FlowMap::default();
        let mut r = std::collections::HashMap::new();
        let mut x: u64 = 12345;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % 5000) as u32);
            let h = map_hash(hash_key(&k));
            match m.get_mut(&k, h) {
                Some(f) => {
                    f.last_ts = step as i64;
                    r.get_mut(&k)
                        .map(|g: &mut Flow| g.last_ts = step as i64)
                        .unwrap();
                }
                None => {
                    assert!(!r.contains_key(&k));
                    m.insert_new(k, h, flow(step as i64));
                    r.insert(k, flow(step as i64));
                }
            }
            if step % 20_000 == 19_999 {
                let cut = step as i64 - 5_000;
                m.retain(|_, f| f.last_ts > cut);
                r.retain(|_, f| f.last_ts > cut);
            }
            assert_eq!(m.len(), r.len());
        }
        let mut got: Vec<(FlowKey, i64)> = m.iter().map(|(k, f)| (*k, f.last_ts)).collect();
        let mut want: Vec<(FlowKey, i64)> = r.iter().map(|(k, f)| (*k, f.last_ts)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(!m.is_empty());
        assert_eq!(m.drain().count(), want.len());
        assert!(m.is_empty());
    }
}
