//! The audit: flows -> services (client host, server host, protocol, server port), each classified
//! against the catalogs by the roles the inventory gives both ends; rule use and findings per
//! group of hosts (an inventory entry, a role set or a host: `--group-by`).
//!
//! Stages, one file each: [`compiled`] (catalogs as lookup tables), [`hosts`] (addresses
//! resolved once, groups), [`aggregate`] (flows to services), [`classify`] (a service's verdict,
//! a pure function), [`findings`] (rule use and grouped findings).

pub mod aggregate;
pub mod catalog;
pub mod classes;
pub mod classify;
pub mod compiled;
pub mod findings;
pub mod hosts;
pub mod inventory;
pub mod setup;
pub mod waiver;

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::audit::catalog::Catalogs;
use crate::audit::inventory::Inventory;
use crate::audit::waiver::{Date, Waivers};
use crate::decode::{proto, Addr};
use crate::flow::store::Flows;
use crate::flow::{ConnState, FlowRecord};

pub use classify::UnknownEnd;
pub use compiled::{Compiled, RuleIdx};
pub use findings::{Finding, FindingKind, RuleUse};
pub use hosts::{GroupBy, GroupIdx, HostIdx, Hosts};

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

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
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

    pub const ALL: [Outcome; 3] = [Outcome::Established, Outcome::Refused, Outcome::Unanswered];

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
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

/// A service: client host -> server host on (protocol, server port), as host indices in address
/// order, so that sorting keys sorts by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub client: HostIdx,
    pub server: HostIdx,
    pub proto: u8,
    /// 0 for protocols without ports.
    pub port: u16,
}

/// No waiver holds for the service.
pub const NO_WAIVER: u32 = u32::MAX;

/// One service with its totals and verdict: 96 bytes, no heap (docs/performance.md).
#[derive(Debug, Clone)]
pub struct Service {
    pub key: ServiceKey,
    pub flows: u32,
    pub established: u32,
    pub refused: u32,
    pub unanswered: u32,
    pub packets: u64,
    pub bytes: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Flows per direction basis, indexed by `Basis as usize`.
    pub bases: [u32; 5],
    pub verdict: Verdict,
    pub outcome: Outcome,
    pub unknown: UnknownEnd,
    /// The rules listed for it (see [`classify::Class`]), `n_rules` of them.
    pub rules: [RuleIdx; classify::LISTED_RULES],
    pub n_rules: u8,
    /// Rules not listed.
    pub more: u16,
    /// Index of the waiver that matches it in the waiver file, or [`NO_WAIVER`].
    pub waiver: u32,
}

impl Service {
    pub fn listed_rules(&self) -> &[RuleIdx] {
        &self.rules[..self.n_rules as usize]
    }

    fn set_class(&mut self, c: &classes::Compact) {
        self.verdict = c.verdict;
        self.unknown = c.unknown;
        self.rules = c.rules;
        self.n_rules = c.n_rules;
        self.more = c.more;
        self.outcome = if self.established > 0 {
            Outcome::Established
        } else if self.refused > 0 {
            Outcome::Refused
        } else {
            Outcome::Unanswered
        };
    }
}

/// What the capture could not show, for the summary and the findings; and what was left out
/// of the services on purpose (see [`Caveats::not_a_service`]).
#[derive(Debug, Clone, Default)]
pub struct Caveats {
    pub one_sided_tcp: u64,
    pub tcp_flows: u64,
    /// Flows from sampled or incomplete flow records.
    pub sampled: bool,
    /// Flows made only of ICMP errors answering other traffic: not services.
    pub icmp_error_flows: u64,
    /// Flows an ICMP destination unreachable answered: counted as refused.
    pub icmp_refused_flows: u64,
    /// Flows between two addresses of one inventory host, and those hosts (names or
    /// addresses): the host's own traffic, not services.
    pub own_host_flows: u64,
    pub own_hosts: BTreeSet<String>,
    /// More hosts had own-host traffic than `own_hosts` names.
    pub own_hosts_more: bool,
    /// The inventory's overlap notes (`file:line: ...`): hosts holding roles of several lines.
    pub inventory: Vec<String>,
}

impl Caveats {
    /// Most TCP flows saw one direction only: probably a one-sided mirror.
    pub fn one_sided(&self) -> bool {
        self.tcp_flows >= 10 && self.one_sided_tcp * 2 > self.tcp_flows
    }

    fn add(&mut self, f: &FlowRecord) {
        if f.key.proto == proto::TCP {
            self.tcp_flows += 1;
            if f.flow.packets[0] == 0 || f.flow.packets[1] == 0 {
                self.one_sided_tcp += 1;
            }
        }
        if f.flow.icmp_unreachable {
            self.icmp_refused_flows += 1;
        }
    }

    /// Whether flow `f` (keyed `key`) is left out of the services, counting it if so. An ICMP
    /// error is an answer: it belongs to the flow it quotes (refused, for an unreachable),
    /// it is no connection anybody opened. Traffic between two addresses of one host (a host
    /// and itself) is no client -> server pair between hosts.
    fn not_a_service(&mut self, f: &FlowRecord, key: &ServiceKey, hosts: &Hosts) -> bool {
        if f.flow.icmp_errors_only() {
            self.icmp_error_flows += 1;
            return true;
        }
        if hosts.same_host(key.client, key.server) {
            self.own_host_flows += 1;
            let name = hosts
                .inv_host_name(key.client)
                .map_or_else(|| hosts.get(key.client).addr.to_string(), String::from);
            if self.own_hosts.len() < MAX_NAMED_HOSTS || self.own_hosts.contains(&name) {
                self.own_hosts.insert(name);
            } else {
                self.own_hosts_more = true;
            }
            return true;
        }
        false
    }

