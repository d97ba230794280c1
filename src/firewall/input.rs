//! What the firewall check reads from an audit's report directory: services.csv and
//! inventory.csv, by column name (unknown columns are ignored, so schema versions 1 to 4 all
//! read).

use std::net::IpAddr;
use std::path::Path;

use super::model::{addr_key, parse_addr_interval};
use super::nft::proto_by_name;

/// Report schema versions this check reads.
pub const SCHEMA_VERSIONS: [u64; 4] = [1, 2, 3, 4];

/// One observed service.
#[derive(Debug, Clone)]
pub struct Service {
    pub client: IpAddr,
    pub server: IpAddr,
    pub proto: u8,
    pub proto_name: String,
    pub port: Option<u16>,
    pub verdict: String,
    pub outcome: String,
    /// Some flow of it was answered (the connection became established in conntrack).
    pub answered: bool,
    pub flows: u64,
    pub bytes: u64,
    /// The name findings.csv gives the service.
    pub label: String,
}

impl Service {
    pub fn documented(&self) -> bool {
        self.verdict == "documented"
    }
}

/// One inventory row: an address block, its name (rows sharing a name are one host).
#[derive(Debug, Clone)]
pub struct Block {
    pub lo: u128,
    pub hi: u128,
    pub text: String,
    pub name: String,
}

/// The audit directory's contents the check needs.
#[derive(Debug, Clone, Default)]
pub struct AuditDir {
    pub services: Vec<Service>,
    pub inventory: Vec<Block>,
    /// Rows that could not be read, each naming the file and line.
    pub skipped: Vec<String>,
}

/// A CSV file read by column name.
struct Table {
    path: String,
    header: csv::StringRecord,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    fn read(path: &Path) -> Result<Table, String> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let header = rdr
            .headers()
            .map_err(|e| format!("{shown}: not valid CSV: {e}"))?
            .clone();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| format!("{shown}: not valid CSV: {e}"))?;
            rows.push((rec.position().map(|p| p.line()).unwrap_or(0), rec));
        }
        Ok(Table {
            path: shown,
            header,
            rows,
        })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    fn need(&self, names: &[&str]) -> Result<Vec<usize>, String> {
        names
            .iter()
            .map(|n| {
                self.col(n).ok_or_else(|| {
                    format!(
                        "{}: no {n:?} column: not a flowaudit audit report",
                        self.path
                    )
                })
            })
            .collect()
    }
}

