//! `flowaudit policy`: a firewall ruleset that allows exactly the documented traffic an audit saw
//! (docs/policy.md).
//!
//! The audit's report directory is the interface: [`input`] reads it, [`build`] turns it into a
//! [`Policy`] (address groups, allow rules with their evidence, candidates for review), and one
//! module per format writes the policy in a firewall's own language.

pub mod asa;
pub mod csv;
pub mod input;
pub mod iptables;
pub mod names;
pub mod net;
pub mod nftables;
pub mod windows;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::audit::catalog::{PortRange, Roles};
use input::{Report, Service};
use net::{compact, normalize, ports_str, Net};

/// How addresses are grouped into sets/objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One group per role a rule names: every inventory block holding the role (or a child).
    Role,
    /// One group per inventory row (address block) as written.
    Entry,
    /// One group per inventory host: rows sharing a name (a dual-stack host), or an unnamed row.
    Host,
}

impl GroupBy {
    pub fn as_str(&self) -> &'static str {
        match self {
            GroupBy::Role => "role",
            GroupBy::Entry => "entry",
            GroupBy::Host => "host",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub group_by: GroupBy,
    /// Also emit documented rules the capture never showed, marked unused, with vendor ports.
    pub include_unused: bool,
    /// Allow the rule's whole documented port list instead of the observed ports.
    pub keep_vendor_ranges: bool,
    /// Drop what the policy does not allow (otherwise a chain the admin jumps to).
    pub default_drop: bool,
}

/// A named set of address blocks.
#[derive(Debug, Clone)]
pub struct Group {
    /// Role id, host name or entry address: what object names are derived from.
    pub key: String,
    pub nets: Vec<Net>,
    /// Indices into the inventory of the rows this group holds.
    pub rows: Vec<usize>,
}

impl Group {
    pub fn v4(&self) -> impl Iterator<Item = &Net> {
        self.nets.iter().filter(|n| n.is_v4())
    }

    pub fn v6(&self) -> impl Iterator<Item = &Net> {
        self.nets.iter().filter(|n| !n.is_v4())
    }

    pub fn nets_str(&self) -> String {
        self.nets
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What the capture showed for an allow rule: summed over the services it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub services: u64,
    pub flows: u64,
    pub bytes: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Services whose outcome was refused or unanswered: something may block them today.
    pub blocked: u64,
}

impl Evidence {
    fn add(&mut self, s: &Service) {
        self.services += 1;
        self.flows += s.flows;
        self.bytes += s.bytes;
        // Times are compared as text: the format is opaque here.
        if self.first_seen.is_empty()
            || (!s.first_seen.is_empty() && s.first_seen < self.first_seen)
        {
            self.first_seen = s.first_seen.clone();
        }
        if s.last_seen > self.last_seen {
            self.last_seen = s.last_seen.clone();
        }
        if s.outcome == "refused" || s.outcome == "unanswered" {
            self.blocked += 1;
        }
    }

    pub fn text(&self) -> String {
        let mut t = format!(
            "{} flows, {} bytes, first {}, last {}",
            self.flows, self.bytes, self.first_seen, self.last_seen
        );
        if self.blocked > 0 {
            t.push_str(&format!(
                "; {} of {} services refused or unanswered",
                self.blocked, self.services
            ));
        }
        t
    }
}

/// One catalog rule behind an allow rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleRef {
    pub id: String,
    pub product: String,
    pub section: String,
}

/// One allow rule: from the client group to the server group, one protocol, some ports.
#[derive(Debug, Clone)]
pub struct Allow {
    pub client: usize,
    pub server: usize,
    pub proto: String,
    /// Empty: the protocol has no ports (or the rule documents none).
    pub ports: Vec<PortRange>,
    /// The catalog rules' own ports for this protocol, merged.
    pub vendor_ports: Vec<PortRange>,
    pub rules: Vec<RuleRef>,
    /// None: a documented rule the capture never showed (`--include-unused`).
    pub evidence: Option<Evidence>,
}

impl Allow {
    pub fn unused(&self) -> bool {
        self.evidence.is_none()
    }

    /// The observed ports are fewer than the vendor's (and the rule uses the observed ones).
    pub fn narrowed(&self) -> bool {
        self.ports != self.vendor_ports
    }

    pub fn rule_ids(&self, sep: &str) -> String {
        self.rules
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(sep)
    }

    pub fn ports_str(&self, sep: &str) -> String {
        ports_str(&self.ports, sep)
    }

