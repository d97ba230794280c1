//! The policy for iptables: a shell script (`sh FILE` as root) feeding `ipset restore` (one
//! hash:net set per group and address family), `iptables-restore --noflush` and
//! `ip6tables-restore --noflush` (a chain FLOWAUDIT in table filter). With `--default-drop`,
//! FORWARD's policy becomes DROP and FORWARD is replaced by a jump to FLOWAUDIT.

use std::fmt::Write;

use super::names::{comment_text, word_char, Namer};
use super::net::Net;
use super::{header_lines, is_icmp, proto_number, Allow, GroupBy, Policy};
use crate::audit::catalog::PortRange;

pub const CHAIN: &str = "FLOWAUDIT";
/// Ends each here-document: never a line of the rules (comments start with `#`).
pub const END: &str = "FLOWAUDIT_END";

/// ipset names are at most 31 characters; `fa4_`/`fa6_` comes in front.
fn namer(by: GroupBy) -> Namer {
    let prefix = match by {
        GroupBy::Role => "r_",
        GroupBy::Entry => "e_",
        GroupBy::Host => "h_",
    };
    Namer::new(prefix, 27, word_char)
}

pub fn write(p: &Policy) -> String {
    let mut names = namer(p.options.group_by);
    let set_names: Vec<String> = p.groups.iter().map(|g| names.name(&g.key)).collect();
    let mut o = String::from("#!/bin/sh\n");
    for l in header_lines(p, "iptables") {
        let _ = writeln!(o, "# {}", comment_text(&l, 400));
    }
    o.push_str(
        "#\n# Run as root: sh FILE. It loads the address sets with ipset, then chain FLOWAUDIT into\n\
         # table filter of iptables and ip6tables (--noflush: your other rules stay).\n\
         # Return traffic: FLOWAUDIT's first rule accepts packets of connections already allowed\n\
         # (conntrack ESTABLISHED,RELATED).\n",
    );
    if p.options.default_drop {
        o.push_str("# Default drop: FORWARD's policy becomes DROP and FORWARD holds only the jump to FLOWAUDIT.\n");
    } else {
        o.push_str("# No default drop: jump to the chain from your own rules, e.g.\n#   iptables -A FORWARD -j FLOWAUDIT; ip6tables -A FORWARD -j FLOWAUDIT\n");
    }
    o.push_str("set -e\n\n");
    ipset_part(&mut o, p, &set_names);
    for v6 in [false, true] {
        restore_part(&mut o, p, &set_names, v6);
    }
    o
}

fn ipset_part(o: &mut String, p: &Policy, set_names: &[String]) {
    let _ = writeln!(o, "ipset -exist restore <<'{END}'");
    for (g, name) in p.groups.iter().zip(set_names) {
        let _ = writeln!(o, "# {}: {}", comment_text(&g.key, 200), g.nets_str());
        for (fam, tag, nets) in [
            ("inet", "fa4_", g.v4().collect::<Vec<_>>()),
            ("inet6", "fa6_", g.v6().collect()),
        ] {
            if nets.is_empty() {
                continue;
            }
            let set = format!("{tag}{name}");
            let _ = writeln!(o, "create {set} hash:net family {fam}");
            // -exist keeps an existing set: empty it so addresses gone from the inventory go.
            let _ = writeln!(o, "flush {set}");
            for n in nets.iter().flat_map(|n| no_zero_prefix(n)) {
                let _ = writeln!(o, "add {set} {n}");
            }
        }
    }
    let _ = writeln!(o, "{END}\n");
}

/// hash:net takes prefixes from 1: a /0 block is written as its two halves.
fn no_zero_prefix(n: &Net) -> Vec<String> {
    if n.prefix != 0 {
        return vec![n.to_string()];
    }
    if n.is_v4() {
        vec!["0.0.0.0/1".into(), "128.0.0.0/1".into()]
    } else {
        vec!["::/1".into(), "8000::/1".into()]
    }
}