/// A cell with the spreadsheet escape (`safe_cell`) undone.
fn cell(rec: &csv::StringRecord, i: Option<usize>) -> &str {
    let s = i.and_then(|i| rec.get(i)).unwrap_or("");
    match s.as_bytes() {
        [b'\'', b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r', ..] => &s[1..],
        _ => s,
    }
}

const SERVICE_COLUMNS: [&str; 8] = [
    "client_addr",
    "server_addr",
    "proto",
    "server_port",
    "verdict",
    "outcome",
    "flows",
    "bytes",
];

impl AuditDir {
    pub fn load(dir: &Path) -> Result<AuditDir, String> {
        crate::report::manifest::check_audit_dir(dir, &SCHEMA_VERSIONS)?;
        let mut out = AuditDir::default();
        let t = Table::read(&dir.join("services.csv"))?;
        let c = t.need(&SERVICE_COLUMNS)?;
        // Schema 1 named hosts; schema 2 names their groups (a name, or the /24 or /64 of a
        // host outside the inventory, which is no name).
        let (cn, sn, est) = (
            t.col("client_name").or(t.col("client_group")),
            t.col("server_name").or(t.col("server_group")),
            t.col("established"),
        );
        for (line, rec) in &t.rows {
            match service(rec, &c, cn, sn, est) {
                Ok(s) => out.services.push(s),
                Err(e) => out.skipped.push(format!("{}:{line}: {e}", t.path)),
            }
        }
        let inv = dir.join("inventory.csv");
        if inv.exists() {
            let t = Table::read(&inv)?;
            let c = t.need(&["address"])?;
            let name = t.col("name");
            for (line, rec) in &t.rows {
                let a = cell(rec, Some(c[0]));
                match parse_addr_interval(a) {
                    Some((lo, hi)) => out.inventory.push(Block {
                        lo,
                        hi,
                        text: a.to_string(),
                        name: cell(rec, name).to_string(),
                    }),
                    None => out.skipped.push(format!(
                        "{}:{line}: {a:?} is not an address or CIDR",
                        t.path
                    )),
                }
            }
        }
        Ok(out)
    }
}

fn service(
    rec: &csv::StringRecord,
    c: &[usize],
    cn: Option<usize>,
    sn: Option<usize>,
    est: Option<usize>,
) -> Result<Service, String> {
    let get = |i: usize| cell(rec, Some(c[i]));
    let ip = |i: usize| -> Result<IpAddr, String> {
        get(i)
            .parse()
            .map_err(|_| format!("{} {:?} is not an address", SERVICE_COLUMNS[i], get(i)))
    };
    let (client, server) = (ip(0)?, ip(1)?);
    let proto_name = get(2).to_string();
    let proto =
        proto_by_name(&proto_name).ok_or_else(|| format!("unknown protocol {proto_name:?}"))?;
    let port = match get(3) {
        "" => None,
        p => Some(
            p.parse::<u16>()
                .map_err(|_| format!("server_port {p:?} is not a port"))?,
        ),
    };
    let num = |i: usize| -> Result<u64, String> {
        get(i)
            .parse()
            .map_err(|_| format!("{} {:?} is not a count", SERVICE_COLUMNS[i], get(i)))
    };
    let outcome = get(5).to_string();
    // With the per-outcome counts, any answered flow counts; without, the service's outcome.
    let answered = match est.map(|i| cell(rec, Some(i))) {
        Some(n) if !n.is_empty() => n.parse::<u64>().map(|n| n > 0).unwrap_or(false),
        _ => outcome == "established",
    } || outcome == "refused";
    let host = |name: &str, a: IpAddr| {
        if name.is_empty() {
            a.to_string()
        } else {
            format!("{name} ({a})")
        }
    };
    let label = crate::audit::findings::service_subject(
        &host(name_of(cell(rec, cn)), client),
        &host(name_of(cell(rec, sn)), server),
        &proto_name,
        port,
    );
    Ok(Service {
        client,
        server,
        proto,
        proto_name,
        port,
        verdict: get(4).to_string(),
        outcome,
        answered,
        flows: num(6)?,
        bytes: num(7)?,
        label,
    })
}

/// The inventory group covering an address: the narrowest block holding it, widened to every
/// block of the same host name. Returns the blocks and a label.
pub fn group_of(inv: &[Block], a: IpAddr) -> (Vec<(u128, u128)>, String) {
    let k = addr_key(a);
    let best = inv
        .iter()
        .filter(|b| b.lo <= k && k <= b.hi)
        .min_by_key(|b| b.hi - b.lo);
    match best {
        None => ((vec![(k, k)]), format!("{a} (not in the inventory)")),
        Some(b) if b.name.is_empty() => (vec![(b.lo, b.hi)], b.text.clone()),
        Some(b) => {
            let all: Vec<&Block> = inv.iter().filter(|x| x.name == b.name).collect();
            (
                all.iter().map(|x| (x.lo, x.hi)).collect(),
                format!(
                    "{} ({})",
                    b.name,
                    all.iter()
                        .map(|x| x.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )
        }
    }
}

/// A host name cell, or nothing when it holds an address block (a group of unlisted hosts).
fn name_of(cell: &str) -> &str {
    if cell.contains('/') || cell.parse::<std::net::IpAddr>().is_ok() {
        ""
    } else {
        cell
    }
}
