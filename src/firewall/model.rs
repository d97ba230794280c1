//! The ruleset as the evaluator sees it, whatever syntax it came from (nftables JSON or
//! iptables-save): chains of rules, each rule a list of matches and one action.
//!
//! Values are kept as closed intervals of `u128`: ports and protocol numbers as themselves,
//! addresses in one 128-bit space (IPv4 as IPv4-mapped IPv6, so the two families never overlap).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// An address in the evaluator's 128-bit space.
pub fn addr_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => 0xffff_0000_0000 | u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// An address of the 128-bit space back as an address.
pub fn key_addr(k: u128) -> IpAddr {
    if k >> 32 == 0xffff {
        IpAddr::V4((k as u32).into())
    } else {
        IpAddr::V6(k.into())
    }
}

/// The interval of an address with a prefix length in its own family (`10.0.0.0`, 8).
pub fn prefix_range(ip: IpAddr, len: u8) -> Option<(u128, u128)> {
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    if len > bits {
        return None;
    }
    let host = bits - len;
    let mask: u128 = if host == 0 { 0 } else { (1u128 << host) - 1 };
    let lo = addr_key(ip) & !mask;
    Some((lo, lo | mask))
}

/// Parses `a`, `a/len` or `a-b` into an address interval.
pub fn parse_addr_interval(s: &str) -> Option<(u128, u128)> {
    if let Some((a, l)) = s.split_once('/') {
        let ip: IpAddr = a.parse().ok()?;
        return prefix_range(ip, l.parse().ok()?);
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = (a.parse().ok()?, b.parse().ok()?);
        if a.is_ipv4() != b.is_ipv4() || addr_key(a) > addr_key(b) {
            return None;
        }
        return Some((addr_key(a), addr_key(b)));
    }
    let ip: IpAddr = s.parse().ok()?;
    Some((addr_key(ip), addr_key(ip)))
}

/// The whole IPv4 or IPv6 address space.
pub fn family_range(v6: bool) -> (u128, u128) {
    if v6 {
        (0, u128::MAX)
    } else {
        (0xffff_0000_0000, 0xffff_ffff_ffff)
    }
}

/// Connection-tracking states as the kernel's bits (`ct state`, `--ctstate`).
pub mod ct {
    pub const INVALID: u128 = 1;
    pub const ESTABLISHED: u128 = 2;
    pub const RELATED: u128 = 4;
    pub const NEW: u128 = 8;
    pub const UNTRACKED: u128 = 64;

    pub fn parse(s: &str) -> Option<u128> {
        Some(match s.to_ascii_lowercase().as_str() {
            "invalid" => INVALID,
            "established" => ESTABLISHED,
            "related" => RELATED,
            "new" => NEW,
            "untracked" => UNTRACKED,
            _ => return None,
        })
    }

    pub fn name(bit: u128) -> &'static str {
        match bit {
            INVALID => "invalid",
            ESTABLISHED => "established",
            RELATED => "related",
            NEW => "new",
            UNTRACKED => "untracked",
            _ => "?",
        }
    }
}

/// What a match looks at in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Saddr,
    Daddr,
    Sport,
    Dport,
    /// The transport protocol number (`meta l4proto`, `ip protocol`, `-p`).
    L4Proto,
    /// 4 or 6 (`meta nfproto`).
    NfProto,
    IifName,
    OifName,
    CtState,
}

impl Field {
    pub fn is_addr(&self) -> bool {
        matches!(self, Field::Saddr | Field::Daddr)
    }
}

/// What the packet must be before the match is even looked at: `tcp dport 22` does not match a
/// UDP packet, negated or not (the kernel adds the same implicit dependency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    V4,
    V6,
    Proto(u8),
    /// Any protocol with ports (`th dport`, multiport without -p is not allowed by iptables).
    Ports,
}