fn restore_part(o: &mut String, p: &Policy, set_names: &[String], v6: bool) {
    let (cmd, fam, tag) = if v6 {
        ("ip6tables-restore", "v6", "fa6_")
    } else {
        ("iptables-restore", "v4", "fa4_")
    };
    let _ = writeln!(o, "{cmd} --noflush <<'{END}'\n*filter");
    let _ = writeln!(o, ":{CHAIN} - [0:0]\n-F {CHAIN}");
    if p.options.default_drop {
        let _ = writeln!(o, ":FORWARD DROP [0:0]\n-F FORWARD\n-A FORWARD -j {CHAIN}");
    }
    let _ = writeln!(
        o,
        "-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    );
    for a in &p.allows {
        if !a.families(&p.groups).contains(&fam) {
            continue;
        }
        allow_lines(o, p, a, set_names, tag, v6);
    }
    let cands: Vec<_> = p
        .candidates
        .iter()
        .filter(|c| c.service.client.is_ipv6() == v6 && c.service.server.is_ipv6() == v6)
        .collect();
    if !cands.is_empty() {
        o.push_str("# Candidates for review, never allowed by this policy:\n");
    }
    for c in cands {
        let s = &c.service;
        let _ = writeln!(
            o,
            "# {}: {}",
            comment_text(&c.label(), 200),
            comment_text(&c.evidence_text(), 300)
        );
        let ports: Vec<PortRange> = s
            .port
            .map(|p| PortRange { lo: p, hi: p })
            .into_iter()
            .collect();
        let host = if v6 { 128 } else { 32 };
        for m in l4_matches(&s.proto, &ports, v6) {
            let _ = writeln!(
                o,
                "# -A {CHAIN} -s {}/{host} -d {}/{host} {m} -j ACCEPT",
                s.client, s.server
            );
        }
    }
    let _ = writeln!(o, "COMMIT\n{END}\n");
}

fn allow_lines(o: &mut String, p: &Policy, a: &Allow, set_names: &[String], tag: &str, v6: bool) {
    let _ = writeln!(o, "# {}", comment_text(&a.summary(&p.groups), 400));
    for r in &a.rules {
        let _ = writeln!(
            o,
            "#   {}: {} / {}",
            r.id,
            comment_text(&r.product, 200),
            comment_text(&r.section, 200)
        );
    }
    let _ = writeln!(o, "#   evidence: {}", comment_text(&a.evidence_text(), 300));
    let mut note = a.rule_ids(",");
    if a.unused() {
        note.push_str(" UNUSED");
    }
    let note = comment_text(&note, 200);
    for m in l4_matches(&a.proto, &a.ports, v6) {
        let _ = writeln!(
            o,
            "-A {CHAIN} -m set --match-set {tag}{} src -m set --match-set {tag}{} dst {m} -m comment --comment \"{note}\" -j ACCEPT",
            set_names[a.client], set_names[a.server]
        );
    }
}

/// `-p tcp --dport 6162`, `-p tcp -m multiport --dports 2500:2502,2505` (at most 15 ports a
/// rule, a range counting 2), `-p icmp`; nothing for an unknown protocol.
pub fn l4_matches(proto: &str, ports: &[PortRange], v6: bool) -> Vec<String> {
    if is_icmp(proto) {
        return vec![if v6 { "-p ipv6-icmp" } else { "-p icmp" }.into()];
    }
    let with_ports = matches!(proto, "tcp" | "udp" | "sctp" | "dccp" | "udplite");
    if ports.is_empty() || !with_ports {
        return proto_number(proto)
            .map(|n| vec![format!("-p {n}")])
            .unwrap_or_default();
    }
    let spec = |r: &PortRange| {
        if r.lo == r.hi {
            r.lo.to_string()
        } else {
            format!("{}:{}", r.lo, r.hi)
        }
    };
    if ports.len() == 1 {
        return vec![format!("-p {proto} --dport {}", spec(&ports[0]))];
    }
    let mut out = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut weight = 0;
    for r in ports {
        let w = if r.lo == r.hi { 1 } else { 2 };
        if weight + w > 15 {
            out.push(std::mem::take(&mut chunk));
            weight = 0;
        }
        chunk.push(spec(r));
        weight += w;
    }
    out.push(chunk);
    out.into_iter()
        .map(|c| format!("-p {proto} -m multiport --dports {}", c.join(",")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiport_lists_are_split_at_15_ports() {
        let r = |lo, hi| PortRange { lo, hi };
        assert_eq!(
            l4_matches("tcp", &[r(6162, 6162)], false),
            ["-p tcp --dport 6162"]
        );
        assert_eq!(
            l4_matches("udp", &[r(2500, 3300)], true),
            ["-p udp --dport 2500:3300"]
        );
        let many: Vec<PortRange> = (0..8).map(|i| r(100 + 10 * i, 100 + 10 * i + 1)).collect();
        let got = l4_matches("tcp", &many, false);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            "-p tcp -m multiport --dports 100:101,110:111,120:121,130:131,140:141,150:151,160:161"
        );
        assert_eq!(got[1], "-p tcp -m multiport --dports 170:171");
        assert_eq!(l4_matches("icmp", &[], true), ["-p ipv6-icmp"]);
        assert_eq!(l4_matches("gre", &[], false), ["-p 47"]);
        assert!(l4_matches("nonsense", &[], false).is_empty());
    }
}
