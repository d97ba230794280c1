//! The catalogs compiled once for the audit: role ids as small integers, every host's roles as a
//! bit set already closed over role families, and the candidate rules of each (protocol, port)
//! found by a binary search over the catalog's port boundaries. Classifying a service then costs
//! a lookup and a few bit tests, however many rules the catalogs hold.

use std::collections::BTreeMap;

use crate::audit::catalog::{Catalogs, Qualifier, Roles, Rule};
use crate::decode::proto;

/// Most roles a vocabulary may hold (built-in and user roles together).
pub const MAX_ROLES: usize = 256;

/// A set of role indices (see [`RoleIndex`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RoleSet([u64; 4]);

impl RoleSet {
    pub fn insert(&mut self, r: u16) {
        self.0[r as usize / 64] |= 1 << (r % 64);
    }

    pub fn contains(&self, r: u16) -> bool {
        self.0[r as usize / 64] & (1 << (r % 64)) != 0
    }

    pub fn union(&mut self, o: &RoleSet) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a |= b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..MAX_ROLES as u16).filter(|r| self.contains(*r))
    }
}

/// Role ids as indices, in id order (so index order is name order), with each role's family.
#[derive(Debug, Clone, Default)]
pub struct RoleIndex {
    pub ids: Vec<String>,
    by_id: BTreeMap<String, u16>,
    /// Each role with its ancestors.
    closure: Vec<RoleSet>,
}

impl RoleIndex {
    pub fn new(roles: &Roles) -> Result<RoleIndex, String> {
        let ids: Vec<String> = roles.defs.keys().cloned().collect();
        if ids.len() > MAX_ROLES {
            return Err(format!(
                "the role vocabulary has {} roles; flowaudit handles at most {MAX_ROLES}",
                ids.len()
            ));
        }
        let by_id: BTreeMap<String, u16> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u16))
            .collect();
        let closure = ids
            .iter()
            .map(|id| {
                let mut s = RoleSet::default();
                for a in roles.with_ancestors(id) {
                    if let Some(&i) = by_id.get(&a) {
                        s.insert(i);
                    }
                }
                s
            })
            .collect();
        Ok(RoleIndex {
            ids,
            by_id,
            closure,
        })
    }

    pub fn get(&self, id: &str) -> Option<u16> {
        self.by_id.get(id).copied()
    }

    /// The roles named, with their families.
    pub fn closed<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> RoleSet {
        let mut s = RoleSet::default();
        for id in ids {
            if let Some(i) = self.get(id) {
                s.union(&self.closure[i as usize]);
            }
        }
        s
    }

    /// Role ids of a set, sorted by name.
    pub fn names(&self, s: &RoleSet) -> Vec<&str> {
        s.iter().map(|i| self.ids[i as usize].as_str()).collect()
    }

    /// The roles of a set that are no other member's family: what a person would call the host.
    pub fn most_specific(&self, s: &RoleSet) -> Vec<&str> {
        s.iter()
            .filter(|&r| {
                !s.iter()
                    .any(|o| o != r && self.closure[o as usize].contains(r))
            })
            .map(|r| self.ids[r as usize].as_str())
            .collect()
    }
}

/// Index of a rule in [`Compiled::rules`].
pub type RuleIdx = u16;

/// The candidate rules of one protocol: boundaries of port segments and the rules covering each.
#[derive(Debug, Clone, Default)]
struct PortIndex {
    /// Segment i covers ports `starts[i] ..= starts[i + 1] - 1` (the last one up to 65535).
    starts: Vec<u32>,
    rules: Vec<Vec<RuleIdx>>,
}

