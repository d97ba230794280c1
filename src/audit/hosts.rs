//! Every address the flows name, resolved once against the inventory: its entry (longest prefix),
//! its roles (a bit set, families included) and the group its findings are reported under.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::compiled::{RoleIndex, RoleSet};
use crate::audit::inventory::{Cidr, Entry, Inventory};
use crate::decode::Addr;

/// What a finding's client or server side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum GroupBy {
    /// One group per inventory entry; rows sharing one name are one group.
    Entry,
    /// One group per set of roles.
    Role,
    /// One group per host (one row per host pair, as before schema 2).
    Host,
}

impl GroupBy {
    pub fn as_str(&self) -> &'static str {
        match self {
            GroupBy::Entry => "entry",
            GroupBy::Role => "role",
            GroupBy::Host => "host",
        }
    }
}

/// How a group came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    /// An inventory entry, or the entries sharing one name.
    Entry,
    /// The hosts holding one set of roles.
    Roles,
    /// One host.
    Host,
    /// Addresses outside the inventory, by /24 (IPv4) or /64 (IPv6).
    Unlisted,
    /// Servers outside the inventory known by a DNS or TLS name (Internet rules).
    Name,
}

impl GroupKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            GroupKind::Entry => "entry",
            GroupKind::Roles => "roles",
            GroupKind::Host => "host",
            GroupKind::Unlisted => "not-in-inventory",
            GroupKind::Name => "dns-name",
        }
    }
}

/// A set of hosts findings are reported under.
#[derive(Debug, Clone)]
pub struct Group {
    pub kind: GroupKind,
    pub label: String,
    pub roles: RoleSet,
    /// Address blocks of the group, as the inventory gives them (unlisted: the /24 or /64).
    pub blocks: Vec<Cidr>,
}

/// Index of a group in [`Hosts::groups`].
pub type GroupIdx = u32;

/// One address seen in the flows.
#[derive(Debug, Clone)]
pub struct Host {
    pub addr: Addr,
    /// The most specific inventory entry covering it.
    pub entry: Option<u32>,
    /// Roles from every covering entry, with their families.
    pub roles: RoleSet,
    /// Where its findings go.
    pub group: GroupIdx,
    /// Where its rule instances go (the entry's group; for `--group-by host`, the entry itself).
    pub rule_group: GroupIdx,
    /// The inventory host it is an address of (see [`crate::audit::inventory::host_key`]); None
    /// outside the inventory and inside blocks, where addresses are distinct hosts.
    pub inv_host: Option<u32>,
}

impl Host {
    pub fn in_inventory(&self) -> bool {
        self.entry.is_some()
    }
}

/// Index of a host in [`Hosts::hosts`]; hosts are numbered in address order.
pub type HostIdx = u32;

/// Longest-prefix lookup: one hash map per prefix length, longest first. Addresses are resolved
/// once each, so this simple structure costs nothing next to the flows; an inventory of many
/// blocks still resolves an address in as many probes as it has distinct prefix lengths.
struct Prefixes {
    by_len: Vec<(u8, FxHashMap<Addr, u32>)>,
}

impl Prefixes {
    fn new(entries: &[Entry]) -> Prefixes {
        let mut m: BTreeMap<u8, FxHashMap<Addr, u32>> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            m.entry(e.cidr.prefix)
                .or_default()
                .insert(e.cidr.addr, i as u32);
        }
        Prefixes {
            by_len: m.into_iter().rev().collect(),
        }
    }

    fn longest(&self, a: Addr) -> Option<u32> {
        self.by_len
            .iter()
            .find_map(|(len, m)| m.get(&Cidr::network_of(a, *len)).copied())
    }
}

/// Per inventory entry, its inventory host as a number (see [`crate::audit::inventory::host_key`]):
/// single addresses sharing a name get one number; blocks get none.
/// Also returns each number's key (the name, or the address of an unnamed entry).
fn inventory_hosts(inv: &Inventory) -> (Vec<Option<u32>>, Vec<String>) {
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut keys = Vec::new();
    let of_entry = inv
        .entries
        .iter()
        .map(|e| {
            e.cidr.is_host().then(|| {
                let key = crate::audit::inventory::host_key(e);
                *ids.entry(key.clone()).or_insert_with(|| {
                    keys.push(key);
                    keys.len() as u32 - 1
                })
            })
        })
        .collect();
    (of_entry, keys)
}

