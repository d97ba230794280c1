//! Reading an audit's report directory into typed rows: manifest.json, inventory.csv,
//! services.csv and rules.csv. Columns are found by header name and unknown columns are ignored,
//! so reports of schema versions 1 to 4 all read (times are read as epoch seconds or ISO 8601
//! and given on as ISO 8601; schema 4's `duration` gives the last time). A malformed row is skipped with a message
//! naming its file and line; the rest is kept.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::net::Net;
use crate::audit::catalog::{parse_ports, PortRange};

/// Report schema versions this reader understands.
pub const SCHEMA_VERSIONS: [u64; 4] = [1, 2, 3, 4];

/// One inventory row: an address block, the roles the user gave it, a name (may be empty).
#[derive(Debug, Clone)]
pub struct InvRow {
    pub net: Net,
    pub roles: Vec<String>,
    pub name: String,
}

/// One row of services.csv (one client host, server host, protocol and server port).
#[derive(Debug, Clone)]
pub struct Service {
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_name: String,
    pub server_name: String,
    pub proto: String,
    pub port: Option<u16>,
    pub verdict: String,
    pub outcome: String,
    pub rule_ids: Vec<String>,
    pub flows: u64,
    pub bytes: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// A catalog rule as rules.csv describes it (the rule's own fields; one per rule id).
#[derive(Debug, Clone)]
pub struct RuleMeta {
    pub id: String,
    pub product: String,
    pub section: String,
    pub from_role: String,
    pub to_role: String,
    pub protos: Vec<String>,
    pub ports: Vec<PortRange>,
    pub qualifiers: String,
}

/// Everything the policy needs from one report directory.
#[derive(Debug, Default)]
pub struct Report {
    pub dir: String,
    pub schema_version: u64,
    pub inventory: Vec<InvRow>,
    pub services: Vec<Service>,
    /// By rule id.
    pub rules: BTreeMap<String, RuleMeta>,
    /// "FILE:LINE: what is wrong" for every row skipped.
    pub skipped: Vec<String>,
}

const VERDICTS: [&str; 5] = [
    "documented",
    "role-mismatch",
    "reverse",
    "unknown-host",
    "undocumented",
];

/// A CSV file read by column name.
struct Table {
    path: String,
    headers: Vec<String>,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    fn read(dir: &Path, name: &str, need: &[&str]) -> Result<Table, String> {
        let path = dir.join(name);
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| format!("{shown}: not valid CSV: {e}"))?
            .iter()
            .map(String::from)
            .collect();
        for n in need {
            if !headers.iter().any(|h| h == n) {
                return Err(format!(
                    "{shown}: no {n:?} column: not the report of a flowaudit audit (re-run `flowaudit audit`)"
                ));
            }
        }
        let mut rows = Vec::new();
        for rec in rdr.records() {
            match rec {
                Ok(r) => {
                    let line = r.position().map(|p| p.line()).unwrap_or(0);
                    rows.push((line, r));
                }
                // The CSV reader cannot resync after a broken quote: keep what was read.
                Err(e) => {
                    return Err(format!("{shown}: not valid CSV: {e}"));
                }
            }
        }
        Ok(Table {
            path: shown,
            headers,
            rows,
        })
    }

