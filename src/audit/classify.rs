//! The verdict of one service, as a pure function of what is known about its two ends. Policy in
//! small named steps, in the order they are tried: documented, unknown host, reverse,
//! role-mismatch, undocumented.

use super::compiled::{Compiled, RoleSet, RuleIdx};
use super::Verdict;
use crate::audit::catalog::name_matches;

/// One end of a service as the classification sees it.
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    /// Roles with families; None when the address is not in the inventory.
    pub roles: Option<&'a RoleSet>,
    /// A public address (not private, loopback, link-local...).
    pub public: bool,
    /// Names the capture gave it (DNS answers, TLS SNI).
    pub names: &'a [String],
}

/// Rules listed for a role-mismatch or reverse service (the closest ones first).
pub const LISTED_RULES: usize = 3;

/// A service's verdict and the rules behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub verdict: Verdict,
    /// Documented: every rule allowing it (specific ones first). Reverse and role-mismatch:
    /// the closest rules, at most [`LISTED_RULES`].
    pub rules: Vec<RuleIdx>,
    /// Rules on the port that are not listed.
    pub more: usize,
    /// Unknown host: which end is missing from the inventory.
    pub unknown: UnknownEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum UnknownEnd {
    #[default]
    None,
    Client,
    Server,
    Both,
}

impl UnknownEnd {
    pub fn as_str(&self) -> &'static str {
        match self {
            UnknownEnd::None => "",
            UnknownEnd::Client => "client",
            UnknownEnd::Server => "server",
            UnknownEnd::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<UnknownEnd> {
        [
            UnknownEnd::None,
            UnknownEnd::Client,
            UnknownEnd::Server,
            UnknownEnd::Both,
        ]
        .into_iter()
        .find(|u| u.as_str() == s)
    }
}

/// Whether rule `i` allows client -> server.
pub fn allows(cc: &Compiled, i: RuleIdx, client: &End, server: &End) -> bool {
    let Some(c) = client.roles else { return false };
    if !c.contains(cc.from[i as usize]) {
        return false;
    }
    match server.roles {
        Some(s) => s.contains(cc.to[i as usize]),
        // Outside the inventory: an Internet rule applies when the name the capture gave the
        // server matches the rule's pattern, or, for a rule without a pattern, when the address
        // is public (a private address is an unknown host, not the Internet).
        None => {
            Some(cc.to[i as usize]) == cc.internet
                && match &cc.rule(i).host_pattern {
                    Some(p) => server.names.iter().any(|n| name_matches(p, n)),
                    None => server.public,
                }
        }
    }
}

/// Rules allowing client -> server on (proto, port), specific openings first.
pub fn allowing(cc: &Compiled, p: u8, port: u16, client: &End, server: &End) -> Vec<RuleIdx> {
    let mut v: Vec<RuleIdx> = cc
        .candidates(p, port)
        .iter()
        .copied()
        .filter(|&i| allows(cc, i, client, server))
        .collect();
    v.sort_by_key(|&i| (!cc.is_specific_for(i, port), i));
    v
}

/// Whether any rule allows client -> server on (proto, port): the flow-direction test.
pub fn allowed(cc: &Compiled, p: u8, port: u16, client: &End, server: &End) -> bool {
    cc.candidates(p, port)
        .iter()
        .any(|&i| allows(cc, i, client, server))
}

/// Classifies the service client -> server on (proto, port). `site` holds every role some
/// inventory host holds (families included): a role-mismatch lists the rules between roles of
/// this site first.
pub fn classify(
    cc: &Compiled,
    site: &RoleSet,
    p: u8,
    port: u16,
    client: &End,
    server: &End,
) -> Class {
    // Most services are documented: test that first without building any list.
    if allowed(cc, p, port, client, server) {
        let allow = allowing(cc, p, port, client, server);
        return Class {
            verdict: Verdict::Documented,
            rules: allow,
            more: 0,
            unknown: UnknownEnd::None,
        };
    }
    let (Some(c), Some(s)) = (client.roles, server.roles) else {
        return unknown_host(client, server);
    };
    // A port inside some dynamic or very wide range between other roles is not "documented
    // between the wrong roles": only specific openings count for reverse and role-mismatch.
    let on_port: Vec<RuleIdx> = cc
        .candidates(p, port)
        .iter()
        .copied()
        .filter(|&i| cc.is_specific_for(i, port))
        .collect();
    let reversed: Vec<RuleIdx> = on_port
        .iter()
        .copied()
        .filter(|&i| s.contains(cc.from[i as usize]) && c.contains(cc.to[i as usize]))
        .collect();
    if !reversed.is_empty() {
        return listed(Verdict::Reverse, reversed);
    }
    if on_port.is_empty() {
        return Class {
            verdict: Verdict::Undocumented,
            rules: Vec::new(),
            more: 0,
            unknown: UnknownEnd::None,
        };
    }
    listed(
        Verdict::RoleMismatch,
        closest(cc, site, on_port, port, c, s),
    )
}

fn unknown_host(client: &End, server: &End) -> Class {
    let unknown = match (client.roles.is_none(), server.roles.is_none()) {
        (true, true) => UnknownEnd::Both,
        (true, false) => UnknownEnd::Client,
        _ => UnknownEnd::Server,
    };
    Class {
        verdict: Verdict::UnknownHost,
        rules: Vec::new(),
        more: 0,
        unknown,
    }
}

fn listed(verdict: Verdict, mut rules: Vec<RuleIdx>) -> Class {
    let more = rules.len().saturating_sub(LISTED_RULES);
    rules.truncate(LISTED_RULES);
    Class {
        verdict,
        rules,
        more,
        unknown: UnknownEnd::None,
    }
}

/// Rules on the port ranked by how close the service is to them: first the rules whose client
/// and server roles both exist at this site (`site`: some inventory host holds each), since a
/// rule between roles nobody here holds explains little; then how many of the service's ends
/// already hold the rule's role, then the narrowest opening, then catalog order.
pub fn closest(
    cc: &Compiled,
    site: &RoleSet,
    mut rules: Vec<RuleIdx>,
    port: u16,
    c: &RoleSet,
    s: &RoleSet,
) -> Vec<RuleIdx> {
    let here = |i: RuleIdx| site.contains(cc.from[i as usize]) && site.contains(cc.to[i as usize]);
    let fits =
        |i: RuleIdx| c.contains(cc.from[i as usize]) as u8 + s.contains(cc.to[i as usize]) as u8;
    rules.sort_by_key(|&i| {
        (
            !here(i),
            std::cmp::Reverse(fits(i)),
            cc.width_at(i, port),
            i,
        )
    });
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::catalog::Catalogs;
    use crate::decode::proto::{ICMP, TCP, UDP};

    fn cc() -> Compiled {
        Compiled::new(&Catalogs::builtin(&[]).unwrap()).unwrap()
    }

    fn roles(cc: &Compiled, ids: &[&str]) -> RoleSet {
        let v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        cc.roles.closed(&v)
    }

    fn end(r: Option<&RoleSet>) -> End<'_> {
        End {
            roles: r,
            public: false,
            names: &[],
        }
    }

