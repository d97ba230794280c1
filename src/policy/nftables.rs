//! The policy as an nftables ruleset (`nft -f FILE`): table `inet flowaudit` with one named
//! interval set per group and address family, and a regular chain `allow`. With
//! `--default-drop` a base chain on the forward hook jumps to it and drops the rest.

use std::fmt::Write;

use super::names::{comment_text, word_char, Namer};
use super::{header_lines, is_icmp, proto_number, Allow, Candidate, GroupBy, Policy};

pub const TABLE: &str = "flowaudit";

/// nft names: letters, digits, `_` (the grammar allows more; these need no quoting anywhere).
fn namer(by: GroupBy) -> Namer {
    let prefix = match by {
        GroupBy::Role => "r_",
        GroupBy::Entry => "e_",
        GroupBy::Host => "h_",
    };
    Namer::new(prefix, 60, word_char)
}

pub fn write(p: &Policy) -> String {
    let mut names = namer(p.options.group_by);
    let set_names: Vec<String> = p.groups.iter().map(|g| names.name(&g.key)).collect();
    let mut o = String::new();
    o.push_str("#!/usr/sbin/nft -f\n");
    for l in header_lines(p, "nftables") {
        let _ = writeln!(o, "# {}", comment_text(&l, 400));
    }
    o.push_str(
        "#\n# Return traffic: the first rule of chain allow accepts every later packet of a connection\n\
         # an allow rule let in (conntrack state established, related).\n",
    );
    if p.options.default_drop {
        o.push_str(
            "# Base chain forward (hook forward) jumps to allow and drops everything else.\n",
        );
    } else {
        o.push_str(
            "# No default drop: nothing jumps to chain allow yet. nftables cannot jump between tables,\n\
             # so add a base chain to this table in a file loaded after this one, e.g.\n\
             #   table inet flowaudit {\n\
             #     chain forward { type filter hook forward priority filter; policy drop; jump allow; }\n\
             #   }\n\
             # (docs/policy.md). Loading this file replaces table inet flowaudit as a whole.\n",
        );
    }
    // Create-then-delete makes the load work whether or not the table exists; nft -f applies
    // the whole file as one transaction, so no packet sees the table half built.
    let _ = writeln!(o, "\ntable inet {TABLE} {{}}\ndelete table inet {TABLE}\n");
    let _ = writeln!(o, "table inet {TABLE} {{");
    for (g, name) in p.groups.iter().zip(&set_names) {
        let _ = writeln!(o, "\t# {}: {}", comment_text(&g.key, 200), g.nets_str());
        for (fam, nets) in [
            ("ipv4_addr", g.v4().collect::<Vec<_>>()),
            ("ipv6_addr", g.v6().collect()),
        ] {
            if nets.is_empty() {
                continue;
            }
            let list: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                o,
                "\tset {name}_{} {{\n\t\ttype {fam}\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}",
                &fam[..4],
                list.join(", ")
            );
        }
    }
    o.push_str("\n\tchain allow {\n\t\tct state established,related accept\n");
    for a in &p.allows {
        allow_lines(&mut o, p, a, &set_names);
    }
    if !p.candidates.is_empty() {
        o.push_str("\n\t\t# Candidates for review, never allowed by this policy:\n");
        for c in &p.candidates {
            candidate_lines(&mut o, c);
        }
    }
    o.push_str("\t}\n");
    if p.options.default_drop {
        o.push_str(
            "\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\
             \t\tjump allow\n\t\tcounter drop comment \"not allowed by flowaudit policy\"\n\t}\n",
        );
    }
    o.push_str("}\n");
    o
}

fn allow_lines(o: &mut String, p: &Policy, a: &Allow, set_names: &[String]) {
    let _ = writeln!(o, "\n\t\t# {}", comment_text(&a.summary(&p.groups), 400));
    for r in &a.rules {
        let _ = writeln!(
            o,
            "\t\t#   {}: {} / {}",
            r.id,
            comment_text(&r.product, 200),
            comment_text(&r.section, 200)
        );
    }
    let _ = writeln!(
        o,
        "\t\t#   evidence: {}",
        comment_text(&a.evidence_text(), 300)
    );
    let mut tag = a.rule_ids(",");
    if a.unused() {
        tag.push_str(" UNUSED");
    }
    let tag = comment_text(&tag, 120);
    for fam in a.families(&p.groups) {
        let (ipk, sfx) = if fam == "v4" {
            ("ip", "ipv4")
        } else {
            ("ip6", "ipv6")
        };
        let Some(l4) = l4_match(&a.proto, &a.ports, fam == "v6") else {
            continue;
        };
        let _ = writeln!(
            o,
            "\t\t{ipk} saddr @{}_{sfx} {ipk} daddr @{}_{sfx} {l4} counter accept comment \"{tag}\"",
            set_names[a.client], set_names[a.server]
        );
    }
}

/// `tcp dport { 2500-2502, 2505 }`, `meta l4proto icmp`, ...; None for an unknown protocol.
pub fn l4_match(
    proto: &str,
    ports: &[crate::audit::catalog::PortRange],
    v6: bool,
) -> Option<String> {
    if is_icmp(proto) {
        return Some(
            if v6 {
                "meta l4proto ipv6-icmp"
            } else {
                "meta l4proto icmp"
            }
            .into(),
        );
    }
    let known_ports = matches!(proto, "tcp" | "udp" | "sctp" | "dccp" | "udplite");
    if ports.is_empty() || !known_ports {
        return proto_number(proto).map(|n| format!("meta l4proto {n}"));
    }
    let list: Vec<String> = ports.iter().map(|r| r.to_string()).collect();
    Some(if list.len() == 1 {
        format!("{proto} dport {}", list[0])
    } else {
        format!("{proto} dport {{ {} }}", list.join(", "))
    })
}

fn candidate_lines(o: &mut String, c: &Candidate) {
    let s = &c.service;
    let _ = writeln!(
        o,
        "\t\t# {}: {}",
        comment_text(&c.label(), 200),
        comment_text(&c.evidence_text(), 300)
    );
    let ipk = if s.client.is_ipv4() { "ip" } else { "ip6" };
    let ports: Vec<crate::audit::catalog::PortRange> = s
        .port
        .map(|p| crate::audit::catalog::PortRange { lo: p, hi: p })
        .into_iter()
        .collect();
    if s.client.is_ipv4() == s.server.is_ipv4() {
        if let Some(l4) = l4_match(&s.proto, &ports, !s.client.is_ipv4()) {
            let _ = writeln!(
                o,
                "\t\t# {ipk} saddr {} {ipk} daddr {} {l4} accept",
                s.client, s.server
            );
        }
    }
}
