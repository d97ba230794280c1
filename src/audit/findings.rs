//! Rule use and findings, per group of hosts: what the firewall team acts on. A finding is one
//! row per (kind, client group, server group, protocol, port), with the host pairs, flows and
//! bytes behind it and a few example host pairs; rule use is one row per (rule, client group,
//! server group), instantiated over the inventory so that unused openings show.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use super::classify::{allowing, End};
use super::compiled::{Compiled, RoleSet, RuleIdx};
use super::hosts::{GroupIdx, GroupKind, HostIdx, Hosts};
use super::{is_public, Caveats, Outcome, Service, Severity, Verdict, NO_WAIVER};
use crate::audit::catalog::{PortRange, Qualifier};
use crate::audit::inventory::Cidr;
use crate::audit::waiver::{Date, Mark, ServiceRef, Waivers};
use crate::decode::proto;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    DocumentedRefused,
    DocumentedUnanswered,
    Undocumented,
    RoleMismatch,
    Reverse,
    UnknownHost,
    UnusedRule,
    NarrowRange,
}

impl FindingKind {
    pub const ALL: [FindingKind; 8] = [
        FindingKind::DocumentedRefused,
        FindingKind::DocumentedUnanswered,
        FindingKind::Undocumented,
        FindingKind::RoleMismatch,
        FindingKind::Reverse,
        FindingKind::UnknownHost,
        FindingKind::UnusedRule,
        FindingKind::NarrowRange,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FindingKind::DocumentedRefused => "documented-refused",
            FindingKind::DocumentedUnanswered => "documented-unanswered",
            FindingKind::Undocumented => "undocumented",
            FindingKind::RoleMismatch => "role-mismatch",
            FindingKind::Reverse => "reverse",
            FindingKind::UnknownHost => "unknown-host",
            FindingKind::UnusedRule => "unused-rule",
            FindingKind::NarrowRange => "narrow-range",
        }
    }

    pub fn parse(s: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn severity(&self) -> Severity {
        match self {
            FindingKind::DocumentedRefused | FindingKind::DocumentedUnanswered => Severity::High,
            FindingKind::Undocumented | FindingKind::RoleMismatch | FindingKind::Reverse => {
                Severity::Medium
            }
            FindingKind::UnknownHost => Severity::Low,
            FindingKind::UnusedRule | FindingKind::NarrowRange => Severity::Info,
        }
    }

    /// The finding a service gives, if any.
    pub fn of_service(v: Verdict, o: Outcome) -> Option<FindingKind> {
        Some(match (v, o) {
            (Verdict::Documented, Outcome::Established) => return None,
            (Verdict::Documented, Outcome::Refused) => FindingKind::DocumentedRefused,
            (Verdict::Documented, Outcome::Unanswered) => FindingKind::DocumentedUnanswered,
            (Verdict::Undocumented, _) => FindingKind::Undocumented,
            (Verdict::RoleMismatch, _) => FindingKind::RoleMismatch,
            (Verdict::Reverse, _) => FindingKind::Reverse,
            (Verdict::UnknownHost, _) => FindingKind::UnknownHost,
        })
    }
}

/// The subject of a service finding: `client group -> server group proto/port`. The diff
/// computes it from services.csv rows the same way.
pub fn service_subject(client: &str, server: &str, proto_name: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{client} -> {server} {proto_name}/{p}"),
        None => format!("{client} -> {server} {proto_name}"),
    }
}

/// The subject of a rule finding: `RULE client group -> server group (ports)`.
pub fn rule_subject(rule: &str, client: &str, server: &str, ports: &str) -> String {
    format!("{rule} {client} -> {server} ({ports})")
}

/// The waiver cell of a finding some of whose host pairs are waived and others not.
pub const PARTLY_WAIVED: &str = "PARTLY waived";

#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    pub subject: String,
    pub client_group: String,
    pub server_group: String,
    pub proto: String,
    /// The port (service findings) or the rule's ports (rule findings); empty without ports.
    pub ports: String,
    pub host_pairs: u64,
    pub flows: u64,
    pub bytes: u64,
    /// None for rules never used.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// A few host pairs behind the finding, `client -> server`.
    pub examples: Vec<String>,
    pub reason: String,
    pub evidence: String,
    /// The waiver cell: empty, a waiver's mark, or [`PARTLY_WAIVED`]...
    pub waiver: String,
    /// Whether it counts for `--fail-on`: some host pair has no waiver in force.
    pub counts: bool,
}