    /// Rule ids, then what the capture showed or that it showed nothing; and the vendor ports
    /// when the rule allows fewer.
    pub fn summary(&self, groups: &[Group]) -> String {
        let mut t = format!(
            "{} {} -> {} {}",
            self.rule_ids(","),
            groups[self.client].key,
            groups[self.server].key,
            self.proto
        );
        if !self.ports.is_empty() {
            t.push_str(&format!(" {}", self.ports_str(",")));
        }
        if self.narrowed() {
            t.push_str(&format!(
                " (vendor range {})",
                ports_str(&self.vendor_ports, ",")
            ));
        }
        t
    }

    pub fn evidence_text(&self) -> String {
        match &self.evidence {
            Some(e) => e.text(),
            None => "UNUSED: documented, never seen in this capture".into(),
        }
    }

    /// Address families both groups have: a rule per family ("v4", "v6").
    pub fn families(&self, groups: &[Group]) -> Vec<&'static str> {
        let (c, s) = (&groups[self.client], &groups[self.server]);
        let mut f = Vec::new();
        if c.v4().next().is_some() && s.v4().next().is_some() {
            f.push("v4");
        }
        if c.v6().next().is_some() && s.v6().next().is_some() {
            f.push("v6");
        }
        f
    }
}

/// Traffic the policy does not allow, listed commented out for review.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub service: Service,
    /// Why it is not allowed.
    pub why: String,
}

impl Candidate {
    pub fn label(&self) -> String {
        let s = &self.service;
        let host = |name: &str, a: IpAddr| {
            if name.is_empty() {
                a.to_string()
            } else {
                format!("{name} ({a})")
            }
        };
        format!(
            "{} -> {} {}{}",
            host(&s.client_name, s.client),
            host(&s.server_name, s.server),
            s.proto,
            s.port.map(|p| format!("/{p}")).unwrap_or_default()
        )
    }

    pub fn evidence_text(&self) -> String {
        let s = &self.service;
        format!(
            "{}: {}; {} flows, {} bytes, first {}, last {}",
            s.verdict, self.why, s.flows, s.bytes, s.first_seen, s.last_seen
        )
    }
}

/// The policy every format writes.
#[derive(Debug)]
pub struct Policy {
    pub schema_version: u64,
    pub options: Options,
    /// Only groups some allow rule uses, sorted by key.
    pub groups: Vec<Group>,
    pub allows: Vec<Allow>,
    pub candidates: Vec<Candidate>,
    /// What could not be emitted and why (groups without addresses, skipped rows...).
    pub notes: Vec<String>,
    /// The inventory as the audit read it (host names and roles for the writers).
    pub inventory: Vec<input::InvRow>,
}

/// Key of an allow rule before rules with the same match are merged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MatchKey {
    client: String,
    server: String,
    proto: String,
    ports: Vec<PortRange>,
    unused: bool,
}

/// What merges into one allow rule: its catalog rules, the services behind it, vendor ports.
#[derive(Default)]
struct Parts {
    rules: BTreeSet<RuleRef>,
    services: BTreeSet<usize>,
    vendor: Vec<PortRange>,
}

type Merged = BTreeMap<MatchKey, Parts>;

/// (rule id, client group, server group, proto) -> observed ports and services.
type PerRule = BTreeMap<(String, String, String, String), (Vec<PortRange>, BTreeSet<usize>)>;

struct Builder<'a> {
    report: &'a Report,
    opts: Options,
    /// Each inventory row's roles with their families.
    closed: Vec<BTreeSet<String>>,
    groups: BTreeMap<String, Group>,
    notes: Vec<String>,
}

/// Builds the policy from a report (see docs/policy.md for the rules it follows).
pub fn build(report: &Report, opts: Options) -> Policy {
    let roles = Roles::builtin();
    let closed = report
        .inventory
        .iter()
        .map(|r| {
            r.roles
                .iter()
                .flat_map(|x| roles.with_ancestors(x))
                .collect()
        })
        .collect();
    let mut b = Builder {
        report,
        opts,
        closed,
        groups: BTreeMap::new(),
        notes: report
            .skipped
            .iter()
            .map(|s| format!("skipped {s}"))
            .collect(),
    };
    let mut merged: Merged = BTreeMap::new();
    let mut candidates = Vec::new();
    let mut used_pairs = BTreeSet::new();
    b.used(&mut merged, &mut candidates, &mut used_pairs);
    if opts.include_unused {
        b.unused(&mut merged, &used_pairs);
    }
    b.finish(merged, candidates)
}