    /// Classifies a service between hosts holding these roles (families closed over).
    fn between(cc: &Compiled, client: &[&str], server: &[&str], p: u8, port: u16) -> Class {
        let (c, s) = (roles(cc, client), roles(cc, server));
        classify(
            cc,
            &RoleSet::default(),
            p,
            port,
            &end(Some(&c)),
            &end(Some(&s)),
        )
    }

    const PROXY: &[&str] = &["backup-proxy"];
    const WIN_REPO: &[&str] = &["windows-backup-repository"];

    fn ids(cc: &Compiled, c: &Class) -> Vec<String> {
        c.rules.iter().map(|&r| cc.rule(r).id.clone()).collect()
    }

    // Each case is worked from the catalog rows named in its comment (catalogs/*.csv).

    #[test]
    fn documented_lists_every_allowing_rule() {
        let cc = cc();
        // VBR-058: backup-proxy -> backup-repository tcp 2500-3300 (the only rule between them
        // on 2500).
        let c = between(&cc, PROXY, WIN_REPO, TCP, 2500);
        assert_eq!(c.verdict, Verdict::Documented);
        assert_eq!(ids(&cc, &c), ["VBR-058"]);
        assert_eq!((c.more, c.unknown), (0, UnknownEnd::None));
    }

    #[test]
    fn reverse_when_only_the_other_direction_is_documented() {
        let cc = cc();
        // VBR-058 again, opened from the repository towards the proxy.
        let c = between(&cc, WIN_REPO, PROXY, TCP, 2500);
        assert_eq!(c.verdict, Verdict::Reverse);
        assert_eq!(ids(&cc, &c), ["VBR-058"]);
    }