    /// Lines for the summary about what was left out of the services, and the inventory's
    /// overlap notes.
    pub fn notes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.icmp_error_flows > 0 || self.icmp_refused_flows > 0 {
            v.push(format!(
                "{} flows were only ICMP errors (destination unreachable, time exceeded, ...) answering other traffic: they are answers, not services; {} attempts an ICMP destination unreachable answered count as refused.",
                self.icmp_error_flows, self.icmp_refused_flows
            ));
        }
        if self.own_host_flows > 0 {
            let more = if self.own_hosts_more {
                " and others"
            } else {
                ""
            };
            v.push(format!(
                "{} flows were own-host traffic, between two addresses of one inventory host ({}{more}): not audited as services.",
                self.own_host_flows,
                self.own_hosts.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for n in &self.inventory {
            v.push(format!("Inventory: {n}."));
        }
        v
    }
}

/// Hosts named one by one in a summary note.
const MAX_NAMED_HOSTS: usize = 20;

/// How to audit, besides the catalogs and the inventory.
#[derive(Clone, Copy)]
pub struct AuditOptions<'a> {
    pub group_by: GroupBy,
    /// The flows are from sampled or incomplete flow records (`audit --flows`): "unanswered" and
    /// "never used" are weak evidence, as with a one-sided capture.
    pub sampled: bool,
    /// Waivers, judged on this date.
    pub waivers: Option<(&'a Waivers, Date)>,
}

impl Default for AuditOptions<'_> {
    fn default() -> Self {
        AuditOptions {
            group_by: GroupBy::Entry,
            sampled: false,
            waivers: None,
        }
    }
}

pub struct Audit {
    /// Flows audited.
    pub flow_count: u64,
    /// Which flows (by position in report order) the catalogs turned around: one bit each, so
    /// that the flows themselves can stay on disk.
    flipped: Vec<u64>,
    pub catalog: Compiled,
    pub hosts: Hosts,
    /// Sorted by key (client address, server address, protocol, port).
    pub services: Vec<Service>,
    pub rules: Vec<RuleUse>,
    pub findings: Vec<Finding>,
    pub caveats: Caveats,
    /// The inventory as the audit read it (one entry per address block), written to
    /// inventory.csv so that `policy` and `firewall` can work from the report directory alone.
    pub inventory: Vec<crate::audit::inventory::Entry>,
    /// The inventory's file name, as given.
    pub inventory_file: String,
    /// Names the capture gave hosts (DNS answers, TLS SNI), by host.
    pub names: FxHashMap<HostIdx, Vec<String>>,
    pub group_by: GroupBy,
    /// The waivers' lines, by the index services and findings hold.
    pub waiver_marks: Vec<crate::audit::waiver::Mark>,
}

impl Audit {
    /// The flows in report order, turned the way the audit decided (basis `catalog`).
    pub fn oriented<'a>(
        &'a self,
        flows: &'a Flows,
    ) -> impl Iterator<Item = std::io::Result<FlowRecord>> + 'a {
        flows.iter().enumerate().map(move |(i, f)| {
            let flip = self
                .flipped
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0);
            Ok(aggregate::oriented(f?, flip))
        })
    }

    pub fn host_addr(&self, h: HostIdx) -> Addr {
        self.hosts.get(h).addr
    }

    pub fn group_label(&self, g: GroupIdx) -> &str {
        &self.hosts.groups[g as usize].label
    }

    pub fn names_of(&self, h: HostIdx) -> &[String] {
        self.names.get(&h).map_or(&[], Vec::as_slice)
    }

    pub fn rule_id(&self, i: RuleIdx) -> &str {
        &self.catalog.rule(i).id
    }
}

/// Runs the audit over finished flows: memory grows with the services, not the flows (they are
/// read in chunks, from disk when spilled). `names` maps addresses to names seen in the capture.
/// Fails only when the catalogs cannot be compiled or spilled flows cannot be read back.
pub fn audit(
    flows: &Flows,
    cat: &Catalogs,
    inv: &Inventory,
    names: &BTreeMap<Addr, BTreeSet<String>>,
    opts: &AuditOptions,
) -> std::io::Result<Audit> {
    let cc = Compiled::new(cat).map_err(std::io::Error::other)?;
    let hosts = Hosts::new(inv, &cc.roles, opts.group_by, aggregate::addresses(flows)?);
    let host_names: FxHashMap<HostIdx, Vec<String>> = hosts
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((i as HostIdx, names.get(&h.addr)?.iter().cloned().collect())))
        .collect();
    let mut flipped = Vec::new();
    let mut caveats = Caveats {
        sampled: opts.sampled,
        inventory: inv.overlaps.iter().map(|p| p.to_string()).collect(),
        ..Caveats::default()
    };
    let cx = aggregate::Ctx {
        cc: &cc,
        hosts: &hosts,
        names: &host_names,
    };
    let mut services = aggregate::services(flows, &cx, &mut flipped, &mut caveats)?;
    classes::classify_services(&mut services, &cx, &hosts.site_roles());
    let waiver_marks = match opts.waivers {
        Some((w, today)) => findings::mark_services(&mut services, w, today, &cc, &hosts),
        None => Vec::new(),
    };
    let mut hosts = hosts;
    let (rules, findings) = findings::build(
        &mut services,
        &cc,
        &mut hosts,
        &host_names,
        &caveats,
        &waiver_marks,
    );
    Ok(Audit {
        flow_count: flows.len(),
        flipped,
        catalog: cc,
        hosts,
        services,
        rules,
        findings,
        caveats,
        inventory: inv.entries.clone(),
        inventory_file: inv.file.clone(),
        names: host_names,
        group_by: opts.group_by,
        waiver_marks,
    })
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