/// The resolved hosts and the groups they fall in.
pub struct Hosts {
    pub hosts: Vec<Host>,
    index: FxHashMap<Addr, HostIdx>,
    pub groups: Vec<Group>,
    /// Per inventory entry: its roles with those of every entry around it and of the other
    /// addresses of its host, families included.
    pub entry_roles: Vec<RoleSet>,
    /// Per inventory entry: the inventory host it is an address of (single addresses sharing a
    /// name are one host), None for blocks.
    entry_host: Vec<Option<u32>>,
    /// Per inventory host: its name (or address, unnamed).
    inv_host_names: Vec<String>,
    /// Per inventory entry: its group for findings and for rule instances.
    entry_group: Vec<GroupIdx>,
    entry_rule_group: Vec<GroupIdx>,
    group_ids: BTreeMap<(GroupKind, String), GroupIdx>,
    pub by: GroupBy,
}

impl Hosts {
    /// Groups of the inventory, then `addrs` (sorted, distinct) resolved into hosts.
    pub fn new(inv: &Inventory, roles: &RoleIndex, by: GroupBy, addrs: Vec<Addr>) -> Hosts {
        let prefixes = Prefixes::new(&inv.entries);
        // CIDR blocks nest or are disjoint: the entries covering an address are its longest
        // match and the entries around that one.
        let mut entry_roles: Vec<RoleSet> = inv
            .entries
            .iter()
            .map(|e| {
                let mut s = RoleSet::default();
                for o in inv.entries.iter().filter(|o| o.cidr.contains(e.cidr.addr)) {
                    if o.cidr.prefix <= e.cidr.prefix {
                        s.union(&roles.closed(&o.roles));
                    }
                }
                s
            })
            .collect();
        let (entry_host, inv_host_names) = inventory_hosts(inv);
        // One host holds the roles of all its addresses.
        let mut host_roles: BTreeMap<u32, RoleSet> = BTreeMap::new();
        for (i, h) in entry_host.iter().enumerate() {
            if let Some(h) = h {
                host_roles.entry(*h).or_default().union(&entry_roles[i]);
            }
        }
        for (i, h) in entry_host.iter().enumerate() {
            if let Some(h) = h {
                entry_roles[i] = host_roles[h];
            }
        }
        let mut h = Hosts {
            hosts: Vec::new(),
            index: FxHashMap::default(),
            groups: Vec::new(),
            entry_roles,
            entry_host,
            inv_host_names,
            entry_group: Vec::new(),
            entry_rule_group: Vec::new(),
            group_ids: BTreeMap::new(),
            by,
        };
        for (i, e) in inv.entries.iter().enumerate() {
            let g = h.entry_group_of(e, i, roles);
            h.entry_rule_group.push(g);
        }
        for (i, e) in inv.entries.iter().enumerate() {
            let g = match by {
                GroupBy::Host => GroupIdx::MAX, // decided per host
                _ => h.entry_rule_group[i],
            };
            let _ = e;
            h.entry_group.push(g);
        }
        h.hosts.reserve(addrs.len());
        for a in addrs {
            let entry = prefixes.longest(a);
            let host = h.host_of(a, entry, inv);
            h.index.insert(a, h.hosts.len() as HostIdx);
            h.hosts.push(host);
        }
        h
    }

    fn entry_group_of(&mut self, e: &Entry, i: usize, roles: &RoleIndex) -> GroupIdx {
        let r = self.entry_roles[i];
        match self.by {
            GroupBy::Role => {
                let label = roles.most_specific(&r).join("+");
                self.group(GroupKind::Roles, label, r, e.cidr)
            }
            // Today's rule instances: one per inventory block.
            GroupBy::Host => self.group(GroupKind::Entry, e.cidr.to_string(), r, e.cidr),
            GroupBy::Entry => {
                let label = if e.name.is_empty() {
                    e.cidr.to_string()
                } else {
                    e.name.clone()
                };
                self.group(GroupKind::Entry, label, r, e.cidr)
            }
        }
    }