/// Use of one rule between two groups.
#[derive(Debug, Clone)]
pub struct RuleUse {
    pub rule: RuleIdx,
    pub client: GroupIdx,
    pub server: GroupIdx,
    pub host_pairs: u64,
    pub flows: u64,
    pub bytes: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub ports_seen: BTreeSet<u16>,
    /// The last host pair counted: services come sorted by host pair, so a pair seen on
    /// several ports counts once.
    last_pair: Option<(HostIdx, HostIdx)>,
}

impl RuleUse {
    fn new(rule: RuleIdx, client: GroupIdx, server: GroupIdx) -> RuleUse {
        RuleUse {
            rule,
            client,
            server,
            last_pair: None,
            host_pairs: 0,
            flows: 0,
            bytes: 0,
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            ports_seen: BTreeSet::new(),
        }
    }

    pub fn used(&self) -> bool {
        self.flows > 0
    }

    /// The narrowest range covering the ports seen, when the rule's range is wider.
    pub fn suggested(&self, cc: &Compiled) -> Option<PortRange> {
        // A port assigned at run time is pinned, not narrowed to: see `pin_advice`.
        if cc.rule(self.rule).has(Qualifier::Dynamic) {
            return None;
        }
        let lo = *self.ports_seen.first()?;
        let hi = *self.ports_seen.last()?;
        let s = PortRange { lo, hi };
        let wider = cc
            .rule(self.rule)
            .ports
            .iter()
            .any(|r| r.width() > 1 && r.contains(lo) && r.width() > s.width());
        wider.then_some(s)
    }
}

/// Judges every service that gives a finding against the waivers; returns the marks the
/// services' `waiver` fields index.
pub fn mark_services(
    services: &mut [Service],
    w: &Waivers,
    today: Date,
    cc: &Compiled,
    hosts: &Hosts,
) -> Vec<Mark> {
    let mut role_names: FxHashMap<HostIdx, Vec<String>> = FxHashMap::default();
    let mut marks: Vec<Mark> = Vec::new();
    let mut by_line: BTreeMap<(u64, bool), u32> = BTreeMap::new();
    for s in services.iter_mut() {
        if FindingKind::of_service(s.verdict, s.outcome).is_none() {
            continue;
        }
        for h in [s.key.client, s.key.server] {
            role_names.entry(h).or_insert_with(|| {
                let host = hosts.get(h);
                cc.roles
                    .names(&host.roles)
                    .into_iter()
                    .map(String::from)
                    .collect()
            });
        }
        let pname = proto::name(s.key.proto);
        let r = ServiceRef {
            client: hosts.get(s.key.client).addr,
            server: hosts.get(s.key.server).addr,
            proto: &pname,
            port: proto::has_ports(s.key.proto).then_some(s.key.port),
            client_roles: &role_names[&s.key.client],
            server_roles: &role_names[&s.key.server],
        };
        if let Some(m) = w.find(&r, today) {
            let next = marks.len() as u32;
            s.waiver = *by_line.entry((m.line, m.expired)).or_insert_with(|| {
                marks.push(m);
                next
            });
        }
    }
    marks
}

/// Totals behind one service finding.
struct Agg {
    first: usize,
    host_pairs: u64,
    flows: u64,
    established: u64,
    refused: u64,
    unanswered: u64,
    bytes: u64,
    first_ts: i64,
    last_ts: i64,
    examples: Vec<usize>,
    /// Host pairs with a waiver in force, and with an expired one.
    waived: u64,
    expired: u64,
    mark: Option<u32>,
    expired_mark: Option<u32>,
}

impl Agg {
    /// Empty totals for the finding whose first service is number `first`.
    fn new(first: usize) -> Agg {
        Agg {
            first,
            host_pairs: 0,
            flows: 0,
            established: 0,
            refused: 0,
            unanswered: 0,
            bytes: 0,
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            examples: Vec::new(),
            waived: 0,
            expired: 0,
            mark: None,
            expired_mark: None,
        }
    }