/// The values a match compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values {
    /// Closed intervals (ports, protocols, addresses, ct state bits).
    Ints(Vec<(u128, u128)>),
    /// Interface names; a trailing `*` (nft) or `+` (iptables) is a prefix wildcard, kept as `*`.
    Names(Vec<String>),
    /// A named set, resolved by [`Ruleset::resolve_sets`].
    SetRef(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub field: Field,
    pub need: Need,
    pub negate: bool,
    pub values: Values,
}

/// One part of a rule: a match the evaluator understands, or one it cannot decide from a
/// capture (why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Match(Match),
    Unknown(String),
}

/// What a rule does when all its parts match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    Reject,
    Jump(String),
    Goto(String),
    Return,
    /// No verdict (counter, log, ...): evaluation goes on with the next rule.
    Continue,
    /// A verdict map: the key's value picks the verdict; no entry means go on.
    Vmap {
        field: Field,
        need: Need,
        entries: Vec<(Values, Action)>,
    },
    /// A verdict map by name, resolved by [`Ruleset::resolve_sets`].
    VmapRef {
        field: Field,
        need: Need,
        name: String,
    },
    /// A verdict the evaluator cannot follow (queue, a verdict the parser does not know).
    Unknown(String),
}

impl Action {
    pub fn word(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Jump(_) => "jump",
            Action::Goto(_) => "goto",
            Action::Return => "return",
            Action::Continue => "continue",
            Action::Vmap { .. } | Action::VmapRef { .. } => "vmap",
            Action::Unknown(_) => "unknown",
        }
    }

    pub fn drops(&self) -> bool {
        matches!(self, Action::Drop | Action::Reject)
    }
}

/// The base-chain policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// prerouting, input, forward, output, postrouting.
    pub hook: String,
    pub prio: i64,
    pub policy: Policy,
    /// The chain's type: filter, nat, route.
    pub kind: String,
}

/// Which packets a table sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    /// arp, bridge, netdev: listed, never evaluated.
    Other,
}

impl Family {
    pub fn parse(s: &str) -> Family {
        match s {
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "inet" => Family::Inet,
            _ => Family::Other,
        }
    }

    pub fn sees(&self, v6: bool) -> bool {
        match self {
            Family::Ip => !v6,
            Family::Ip6 => v6,
            Family::Inet => true,
            Family::Other => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub parts: Vec<Part>,
    pub action: Action,
    /// The rule as text (nft syntax rebuilt from the JSON, or the iptables-save line).
    pub text: String,
    /// nft's rule handle, when the source has one.
    pub handle: Option<u64>,
    /// Where the rule was read: `file:line` or `file: nftables[i]`.
    pub origin: String,
    /// Packets and bytes of a counter the rule carries (nft `counter`, `iptables-save -c`).
    pub counter: Option<(u64, u64)>,
}

impl Rule {
    /// Why the rule cannot be evaluated from a capture, if it cannot.
    pub fn unknown_reasons(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Unknown(s) => Some(s.clone()),
                Part::Match(_) => None,
            })
            .collect();
        if let Action::Unknown(s) = &self.action {
            r.push(s.clone());
        }
        r
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub family: Family,
    /// The family as written (ip, ip6, inet, arp, ...), and the table's name.
    pub family_name: String,
    pub table: String,
    pub name: String,
    pub hook: Option<Hook>,
    pub rules: Vec<Rule>,
}

impl Chain {
    /// `inet filter forward`.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.family_name, self.table, self.name)
    }
}

/// A named set or map's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetBody {
    Values(Values),
    /// A verdict map.
    Verdicts(Vec<(Values, Action)>),
    /// A set the evaluator cannot use (concatenated keys, an unknown type); why.
    Unknown(String),
}

/// A ruleset read from one or more files.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
    /// Named sets and maps by (family, table, name); ipset sets have family and table "ipset".
    pub sets: BTreeMap<(String, String, String), SetBody>,
    /// What was read, for the report (`rules.nft.json: nftables JSON, 3 tables, 12 rules`).
    pub sources: Vec<String>,
    /// Lines or objects skipped, each naming the file and line or object.
    pub skipped: Vec<String>,
}

