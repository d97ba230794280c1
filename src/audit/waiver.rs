//! Waivers: accepted exceptions to audit findings (docs/diff.md).
//!
//! A waiver file is CSV, `client,server,proto,ports,reason,owner,expires`, one accepted exception
//! per line: a service pattern (each end an address, a CIDR block, `role:ROLE` or `*`; a protocol
//! or `*`; catalog-style ports or `*`), why it is accepted, who owns it and the date it stops
//! holding. A finding about a service that matches a waiver in force is reported as waived, never
//! hidden; from its `expires` date on, the waiver no longer holds and the finding counts again.
//!
//! Dates are plain civil dates in UTC. The few calendar computations needed here (parse, compare,
//! days between, today from the system clock) are done by hand rather than with a date crate.

use std::fmt;
use std::path::Path;

use crate::audit::catalog::{parse_ports, PortRange, Problem, Roles};
use crate::audit::inventory::Cidr;
use crate::decode::Addr;

/// Finding kinds that are about one service (and so can be waived).
pub const SERVICE_FINDING_KINDS: [&str; 6] = [
    "documented-refused",
    "documented-unanswered",
    "undocumented",
    "role-mismatch",
    "reverse",
    "unknown-host",
];

/// Waivers expiring within this many days are listed in the summaries.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// A proleptic Gregorian calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// Parses `YYYY-MM-DD` (exactly that shape, a real calendar day).
    pub fn parse(s: &str) -> Result<Date, String> {
        let bad = || format!("{s:?} is not a date: write YYYY-MM-DD");
        let b = s.as_bytes();
        if b.len() != 10
            || b[4] != b'-'
            || b[7] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = s[0..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..7].parse().map_err(|_| bad())?;
        let day: u8 = s[8..10].parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(format!("{s:?} is not a calendar day"));
        }
        Ok(Date { year, month, day })
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    pub fn days(&self) -> i64 {
        let y = self.year as i64 - if self.month <= 2 { 1 } else { 0 };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `z` days after 1970-01-01 (Hinnant's `civil_from_days`).
    pub fn from_days(z: i64) -> Date {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
        Date { year, month, day }
    }

    /// Today in UTC by the system clock.
    pub fn today_utc() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Date::from_days(secs.div_euclid(86_400))
    }

    /// Days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(&self, later: Date) -> i64 {
        later.days() - self.days()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One end of a waived service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// An address (a /32 or /128 block) or a CIDR block.
    Block(Cidr),
    /// Hosts holding this role, directly or through a family (as the inventory gives them).
    Role(String),
}

impl HostPattern {
    /// Parses a pattern; an old role id becomes the current one, with a deprecation note in
    /// `notes` (the hosts' roles are current ids, so the old id would match nothing).
    fn parse(s: &str, roles: &Roles, notes: &mut Vec<String>) -> Result<HostPattern, String> {
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(r) = s.strip_prefix("role:") {
            let r = r.trim();
            let Some((id, deprecated)) = roles.canonical(r) else {
                return Err(format!(
                    "unknown role {r:?} (run `flowaudit catalog roles` for the list)"
                ));
            };
            if deprecated {
                notes.push(format!(
                    "role {r:?} is an old id of {id:?}; write role:{id} (the old id still works)"
                ));
            }
            return Ok(HostPattern::Role(id.to_string()));
        }
        Cidr::parse(s)
            .map(HostPattern::Block)
            .map_err(|_| format!("{s:?} is not an address, a CIDR block, role:ROLE or *"))
    }

    fn matches(&self, a: Addr, roles: &[String]) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Block(c) => c.contains(a),
            HostPattern::Role(r) => roles.iter().any(|x| x == r),
        }
    }
}

/// One accepted exception.
#[derive(Debug, Clone)]
pub struct Waiver {
    /// Line in the waiver file.
    pub line: u64,
    pub client: HostPattern,
    pub server: HostPattern,
    /// Protocol name as the reports write it (tcp, udp, icmp, ...); None for `*`.
    pub proto: Option<String>,
    /// None for `*` (any port, and services without ports).
    pub ports: Option<Vec<PortRange>>,
    pub reason: String,
    pub owner: String,
    /// The first day the waiver no longer holds.
    pub expires: Date,
    /// The pattern as written: `client -> server proto/ports`.
    pub pattern: String,
}

/// What a service's finding looks like to the waivers: the reports' view of a service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRef<'a> {
    pub client: Addr,
    pub server: Addr,
    /// Protocol name as the reports write it.
    pub proto: &'a str,
    /// None for protocols without ports.
    pub port: Option<u16>,
    /// Roles with their families, as the inventory lookup gives them.
    pub client_roles: &'a [String],
    pub server_roles: &'a [String],
}

