//! The audit: flows -> services (client host, server host, protocol, server port), each classified
//! against the catalogs by the roles the inventory gives both ends; rule usage per host pair;
//! findings that need action.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Catalogs, PortRange, Qualifier, Rule};
use crate::decode::{proto, Addr};
use crate::flow::{Basis, ConnState, FlowRecord};
use crate::flowstore::Flows;
use crate::inventory::{HostInfo, Inventory};

/// How a service relates to the catalogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Documented,
    RoleMismatch,
    Reverse,
    UnknownHost,
    Undocumented,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Documented => "documented",
            Verdict::RoleMismatch => "role-mismatch",
            Verdict::Reverse => "reverse",
            Verdict::UnknownHost => "unknown-host",
            Verdict::Undocumented => "undocumented",
        }
    }

    pub const ALL: [Verdict; 5] = [
        Verdict::Documented,
        Verdict::RoleMismatch,
        Verdict::Reverse,
        Verdict::UnknownHost,
        Verdict::Undocumented,
    ];
}

/// What happened to the attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A handshake completed, or the responder answered.
    Established,
    /// A RST or an ICMP unreachable answered the attempt.
    Refused,
    /// Nothing came back.
    Unanswered,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::Refused => "refused",
            Outcome::Unanswered => "unanswered",
        }
    }

    pub fn of_flow(f: &FlowRecord) -> Outcome {
        if f.flow.icmp_unreachable {
            return Outcome::Refused;
        }
        if f.key.proto == proto::TCP {
            match f.conn_state() {
                ConnState::REJ => Outcome::Refused,
                ConnState::S0 | ConnState::SH | ConnState::RSTOS0 => Outcome::Unanswered,
                _ if f.flow.packets[1] > 0 => Outcome::Established,
                _ => Outcome::Unanswered,
            }
        } else if f.flow.packets[1] > 0 {
            Outcome::Established
        } else {
            Outcome::Unanswered
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The identity of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub client: Addr,
    pub server: Addr,
    pub proto: u8,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub key: ServiceKey,
    pub verdict: Verdict,
    pub outcome: Outcome,
    /// Rule ids that allow it (documented) or that would with other roles / reversed.
    pub rule_ids: Vec<String>,
    /// For role-mismatch: the (from, to) role pairs the matching rules need.
    pub needed_roles: Vec<(String, String)>,
    /// For unknown-host: which end is missing from the inventory.
    pub unknown_end: &'static str,
    pub client_roles: Vec<String>,
    pub server_roles: Vec<String>,
    pub client_name: String,
    pub server_name: String,
    /// Names the capture gave the server (DNS answers, TLS SNI).
    pub server_dns: Vec<String>,
    pub flows: u64,
    pub established: u64,
    pub refused: u64,
    pub unanswered: u64,
    pub packets: u64,
    pub bytes: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Client ports were seen as client sides: the flow count per direction basis.
    pub bases: BTreeMap<&'static str, u64>,
}

/// Usage of one rule between one pair of inventory entries.
#[derive(Debug, Clone)]
pub struct RuleUse {
    pub rule: Rule,
    pub client: String,
    pub client_name: String,
    pub server: String,
    pub server_name: String,
    pub flows: u64,
    pub bytes: u64,
    pub ports_seen: BTreeSet<u16>,
}

impl RuleUse {
    pub fn used(&self) -> bool {
        self.flows > 0
    }

    /// The narrowest range covering the ports seen, when the rule's range is wider.
    pub fn suggested(&self) -> Option<PortRange> {
        let lo = *self.ports_seen.first()?;
        let hi = *self.ports_seen.last()?;
        let s = PortRange { lo, hi };
        let wider = self
            .rule
            .ports
            .iter()
            .any(|r| r.width() > 1 && r.contains(lo) && r.width() > s.width());
        wider.then_some(s)
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub kind: &'static str,
    pub subject: String,
    pub reason: String,
    pub evidence: String,
}

/// What the capture could not show, for the summary and the findings.
#[derive(Debug, Clone, Default)]
pub struct Caveats {
    pub one_sided_tcp: u64,
    pub tcp_flows: u64,
    pub evicted_flows: u64,
    pub skipped_packets: u64,
    pub capture_damaged: bool,
}

impl Caveats {
    /// Most TCP flows saw one direction only: probably a one-sided mirror.
    pub fn one_sided(&self) -> bool {
        self.tcp_flows >= 10 && self.one_sided_tcp * 2 > self.tcp_flows
    }
}

pub struct Audit {
    /// Flows audited.
    pub flow_count: u64,
    /// Which flows (by position in report order) the catalogs turned around: one bit each, so
    /// that the flows themselves can stay on disk.
    flipped: Vec<u64>,
    pub services: Vec<Service>,
    pub rules: Vec<RuleUse>,
    pub findings: Vec<Finding>,
    pub caveats: Caveats,
    /// The inventory as the audit read it (one entry per address block), written to
    /// inventory.csv so that `policy` and `firewall` can work from the report directory alone.
    pub inventory: Vec<crate::inventory::Entry>,
}

struct Ctx<'a> {
    cat: &'a Catalogs,
    inv: &'a Inventory,
    cache: BTreeMap<Addr, Option<HostInfo>>,
}

impl Ctx<'_> {
    fn host(&mut self, a: Addr) -> Option<HostInfo> {
        let (inv, roles) = (self.inv, &self.cat.roles);
        self.cache
            .entry(a)
            .or_insert_with(|| inv.lookup(a, roles))
            .clone()
    }

    /// Rules allowing client -> server on (proto, port), by roles (and names for internet rules).
    fn allowing(
        &self,
        c: Option<&HostInfo>,
        s: Option<&HostInfo>,
        server: Addr,
        names: &[String],
        p: u8,
        port: u16,
    ) -> Vec<&Rule> {
        let Some(c) = c else { return Vec::new() };
        self.cat
            .rules_for_port(p, port)
            .filter(|r| c.roles.contains(&r.from_role))
            .filter(|r| match s {
                Some(s) => s.roles.contains(&r.to_role),
                // The far end is outside the inventory: an Internet rule applies when the name the
                // capture gave it matches the rule's pattern, or, for a rule without a pattern,
                // when the address is public (a private address is an unknown host, not the Internet).
                None => {
                    r.to_role == "internet"
                        && match &r.host_pattern {
                            Some(_) => names.iter().any(|n| r.name_matches(n)),
                            None => is_public(server),
                        }
                }
            })
            .collect()
    }
}

