//! Evaluating a ruleset for one packet the way the kernel does: the selected base chains in
//! priority order, rules in order, jump/goto/return, verdicts, the base chain's policy.
//!
//! Matching is three-valued: a part the capture cannot decide (a mark, a rate limit, the
//! client's port, which services.csv does not keep) is unknown. A rule with a known false part
//! does not match whatever the unknown parts say; a rule that might match and would end the
//! evaluation makes the packet's verdict "not evaluated", never a guess.

use super::model::{Action, Chain, Field, Match, Need, Part, Policy, Ruleset, Values};

/// The packet as the firewall would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub v6: bool,
    pub saddr: u128,
    pub daddr: u128,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// One `model::ct` bit.
    pub state: u128,
}

/// A place in the ruleset: a rule, or a base chain's policy (`rule` None).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At {
    pub chain: usize,
    pub rule: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    /// Unknown: the rule that might have decided, and why it cannot be evaluated.
    NotEvaluated(String),
    /// No selected base chain sees this packet's family.
    NotFiltered,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::NotEvaluated(_) => "not-evaluated",
            Verdict::NotFiltered => "not-filtered",
        }
    }
}

/// What happened to one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Every rule whose parts all matched (what a `counter` in it would count), in order.
    pub matched: Vec<At>,
    pub verdict: Verdict,
    /// The rule or policy that decided (the last base chain's, for an accept).
    pub by: Option<At>,
}

/// Which base chains are evaluated: hook names (forward, input, ...) or chain names.
#[derive(Debug, Clone)]
pub struct Selection {
    pub names: Vec<String>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            names: vec!["forward".into()],
        }
    }
}

impl Selection {
    pub fn selects(&self, c: &Chain) -> bool {
        let Some(h) = &c.hook else { return false };
        // Only filter chains decide; nat and route chains are other jobs.
        h.kind == "filter"
            && self
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&h.hook) || *n == c.name)
    }

    /// The selected base chains in the order the kernel runs them (priority, then as read).
    pub fn base_chains(&self, rs: &Ruleset) -> Vec<usize> {
        let mut v: Vec<usize> = (0..rs.chains.len())
            .filter(|&i| self.selects(&rs.chains[i]))
            .collect();
        v.sort_by_key(|&i| rs.chains[i].hook.as_ref().map(|h| h.prio).unwrap_or(0));
        v
    }
}

enum Flow {
    Accept(At),
    Drop(At),
    Return,
    Unknown(At, String),
}

/// Deepest chain nesting followed (the kernel's limit is 16 jumps deep for nft's stack).
const MAX_DEPTH: usize = 64;

/// Evaluates `pkt` through the base chains `bases` (from [`Selection::base_chains`]).
pub fn evaluate(rs: &Ruleset, bases: &[usize], pkt: &Packet) -> Trace {
    let mut matched = Vec::new();
    let mut seen_any = false;
    let mut by = None;
    for &ci in bases {
        let c = &rs.chains[ci];
        if !c.family.sees(pkt.v6) {
            continue;
        }
        seen_any = true;
        let policy = At {
            chain: ci,
            rule: None,
        };
        match run_chain(rs, ci, pkt, &mut matched, 0) {
            Flow::Accept(at) => by = Some(at),
            Flow::Drop(at) => return finish(matched, Verdict::Drop, Some(at)),
            Flow::Unknown(at, why) => return finish(matched, Verdict::NotEvaluated(why), Some(at)),
            Flow::Return => {
                matched.push(policy);
                match c.hook.as_ref().map(|h| h.policy) {
                    Some(Policy::Drop) => return finish(matched, Verdict::Drop, Some(policy)),
                    _ => by = Some(policy),
                }
            }
        }
    }
    if !seen_any {
        return finish(matched, Verdict::NotFiltered, None);
    }
    finish(matched, Verdict::Accept, by)
}

fn finish(matched: Vec<At>, verdict: Verdict, by: Option<At>) -> Trace {
    Trace {
        matched,
        verdict,
        by,
    }
}

fn run_chain(rs: &Ruleset, ci: usize, pkt: &Packet, matched: &mut Vec<At>, depth: usize) -> Flow {
    let c = &rs.chains[ci];
    for (ri, rule) in c.rules.iter().enumerate() {
        let at = At {
            chain: ci,
            rule: Some(ri),
        };
        match rule_matches(&rule.parts, pkt) {
            Tri::No => continue,
            Tri::Unknown(why) => {
                if rule.action == Action::Continue {
                    continue;
                }
                return Flow::Unknown(at, why);
            }
            Tri::Yes => matched.push(at),
        }
        let action = match &rule.action {
            Action::Vmap {
                field,
                need,
                entries,
            } => match vmap_pick(*field, *need, entries, pkt) {
                Ok(Some(a)) => a,
                Ok(None) => continue,
                Err(why) => return Flow::Unknown(at, why),
            },
            a => a,
        };
        match apply(rs, c, action, at, pkt, matched, depth) {
            Some(flow) => return flow,
            None => continue,
        }
    }
    Flow::Return
}