impl Builder<'_> {
    /// Group keys of the rows covering `ip` (role mode: the rule's role, if a row holding it
    /// covers the address).
    fn group_of(&mut self, ip: IpAddr, role: &str) -> Option<String> {
        let inv = &self.report.inventory;
        match self.opts.group_by {
            GroupBy::Role => {
                let holds = (0..inv.len())
                    .any(|i| inv[i].net.contains_ip(ip) && self.closed[i].contains(role));
                holds.then(|| self.role_group(role)).flatten()
            }
            GroupBy::Entry | GroupBy::Host => {
                // The most specific block, as the audit resolves an address.
                let best = (0..inv.len())
                    .filter(|&i| inv[i].net.contains_ip(ip))
                    .max_by_key(|&i| (inv[i].net.prefix, std::cmp::Reverse(i)))?;
                Some(self.row_group(best))
            }
        }
    }

    /// The group of every row holding `role`; None when no row does.
    fn role_group(&mut self, role: &str) -> Option<String> {
        if !self.groups.contains_key(role) {
            let rows: Vec<usize> = (0..self.report.inventory.len())
                .filter(|&i| self.closed[i].contains(role))
                .collect();
            if rows.is_empty() {
                return None;
            }
            self.insert_group(role.to_string(), rows);
        }
        Some(role.to_string())
    }

    fn row_key(&self, i: usize) -> String {
        let r = &self.report.inventory[i];
        match (self.opts.group_by, r.name.is_empty()) {
            (GroupBy::Host, false) => r.name.clone(),
            (GroupBy::Entry, false) => format!("{} {}", r.name, r.net),
            _ => r.net.to_string(),
        }
    }

    /// The group holding inventory row `i` (entry or host mode).
    fn row_group(&mut self, i: usize) -> String {
        let key = self.row_key(i);
        if !self.groups.contains_key(&key) {
            let rows = (0..self.report.inventory.len())
                .filter(|&j| self.row_key(j) == key)
                .collect();
            self.insert_group(key.clone(), rows);
        }
        key
    }

    fn insert_group(&mut self, key: String, rows: Vec<usize>) {
        let nets = normalize(rows.iter().map(|&i| self.report.inventory[i].net).collect());
        self.groups.insert(key.clone(), Group { key, nets, rows });
    }

    /// Allow rules from the documented services; everything else becomes a candidate.
    fn used(
        &mut self,
        merged: &mut Merged,
        candidates: &mut Vec<Candidate>,
        used_pairs: &mut BTreeSet<(String, String, String)>,
    ) {
        // (rule, client group, server group, proto) -> observed ports, services
        let mut per_rule = PerRule::new();
        for (si, s) in self.report.services.iter().enumerate() {
            if s.verdict != "documented" {
                candidates.push(Candidate {
                    service: s.clone(),
                    why: why_not(&s.verdict).into(),
                });
                continue;
            }
            let mut placed = false;
            for id in &s.rule_ids {
                let Some(rule) = self.report.rules.get(id) else {
                    self.notes.push(format!(
                        "rule {id} allows {} -> {} but is not in rules.csv: not used",
                        s.client, s.server
                    ));
                    continue;
                };
                let (from, to) = (rule.from_role.clone(), rule.to_role.clone());
                let (Some(cg), Some(sg)) =
                    (self.group_of(s.client, &from), self.group_of(s.server, &to))
                else {
                    continue;
                };
                placed = true;
                used_pairs.insert((id.clone(), cg.clone(), sg.clone()));
                let e = per_rule
                    .entry((id.clone(), cg, sg, s.proto.clone()))
                    .or_default();
                if let Some(p) = s.port {
                    e.0.push(PortRange { lo: p, hi: p });
                }
                e.1.insert(si);
            }
            if !placed {
                candidates.push(Candidate {
                    service: s.clone(),
                    why: "documented, but an end is outside the inventory groups of its rules"
                        .into(),
                });
            }
        }
        for ((id, cg, sg, proto), (observed, services)) in per_rule {
            let rule = &self.report.rules[&id];
            let vendor = if has_ports(&proto) {
                compact(rule.ports.iter().copied())
            } else {
                Vec::new()
            };
            let ports = if self.opts.keep_vendor_ranges {
                vendor.clone()
            } else {
                compact(observed)
            };
            let key = MatchKey {
                client: cg,
                server: sg,
                proto,
                ports,
                unused: false,
            };
            let e = merged.entry(key).or_default();
            e.rules.insert(rule_ref(rule));
            e.services.extend(services);
            e.vendor = compact(e.vendor.iter().chain(vendor.iter()).copied());
        }
    }

    /// `--include-unused`: each rule for each group pair holding its roles that no service used.
    fn unused(&mut self, merged: &mut Merged, used_pairs: &BTreeSet<(String, String, String)>) {
        let rules: Vec<_> = self.report.rules.values().cloned().collect();
        for rule in rules {
            let pairs = self.pairs_for(&rule.from_role, &rule.to_role);
            if pairs.is_empty() {
                self.notes.push(format!(
                    "unused rule {} ({} -> {}): no inventory address holds one of the roles: not emitted",
                    rule.id, rule.from_role, rule.to_role
                ));
            }
            for (cg, sg) in pairs {
                if used_pairs.contains(&(rule.id.clone(), cg.clone(), sg.clone())) {
                    continue;
                }
                for proto in &rule.protos {
                    let vendor = if has_ports(proto) {
                        compact(rule.ports.iter().copied())
                    } else {
                        Vec::new()
                    };
                    let key = MatchKey {
                        client: cg.clone(),
                        server: sg.clone(),
                        proto: proto.clone(),
                        ports: vendor.clone(),
                        unused: true,
                    };
                    let e = merged.entry(key).or_default();
                    e.rules.insert(rule_ref(&rule));
                    e.vendor = compact(e.vendor.iter().chain(vendor.iter()).copied());
                }
            }
        }
    }

    /// Group pairs a rule from role `from` to role `to` applies to.
    fn pairs_for(&mut self, from: &str, to: &str) -> Vec<(String, String)> {
        if self.opts.group_by == GroupBy::Role {
            return match (self.role_group(from), self.role_group(to)) {
                (Some(c), Some(s)) => vec![(c, s)],
                _ => Vec::new(),
            };
        }
        let inv_len = self.report.inventory.len();
        let holders = |b: &Self, role: &str| -> Vec<usize> {
            (0..inv_len)
                .filter(|&i| b.closed[i].contains(role))
                .collect()
        };
        let (cs, ss) = (holders(self, from), holders(self, to));
        let mut out = BTreeSet::new();
        for &c in &cs {
            for &s in &ss {
                let (cg, sg) = (self.row_group(c), self.row_group(s));
                if cg != sg {
                    out.insert((cg, sg));
                }
            }
        }
        out.into_iter().collect()
    }

    fn finish(mut self, merged: Merged, mut candidates: Vec<Candidate>) -> Policy {
        let groups: Vec<Group> = self.groups.values().cloned().collect();
        let allows = self.emittable_allows(merged, &groups);
        let (groups, mut allows) = keep_used_groups(groups, allows);
        sort_allows(&mut allows, &groups);
        sort_candidates(&mut candidates);
        Policy {
            schema_version: self.report.schema_version,
            options: self.opts,
            groups,
            allows,
            candidates,
            notes: self.notes,
            inventory: self.report.inventory.clone(),
        }
    }

    /// One allow per merged key, with the evidence of its services (none for a rule the capture
    /// never showed). One no ruleset can express becomes a note instead.
    fn emittable_allows(&mut self, merged: Merged, groups: &[Group]) -> Vec<Allow> {
        let index: BTreeMap<&str, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.key.as_str(), i))
            .collect();
        let mut allows = Vec::new();
        for (
            k,
            Parts {
                rules,
                services,
                vendor,
            },
        ) in merged
        {
            let evidence = (!k.unused).then(|| self.evidence_of(&services));
            let a = Allow {
                client: index[k.client.as_str()],
                server: index[k.server.as_str()],
                proto: k.proto,
                ports: k.ports,
                vendor_ports: vendor,
                rules: rules.into_iter().collect(),
                evidence,
            };
            match unemittable(&a, groups) {
                Some(note) => self.notes.push(note),
                None => allows.push(a),
            }
        }
        allows
    }

    /// What the report's services numbered `services` show together.
    fn evidence_of(&self, services: &BTreeSet<usize>) -> Evidence {
        let mut e = Evidence::default();
        for &i in services {
            e.add(&self.report.services[i]);
        }
        e
    }
}