    /// Adds service number `n`: its counts, as an example while few, and its waiver.
    fn add(&mut self, n: usize, s: &Service, marks: &[Mark]) {
        self.host_pairs += 1;
        self.flows += s.flows as u64;
        self.established += s.established as u64;
        self.refused += s.refused as u64;
        self.unanswered += s.unanswered as u64;
        self.bytes += s.bytes;
        self.first_ts = self.first_ts.min(s.first_ts);
        self.last_ts = self.last_ts.max(s.last_ts);
        if self.examples.len() < EXAMPLES {
            self.examples.push(n);
        }
        if s.waiver != NO_WAIVER {
            if marks[s.waiver as usize].expired {
                self.expired += 1;
                self.expired_mark.get_or_insert(s.waiver);
            } else {
                self.waived += 1;
                self.mark.get_or_insert(s.waiver);
            }
        }
    }
}

const EXAMPLES: usize = 3;

type FindingKey = (FindingKind, GroupIdx, GroupIdx, u8, u16);

/// Rule use and the findings, sorted (severity, kind, subject).
pub fn build(
    services: &mut [Service],
    cc: &Compiled,
    hosts: &mut Hosts,
    names: &FxHashMap<HostIdx, Vec<String>>,
    cav: &Caveats,
    marks: &[Mark],
) -> (Vec<RuleUse>, Vec<Finding>) {
    let mut uses: FxHashMap<(RuleIdx, GroupIdx, GroupIdx), RuleUse> = FxHashMap::default();
    let mut aggs: BTreeMap<FindingKey, Agg> = BTreeMap::new();
    for (n, s) in services.iter().enumerate() {
        let (ch, sh) = (
            hosts.get(s.key.client).clone(),
            hosts.get(s.key.server).clone(),
        );
        if s.verdict == Verdict::Documented {
            let sg = use_server_group(hosts, &sh, names.get(&s.key.server));
            count_uses(&mut uses, s, cc, &ch, &sh, sg, names.get(&s.key.server));
        }
        let Some(kind) = FindingKind::of_service(s.verdict, s.outcome) else {
            continue;
        };
        aggs.entry((kind, ch.group, sh.group, s.key.proto, s.key.port))
            .or_insert_with(|| Agg::new(n))
            .add(n, s, marks);
    }
    instantiate_unused(&mut uses, cc, hosts);
    let rules = sorted_rule_uses(uses, cc, hosts);
    let weak = weak_evidence(cav);
    let mut out: Vec<Finding> = aggs
        .iter()
        .map(|(k, a)| service_finding(k, a, services, cc, hosts, names, marks, weak))
        .collect();
    out.extend(
        rules
            .iter()
            .filter_map(|u| rule_finding(u, cc, hosts, weak)),
    );
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.kind.as_str().cmp(b.kind.as_str()))
            .then(a.subject.cmp(&b.subject))
    });
    (rules, out)
}

/// Rule uses in report order: rule id, then client and server group labels.
fn sorted_rule_uses(
    uses: FxHashMap<(RuleIdx, GroupIdx, GroupIdx), RuleUse>,
    cc: &Compiled,
    hosts: &Hosts,
) -> Vec<RuleUse> {
    let mut rules: Vec<RuleUse> = uses.into_values().collect();
    let label = |g: GroupIdx| hosts.groups[g as usize].label.as_str();
    rules.sort_by(|a, b| {
        (&cc.rule(a.rule).id, label(a.client), label(a.server)).cmp(&(
            &cc.rule(b.rule).id,
            label(b.client),
            label(b.server),
        ))
    });
    rules
}

/// What a finding's reason adds when missing answers or connections may be missing evidence.
fn weak_evidence(cav: &Caveats) -> &'static str {
    if cav.sampled {
        " (weak evidence: the flow records are sampled or incomplete, so connections and answers may simply be missing from them)"
    } else if cav.one_sided() {
        " (weak evidence: the capture looks one-sided, so answers may simply not have been captured)"
    } else {
        ""
    }
}

