//! The policy as a neutral table for any other firewall: one row per allow rule (kind `allow`,
//! or `unused` with `--include-unused`) and per candidate for review (kind `candidate`, never to
//! be allowed without review). Notes (what could not be emitted) go to stderr only.

use std::io;

use super::{net::ports_str, Policy};
use crate::report::safe_cell;

pub const HEADER: [&str; 17] = [
    "kind",
    "client_group",
    "client_addresses",
    "server_group",
    "server_addresses",
    "proto",
    "ports",
    "vendor_ports",
    "rule_ids",
    "products",
    "sections",
    "verdict",
    "flows",
    "bytes",
    "first_seen",
    "last_seen",
    "note",
];

pub fn write(p: &Policy) -> io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for a in &p.allows {
        let (c, s) = (&p.groups[a.client], &p.groups[a.server]);
        let list = |f: &dyn Fn(&super::RuleRef) -> &str| {
            let mut v: Vec<&str> = Vec::new();
            for x in a.rules.iter().map(f) {
                if !v.contains(&x) {
                    v.push(x);
                }
            }
            v.join(";")
        };
        let e = a.evidence.clone().unwrap_or_default();
        let row = [
            if a.unused() { "unused" } else { "allow" }.to_string(),
            c.key.clone(),
            c.nets_str(),
            s.key.clone(),
            s.nets_str(),
            a.proto.clone(),
            a.ports_str(";"),
            ports_str(&a.vendor_ports, ";"),
            a.rule_ids(";"),
            list(&|r| r.product.as_str()),
            list(&|r| r.section.as_str()),
            "documented".into(),
            e.flows.to_string(),
            e.bytes.to_string(),
            e.first_seen,
            e.last_seen,
            if a.unused() {
                "documented, never seen in this capture".into()
            } else if e.blocked > 0 {
                format!(
                    "{} of {} services refused or unanswered",
                    e.blocked, e.services
                )
            } else {
                String::new()
            },
        ];
        w.write_record(row.iter().map(|x| safe_cell(x).into_owned()))?;
    }
    for c in &p.candidates {
        let s = &c.service;
        let row = [
            "candidate".to_string(),
            s.client_name.clone(),
            s.client.to_string(),
            s.server_name.clone(),
            s.server.to_string(),
            s.proto.clone(),
            s.port.map(|p| p.to_string()).unwrap_or_default(),
            String::new(),
            s.rule_ids.join(";"),
            String::new(),
            String::new(),
            s.verdict.clone(),
            s.flows.to_string(),
            s.bytes.to_string(),
            s.first_seen.clone(),
            s.last_seen.clone(),
            c.why.clone(),
        ];
        w.write_record(row.iter().map(|x| safe_cell(x).into_owned()))?;
    }
    w.into_inner().map_err(|e| e.into_error())
}
