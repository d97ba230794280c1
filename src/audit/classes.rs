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

#[cfg(test)]
mod tests {
    //! The memo must be invisible: every service gets the verdict that classifying it on its
    //! own gives, whatever mix of hosts, roles, names and ports the services bring.

    use super::*;
    use crate::audit::catalog::Catalogs;
    use crate::audit::compiled::Compiled;
    use crate::audit::hosts::{GroupBy, Hosts};
    use crate::audit::inventory::Inventory;
    use crate::audit::{Outcome, ServiceKey, NO_WAIVER};
    use crate::decode::proto::{ICMP, TCP, UDP};
    use crate::decode::Addr;
    use proptest::prelude::*;

    /// Hosts with one role, two roles, a role family; two private and two public hosts outside
    /// the inventory.
    const INVENTORY: &str = "address,roles,name
10.1.0.0/24,backup-proxy,proxies
10.1.1.0/24,windows-backup-repository,repos
10.1.2.10,backup-server;windows-backup-server,vbr01
10.1.2.20,backup-proxy;windows-server,proxy-win
10.1.3.0/24,agent-computer-windows,laptops
";

    /// Every built-in Internet rule names its hosts; a site's own rule without a pattern is
    /// what makes a public address count (a private one stays an unknown host).
    const SITE_CATALOG: &str = "# catalog: site
# product: Site
id,section,from_role,to_role,protocol,ports,qualifiers,host_pattern,ref,note,decision,source_line
SITE-1,Updates,backup-server,internet,tcp,443,,,,updates from anywhere,,1
";

    /// Ports with rules (single ports, ranges, dynamic ranges) and ports without.
    const PORTS: [u16; 10] = [22, 135, 443, 445, 2500, 3306, 6160, 6162, 9392, 49_200];

    fn addresses() -> Vec<Addr> {
        let v4 = |a: [u8; 4]| Addr::v4(a);
        let mut v = vec![
            v4([10, 1, 0, 5]),
            v4([10, 1, 0, 6]),
            v4([10, 1, 1, 7]),
            v4([10, 1, 1, 8]),
            v4([10, 1, 2, 10]),
            v4([10, 1, 2, 20]),
            v4([10, 1, 3, 33]),
            v4([10, 9, 9, 9]),
            v4([10, 9, 9, 10]),
            v4([192, 0, 2, 1]),
            v4([8, 8, 8, 8]),
        ];
        v.sort();
        v
    }

    fn service(client: HostIdx, server: HostIdx, proto: u8, port: u16) -> Service {
        Service {
            key: ServiceKey {
                client,
                server,
                proto,
                port,
            },
            flows: 1,
            established: 1,
            refused: 0,
            unanswered: 0,
            packets: 2,
            bytes: 120,
            first_ts: 0,
            last_ts: 0,
            bases: [1, 0, 0, 0, 0],
            verdict: Verdict::Undocumented,
            outcome: Outcome::Established,
            unknown: UnknownEnd::None,
            rules: [0; LISTED_RULES],
            n_rules: 0,
            more: 0,
            waiver: NO_WAIVER,
        }
    }

    fn every_service() -> Vec<Service> {
        let mut v = Vec::new();
        for c in 0..11 {
            for s in 0..11 {
                v.push(service(c, s, ICMP, 0));
                for port in PORTS {
                    v.push(service(c, s, TCP, port));
                    v.push(service(c, s, UDP, port));
                }
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn memo_gives_every_service_its_own_verdict(
            // Every (client, server, protocol, port) of these hosts, in a random order: which
            // service stands for a question depends on the order.
            services in Just(every_service()).prop_shuffle(),
            named in proptest::option::of(0u32..11),
        ) {
            let mut cat = Catalogs::builtin(&[]).unwrap();
            assert!(cat.add_file("site.csv", SITE_CATALOG).is_empty());
            let cc = Compiled::new(&cat).unwrap();
            let inv = Inventory::parse("inv.csv", INVENTORY, &cat.roles).unwrap();
            let hosts = Hosts::new(&inv, &cc.roles, GroupBy::Entry, addresses());
            // A name the capture gave one host (as DNS would): that end is asked directly. An
            // Internet rule (AGT-045: backup-server -> *.amazonaws.com, tcp/443) may match it.
            let names: FxHashMap<HostIdx, Vec<String>> = named
                .map(|h| (h, vec!["bucket.s3.amazonaws.com".to_string()]))
                .into_iter()
                .collect();
            let cx = Ctx { cc: &cc, hosts: &hosts, names: &names };
            let site = hosts.site_roles();
            let mut services = services;
            classify_services(&mut services, &cx, &site);
            for s in &services {
                let direct = answer(&cx, &site, s);
                let mut alone = service(s.key.client, s.key.server, s.key.proto, s.key.port);
                alone.set_class(&direct);
                prop_assert_eq!(
                    (s.verdict, s.unknown, s.listed_rules(), s.more),
                    (alone.verdict, alone.unknown, alone.listed_rules(), alone.more),
                    "{:?}", s.key
                );
            }
        }
    }
}