/// The group a documented service's rule use is counted under on the server side: outside the
/// inventory, an Internet server is known by its first name when the capture gave one.
fn use_server_group(
    hosts: &mut Hosts,
    sh: &super::hosts::Host,
    names: Option<&Vec<String>>,
) -> GroupIdx {
    if sh.in_inventory() {
        return sh.rule_group;
    }
    match names.and_then(|n| n.first()) {
        Some(n) => hosts.group(
            GroupKind::Name,
            n.clone(),
            RoleSet::default(),
            Cidr::host(sh.addr),
        ),
        None => sh.rule_group,
    }
}

fn count_uses(
    uses: &mut FxHashMap<(RuleIdx, GroupIdx, GroupIdx), RuleUse>,
    s: &Service,
    cc: &Compiled,
    ch: &super::hosts::Host,
    sh: &super::hosts::Host,
    sg: GroupIdx,
    names: Option<&Vec<String>>,
) {
    let c = End {
        roles: ch.in_inventory().then_some(&ch.roles),
        public: is_public(ch.addr),
        names: &[],
    };
    let sv = End {
        roles: sh.in_inventory().then_some(&sh.roles),
        public: is_public(sh.addr),
        names: names.map_or(&[], Vec::as_slice),
    };
    // The listed rules are all of them unless some were left out.
    let all;
    let allow: &[RuleIdx] = if s.more == 0 {
        s.listed_rules()
    } else {
        all = allowing(cc, s.key.proto, s.key.port, &c, &sv);
        &all
    };
    // A port that a specific rule documents does not count for the wide or dynamic ranges that
    // also hold it: they would look used, and their suggested range widened, by traffic that
    // another rule explains.
    let specific_only = allow.iter().any(|&r| cc.is_specific_for(r, s.key.port));
    for &r in allow
        .iter()
        .filter(|&&r| !specific_only || cc.is_specific_for(r, s.key.port))
    {
        let u = uses
            .entry((r, ch.rule_group, sg))
            .or_insert_with(|| RuleUse::new(r, ch.rule_group, sg));
        let pair = Some((s.key.client, s.key.server));
        if u.last_pair != pair {
            u.last_pair = pair;
            u.host_pairs += 1;
        }
        u.flows += s.flows as u64;
        u.bytes += s.bytes;
        u.first_ts = u.first_ts.min(s.first_ts);
        u.last_ts = u.last_ts.max(s.last_ts);
        u.ports_seen.insert(s.key.port);
    }
}

/// Every rule instantiated over the inventory's groups: unused pairs are candidates to close.
fn instantiate_unused(
    uses: &mut FxHashMap<(RuleIdx, GroupIdx, GroupIdx), RuleUse>,
    cc: &Compiled,
    hosts: &Hosts,
) {
    let groups = hosts.entry_groups();
    // A host does not serve itself: no instance between two groups of one host's addresses.
    let group_host = hosts.group_hosts();
    let one_host = |c: GroupIdx, s: GroupIdx| {
        let h = group_host[c as usize];
        h.is_some() && h == group_host[s as usize]
    };
    let holders = |role: u16| -> Vec<GroupIdx> {
        groups
            .iter()
            .copied()
            .filter(|&g| hosts.groups[g as usize].roles.contains(role))
            .collect()
    };
    let mut by_role: BTreeMap<u16, Vec<GroupIdx>> = BTreeMap::new();
    for i in 0..cc.rules.len() {
        let (f, t) = (cc.from[i], cc.to[i]);
        if Some(t) == cc.internet {
            continue;
        }
        let cs = by_role.entry(f).or_insert_with(|| holders(f)).clone();
        let ss = by_role.entry(t).or_insert_with(|| holders(t)).clone();
        for &c in &cs {
            for &s in ss.iter().filter(|&&s| s != c && !one_host(c, s)) {
                let r = i as RuleIdx;
                uses.entry((r, c, s))
                    .or_insert_with(|| RuleUse::new(r, c, s));
            }
        }
    }
}

fn roles_text(cc: &Compiled, r: &RoleSet) -> String {
    let v = cc.roles.most_specific(r);
    if v.is_empty() {
        "none".into()
    } else {
        v.join(";")
    }
}

