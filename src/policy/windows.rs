//! The policy for Windows Defender Firewall: a PowerShell script of `New-NetFirewallRule`
//! commands (module NetSecurity). Each allow rule becomes an inbound rule on every host of its
//! server group, with the client group's addresses as -RemoteAddress. The script is run on each
//! server host with `-Target NAME` and creates only that host's rules.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::names::{comment_text, word_char, Namer};
use super::{header_lines, is_icmp, proto_number, Allow, Group, GroupBy, Policy};

pub const RULE_GROUP: &str = "flowaudit";

/// PowerShell variable names: letters, digits, `_`.
fn namer(by: GroupBy) -> Namer {
    let prefix = match by {
        GroupBy::Role => "r_",
        GroupBy::Entry => "e_",
        GroupBy::Host => "h_",
    };
    Namer::new(prefix, 60, word_char)
}

/// A PowerShell single-quoted string ('' is a quote inside; comment_text has none).
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(items: &[String]) -> String {
    items.iter().map(|s| q(s)).collect::<Vec<_>>().join(",")
}

pub fn write(p: &Policy) -> String {
    let mut names = namer(p.options.group_by);
    let vars: Vec<String> = p.groups.iter().map(|g| names.name(&g.key)).collect();
    let mut o = String::new();
    for l in header_lines(p, "windows") {
        let _ = writeln!(o, "# {}", comment_text(&l, 400));
    }
    o.push_str(
        "#\n# Inbound Windows Defender Firewall rules (New-NetFirewallRule). Run on each server host,\n\
         # as administrator, naming the host as the inventory does:\n\
         #   powershell -ExecutionPolicy Bypass -File policy.ps1 -Target vbr01\n\
         # Return traffic: Windows Firewall is stateful; replies of an allowed connection need no rule.\n\
         # Rules of an earlier run (display group 'flowaudit') are removed first.\n",
    );
    o.push_str("param(\n    [Parameter(Mandatory = $true)][string]$Target\n)\n");
    o.push_str("$ErrorActionPreference = 'Stop'\n");
    let per_host = by_host(p);
    let hosts: Vec<String> = per_host.keys().cloned().collect();
    let _ = writeln!(
        o,
        "if (@({}) -notcontains $Target) {{\n    throw \"flowaudit policy has no rules for host $Target (hosts: {})\"\n}}",
        list(&hosts),
        comment_text(&hosts.join(", "), 500)
    );
    let _ = writeln!(
        o,
        "Get-NetFirewallRule -Group {} -ErrorAction SilentlyContinue | Remove-NetFirewallRule",
        q(RULE_GROUP)
    );
    if p.options.default_drop {
        o.push_str("# Default drop: inbound connections no rule allows are blocked.\n");
        o.push_str("Set-NetFirewallProfile -Profile Domain,Private,Public -Enabled True -DefaultInboundAction Block\n");
    }
    o.push_str("\n# Address lists, one per group\n");
    for (g, v) in p.groups.iter().zip(&vars) {
        let nets: Vec<String> = g.nets.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            o,
            "${v} = @({})  # {}",
            list(&nets),
            comment_text(&g.key, 200)
        );
    }
    for (host, rules) in per_host {
        let _ = writeln!(o, "\nif ($Target -eq {}) {{", q(&host));
        if linux(p, &host) {
            o.push_str("    # The inventory gives this host a Linux role: the nftables or iptables output fits it better.\n");
        }
        for (n, a) in rules.iter().enumerate() {
            rule_lines(&mut o, p, a, &vars, &host, n + 1);
        }
        o.push_str("}\n");
    }
    if !p.candidates.is_empty() {
        o.push_str("\n# Candidates for review, never allowed by this policy:\n");
        for c in &p.candidates {
            let _ = writeln!(
                o,
                "# {}: {}",
                comment_text(&c.label(), 200),
                comment_text(&c.evidence_text(), 300)
            );
        }
    }
    o
}

/// Host key of an inventory row: its name, or its address block when unnamed.
fn host_key(p: &Policy, row: usize) -> String {
    let r = &p.inventory[row];
    if r.name.is_empty() {
        r.net.to_string()
    } else {
        r.name.clone()
    }
}

fn linux(p: &Policy, host: &str) -> bool {
    (0..p.inventory.len())
        .filter(|&i| host_key(p, i) == host)
        .any(|i| p.inventory[i].roles.iter().any(|r| r.contains("linux")))
}

/// Allow rules per server host, hosts sorted.
fn by_host(p: &Policy) -> BTreeMap<String, Vec<&Allow>> {
    let mut m: BTreeMap<String, Vec<&Allow>> = BTreeMap::new();
    for a in &p.allows {
        let g: &Group = &p.groups[a.server];
        let mut keys: Vec<String> = g.rows.iter().map(|&r| host_key(p, r)).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            m.entry(k).or_default().push(a);
        }
    }
    m
}

fn rule_lines(o: &mut String, p: &Policy, a: &Allow, vars: &[String], host: &str, n: usize) {
    let client = &p.groups[a.client];
    let _ = writeln!(o, "    # {}", comment_text(&a.summary(&p.groups), 400));
    let mut desc = format!(
        "{}; {}",
        a.rules
            .iter()
            .map(|r| format!("{} {} / {}", r.id, r.product, r.section))
            .collect::<Vec<_>>()
            .join("; "),
        a.evidence_text()
    );
    desc = comment_text(&desc, 1000);
    let display = comment_text(
        format!(
            "flowaudit {}{} {} -> {} {} {}",
            a.rule_ids(","),
            if a.unused() { " UNUSED" } else { "" },
            client.key,
            p.groups[a.server].key,
            a.proto,
            a.ports_str(",")
        )
        .trim_end(),
        250,
    );
    let host_id: String = host
        .chars()
        .map(|c| if word_char(c) { c } else { '_' })
        .collect();
    // ICMP differs per family: one rule with the IPv4 addresses, one with the IPv6 ones.
    let variants: Vec<(String, String, String)> = if is_icmp(&a.proto) {
        let mut v = Vec::new();
        for (fam, nets) in [
            ("ICMPv4", client.v4().collect::<Vec<_>>()),
            ("ICMPv6", client.v6().collect()),
        ] {
            if !nets.is_empty() {
                let addrs: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
                v.push((fam.to_string(), list(&addrs), format!("-{}", &fam[4..])));
            }
        }
        v
    } else {
        let proto = match a.proto.as_str() {
            "tcp" | "udp" => a.proto.to_uppercase(),
            other => match proto_number(other) {
                Some(n) => n.to_string(),
                None => return,
            },
        };
        vec![(proto, format!("${}", vars[a.client]), String::new())]
    };
    for (proto, remote, sfx) in variants {
        let mut line = format!(
            "    New-NetFirewallRule -Name {} -DisplayName {} -Group {} -Direction Inbound -Action Allow -Protocol {proto}",
            q(&format!("flowaudit-{host_id}-{n}{sfx}")),
            q(&display),
            q(RULE_GROUP),
        );
        if !a.ports.is_empty() && matches!(a.proto.as_str(), "tcp" | "udp") {
            let ports: Vec<String> = a.ports.iter().map(|r| r.to_string()).collect();
            let _ = write!(line, " -LocalPort {}", list(&ports));
        }
        let _ = writeln!(
            line,
            " -RemoteAddress {remote} -Description {} | Out-Null",
            q(&desc)
        );
        o.push_str(&line);
    }
}