impl Waiver {
    pub fn matches(&self, s: &ServiceRef) -> bool {
        self.client.matches(s.client, s.client_roles)
            && self.server.matches(s.server, s.server_roles)
            && self.proto.as_deref().is_none_or(|p| p == s.proto)
            && match &self.ports {
                None => true,
                Some(r) => s.port.is_some_and(|p| r.iter().any(|x| x.contains(p))),
            }
    }

    /// In force on `today` (the day before `expires` is the last such day).
    pub fn in_force(&self, today: Date) -> bool {
        today < self.expires
    }
}

/// How a waiver applies to one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The waiver's line in the file.
    pub line: u64,
    pub expired: bool,
    pub expires: Date,
    pub owner: String,
    pub reason: String,
}

impl Mark {
    /// Whether the finding still counts (for `--fail-on` and the diff gates): only an expired
    /// waiver lets it count.
    pub fn counts(&self) -> bool {
        self.expired
    }
}

impl fmt::Display for Mark {
    /// The findings.csv `waiver` cell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.expired {
            write!(
                f,
                "EXPIRED on {}, was waived by {}: {}",
                self.expires, self.owner, self.reason
            )
        } else {
            write!(
                f,
                "waived until {} by {}: {}",
                self.expires, self.owner, self.reason
            )
        }
    }
}

/// A loaded waiver file.
#[derive(Debug, Clone, Default)]
pub struct Waivers {
    pub file: String,
    pub list: Vec<Waiver>,
    /// Notes that do not stop the audit (old role ids), with their lines.
    pub warnings: Vec<Problem>,
}

pub const WAIVER_COLUMNS: [&str; 7] = [
    "client", "server", "proto", "ports", "reason", "owner", "expires",
];

fn parse_proto(s: &str) -> Result<Option<String>, String> {
    if s == "*" {
        return Ok(None);
    }
    match s.parse::<crate::decode::proto::IpProto>() {
        // By name only, as catalogs and reports write them.
        Ok(p)
            if crate::audit::catalog::CATALOG_PROTOCOLS.contains(&p.0)
                && p.to_string() == s.to_ascii_lowercase() =>
        {
            Ok(Some(p.to_string()))
        }
        _ => Err(format!(
            "unknown protocol {s:?} (tcp, udp, icmp, icmpv6, sctp, gre or *)"
        )),
    }
}

/// A line with no text, or the header line (`client,server,...`).
fn is_blank_or_header(rec: &csv::StringRecord) -> bool {
    let cell = |i: usize| rec.get(i).unwrap_or("").trim();
    rec.iter().all(|c| c.trim().is_empty()) || (cell(0) == "client" && cell(1) == "server")
}

/// One waiver line of the right width at `line`; Err lists every cell that is wrong. Notes on
/// the host patterns go to `notes`.
fn waiver_row(
    rec: &csv::StringRecord,
    line: u64,
    roles: &Roles,
    notes: &mut Vec<String>,
) -> Result<Waiver, Vec<String>> {
    let cell = |i: usize| rec.get(i).unwrap_or("").trim();
    let mut errs = Vec::new();
    let client = HostPattern::parse(cell(0), roles, notes)
        .map_err(|e| errs.push(format!("client: {e}")))
        .ok();
    let server = HostPattern::parse(cell(1), roles, notes)
        .map_err(|e| errs.push(format!("server: {e}")))
        .ok();
    let proto_p = parse_proto(cell(2))
        .map_err(|e| errs.push(format!("proto: {e}")))
        .ok();
    let ports = waiver_ports(cell(3), &proto_p, &mut errs);
    if cell(4).is_empty() {
        errs.push("no reason given".into());
    }
    if cell(5).is_empty() {
        errs.push("no owner given".into());
    }
    let expires = Date::parse(cell(6))
        .map_err(|e| errs.push(format!("expires: {e}")))
        .ok();
    let (Some(client), Some(server), Some(proto), Some(ports), Some(expires), true) =
        (client, server, proto_p, ports, expires, errs.is_empty())
    else {
        return Err(errs);
    };
    let ports_text = if cell(3).is_empty() { "*" } else { cell(3) };
    Ok(Waiver {
        line,
        client,
        server,
        proto,
        ports,
        reason: cell(4).to_string(),
        owner: cell(5).to_string(),
        expires,
        pattern: format!(
            "{} -> {} {}/{}",
            cell(0),
            cell(1),
            cell(2).to_ascii_lowercase(),
            ports_text
        ),
    })
}