#[allow(clippy::too_many_arguments)]
fn service_finding(
    k: &FindingKey,
    a: &Agg,
    services: &[Service],
    cc: &Compiled,
    hosts: &Hosts,
    names: &FxHashMap<HostIdx, Vec<String>>,
    marks: &[Mark],
    weak: &str,
) -> Finding {
    let (kind, cg, sg, p, port) = *k;
    let (cgrp, sgrp) = (&hosts.groups[cg as usize], &hosts.groups[sg as usize]);
    let pname = proto::name(p).into_owned();
    let port = proto::has_ports(p).then_some(port);
    let first = &services[a.first];
    let server_names = names
        .get(&first.key.server)
        .map_or(&[][..], |v| v.as_slice());
    let roles = [&cgrp.roles, &sgrp.roles];
    let (reason, evidence) = finding_text(kind, a, first, cc, roles, server_names, weak);
    let (waiver, counts_for_gate) = waiver_cell(a, marks);
    Finding {
        severity: kind.severity(),
        kind,
        subject: service_subject(&cgrp.label, &sgrp.label, &pname, port),
        client_group: cgrp.label.clone(),
        server_group: sgrp.label.clone(),
        proto: pname,
        ports: port.map(|p| p.to_string()).unwrap_or_default(),
        host_pairs: a.host_pairs,
        flows: a.flows,
        bytes: a.bytes,
        first_ts: Some(a.first_ts),
        last_ts: Some(a.last_ts),
        examples: example_pairs(a, services, hosts),
        reason,
        evidence,
        waiver,
        counts: counts_for_gate,
    }
}

/// A service finding's reason (what to do) and evidence (rules, roles, counts), by kind;
/// `first` is its first service and `roles` the client's and the server's group roles.
fn finding_text(
    kind: FindingKind,
    a: &Agg,
    first: &Service,
    cc: &Compiled,
    roles: [&RoleSet; 2],
    server_names: &[String],
    weak: &str,
) -> (String, String) {
    let counts = format!(
        "{} flows ({} established, {} refused, {} unanswered)",
        a.flows, a.established, a.refused, a.unanswered
    );
    let both_roles = || {
        format!(
            "client roles {}; server roles {}",
            roles_text(cc, roles[0]),
            roles_text(cc, roles[1])
        )
    };
    match kind {
        FindingKind::DocumentedRefused | FindingKind::DocumentedUnanswered => (
            format!(
                "a documented backup connection was {}: a firewall may be blocking what a job needs{weak}",
                first.outcome.as_str()
            ),
            format!("rules {}; {counts}", rules_text(cc, first)),
        ),
        FindingKind::Undocumented if a.established == 0 && a.refused > 0 => (
            "no vendor rule covers this traffic, and it was refused: already closed; find what keeps trying it".into(),
            format!("{}; {counts}", both_roles()),
        ),
        FindingKind::Undocumented => (
            "no vendor rule covers this traffic between these hosts: confirm it is needed or close it".into(),
            format!("{}; {counts}", both_roles()),
        ),
        FindingKind::RoleMismatch => (
            format!(
                "the port is documented, but only between other roles ({}); fix the inventory or the traffic",
                role_pairs(first, cc).join(", ")
            ),
            format!(
                "closest rules {}; {}; {counts}",
                rules_text(cc, first),
                both_roles()
            ),
        ),
        FindingKind::Reverse => (
            "only the opposite direction is documented: check which side opens the connection".into(),
            format!("rules {}; {counts}", rules_text(cc, first)),
        ),
        _ => unknown_host_text(first, server_names, &counts),
    }
}

/// The ids of the rules a service lists, with how many more there were.
fn rules_text(cc: &Compiled, s: &Service) -> String {
    let ids: Vec<&str> = s
        .listed_rules()
        .iter()
        .map(|&r| cc.rule(r).id.as_str())
        .collect();
    let more = if s.more > 0 {
        format!(" (+{} more)", s.more)
    } else {
        String::new()
    };
    format!("{}{more}", ids.join(";"))
}