    #[test]
    fn role_mismatch_names_the_closest_rules_first() {
        let cc = cc();
        // A proxy reaching a Windows repository on tcp/445. No rule allows it. The server is a
        // windows-backup-repository, so also a backup-repository and a windows-server. Specific
        // rules on 445 with one end already right, all one port wide, in catalog order: VBR-001
        // (backup-server -> windows-server), VBR-054/VBR-001 (hyperv-host ->
        // windows-backup-repository), VBR-055/VBR-001 (offhost-backup-proxy ->
        // windows-backup-repository), then more (VBR-163/VBR-001 tape-server ->
        // backup-repository...). No rule on 445 starts from a backup-proxy, so none fits both
        // ends. The NFS rules' 1-65535 ranges are not specific and do not count.
        let c = between(&cc, PROXY, WIN_REPO, TCP, 445);
        assert_eq!(c.verdict, Verdict::RoleMismatch);
        assert_eq!(
            ids(&cc, &c),
            ["VBR-001", "VBR-054/VBR-001", "VBR-055/VBR-001"]
        );
        let on_445 = cc
            .candidates(TCP, 445)
            .iter()
            .filter(|&&i| cc.is_specific_for(i, 445))
            .count();
        assert_eq!(c.more, on_445 - 3);
    }

    #[test]
    fn undocumented_when_no_specific_rule_holds_the_port() {
        let cc = cc();
        // tcp/3306 is in no catalog; udp/2500 neither (the 2500-3300 ranges are TCP only).
        for (pr, port) in [(TCP, 3306), (UDP, 2500)] {
            let c = between(&cc, PROXY, WIN_REPO, pr, port);
            assert_eq!(c.verdict, Verdict::Undocumented, "{pr}/{port}");
            assert!(c.rules.is_empty());
        }
    }

    #[test]
    fn unknown_host_says_which_end() {
        let cc = cc();
        let p = roles(&cc, &["backup-proxy"]);
        let cases = [
            (None, Some(&p), UnknownEnd::Client),
            (Some(&p), None, UnknownEnd::Server),
            (None, None, UnknownEnd::Both),
        ];
        for (c, s, want) in cases {
            let got = classify(&cc, &RoleSet::default(), TCP, 3306, &end(c), &end(s));
            assert_eq!((got.verdict, got.unknown), (Verdict::UnknownHost, want));
        }
    }

    #[test]
    fn internet_rules_need_a_public_address_or_a_matching_name() {
        let cc = cc();
        // Rules towards `internet` with and without a host pattern, from the catalogs.
        let with_pattern = (0..cc.rules.len() as RuleIdx)
            .find(|&i| Some(cc.to[i as usize]) == cc.internet && cc.rule(i).host_pattern.is_some())
            .expect("an Internet rule with a host pattern");
        let rule = cc.rule(with_pattern).clone();
        let client = cc.roles.closed([&rule.from_role]);
        let p = rule.protocols[0];
        let port = rule.ports.first().map_or(0, |r| r.lo);
        let name = rule.host_pattern.clone().unwrap().replace("*.", "x.");
        let names = [name];
        let named = End {
            roles: None,
            public: false,
            names: &names,
        };
        let c = classify(
            &cc,
            &RoleSet::default(),
            p,
            port,
            &end(Some(&client)),
            &named,
        );
        assert_eq!(c.verdict, Verdict::Documented);
        assert!(ids(&cc, &c).contains(&rule.id));
        // The same private server without a name is an unknown host.
        let c = classify(
            &cc,
            &RoleSet::default(),
            p,
            port,
            &end(Some(&client)),
            &end(None),
        );
        assert_eq!(c.verdict, Verdict::UnknownHost);
    }

    #[test]
    fn portless_protocols_match_rules_without_ports() {
        let cc = cc();
        // No built-in rule documents ICMP between a proxy and a repository.
        let c = between(&cc, PROXY, WIN_REPO, ICMP, 0);
        assert_eq!(c.verdict, Verdict::Undocumented);
    }
}