    /// The group of that kind and label, made on first use; `block` is added to its blocks.
    pub fn group(
        &mut self,
        kind: GroupKind,
        label: String,
        roles: RoleSet,
        block: Cidr,
    ) -> GroupIdx {
        let next = self.groups.len() as GroupIdx;
        let g = *self.group_ids.entry((kind, label.clone())).or_insert(next);
        if g == next {
            self.groups.push(Group {
                kind,
                label,
                roles,
                blocks: Vec::new(),
            });
        }
        let grp = &mut self.groups[g as usize];
        grp.roles.union(&roles);
        if !grp.blocks.contains(&block) {
            grp.blocks.push(block);
        }
        g
    }

    fn host_of(&mut self, a: Addr, entry: Option<u32>, inv: &Inventory) -> Host {
        let Some(e) = entry else {
            let g = match self.by {
                GroupBy::Host => self.group(
                    GroupKind::Host,
                    a.to_string(),
                    RoleSet::default(),
                    Cidr::host(a),
                ),
                _ => {
                    let net = Cidr::unlisted_net(a);
                    self.group(
                        GroupKind::Unlisted,
                        net.to_string(),
                        RoleSet::default(),
                        net,
                    )
                }
            };
            return Host {
                addr: a,
                entry: None,
                roles: RoleSet::default(),
                group: g,
                rule_group: g,
                inv_host: None,
            };
        };
        let roles = self.entry_roles[e as usize];
        let rule_group = self.entry_rule_group[e as usize];
        let group = match self.by {
            GroupBy::Host => {
                let name = &inv.entries[e as usize].name;
                let label = if name.is_empty() {
                    a.to_string()
                } else {
                    format!("{name} ({a})")
                };
                self.group(GroupKind::Host, label, roles, Cidr::host(a))
            }
            _ => self.entry_group[e as usize],
        };
        Host {
            addr: a,
            entry: Some(e),
            roles,
            group,
            rule_group,
            inv_host: self.entry_host[e as usize],
        }
    }

    /// Whether two addresses are one host: the same address, or two addresses the inventory
    /// names as one host (a dual-stack host, a host with several interfaces). Traffic between
    /// them is the host talking to itself, not a client -> server pair to audit.
    pub fn same_host(&self, a: HostIdx, b: HostIdx) -> bool {
        a == b || {
            let (x, y) = (self.get(a).inv_host, self.get(b).inv_host);
            x.is_some() && x == y
        }
    }

    /// The name of an address's inventory host (see [`Host::inv_host`]).
    pub fn inv_host_name(&self, h: HostIdx) -> Option<&str> {
        let i = self.get(h).inv_host?;
        Some(&self.inv_host_names[i as usize])
    }

    /// Per group: the inventory host all its entries are addresses of, if it is one host.
    /// Rule instances between two groups of one host are not made.
    pub fn group_hosts(&self) -> Vec<Option<u32>> {
        let mut out: Vec<Option<Option<u32>>> = vec![None; self.groups.len()];
        for (i, &g) in self.entry_rule_group.iter().enumerate() {
            let h = self.entry_host[i];
            let slot = &mut out[g as usize];
            *slot = match *slot {
                None => Some(h),
                Some(prev) if prev == h => Some(h),
                Some(_) => Some(None),
            };
        }
        out.into_iter().map(Option::flatten).collect()
    }

    /// Every role some inventory entry holds, families included: the roles of this site.
    pub fn site_roles(&self) -> RoleSet {
        let mut s = RoleSet::default();
        for r in &self.entry_roles {
            s.union(r);
        }
        s
    }

    pub fn idx(&self, a: Addr) -> HostIdx {
        self.index[&a]
    }

    pub fn get(&self, i: HostIdx) -> &Host {
        &self.hosts[i as usize]
    }

    /// The rule-instance groups of the inventory's entries, each once, in group order.
    pub fn entry_groups(&self) -> Vec<GroupIdx> {
        let mut v = self.entry_rule_group.clone();
        v.sort_unstable();
        v.dedup();
        v
    }
}
