//! The check itself: every observed service through the ruleset (its first packet as state new;
//! when it was answered, its later packets both ways as state established), then a verdict for
//! every rule from what hit it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::eval::{evaluate, At, Packet, Selection, Trace, Verdict};
use super::input::{group_of, AuditDir, Block, Service};
use super::model::{
    addr_key, ct, exceeds, family_range, intersect, normalize, Action, Field, Part, Policy,
    Ruleset, Values,
};

/// How the check is run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub selection: Selection,
    /// Interface names and the address blocks behind them, for iifname/oifname matches.
    pub ifaces: Vec<(String, Vec<(u128, u128)>)>,
}

/// A rule's verdict in firewall.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleVerdict {
    Needed,
    Unused,
    TooWide,
    AllowsUndocumented,
    DropsDocumented,
    NotEvaluated,
}

impl RuleVerdict {
    pub const ALL: [RuleVerdict; 6] = [
        RuleVerdict::Needed,
        RuleVerdict::Unused,
        RuleVerdict::TooWide,
        RuleVerdict::AllowsUndocumented,
        RuleVerdict::DropsDocumented,
        RuleVerdict::NotEvaluated,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            RuleVerdict::Needed => "needed",
            RuleVerdict::Unused => "unused",
            RuleVerdict::TooWide => "too-wide",
            RuleVerdict::AllowsUndocumented => "allows-undocumented",
            RuleVerdict::DropsDocumented => "drops-documented",
            RuleVerdict::NotEvaluated => "not-evaluated",
        }
    }
}

/// One service through the ruleset.
#[derive(Debug, Clone)]
pub struct ServiceResult {
    /// Its first packet (ct state new).
    pub new: Trace,
    /// Its later packets, client to server and back (ct state established), when it was
    /// answered and the first packet was accepted.
    pub established: Option<(Trace, Trace)>,
}

/// One row of firewall.csv.
#[derive(Debug, Clone)]
pub struct RuleRow {
    pub at: At,
    pub position: String,
    pub chain: String,
    /// 1-based place in the chain, or `policy`.
    pub index: String,
    pub handle: String,
    pub text: String,
    pub action: String,
    pub verdict: RuleVerdict,
    pub services: usize,
    pub flows: u64,
    pub bytes: u64,
    pub new_services: usize,
    pub established_services: usize,
    pub covering_ports: String,
    pub covering_clients: String,
    pub covering_servers: String,
    pub reason: String,
    pub counter: Option<(u64, u64)>,
    pub origin: String,
}

/// Everything the check found.
#[derive(Debug, Clone)]
pub struct Check {
    pub rows: Vec<RuleRow>,
    pub results: Vec<ServiceResult>,
    /// Base chains evaluated, and other chains reached from them.
    pub evaluated_chains: Vec<String>,
    /// Chains of the ruleset that were not evaluated (another hook, a nat chain, unreachable).
    pub other_chains: Vec<String>,
}

impl Check {
    pub fn position(&self, rs: &Ruleset, at: At) -> String {
        position(rs, at)
    }
}

pub fn position(rs: &Ruleset, at: At) -> String {
    let c = &rs.chains[at.chain];
    match at.rule {
        Some(i) => format!("{} #{}", c.label(), i + 1),
        None => format!("{} policy", c.label()),
    }
}

pub fn entry_text(rs: &Ruleset, at: At) -> String {
    let c = &rs.chains[at.chain];
    match at.rule {
        Some(i) => c.rules[i].text.clone(),
        None => match c.hook.as_ref().map(|h| h.policy) {
            Some(Policy::Drop) => "policy drop".into(),
            _ => "policy accept".into(),
        },
    }
}

fn iface_of(opts: &Options, a: IpAddr) -> Option<String> {
    let k = addr_key(a);
    opts.ifaces
        .iter()
        .filter_map(|(name, blocks)| {
            blocks
                .iter()
                .filter(|(lo, hi)| *lo <= k && k <= *hi)
                .map(|(lo, hi)| hi - lo)
                .min()
                .map(|w| (w, name))
        })
        .min_by_key(|(w, _)| *w)
        .map(|(_, n)| n.clone())
}