/// Per-service totals gathered while the flows stream past.
#[derive(Default)]
struct Tally {
    flows: u64,
    established: u64,
    refused: u64,
    unanswered: u64,
    packets: u64,
    bytes: u64,
    first_ts: Option<i64>,
    last_ts: i64,
    bases: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, f: &FlowRecord) {
        self.flows += 1;
        match Outcome::of_flow(f) {
            Outcome::Established => self.established += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Unanswered => self.unanswered += 1,
        }
        self.packets += f.flow.packets[0] + f.flow.packets[1];
        self.bytes += f.flow.bytes[0] + f.flow.bytes[1];
        self.first_ts = Some(
            self.first_ts
                .map_or(f.flow.first_ts, |t| t.min(f.flow.first_ts)),
        );
        self.last_ts = self.last_ts.max(f.flow.last_ts);
        *self.bases.entry(f.flow.basis.as_str()).or_default() += 1;
    }
}

impl Audit {
    /// The flows in report order, turned the way the audit decided (basis `catalog`).
    pub fn oriented<'a>(
        &'a self,
        flows: &'a Flows,
    ) -> impl Iterator<Item = std::io::Result<FlowRecord>> + 'a {
        flows.iter().enumerate().map(move |(i, f)| {
            let mut f = f?;
            if self
                .flipped
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
            {
                f.flip(Basis::Catalog);
            }
            Ok(f)
        })
    }
}