impl PortIndex {
    fn build(rules: &[Rule], p: u8) -> PortIndex {
        let mut bounds = vec![0u32, 65_536];
        for r in rules.iter().filter(|r| r.protocols.contains(&p)) {
            for range in &r.ports {
                bounds.push(range.lo as u32);
                bounds.push(range.hi as u32 + 1);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        bounds.pop(); // 65536 starts no segment
        let rules = bounds
            .iter()
            .map(|&start| {
                (0..rules.len())
                    .filter(|&i| rules[i].matches(p, start as u16))
                    .map(|i| i as RuleIdx)
                    .collect()
            })
            .collect();
        PortIndex {
            starts: bounds,
            rules,
        }
    }

    fn get(&self, port: u16) -> &[RuleIdx] {
        let i = self.starts.partition_point(|&s| s <= port as u32);
        self.rules.get(i.wrapping_sub(1)).map_or(&[], Vec::as_slice)
    }
}

/// Widest range still treated as a specific opening (2500-3300 is 801 ports wide).
pub const SPECIFIC_RANGE_MAX: u32 = 1024;

/// The catalogs, compiled for classification.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub rules: Vec<Rule>,
    pub roles: RoleIndex,
    /// Per rule: its client and server role.
    pub from: Vec<u16>,
    pub to: Vec<u16>,
    /// The `internet` role (rules towards hosts outside the inventory).
    pub internet: Option<u16>,
    by_proto: BTreeMap<u8, PortIndex>,
    /// Rules of protocols without ports (ICMP...), by protocol.
    portless: BTreeMap<u8, Vec<RuleIdx>>,
}

impl Compiled {
    pub fn new(cat: &Catalogs) -> Result<Compiled, String> {
        let roles = RoleIndex::new(&cat.roles)?;
        if cat.rules.len() > RuleIdx::MAX as usize {
            return Err(format!("{} catalog rules are too many", cat.rules.len()));
        }
        let role_of = |id: &str| {
            roles
                .get(id)
                .ok_or_else(|| format!("catalog rule names unknown role {id:?}"))
        };
        let mut from = Vec::new();
        let mut to = Vec::new();
        for r in &cat.rules {
            from.push(role_of(&r.from_role)?);
            to.push(role_of(&r.to_role)?);
        }
        let mut protos: Vec<u8> = cat.rules.iter().flat_map(|r| r.protocols.clone()).collect();
        protos.sort_unstable();
        protos.dedup();
        let mut by_proto = BTreeMap::new();
        let mut portless = BTreeMap::new();
        for p in protos {
            if proto::has_ports(p) {
                by_proto.insert(p, PortIndex::build(&cat.rules, p));
            } else {
                let v: Vec<RuleIdx> = (0..cat.rules.len())
                    .filter(|&i| cat.rules[i].matches(p, 0))
                    .map(|i| i as RuleIdx)
                    .collect();
                portless.insert(p, v);
            }
        }
        Ok(Compiled {
            internet: roles.get("internet"),
            rules: cat.rules.clone(),
            roles,
            from,
            to,
            by_proto,
            portless,
        })
    }

    /// Rules covering (proto, port) in any direction between any roles, in catalog order.
    pub fn candidates(&self, p: u8, port: u16) -> &[RuleIdx] {
        if proto::has_ports(p) {
            self.by_proto.get(&p).map_or(&[], |ix| ix.get(port))
        } else {
            self.portless.get(&p).map_or(&[], Vec::as_slice)
        }
    }

    pub fn rule(&self, i: RuleIdx) -> &Rule {
        &self.rules[i as usize]
    }

    /// Width of the narrowest range of rule `i` that holds `port` (1 for portless rules).
    pub fn width_at(&self, i: RuleIdx, port: u16) -> u32 {
        self.rule(i)
            .ports
            .iter()
            .filter(|r| r.contains(port))
            .map(|r| r.width())
            .min()
            .unwrap_or(1)
    }

    /// A specific opening for this port: not a dynamic range, not a very wide one.
    pub fn is_specific_for(&self, i: RuleIdx, port: u16) -> bool {
        let r = self.rule(i);
        !r.has(Qualifier::DynamicRange)
            && !r.has(Qualifier::Dynamic)
            && (r.ports.is_empty() || self.width_at(i, port) <= SPECIFIC_RANGE_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_match_a_linear_scan_on_every_port() {
        let cat = Catalogs::builtin(&[]).unwrap();
        let c = Compiled::new(&cat).unwrap();
        for p in [proto::TCP, proto::UDP, proto::ICMP] {
            for port in (0..=65535u16).step_by(7).chain([0, 1, 443, 445, 65535]) {
                let want: Vec<RuleIdx> = (0..cat.rules.len())
                    .filter(|&i| {
                        cat.rules[i].matches(p, if proto::has_ports(p) { port } else { 0 })
                    })
                    .map(|i| i as RuleIdx)
                    .collect();
                assert_eq!(
                    c.candidates(p, port),
                    want.as_slice(),
                    "proto {p} port {port}"
                );
            }
        }
    }

    #[test]
    fn role_sets_are_closed_over_families() {
        let cat = Catalogs::builtin(&[]).unwrap();
        let c = Compiled::new(&cat).unwrap();
        let s = c.roles.closed([&"windows-backup-repository".to_string()]);
        // roles-veeam-vbr.csv: windows-backup-repository belongs to backup-repository and (every
        // Windows component is a Windows server) windows-server; both are servers.
        assert_eq!(
            c.roles.names(&s),
            [
                "backup-repository",
                "server",
                "windows-backup-repository",
                "windows-server"
            ]
        );
        assert_eq!(c.roles.most_specific(&s), ["windows-backup-repository"]);
    }
}