fn packets(s: &Service, opts: &Options) -> (Packet, Packet, Packet) {
    let (ci, si) = (iface_of(opts, s.client), iface_of(opts, s.server));
    let new = Packet {
        v6: s.client.is_ipv6(),
        saddr: addr_key(s.client),
        daddr: addr_key(s.server),
        proto: s.proto,
        sport: None,
        dport: s.port,
        iif: ci.clone(),
        oif: si.clone(),
        state: ct::NEW,
    };
    let orig = Packet {
        state: ct::ESTABLISHED,
        ..new.clone()
    };
    let reply = Packet {
        saddr: new.daddr,
        daddr: new.saddr,
        sport: s.port,
        dport: None,
        iif: si,
        oif: ci,
        ..orig.clone()
    };
    (new, orig, reply)
}

/// Chains reached from the base chains by jump, goto and verdict maps.
fn reachable(rs: &Ruleset, bases: &[usize]) -> Vec<usize> {
    let mut seen: BTreeSet<usize> = bases.iter().copied().collect();
    let mut order: Vec<usize> = bases.to_vec();
    let mut i = 0;
    while i < order.len() {
        let c = &rs.chains[order[i]];
        for r in &c.rules {
            let mut targets: Vec<&str> = Vec::new();
            match &r.action {
                Action::Jump(t) | Action::Goto(t) => targets.push(t),
                Action::Vmap { entries, .. } => {
                    for (_, a) in entries {
                        if let Action::Jump(t) | Action::Goto(t) = a {
                            targets.push(t);
                        }
                    }
                }
                _ => {}
            }
            for t in targets {
                if let Some(ti) = rs.chain(&c.family_name, &c.table, t) {
                    if seen.insert(ti) {
                        order.push(ti);
                    }
                }
            }
        }
        i += 1;
    }
    order
}

/// What hit one rule or policy.
#[derive(Default)]
struct Hits {
    new: BTreeSet<usize>,
    established: BTreeSet<usize>,
    /// Services whose evaluation stopped here, not evaluated (and why).
    unknown: BTreeMap<usize, String>,
}

pub fn run(rs: &Ruleset, audit: &AuditDir, opts: &Options) -> Check {
    let bases = opts.selection.base_chains(rs);
    let chains = reachable(rs, &bases);
    let mut results = Vec::with_capacity(audit.services.len());
    let mut hits: BTreeMap<At, Hits> = BTreeMap::new();
    for (si, s) in audit.services.iter().enumerate() {
        let (new_p, orig_p, reply_p) = packets(s, opts);
        let new = evaluate(rs, &bases, &new_p);
        for at in &new.matched {
            hits.entry(*at).or_default().new.insert(si);
        }
        if let (Verdict::NotEvaluated(why), Some(at)) = (&new.verdict, new.by) {
            hits.entry(at).or_default().unknown.insert(si, why.clone());
        }
        let established = (s.answered && new.verdict == Verdict::Accept).then(|| {
            let (o, r) = (
                evaluate(rs, &bases, &orig_p),
                evaluate(rs, &bases, &reply_p),
            );
            for at in o.matched.iter().chain(&r.matched) {
                hits.entry(*at).or_default().established.insert(si);
            }
            (o, r)
        });
        results.push(ServiceResult { new, established });
    }
    let mut rows = Vec::new();
    for &ci in &chains {
        let c = &rs.chains[ci];
        let mut ats: Vec<At> = (0..c.rules.len())
            .map(|i| At {
                chain: ci,
                rule: Some(i),
            })
            .collect();
        if c.hook.is_some() {
            ats.push(At {
                chain: ci,
                rule: None,
            });
        }
        for at in ats {
            let h = hits.remove(&at).unwrap_or_default();
            rows.push(row(rs, audit, &results, at, &h));
        }
    }
    let evaluated: BTreeSet<usize> = chains.iter().copied().collect();
    Check {
        rows,
        results,
        evaluated_chains: chains.iter().map(|&i| rs.chains[i].label()).collect(),
        other_chains: (0..rs.chains.len())
            .filter(|i| !evaluated.contains(i))
            .map(|i| rs.chains[i].label())
            .collect(),
    }
}