/// Runs the audit over finished flows, streaming them once: memory grows with the services,
/// not the flows. `names` maps server addresses to names seen in the capture. Fails only when
/// flows spilled to disk cannot be read back.
pub fn audit(
    flows: &Flows,
    cat: &Catalogs,
    inv: &Inventory,
    names: &BTreeMap<Addr, BTreeSet<String>>,
) -> std::io::Result<Audit> {
    let mut cx = Ctx {
        cat,
        inv,
        cache: BTreeMap::new(),
    };
    let no_names = BTreeSet::new();
    let names_of = |a: Addr| {
        names
            .get(&a)
            .unwrap_or(&no_names)
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut flipped = Vec::new();
    let mut tallies: BTreeMap<ServiceKey, Tally> = BTreeMap::new();
    let mut caveats = Caveats::default();
    let mut flow_count = 0u64;
    for (i, f) in flows.iter().enumerate() {
        let mut f = f?;
        flow_count += 1;
        // 1. Direction from the catalogs, where the engine only guessed.
        if f.flow.basis.is_heuristic() && proto::has_ports(f.key.proto) {
            let (c, cp) = f.client();
            let (s, sp) = f.server();
            let (hc, hs) = (cx.host(c), cx.host(s));
            let fwd = !cx
                .allowing(hc.as_ref(), hs.as_ref(), s, &names_of(s), f.key.proto, sp)
                .is_empty();
            let rev = !cx
                .allowing(hs.as_ref(), hc.as_ref(), c, &names_of(c), f.key.proto, cp)
                .is_empty();
            if rev && !fwd {
                f.flip(Basis::Catalog);
                if flipped.len() <= i / 64 {
                    flipped.resize(i / 64 + 1, 0u64);
                }
                flipped[i / 64] |= 1 << (i % 64);
            }
        }
        // 2. Services, and what the capture could not show.
        let (c, _) = f.client();
        let (s, sp) = f.server();
        let port = if proto::has_ports(f.key.proto) { sp } else { 0 };
        tallies
            .entry(ServiceKey {
                client: c,
                server: s,
                proto: f.key.proto,
                port,
            })
            .or_default()
            .add(&f);
        if f.key.proto == proto::TCP {
            caveats.tcp_flows += 1;
            if f.flow.packets[0] == 0 || f.flow.packets[1] == 0 {
                caveats.one_sided_tcp += 1;
            }
        }
    }
    let mut services = Vec::new();
    let mut uses: BTreeMap<(String, String, String), RuleUse> = BTreeMap::new();
    for (key, t) in &tallies {
        let hc = cx.host(key.client);
        let hs = cx.host(key.server);
        let dns = names_of(key.server);
        let allow = cx.allowing(
            hc.as_ref(),
            hs.as_ref(),
            key.server,
            &dns,
            key.proto,
            key.port,
        );
        let (verdict, rule_ids, needed, unknown_end) = if !allow.is_empty() {
            (
                Verdict::Documented,
                allow.iter().map(|r| r.id.clone()).collect(),
                Vec::new(),
                "",
            )
        } else if hc.is_none() || hs.is_none() {
            let end = match (hc.is_none(), hs.is_none()) {
                (true, true) => "both",
                (true, false) => "client",
                _ => "server",
            };
            (Verdict::UnknownHost, Vec::new(), Vec::new(), end)
        } else {
            // A port inside some dynamic or very wide range between other roles is not "documented
            // between the wrong roles": only specific openings count for role-mismatch.
            let on_port: Vec<&Rule> = cat
                .rules_for_port(key.proto, key.port)
                .filter(|r| is_specific_for(r, key.port))
                .collect();
            let (c, s) = (hc.as_ref().unwrap(), hs.as_ref().unwrap());
            let reversed: Vec<&Rule> = on_port
                .iter()
                .copied()
                .filter(|r| s.roles.contains(&r.from_role) && c.roles.contains(&r.to_role))
                .collect();
            if !reversed.is_empty() {
                (
                    Verdict::Reverse,
                    reversed.iter().map(|r| r.id.clone()).collect(),
                    Vec::new(),
                    "",
                )
            } else if !on_port.is_empty() {
                let mut need: Vec<(String, String)> = on_port
                    .iter()
                    .map(|r| (r.from_role.clone(), r.to_role.clone()))
                    .collect();
                need.sort();
                need.dedup();
                (
                    Verdict::RoleMismatch,
                    on_port.iter().map(|r| r.id.clone()).collect(),
                    need,
                    "",
                )
            } else {
                (Verdict::Undocumented, Vec::new(), Vec::new(), "")
            }
        };
        let mut svc = Service {
            key: *key,
            verdict,
            outcome: Outcome::Unanswered,
            rule_ids,
            needed_roles: needed,
            unknown_end,
            client_roles: hc.as_ref().map(|h| h.roles.clone()).unwrap_or_default(),
            server_roles: hs.as_ref().map(|h| h.roles.clone()).unwrap_or_default(),
            client_name: hc.as_ref().map(|h| h.name.clone()).unwrap_or_default(),
            server_name: hs.as_ref().map(|h| h.name.clone()).unwrap_or_default(),
            server_dns: dns,
            flows: t.flows,
            established: t.established,
            refused: t.refused,
            unanswered: t.unanswered,
            packets: t.packets,
            bytes: t.bytes,
            first_ts: t.first_ts.unwrap_or(0),
            last_ts: t.last_ts,
            bases: t.bases.clone(),
        };
        svc.outcome = if svc.established > 0 {
            Outcome::Established
        } else if svc.refused > 0 {
            Outcome::Refused
        } else {
            Outcome::Unanswered
        };
        if verdict == Verdict::Documented {
            for r in &allow {
                let (cb, sb) = (
                    hc.as_ref().map(|h| h.block.to_string()).unwrap_or_default(),
                    hs.as_ref()
                        .map(|h| h.block.to_string())
                        .unwrap_or_else(|| dns_label(&svc)),
                );
                let u = uses
                    .entry((r.id.clone(), cb.clone(), sb.clone()))
                    .or_insert_with(|| RuleUse {
                        rule: (*r).clone(),
                        client: cb,
                        client_name: svc.client_name.clone(),
                        server: sb,
                        server_name: svc.server_name.clone(),
                        flows: 0,
                        bytes: 0,
                        ports_seen: BTreeSet::new(),
                    });
                u.flows += svc.flows;
                u.bytes += svc.bytes;
                u.ports_seen.insert(key.port);
            }
        }
        services.push(svc);
    }
    // 3. Every rule instantiated over the inventory: unused pairs are candidates to close.
    for r in &cat.rules {
        if r.to_role == "internet" {
            continue;
        }
        for c in inv.holders(&r.from_role, &cat.roles) {
            for s in inv.holders(&r.to_role, &cat.roles) {
                if c.cidr == s.cidr {
                    continue;
                }
                uses.entry((r.id.clone(), c.cidr.to_string(), s.cidr.to_string()))
                    .or_insert_with(|| RuleUse {
                        rule: r.clone(),
                        client: c.cidr.to_string(),
                        client_name: c.name.clone(),
                        server: s.cidr.to_string(),
                        server_name: s.name.clone(),
                        flows: 0,
                        bytes: 0,
                        ports_seen: BTreeSet::new(),
                    });
            }
        }
    }
    let rules: Vec<RuleUse> = uses.into_values().collect();
    // 4. Findings.
    let findings = findings(&services, &rules, &caveats);
    Ok(Audit {
        flow_count,
        flipped,
        services,
        rules,
        findings,
        caveats,
        inventory: inv.entries.clone(),
    })
}

fn dns_label(s: &Service) -> String {
    s.server_dns
        .first()
        .cloned()
        .unwrap_or_else(|| s.key.server.to_string())
}

pub fn service_label(s: &Service) -> String {
    let name = |n: &str, a: Addr| {
        if n.is_empty() {
            a.to_string()
        } else {
            format!("{n} ({a})")
        }
    };
    let port = if proto::has_ports(s.key.proto) {
        format!("/{}", s.key.port)
    } else {
        String::new()
    };
    format!(
        "{} -> {} {}{}",
        name(&s.client_name, s.key.client),
        name(&s.server_name, s.key.server),
        proto::name(s.key.proto),
        port
    )
}

fn findings(services: &[Service], rules: &[RuleUse], cav: &Caveats) -> Vec<Finding> {
    let weak = if cav.one_sided() {
        " (weak evidence: the capture looks one-sided, so answers may simply not have been captured)"
    } else {
        ""
    };
    let mut out = Vec::new();
    for s in services {
        let subject = service_label(s);
        let counts = format!(
            "{} flows ({} established, {} refused, {} unanswered), {} bytes, first {} last {}",
            s.flows,
            s.established,
            s.refused,
            s.unanswered,
            s.bytes,
            crate::report::format_ts(s.first_ts),
            crate::report::format_ts(s.last_ts)
        );
        match s.verdict {
            Verdict::Documented if s.outcome != Outcome::Established => out.push(Finding {
                severity: Severity::High,
                kind: if s.outcome == Outcome::Refused { "documented-refused" } else { "documented-unanswered" },
                subject,
                reason: format!(
                    "a documented backup connection was {}: a firewall may be blocking what a job needs{weak}",
                    s.outcome.as_str()
                ),
                evidence: format!("rules {}; {counts}", s.rule_ids.join(";")),
            }),
            Verdict::Documented => {}
            Verdict::Undocumented => out.push(Finding {
                severity: Severity::Medium,
                kind: "undocumented",
                subject,
                reason: "no vendor rule covers this traffic between these hosts: confirm it is needed or close it".into(),
                evidence: counts,
            }),
            Verdict::RoleMismatch => out.push(Finding {
                severity: Severity::Medium,
                kind: "role-mismatch",
                subject,
                reason: format!(
                    "the port is documented, but only between other roles ({}); fix the inventory or the traffic",
                    s.needed_roles.iter().take(5).map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>().join(", ")
                ),
                evidence: format!("client roles {}; server roles {}; {counts}", s.client_roles.join(";"), s.server_roles.join(";")),
            }),
            Verdict::Reverse => out.push(Finding {
                severity: Severity::Medium,
                kind: "reverse",
                subject,
                reason: "only the opposite direction is documented: check which side opens the connection".into(),
                evidence: format!("rules {}; {counts}", s.rule_ids.join(";")),
            }),
            Verdict::UnknownHost => out.push(Finding {
                severity: Severity::Low,
                kind: "unknown-host",
                subject,
                reason: format!(
                    "{} not in the inventory: add it with its roles",
                    match s.unknown_end {
                        "both" => "neither end is",
                        "client" => "the client is",
                        _ => "the server is",
                    }
                ),
                evidence: counts,
            }),
        }
    }
    for u in rules {
        let subject = format!(
            "{} {} -> {} ({})",
            u.rule.id,
            u.client,
            u.server,
            u.rule.ports_str()
        );
        if !u.used() {
            let excuse: Vec<&str> = u
                .rule
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
            out.push(Finding {
                severity: Severity::Info,
                kind: "unused-rule",
                subject,
                reason,
                evidence: format!(
                    "{} {}: {}",
                    u.rule.protocols_str(),
                    u.rule.ports_str(),
                    u.rule.note
                ),
            });
        } else if let Some(s) = u.suggested() {
            out.push(Finding {
                severity: Severity::Info,
                kind: "narrow-range",
                subject,
                reason: format!("only {s} of the documented range was used: narrow the opening for this host pair"),
                evidence: format!("{} flows, ports seen {}", u.flows, u.ports_seen.len()),
            });
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.kind.cmp(b.kind))
            .then(a.subject.cmp(&b.subject))
    });
    out
}

/// Widest range still treated as a specific opening (2500-3300 is 801 ports wide).
const SPECIFIC_RANGE_MAX: u32 = 1024;

fn is_specific_for(r: &Rule, port: u16) -> bool {
    !r.has(Qualifier::DynamicRange)
        && r.ports
            .iter()
            .any(|p| p.contains(port) && p.width() <= SPECIFIC_RANGE_MAX)
}

/// Not in a private, loopback, link-local, shared (CGNAT) or unique-local range.
pub fn is_public(a: Addr) -> bool {
    match a.to_ip() {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        std::net::IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg & 0xfe00) == 0xfc00
                || (seg & 0xffc0) == 0xfe80)
        }
    }
}
