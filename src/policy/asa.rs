//! The policy for Cisco ASA (software 9.x, unified IPv4/IPv6 access lists): one
//! `object-group network` per group and an extended access list FLOWAUDIT, one ACE per
//! protocol and port range, each preceded by remarks naming the catalog rules and the evidence.

use std::fmt::Write;

use super::names::{asa_char, comment_text, Namer};
use super::{header_lines, is_icmp, proto_number, Allow, Candidate, GroupBy, Policy};
use crate::audit::catalog::PortRange;

pub const ACL: &str = "FLOWAUDIT";
/// ASA limits a remark to 100 characters.
const REMARK_MAX: usize = 100;

/// Object names: up to 64 characters of letters, digits, `_`, `-`, `.`.
fn namer(by: GroupBy) -> Namer {
    let prefix = match by {
        GroupBy::Role => "fa_r_",
        GroupBy::Entry => "fa_e_",
        GroupBy::Host => "fa_h_",
    };
    Namer::new(prefix, 64, asa_char)
}

pub fn write(p: &Policy) -> String {
    let mut names = namer(p.options.group_by);
    let objs: Vec<String> = p.groups.iter().map(|g| names.name(&g.key)).collect();
    let mut o = String::new();
    for l in header_lines(p, "asa") {
        let _ = writeln!(o, "! {}", comment_text(&l, 400));
    }
    o.push_str(
        "!\n! Return traffic: the ASA is stateful; replies of a permitted connection need no ACE.\n",
    );
    if p.options.default_drop {
        let _ = writeln!(
            o,
            "! Default drop: the list ends with deny ip any any. Apply it to the interface the clients\n\
             ! are on, e.g.: access-group {ACL} in interface inside"
        );
    } else {
        let _ = writeln!(
            o,
            "! No default drop: copy the ACEs into your interface access list before its own deny, or\n\
             ! apply this list (an applied list ends in an implicit deny): access-group {ACL} in interface inside"
        );
    }
    o.push_str("!\n");
    for (g, name) in p.groups.iter().zip(&objs) {
        let _ = writeln!(o, "object-group network {name}");
        let _ = writeln!(o, " description {}", comment_text(&g.key, 200));
        for n in &g.nets {
            let _ = match (n.is_host(), n.v4_mask()) {
                (true, _) => writeln!(o, " network-object host {}", n.addr),
                (false, Some(mask)) => writeln!(o, " network-object {} {mask}", n.addr),
                (false, None) => writeln!(o, " network-object {}/{}", n.addr, n.prefix),
            };
        }
    }
    o.push_str("!\n");
    for a in &p.allows {
        allow_lines(&mut o, p, a, &objs);
    }
    if p.options.default_drop {
        let _ = writeln!(o, "access-list {ACL} extended deny ip any any log");
    }
    if !p.candidates.is_empty() {
        o.push_str("! Candidates for review, never permitted by this policy:\n");
        for c in &p.candidates {
            candidate_lines(&mut o, c);
        }
    }
    o
}

fn remark(o: &mut String, text: &str) {
    let _ = writeln!(
        o,
        "access-list {ACL} remark {}",
        comment_text(text, REMARK_MAX)
    );
}

fn allow_lines(o: &mut String, p: &Policy, a: &Allow, objs: &[String]) {
    remark(o, &a.summary(&p.groups));
    for r in &a.rules {
        remark(o, &format!("{} {} / {}", r.id, r.product, r.section));
    }
    remark(o, &format!("evidence: {}", a.evidence_text()));
    let (src, dst) = (
        format!("object-group {}", objs[a.client]),
        format!("object-group {}", objs[a.server]),
    );
    let fams = a.families(&p.groups);
    for proto in protocols(&a.proto, &fams) {
        for ports in port_ops(&a.proto, &a.ports) {
            let _ = writeln!(
                o,
                "access-list {ACL} extended permit {proto} {src} {dst}{ports}"
            );
        }
    }
}

/// The ACE protocol keyword(s): `icmp` matches IPv4 only, `icmp6` IPv6; `tcp`, `udp`; others
/// by number.
fn protocols(proto: &str, fams: &[&str]) -> Vec<String> {
    if is_icmp(proto) {
        return fams
            .iter()
            .map(|f| if *f == "v4" { "icmp" } else { "icmp6" }.to_string())
            .collect();
    }
    match proto {
        "tcp" | "udp" => vec![proto.to_string()],
        other => proto_number(other)
            .map(|n| n.to_string())
            .into_iter()
            .collect(),
    }
}

/// ` eq 6162`, ` range 2500 2502` per range; one empty operator for portless protocols.
fn port_ops(proto: &str, ports: &[PortRange]) -> Vec<String> {
    if ports.is_empty() || !matches!(proto, "tcp" | "udp") {
        return vec![String::new()];
    }
    ports
        .iter()
        .map(|r| {
            if r.lo == r.hi {
                format!(" eq {}", r.lo)
            } else {
                format!(" range {} {}", r.lo, r.hi)
            }
        })
        .collect()
}

fn candidate_lines(o: &mut String, c: &Candidate) {
    let s = &c.service;
    let _ = writeln!(
        o,
        "! {}: {}",
        comment_text(&c.label(), 200),
        comment_text(&c.evidence_text(), 300)
    );
    let fam = if s.client.is_ipv4() { "v4" } else { "v6" };
    let ports: Vec<PortRange> = s
        .port
        .map(|p| PortRange { lo: p, hi: p })
        .into_iter()
        .collect();
    for proto in protocols(&s.proto, &[fam]) {
        for op in port_ops(&s.proto, &ports) {
            let _ = writeln!(
                o,
                "! access-list {ACL} extended permit {proto} host {} host {}{op}",
                s.client, s.server
            );
        }
    }
}