impl Ruleset {
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn chain(&self, family_name: &str, table: &str, name: &str) -> Option<usize> {
        self.chains
            .iter()
            .position(|c| c.family_name == family_name && c.table == table && c.name == name)
    }

    /// Replaces references to named sets and maps by their contents; a reference to a missing
    /// or unusable set makes the match unknown (the rule is then not evaluated).
    pub fn resolve_sets(&mut self) {
        let sets = self.sets.clone();
        for c in &mut self.chains {
            let (fam, table) = (c.family_name.clone(), c.table.clone());
            let find = |name: &str| {
                sets.get(&(fam.clone(), table.clone(), name.to_string()))
                    .or_else(|| sets.get(&("ipset".into(), "ipset".into(), name.to_string())))
            };
            for r in &mut c.rules {
                for p in &mut r.parts {
                    if let Part::Match(m) = p {
                        if let Values::SetRef(name) = &m.values {
                            match find(name) {
                                Some(SetBody::Values(v)) => m.values = v.clone(),
                                Some(SetBody::Unknown(why)) => {
                                    *p = Part::Unknown(format!("set @{name}: {why}"))
                                }
                                Some(SetBody::Verdicts(_)) => {
                                    *p = Part::Unknown(format!("@{name} is a map, not a set"))
                                }
                                None => *p = Part::Unknown(format!("no set named @{name}")),
                            }
                        }
                    }
                }
                if let Action::VmapRef { field, need, name } = &r.action {
                    r.action = match find(name) {
                        Some(SetBody::Verdicts(e)) => Action::Vmap {
                            field: *field,
                            need: *need,
                            entries: e.clone(),
                        },
                        Some(SetBody::Unknown(why)) => {
                            Action::Unknown(format!("map @{name}: {why}"))
                        }
                        _ => Action::Unknown(format!("no verdict map named @{name}")),
                    };
                }
            }
        }
    }
}

/// Merges overlapping and adjacent intervals, sorted.
pub fn normalize(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The values in both `a` and `b` (both normalized).
pub fn intersect(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(alo, ahi) in a {
        for &(blo, bhi) in b {
            let (lo, hi) = (alo.max(blo), ahi.min(bhi));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    normalize(out)
}

/// Whether `a` has values outside `b` (both normalized).
pub fn exceeds(a: &[(u128, u128)], b: &[(u128, u128)]) -> bool {
    a.iter().any(|&(lo, hi)| {
        // Walk b's intervals from lo; any gap before hi is outside.
        let mut at = lo;
        for &(blo, bhi) in b {
            if bhi < at {
                continue;
            }
            if blo > at {
                return true;
            }
            if bhi >= hi {
                return false;
            }
            at = bhi + 1;
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_ranges_become_intervals_in_their_own_family() {
        let r = parse_addr_interval("10.1.0.0/16").unwrap();
        assert_eq!(key_addr(r.0).to_string(), "10.1.0.0");
        assert_eq!(key_addr(r.1).to_string(), "10.1.255.255");
        let r = parse_addr_interval("2001:db8::/32").unwrap();
        assert_eq!(
            key_addr(r.1).to_string(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert!(parse_addr_interval("10.0.0.0/33").is_none());
        assert!(parse_addr_interval("10.0.0.9-10.0.0.1").is_none());
        let (lo, hi) = parse_addr_interval("0.0.0.0/0").unwrap();
        assert_eq!((lo, hi), family_range(false));
    }

    #[test]
    fn exceeds_finds_values_outside_the_cover() {
        let a = normalize(vec![(5000, 6000)]);
        assert!(exceeds(&a, &[(5001, 5002)]));
        assert!(!exceeds(&a, &[(4000, 5500), (5501, 7000)]));
        assert!(exceeds(&a, &[(4000, 5500), (5502, 7000)]));
        assert!(!exceeds(&[(22, 22)], &[(22, 22)]));
        assert_eq!(
            normalize(vec![(3, 4), (1, 2), (7, 9)]),
            vec![(1, 4), (7, 9)]
        );
    }
}