/// Applies a matched rule's action: `None` goes on with the next rule.
fn apply(
    rs: &Ruleset,
    c: &Chain,
    action: &Action,
    at: At,
    pkt: &Packet,
    matched: &mut Vec<At>,
    depth: usize,
) -> Option<Flow> {
    let target = |name: &str| rs.chain(&c.family_name, &c.table, name);
    match action {
        Action::Accept => Some(Flow::Accept(at)),
        Action::Drop | Action::Reject => Some(Flow::Drop(at)),
        Action::Return => Some(Flow::Return),
        Action::Continue => None,
        Action::Jump(name) | Action::Goto(name) => {
            let Some(ti) = target(name) else {
                return Some(Flow::Unknown(at, format!("no chain {name} to jump to")));
            };
            if depth >= MAX_DEPTH {
                return Some(Flow::Unknown(at, "jumps nest too deep (a loop?)".into()));
            }
            match run_chain(rs, ti, pkt, matched, depth + 1) {
                // The jumped-to chain ran out or returned: a jump goes on here, a goto
                // returns from this chain too.
                Flow::Return if matches!(action, Action::Jump(_)) => None,
                flow => Some(flow),
            }
        }
        Action::Vmap { .. } | Action::VmapRef { .. } => Some(Flow::Unknown(
            at,
            "a verdict map inside a verdict map".into(),
        )),
        Action::Unknown(why) => Some(Flow::Unknown(at, why.clone())),
    }
}

fn vmap_pick<'a>(
    field: Field,
    need: Need,
    entries: &'a [(Values, Action)],
    pkt: &Packet,
) -> Result<Option<&'a Action>, String> {
    if !need_holds(need, pkt) {
        return Ok(None);
    }
    for (vals, action) in entries {
        let m = Match {
            field,
            need,
            negate: false,
            values: vals.clone(),
        };
        match match_one(&m, pkt) {
            Tri::Yes => return Ok(Some(action)),
            Tri::No => {}
            Tri::Unknown(why) => return Err(why),
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Unknown(String),
}

/// All parts must match: one known false part is enough for no match.
pub fn rule_matches(parts: &[Part], pkt: &Packet) -> Tri {
    let mut unknown = None;
    for p in parts {
        let r = match p {
            Part::Match(m) => match_one(m, pkt),
            Part::Unknown(why) => Tri::Unknown(why.clone()),
        };
        match r {
            Tri::No => return Tri::No,
            Tri::Unknown(why) => {
                unknown.get_or_insert(why);
            }
            Tri::Yes => {}
        }
    }
    match unknown {
        Some(why) => Tri::Unknown(why),
        None => Tri::Yes,
    }
}

/// Protocols with ports: TCP, UDP, DCCP, SCTP, UDP-Lite.
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

fn need_holds(need: Need, pkt: &Packet) -> bool {
    match need {
        Need::Nothing => true,
        Need::V4 => !pkt.v6,
        Need::V6 => pkt.v6,
        Need::Proto(p) => pkt.proto == p,
        Need::Ports => has_ports(pkt.proto),
    }
}

fn match_one(m: &Match, pkt: &Packet) -> Tri {
    if !need_holds(m.need, pkt) {
        return Tri::No;
    }
    let hit = match (&m.values, m.field) {
        (Values::SetRef(name), _) => return Tri::Unknown(format!("no set named @{name}")),
        (Values::Names(names), Field::IifName | Field::OifName) => {
            let dev = if m.field == Field::IifName {
                &pkt.iif
            } else {
                &pkt.oif
            };
            let Some(dev) = dev else {
                return Tri::Unknown(
                    "interface match: give the interfaces' address blocks with --firewall-iface"
                        .into(),
                );
            };
            names.iter().any(|n| match n.strip_suffix('*') {
                Some(prefix) => dev.starts_with(prefix),
                None => n == dev,
            })
        }
        (Values::Ints(iv), f) => {
            let v: u128 = match f {
                Field::Saddr => pkt.saddr,
                Field::Daddr => pkt.daddr,
                Field::Sport | Field::Dport => {
                    let p = if f == Field::Sport {
                        pkt.sport
                    } else {
                        pkt.dport
                    };
                    match p {
                        Some(p) => p as u128,
                        None => return Tri::Unknown(
                            "matches the client's port, which the audit does not keep per service"
                                .into(),
                        ),
                    }
                }
                Field::L4Proto => pkt.proto as u128,
                Field::NfProto => {
                    if pkt.v6 {
                        10
                    } else {
                        2
                    }
                }
                Field::CtState => pkt.state,
                Field::IifName | Field::OifName => {
                    return Tri::Unknown("interface compared with numbers".into())
                }
            };
            iv.iter().any(|&(lo, hi)| lo <= v && v <= hi)
        }
        (Values::Names(_), _) => return Tri::Unknown("names compared with a number".into()),
    };
    if hit != m.negate {
        Tri::Yes
    } else {
        Tri::No
    }
}