    /// The cell under `col` (empty when the column is missing), with the spreadsheet escape
    /// `safe_cell` adds undone.
    fn get<'r>(&self, rec: &'r csv::StringRecord, col: &str) -> &'r str {
        let s = self
            .headers
            .iter()
            .position(|h| h == col)
            .and_then(|i| rec.get(i))
            .unwrap_or("");
        match s.as_bytes() {
            [b'\'', b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r', ..] => &s[1..],
            _ => s,
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn count(s: &str) -> Result<u64, String> {
    match s {
        "" => Ok(0),
        _ => s.parse().map_err(|_| format!("{s:?} is not a count")),
    }
}

impl Report {
    /// Reads the report directory. Missing files or columns are errors; bad rows are skipped
    /// and listed in `skipped`.
    pub fn load(dir: &Path) -> Result<Report, String> {
        let mut r = Report {
            dir: dir.display().to_string(),
            schema_version: crate::report::manifest::check_audit_dir(dir, &SCHEMA_VERSIONS)?,
            ..Report::default()
        };
        r.read_inventory(dir)?;
        r.read_services(dir)?;
        r.read_rules(dir)?;
        Ok(r)
    }

    fn read_inventory(&mut self, dir: &Path) -> Result<(), String> {
        let t = Table::read(dir, "inventory.csv", &["address", "roles", "name"]).map_err(|e| {
            format!(
                "{e} (audits before inventory.csv existed cannot give a policy: re-run the audit)"
            )
        })?;
        for (line, rec) in &t.rows {
            match Net::parse(t.get(rec, "address")) {
                Ok(net) => self.inventory.push(InvRow {
                    net,
                    roles: split_list(t.get(rec, "roles")),
                    name: t.get(rec, "name").trim().to_string(),
                }),
                Err(e) => self.skipped.push(format!("{}:{line}: {e}", t.path)),
            }
        }
        Ok(())
    }

    fn read_services(&mut self, dir: &Path) -> Result<(), String> {
        let need = [
            "client_addr",
            "server_addr",
            "proto",
            "server_port",
            "verdict",
            "rule_ids",
        ];
        let t = Table::read(dir, "services.csv", &need)?;
        for (line, rec) in &t.rows {
            match service(&t, rec) {
                Ok(s) => self.services.push(s),
                Err(e) => self.skipped.push(format!("{}:{line}: {e}", t.path)),
            }
        }
        Ok(())
    }

    fn read_rules(&mut self, dir: &Path) -> Result<(), String> {
        let need = ["rule_id", "from_role", "to_role", "proto", "ports"];
        let t = Table::read(dir, "rules.csv", &need)?;
        for (line, rec) in &t.rows {
            let id = t.get(rec, "rule_id").trim().to_string();
            if id.is_empty() {
                self.skipped
                    .push(format!("{}:{line}: empty rule_id", t.path));
                continue;
            }
            if self.rules.contains_key(&id) {
                continue; // one row per rule instance: the rule's own fields repeat
            }
            let ports = match parse_ports(t.get(rec, "ports")) {
                Ok(p) => p,
                Err(e) => {
                    self.skipped
                        .push(format!("{}:{line}: rule {id}: ports: {e}", t.path));
                    continue;
                }
            };
            self.rules.insert(
                id.clone(),
                RuleMeta {
                    id,
                    product: t.get(rec, "product").to_string(),
                    section: t.get(rec, "section").to_string(),
                    from_role: t.get(rec, "from_role").trim().to_string(),
                    to_role: t.get(rec, "to_role").trim().to_string(),
                    protos: split_list(t.get(rec, "proto")),
                    ports,
                    qualifiers: t.get(rec, "qualifiers").to_string(),
                },
            );
        }
        Ok(())
    }
}

fn service(t: &Table, rec: &csv::StringRecord) -> Result<Service, String> {
    let addr = |col: &str| -> Result<IpAddr, String> {
        let s = t.get(rec, col);
        s.trim()
            .parse()
            .map_err(|_| format!("{col} {s:?} is not an address"))
    };
    let port = match t.get(rec, "server_port") {
        "" => None,
        p => Some(
            p.parse::<u16>()
                .map_err(|_| format!("server_port {p:?} is not a port"))?,
        ),
    };
    let verdict = t.get(rec, "verdict").to_string();
    if !VERDICTS.contains(&verdict.as_str()) {
        return Err(format!("unknown verdict {verdict:?}"));
    }
    let proto = t.get(rec, "proto").trim().to_string();
    if proto.is_empty() {
        return Err("empty proto".into());
    }
    Ok(Service {
        client: addr("client_addr")?,
        server: addr("server_addr")?,
        client_name: host_name(t, rec, "client"),
        server_name: host_name(t, rec, "server"),
        proto,
        port,
        verdict,
        outcome: t.get(rec, "outcome").to_string(),
        rule_ids: split_list(t.get(rec, "rule_ids")),
        flows: count(t.get(rec, "flows")).map_err(|e| format!("flows: {e}"))?,
        bytes: count(t.get(rec, "bytes")).map_err(|e| format!("bytes: {e}"))?,
        first_seen: iso_time(t.get(rec, "first_seen")),
        last_seen: last_seen(t, rec),
    })
}

/// Schema 4 gives a service's `first_seen` and `duration`; earlier schemas its `last_seen`.
fn last_seen(t: &Table, rec: &csv::StringRecord) -> String {
    use crate::report::time::{parse_duration, parse_time};
    let first = parse_time(t.get(rec, "first_seen"));
    match (first, parse_duration(t.get(rec, "duration"))) {
        (Some(f), Some(d)) => crate::report::format_iso(f.saturating_add(d)),
        _ => iso_time(t.get(rec, "last_seen")),
    }
}

/// A report time as ISO 8601 whichever schema wrote it (schemas 1 and 2 wrote epoch seconds),
/// so that the policy's notes read alike and compare as text; other text is kept as it is.
fn iso_time(cell: &str) -> String {
    crate::report::time::parse_time(cell)
        .map(crate::report::format_iso)
        .unwrap_or_else(|| cell.to_string())
}

/// A host's name: schema 1's `client_name`/`server_name`, else (schema 2) its group when that is
/// a name and not the address block of hosts outside the inventory.
fn host_name(t: &Table, rec: &csv::StringRecord, end: &str) -> String {
    let name = t.get(rec, &format!("{end}_name"));
    if !name.is_empty() {
        return name.to_string();
    }
    let group = t.get(rec, &format!("{end}_group"));
    if group.parse::<std::net::IpAddr>().is_ok()
        || crate::audit::inventory::Cidr::parse(group).is_ok()
    {
        String::new()
    } else {
        group.to_string()
    }
}