fn row(rs: &Ruleset, audit: &AuditDir, results: &[ServiceResult], at: At, h: &Hits) -> RuleRow {
    let c = &rs.chains[at.chain];
    let rule = at.rule.map(|i| &c.rules[i]);
    let all: BTreeSet<usize> = h.new.union(&h.established).copied().collect();
    let mut r = base_row(rs, audit, at, h, &all);
    let mut reasons = rule.map(|r| r.unknown_reasons()).unwrap_or_default();
    reasons.extend(h.unknown.values().cloned());
    reasons.sort();
    reasons.dedup();
    if !reasons.is_empty() {
        r.verdict = RuleVerdict::NotEvaluated;
        r.reason = reasons.join("; ");
        return r;
    }
    if all.is_empty() {
        r.reason = match rule {
            Some(_) => {
                "no observed traffic reached it in this capture window: a candidate to close"
            }
            None => "no observed traffic reached the policy in this capture window",
        }
        .into();
        return r;
    }
    let drops = match rule {
        Some(x) => x.action.drops(),
        None => c.hook.as_ref().is_some_and(|h| h.policy == Policy::Drop),
    };
    // The new connections this rule (or policy) decided.
    let decided: Vec<usize> = h
        .new
        .iter()
        .copied()
        .filter(|i| results[*i].new.by == Some(at))
        .collect();
    if drops {
        judge_drop(audit, &decided, &mut r);
    } else {
        judge_accept(rs, audit, results, at, h, &decided, &mut r);
    }
    r
}

/// A rule's row before it is judged: where it is, what it says, what reached it (`all`: the
/// services whose new or established packets it saw).
fn base_row(rs: &Ruleset, audit: &AuditDir, at: At, h: &Hits, all: &BTreeSet<usize>) -> RuleRow {
    let c = &rs.chains[at.chain];
    let rule = at.rule.map(|i| &c.rules[i]);
    let svc = |i: &usize| &audit.services[*i];
    RuleRow {
        at,
        position: position(rs, at),
        chain: c.label(),
        index: at
            .rule
            .map(|i| (i + 1).to_string())
            .unwrap_or_else(|| "policy".into()),
        handle: rule
            .and_then(|r| r.handle)
            .map(|h| h.to_string())
            .unwrap_or_default(),
        text: entry_text(rs, at),
        action: match rule {
            Some(r) => r.action.word().into(),
            None => "policy".into(),
        },
        verdict: RuleVerdict::Unused,
        services: all.len(),
        flows: all.iter().map(|i| svc(i).flows).sum(),
        bytes: all.iter().map(|i| svc(i).bytes).sum(),
        new_services: h.new.len(),
        established_services: h.established.len(),
        covering_ports: String::new(),
        covering_clients: String::new(),
        covering_servers: String::new(),
        reason: String::new(),
        counter: rule.and_then(|r| r.counter),
        origin: rule.map(|r| r.origin.clone()).unwrap_or_default(),
    }
}

/// A dropping rule is needed while it drops only undocumented services (`decided`).
fn judge_drop(audit: &AuditDir, decided: &[usize], r: &mut RuleRow) {
    let doc: Vec<usize> = decided
        .iter()
        .copied()
        .filter(|i| audit.services[*i].documented())
        .collect();
    if doc.is_empty() {
        r.verdict = RuleVerdict::Needed;
        r.reason = format!("drops {} undocumented services", decided.len());
    } else {
        r.verdict = RuleVerdict::DropsDocumented;
        r.reason = format!("drops documented services: {}", labels(audit, &doc));
    }
}

/// An accepting rule lets undocumented services through, or is needed (and may be too wide
/// for the documented services it accepted itself).
fn judge_accept(
    rs: &Ruleset,
    audit: &AuditDir,
    results: &[ServiceResult],
    at: At,
    h: &Hits,
    decided: &[usize],
    r: &mut RuleRow,
) {
    let accepted: Vec<usize> = h
        .new
        .iter()
        .copied()
        .filter(|i| results[*i].new.verdict == Verdict::Accept)
        .collect();
    let undoc: Vec<usize> = accepted
        .iter()
        .copied()
        .filter(|i| !audit.services[*i].documented())
        .collect();
    if !undoc.is_empty() {
        r.verdict = RuleVerdict::AllowsUndocumented;
        r.reason = format!(
            "lets undocumented services through: {}",
            labels(audit, &undoc)
        );
        return;
    }
    r.verdict = RuleVerdict::Needed;
    let by_here: Vec<usize> = decided
        .iter()
        .copied()
        .filter(|i| results[*i].new.verdict == Verdict::Accept)
        .collect();
    if by_here.is_empty() {
        r.reason = if h.new.is_empty() {
            format!(
                "carries the established traffic (later packets both ways) of {} services",
                h.established.len()
            )
        } else {
            format!("on the path of {} documented services", accepted.len())
        };
        return;
    }
    width(rs, audit, at, &by_here, r);
}