/// The distinct role pairs ("from -> to") of the rules a service lists, in their order.
fn role_pairs(s: &Service, cc: &Compiled) -> Vec<String> {
    let mut pairs: Vec<String> = Vec::new();
    for &r in s.listed_rules() {
        let rule = cc.rule(r);
        let pair = format!("{} -> {}", rule.from_role, rule.to_role);
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    pairs
}

/// The example host pairs of a finding, "client -> server".
fn example_pairs(a: &Agg, services: &[Service], hosts: &Hosts) -> Vec<String> {
    a.examples
        .iter()
        .map(|&n| {
            let s = &services[n];
            format!(
                "{} -> {}",
                hosts.get(s.key.client).addr,
                hosts.get(s.key.server).addr
            )
        })
        .collect()
}

fn unknown_host_text(s: &Service, server_names: &[String], counts: &str) -> (String, String) {
    use super::UnknownEnd;
    let named = !server_names.is_empty() && s.unknown != UnknownEnd::Client;
    let reason = match s.unknown {
        UnknownEnd::Both => "neither end is in the inventory: add them with their roles".to_string(),
        UnknownEnd::Client => "the client is not in the inventory: add it with its roles".to_string(),
        _ if named => format!(
            "the server is not in the inventory; the capture knows it as {}: add a catalog rule for that name, or an inventory entry",
            server_names.join(", ")
        ),
        _ => "the server is not in the inventory: add it with its roles".to_string(),
    };
    let evidence = if named {
        format!("server names {}; {counts}", server_names.join(";"))
    } else {
        counts.to_string()
    };
    (reason, evidence)
}

/// The finding's waiver cell and whether it still counts.
fn waiver_cell(a: &Agg, marks: &[Mark]) -> (String, bool) {
    let marked = a.waived + a.expired;
    if marked == 0 {
        return (String::new(), true);
    }
    if marked < a.host_pairs {
        return (
            format!(
                "{PARTLY_WAIVED}: {} of {} host pairs have a waiver in force; the others count",
                a.waived, a.host_pairs
            ),
            true,
        );
    }
    match a.expired_mark {
        Some(m) => (marks[m as usize].to_string(), true),
        None => (marks[a.mark.expect("marked") as usize].to_string(), false),
    }
}

fn rule_finding(u: &RuleUse, cc: &Compiled, hosts: &Hosts, weak: &str) -> Option<Finding> {
    let rule = cc.rule(u.rule);
    let (cl, sl) = (
        hosts.groups[u.client as usize].label.clone(),
        hosts.groups[u.server as usize].label.clone(),
    );
    let ports = rule.ports_str();
    let (kind, reason, evidence) = if !u.used() {
        let excuse: Vec<&str> = rule
            .qualifiers
            .iter()
            .filter(|q| q.excuses_unused())
            .map(Qualifier::as_str)
            .collect();
        let reason = if excuse.is_empty() {
            format!("documented opening never used in this capture: a candidate to close{weak}")
        } else {
            format!(
                "never used, but the rule is {}: keep it if that case applies",
                excuse.join(", ")
            )
        };
        let evidence = format!("{} {}: {}", rule.protocols_str(), ports, rule.note);
        (FindingKind::UnusedRule, reason, evidence)
    } else if let Some(advice) = crate::audit::catalog::pin_advice(rule, &u.ports_seen) {
        (
            FindingKind::NarrowRange,
            advice,
            format!("ports seen {}", u.ports_seen.len()),
        )
    } else {
        let s = u.suggested(cc)?;
        (
            FindingKind::NarrowRange,
            format!(
                "only {s} of the documented range was used: narrow the opening for these groups"
            ),
            format!("ports seen {}", u.ports_seen.len()),
        )
    };
    Some(Finding {
        severity: kind.severity(),
        kind,
        subject: rule_subject(&rule.id, &cl, &sl, &ports),
        client_group: cl,
        server_group: sl,
        proto: rule.protocols_str(),
        ports,
        host_pairs: u.host_pairs,
        flows: u.flows,
        bytes: u.bytes,
        first_ts: u.used().then_some(u.first_ts),
        last_ts: u.used().then_some(u.last_ts),
        examples: Vec::new(),
        reason,
        evidence,
        waiver: String::new(),
        counts: true,
    })
}