/// Why no ruleset can express `a` (an unknown protocol, groups without a common address
/// family), or None.
fn unemittable(a: &Allow, groups: &[Group]) -> Option<String> {
    if proto_number(&a.proto).is_none() {
        return Some(format!(
            "{}: unknown protocol {:?}: not emitted",
            a.summary(groups),
            a.proto
        ));
    }
    if a.families(groups).is_empty() {
        return Some(format!(
            "{}: the groups share no address family (IPv4/IPv6): not emitted",
            a.summary(groups)
        ));
    }
    None
}

/// Keeps only the groups an allow uses, renumbered (in their order), and the allows with them.
fn keep_used_groups(groups: Vec<Group>, mut allows: Vec<Allow>) -> (Vec<Group>, Vec<Allow>) {
    let used: BTreeSet<usize> = allows.iter().flat_map(|a| [a.client, a.server]).collect();
    let keep: Vec<usize> = used.into_iter().collect();
    let renum: BTreeMap<usize, usize> = keep.iter().enumerate().map(|(n, &o)| (o, n)).collect();
    for a in &mut allows {
        a.client = renum[&a.client];
        a.server = renum[&a.server];
    }
    let groups: Vec<Group> = keep.iter().map(|&i| groups[i].clone()).collect();
    (groups, allows)
}