/// Too wide when the rule admits ports or addresses beyond what the documented services it
/// accepted needed: fills the covering ports and address groups either way.
fn width(rs: &Ruleset, audit: &AuditDir, at: At, by_here: &[usize], r: &mut RuleRow) {
    let svcs: Vec<&Service> = by_here.iter().map(|i| &audit.services[*i]).collect();
    let ports: BTreeSet<u16> = svcs.iter().filter_map(|s| s.port).collect();
    let port_iv = normalize(ports.iter().map(|&p| (p as u128, p as u128)).collect());
    let cover = |addrs: BTreeSet<IpAddr>, inv: &[Block]| {
        let mut blocks = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for a in addrs {
            let (b, label) = group_of(inv, a);
            blocks.extend(b);
            if !names.contains(&label) {
                names.push(label);
            }
        }
        (normalize(blocks), names.join("; "))
    };
    let (clients, client_names) = cover(svcs.iter().map(|s| s.client).collect(), &audit.inventory);
    let (servers, server_names) = cover(svcs.iter().map(|s| s.server).collect(), &audit.inventory);
    r.covering_ports = crate::report::audit::compress_ports(&ports);
    r.covering_clients = client_names;
    r.covering_servers = server_names;
    let parts: &[Part] = at
        .rule
        .map(|i| rs.chains[at.chain].rules[i].parts.as_slice())
        .unwrap_or(&[]);
    let families: Vec<(u128, u128)> = {
        let (v4, v6) = (
            svcs.iter().any(|s| !s.client.is_ipv6()),
            svcs.iter().any(|s| s.client.is_ipv6()),
        );
        let mut f = Vec::new();
        if v4 {
            f.push(family_range(false));
        }
        if v6 {
            f.push(family_range(true));
        }
        f
    };
    let admitted = |field: Field, any: Vec<(u128, u128)>| -> Vec<(u128, u128)> {
        // Every plain match on the field bounds it. Negated ones are left out, which can only
        // make the rule look as wide as without them.
        parts.iter().fold(any, |acc, p| match p {
            Part::Match(m) if m.field == field && !m.negate => match &m.values {
                Values::Ints(iv) => intersect(&acc, &normalize(iv.clone())),
                _ => acc,
            },
            _ => acc,
        })
    };
    let has_ports = !ports.is_empty();
    let mut wider = Vec::new();
    if has_ports && exceeds(&admitted(Field::Dport, vec![(0, 65535)]), &port_iv) {
        wider.push("ports");
    }
    if exceeds(&admitted(Field::Saddr, families.clone()), &clients) {
        wider.push("clients");
    }
    if exceeds(&admitted(Field::Daddr, families), &servers) {
        wider.push("servers");
    }
    if wider.is_empty() {
        r.reason = format!(
            "accepts {} documented services and nothing wider",
            by_here.len()
        );
    } else {
        r.verdict = RuleVerdict::TooWide;
        r.reason = format!(
            "admits more {} than the {} documented services it accepted need: narrow it to the covering ports and address groups",
            match wider.as_slice() {
                [one] => one.to_string(),
                [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
                [] => unreachable!("not empty"),
            },
            by_here.len()
        );
    }
}

/// Service labels for a reason cell: the first five and a count of the rest.
fn labels(audit: &AuditDir, idx: &[usize]) -> String {
    let mut s: Vec<String> = idx
        .iter()
        .take(5)
        .map(|i| {
            let x = &audit.services[*i];
            format!("{} ({})", x.label, x.verdict)
        })
        .collect();
    if idx.len() > 5 {
        s.push(format!("and {} more", idx.len() - 5));
    }
    s.join("; ")
}