/// The ports cell: `*` or empty for any port (Some(None)), else ranges for a protocol that has
/// ports. None, with the reason in `errs`, when it is wrong.
fn waiver_ports(
    p: &str,
    proto_p: &Option<Option<String>>,
    errs: &mut Vec<String>,
) -> Option<Option<Vec<PortRange>>> {
    match p {
        "*" | "" => Some(None),
        p => match parse_ports(p) {
            Ok(r) if r.is_empty() => {
                errs.push(format!("ports: {p:?} names no port; use * for any"));
                None
            }
            Ok(r) => {
                if let Some(Some(pr)) = proto_p {
                    if !matches!(pr.as_str(), "tcp" | "udp" | "sctp") {
                        errs.push(format!("ports: {pr} has no ports; use *"));
                    }
                }
                Some(Some(r))
            }
            Err(e) => {
                errs.push(format!("ports: {e}"));
                None
            }
        },
    }
}

impl Waivers {
    /// Parses a waiver file; every bad line is a problem naming it. A header line
    /// (`client,server,...`) and `#` comments are allowed.
    pub fn parse(file: &str, text: &str, roles: &Roles) -> Result<Waivers, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut list = Vec::new();
        let text = crate::csvtext::blank_comments(text);
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(text.as_bytes());
        let prob = |line: u64, m: String| Problem {
            file: file.to_string(),
            line,
            message: m,
        };
        for rec in rdr.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    problems.push(prob(line, format!("not valid CSV: {e}")));
                    continue;
                }
            };
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            if is_blank_or_header(&rec) {
                continue;
            }
            if rec.len() != WAIVER_COLUMNS.len() {
                problems.push(prob(
                    line,
                    format!(
                        "expected {} columns ({}); found {}",
                        WAIVER_COLUMNS.len(),
                        WAIVER_COLUMNS.join(","),
                        rec.len()
                    ),
                ));
                continue;
            }
            let mut notes = Vec::new();
            let parsed = waiver_row(&rec, line, roles, &mut notes);
            warnings.extend(notes.into_iter().map(|n| prob(line, n)));
            match parsed {
                Ok(w) => list.push(w),
                Err(errs) => problems.extend(errs.into_iter().map(|e| prob(line, e))),
            }
        }
        if problems.is_empty() {
            Ok(Waivers {
                file: file.to_string(),
                list,
                warnings,
            })
        } else {
            Err(problems)
        }
    }

    /// Reads and parses a waiver file.
    pub fn load(path: &Path, roles: &Roles) -> Result<Waivers, Vec<Problem>> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(t) => Waivers::parse(&name, &t, roles),
            Err(e) => Err(vec![Problem {
                file: name,
                line: 0,
                message: format!("cannot read the waiver file: {e}"),
            }]),
        }
    }

    /// The waiver that applies to a service on `today`: one in force if any (the one lasting
    /// longest, then the first in the file), else the most recently expired one.
    pub fn find(&self, s: &ServiceRef, today: Date) -> Option<Mark> {
        let mut best: Option<&Waiver> = None;
        for w in self.list.iter().filter(|w| w.matches(s)) {
            best = match best {
                None => Some(w),
                Some(b) => {
                    let better = (w.in_force(today), w.expires) > (b.in_force(today), b.expires);
                    Some(if better { w } else { b })
                }
            };
        }
        best.map(|w| Mark {
            line: w.line,
            expired: !w.in_force(today),
            expires: w.expires,
            owner: w.owner.clone(),
            reason: w.reason.clone(),
        })
    }

    /// Waivers in force on `today` that stop holding within [`EXPIRY_WARNING_DAYS`].
    pub fn expiring(&self, today: Date) -> Vec<&Waiver> {
        self.list
            .iter()
            .filter(|w| w.in_force(today) && today.days_until(w.expires) <= EXPIRY_WARNING_DAYS)
            .collect()
    }

    /// Waivers no longer in force on `today`.
    pub fn expired(&self, today: Date) -> Vec<&Waiver> {
        self.list.iter().filter(|w| !w.in_force(today)).collect()
    }
}

/// Whether a finding counts given its mark (no waiver, or an expired one).
pub fn counts(mark: Option<&Mark>) -> bool {
    mark.is_none_or(Mark::counts)
}

/// A one-line description of a waiver for the summaries.
pub fn describe(w: &Waiver, file: &str, today: Date) -> String {
    let when = if w.in_force(today) {
        let d = today.days_until(w.expires);
        format!(
            "expires {} (in {d} day{})",
            w.expires,
            if d == 1 { "" } else { "s" }
        )
    } else {
        format!("EXPIRED on {}", w.expires)
    };
    format!(
        "{file}:{}: `{}` {when}, owner {}: {}",
        w.line, w.pattern, w.owner, w.reason
    )
}
