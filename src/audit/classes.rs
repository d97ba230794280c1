//! Services to verdicts, each distinct question asked once. A verdict depends only on the
//! protocol, the port and what is known of the two ends (roles, public address, names), and a
//! site has far fewer such questions than services: a thousand proxies in one entry reaching
//! the same repositories on the same port ask one. On a million-service capture this turns
//! the audit's costliest step into a hash lookup per service.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::aggregate::Ctx;
use super::classify::{self, UnknownEnd, LISTED_RULES};
use super::compiled::{RoleSet, RuleIdx};
use super::hosts::HostIdx;
use super::{Service, Verdict};

/// A verdict in the form a service keeps it: no allocation, `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact {
    pub verdict: Verdict,
    pub unknown: UnknownEnd,
    pub rules: [RuleIdx; LISTED_RULES],
    pub n_rules: u8,
    /// Rules not listed.
    pub more: u16,
}

impl From<&classify::Class> for Compact {
    fn from(c: &classify::Class) -> Compact {
        let n = c.rules.len().min(LISTED_RULES);
        let mut rules = [0; LISTED_RULES];
        rules[..n].copy_from_slice(&c.rules[..n]);
        Compact {
            verdict: c.verdict,
            unknown: c.unknown,
            rules,
            n_rules: n as u8,
            more: (c.rules.len() - n + c.more).min(u16::MAX as usize) as u16,
        }
    }
}

/// What a verdict depends on, packed: the role-set ids of both ends (`NOT_LISTED` outside the
/// inventory), both public flags, protocol and port.
type Question = u128;

const NOT_LISTED: u32 = u32::MAX;

/// Classifies every service; `site` holds every role of the inventory. Ends that the capture named (DNS, TLS) are asked directly, since
/// names take part in matching Internet rules; all others share answers.
pub fn classify_services(services: &mut [Service], cx: &Ctx, site: &RoleSet) {
    let ids = role_set_ids(cx);
    let question = |s: &Service| -> Option<Question> {
        let (c, sv) = (s.key.client, s.key.server);
        if cx.names.contains_key(&c) || cx.names.contains_key(&sv) {
            return None;
        }
        let flags = (cx.end(c).public as u128) << 1 | cx.end(sv).public as u128;
        Some(
            (ids[c as usize] as u128) << 96
                | (ids[sv as usize] as u128) << 64
                | flags << 32
                | (s.key.proto as u128) << 16
                | s.key.port as u128,
        )
    };
    // One service standing for each question: the first that asks it.
    let mut first: FxHashMap<Question, u32> = FxHashMap::default();
    for (i, s) in services.iter().enumerate() {
        if let Some(q) = question(s) {
            first.entry(q).or_insert(i as u32);
        }
    }
    let answers: FxHashMap<Question, Compact> = first
        .into_par_iter()
        .map(|(q, i)| (q, answer(cx, site, &services[i as usize])))
        .collect();
    services.par_iter_mut().for_each(|s| {
        let c = match question(s) {
            Some(q) => answers[&q],
            None => answer(cx, site, s),
        };
        s.set_class(&c);
    });
}

fn answer(cx: &Ctx, site: &RoleSet, s: &Service) -> Compact {
    let (c, sv) = (cx.end(s.key.client), cx.end(s.key.server));
    let (p, port) = (s.key.proto, s.key.port);
    Compact::from(&classify::classify(cx.cc, site, p, port, &c, &sv))
}

/// A small id per distinct role set of the hosts, in host order.
fn role_set_ids(cx: &Ctx) -> Vec<u32> {
    let mut seen: FxHashMap<RoleSet, u32> = FxHashMap::default();
    (0..cx.hosts.hosts.len())
        .map(|i| {
            let h = cx.hosts.get(i as HostIdx);
            if !h.in_inventory() {
                return NOT_LISTED;
            }
            let next = seen.len() as u32;
            *seen.entry(h.roles).or_insert(next)
        })
        .collect()
}