/// Allows in ruleset order: used before unused, then by rules, groups, protocol and ports.
fn sort_allows(allows: &mut [Allow], groups: &[Group]) {
    allows.sort_by(|a, b| {
        (
            a.unused(),
            &a.rules,
            &groups[a.client].key,
            &groups[a.server].key,
            &a.proto,
            &a.ports,
        )
            .cmp(&(
                b.unused(),
                &b.rules,
                &groups[b.client].key,
                &groups[b.server].key,
                &b.proto,
                &b.ports,
            ))
    });
}

/// Candidates for review by verdict, then client, server, protocol and port.
fn sort_candidates(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| {
        let k = |c: &Candidate| {
            (
                verdict_rank(&c.service.verdict),
                c.service.client,
                c.service.server,
                c.service.proto.clone(),
                c.service.port,
            )
        };
        k(a).cmp(&k(b))
    });
}

fn rule_ref(r: &input::RuleMeta) -> RuleRef {
    RuleRef {
        id: r.id.clone(),
        product: r.product.clone(),
        section: r.section.clone(),
    }
}

/// Protocols whose rules match ports.
pub fn has_ports(proto: &str) -> bool {
    matches!(proto, "tcp" | "udp" | "sctp" | "udplite" | "dccp")
}

/// IP protocol numbers of the names services.csv and the catalogs use.
pub fn proto_number(name: &str) -> Option<u8> {
    name.parse::<crate::decode::proto::IpProto>()
        .ok()
        .map(u8::from)
}

/// ICMP for IPv4 or IPv6 alike: a rule for `icmp` between IPv6 groups means ICMPv6.
pub fn is_icmp(proto: &str) -> bool {
    matches!(proto, "icmp" | "icmpv6")
}

fn why_not(verdict: &str) -> &'static str {
    match verdict {
        "undocumented" => "no vendor rule covers it",
        "role-mismatch" => "documented only between other roles",
        "reverse" => "only the opposite direction is documented",
        "unknown-host" => "an end is not in the inventory",
        _ => "not documented",
    }
}

fn verdict_rank(v: &str) -> u8 {
    match v {
        "undocumented" => 0,
        "role-mismatch" => 1,
        "reverse" => 2,
        "unknown-host" => 3,
        _ => 4,
    }
}

/// The lines every format starts with (as comments): what, from where, with which options.
pub fn header_lines(p: &Policy, format: &str) -> Vec<String> {
    let o = &p.options;
    let mut v = vec![
        format!(
            "flowaudit policy ({format}) from an audit report directory (schema version {})",
            p.schema_version
        ),
        format!(
            "groups by {}; {}; {}; {}",
            o.group_by.as_str(),
            if o.include_unused {
                "documented rules never seen included (marked UNUSED)"
            } else {
                "only documented traffic the capture showed"
            },
            if o.keep_vendor_ranges {
                "vendor port ranges kept"
            } else {
                "ports narrowed to the observed ones"
            },
            if o.default_drop {
                "default drop"
            } else {
                "no default drop"
            }
        ),
        format!(
            "{} allow rules, {} address groups, {} candidates for review (never allowed)",
            p.allows.len(),
            p.groups.len(),
            p.candidates.len()
        ),
    ];
    for n in &p.notes {
        v.push(format!("NOTE: {n}"));
    }
    v
}
