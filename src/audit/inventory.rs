//! The host inventory: `address,roles,name` rows giving each host (or subnet) its roles.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::audit::catalog::{Problem, Roles};
use crate::decode::Addr;

/// An address block in the 16-byte address space (IPv4 as mapped: prefix + 96).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4/IPv6 address or CIDR block"))?;
        let (max, base) = if ip.is_ipv4() { (32u8, 96u8) } else { (128, 0) };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        let c = Cidr {
            addr: Addr::from(ip),
            prefix: base + len,
        };
        if c.network() != c.addr {
            return Err(format!(
                "{s:?} has host bits set; write the network address"
            ));
        }
        Ok(c)
    }

    /// The network address of `a` under a prefix of `prefix` bits (16-byte space).
    pub fn network_of(a: Addr, prefix: u8) -> Addr {
        Cidr { addr: a, prefix }.network()
    }

    /// The block of one address.
    pub fn host(a: Addr) -> Cidr {
        Cidr {
            addr: a,
            prefix: 128,
        }
    }

    /// The /24 (IPv4) or /64 (IPv6) holding an address outside the inventory: the unit its
    /// findings are grouped by.
    pub fn unlisted_net(a: Addr) -> Cidr {
        let prefix = if a.to_ip().is_ipv4() { 96 + 24 } else { 64 };
        Cidr {
            addr: Cidr::network_of(a, prefix),
            prefix,
        }
    }

    fn network(&self) -> Addr {
        let mut b = self.addr.0;
        for (i, byte) in b.iter_mut().enumerate() {
            let keep = (self.prefix as i32 - 8 * i as i32).clamp(0, 8) as u32;
            *byte &= (0xffu16 << (8 - keep)) as u8;
        }
        Addr(b)
    }

    pub fn contains(&self, a: Addr) -> bool {
        Cidr {
            addr: a,
            prefix: self.prefix,
        }
        .network()
            == self.addr
    }

    pub fn is_host(&self) -> bool {
        self.prefix == 128
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            let v4 = self.addr.to_ip().is_ipv4();
            write!(
                f,
                "{}/{}",
                self.addr,
                if v4 { self.prefix - 96 } else { self.prefix }
            )
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub cidr: Cidr,
    pub roles: Vec<String>,
    pub name: String,
    pub line: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The file it was read from, as given (summary.md names it).
    pub file: String,
    /// One entry per distinct address block, roles merged over its rows.
    pub entries: Vec<Entry>,
    /// Notes that do not stop the audit (old role ids), with their lines.
    pub warnings: Vec<Problem>,
    /// Hosts (and blocks) that get roles from several entries: one note each, at most
    /// [`MAX_OVERLAP_NOTES`], then one counting the rest (see [`overlap_notes`]).
    pub overlaps: Vec<Problem>,
}

/// Hosts named one by one in the overlap notes; the rest are counted.
pub const MAX_OVERLAP_NOTES: usize = 20;

/// What the inventory says about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The most specific block covering the address.
    pub block: Cidr,
    pub name: String,
    /// Roles from every covering block, with their families, sorted.
    pub roles: Vec<String>,
}

/// The roles cell (`;`-separated) as current role ids, with a warning per old id used and a
/// problem per unknown role.
fn row_roles(text: &str, roles: &Roles) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ids, mut old, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for r in text.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        if let Some((id, deprecated)) = roles.canonical(r) {
            if deprecated {
                old.push(format!(
                    "role {r:?} is an old id of {id:?}; write {id} (the old id still works)"
                ));
            }
            ids.push(id.to_string());
        } else {
            unknown.push(format!(
                "unknown role {r:?} (run `flowaudit catalog roles` for the list)"
            ));
        }
    }
    (ids, old, unknown)
}

impl Entry {
    /// Adds another line for this block: its name (Err when it names the block differently)
    /// and its roles, each once.
    fn add_line(&mut self, name: &str, roles: Vec<String>) -> Result<(), String> {
        let mut result = Ok(());
        if !name.is_empty() {
            if !self.name.is_empty() && self.name != name {
                result = Err(format!(
                    "{} is named {:?} here but {:?} on line {}",
                    self.cidr, name, self.name, self.line
                ));
            } else {
                self.name = name.to_string();
            }
        }
        for r in roles {
            if !self.roles.contains(&r) {
                self.roles.push(r);
            }
        }
        result
    }
}

impl Inventory {
    pub fn parse(file: &str, text: &str, roles: &Roles) -> Result<Inventory, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut by_block: BTreeMap<Cidr, Entry> = BTreeMap::new();
        let prob = |line: u64, m: String| Problem {
            file: file.to_string(),
            line,
            message: m,
        };
        for (line, rec) in crate::audit::catalog::csv_lines(file, text, &mut problems) {
            let cell = |i: usize| rec.get(i).unwrap_or("").trim();
            if rec.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            if cell(0) == "address" {
                continue; // header
            }
            if rec.len() < 2 || rec.len() > 3 {
                problems.push(prob(
                    line,
                    format!("expected address,roles,name; found {} columns", rec.len()),
                ));
                continue;
            }
            let cidr = match Cidr::parse(cell(0)) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(prob(line, e));
                    continue;
                }
            };
            let (row_roles, old_ids, unknown) = row_roles(cell(1), roles);
            warnings.extend(old_ids.into_iter().map(|m| prob(line, m)));
            problems.extend(unknown.into_iter().map(|m| prob(line, m)));
            if row_roles.is_empty() && cell(1).is_empty() {
                problems.push(prob(line, "no roles given".into()));
            }
            let e = by_block.entry(cidr).or_insert_with(|| Entry {
                cidr,
                roles: Vec::new(),
                name: String::new(),
                line,
            });
            if let Err(m) = e.add_line(cell(2), row_roles) {
                problems.push(prob(line, m));
            }
        }
        if problems.is_empty() {
            let entries: Vec<Entry> = by_block.into_values().collect();
            let overlaps = overlap_notes(file, &entries, roles);
            Ok(Inventory {
                file: file.to_string(),
                entries,
                warnings,
                overlaps,
            })
        } else {
            Err(problems)
        }
    }

    pub fn lookup(&self, a: Addr, roles: &Roles) -> Option<HostInfo> {
        let mut best: Option<&Entry> = None;
        let mut all = Vec::new();
        for e in &self.entries {
            if e.cidr.contains(a) {
                for r in &e.roles {
                    all.extend(roles.with_ancestors(r));
                }
                if best.is_none_or(|b| e.cidr.prefix > b.cidr.prefix) {
                    best = Some(e);
                }
            }
        }
        let best = best?;
        all.sort();
        all.dedup();
        Some(HostInfo {
            block: best.cidr,
            name: best.name.clone(),
            roles: all,
        })
    }

    /// Entries holding `role` (directly or through a family), for rule instantiation.
    pub fn holders<'a>(
        &'a self,
        role: &'a str,
        roles: &'a Roles,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            e.roles
                .iter()
                .any(|r| roles.with_ancestors(r).iter().any(|x| x == role))
        })
    }
}

/// The inventory host an entry belongs to: entries of single addresses (/32, /128) sharing a
/// name are one host (a dual-stack host, a host with several interfaces); any other entry is
/// its own. Blocks sharing a name stay separate hosts: a pool written as two blocks is many
/// hosts, not one.
pub fn host_key(e: &Entry) -> String {
    if e.cidr.is_host() && !e.name.is_empty() {
        e.name.clone()
    } else {
        e.cidr.to_string()
    }
}

/// One note per host (or block) that gets roles from an entry around it (a /16 around a /32),
/// beyond the roles its own lines give (families included). The audit gives such a host the
/// union of the roles of every entry covering it; the note names the lines so the overlap is
/// a decision, not an accident. At most [`MAX_OVERLAP_NOTES`] hosts are named, in line order;
/// one more note counts the rest.
pub fn overlap_notes(file: &str, entries: &[Entry], roles: &Roles) -> Vec<Problem> {
    // Each host's own roles (every line of it) and its entries, in line order.
    let mut hosts: BTreeMap<String, (Vec<String>, Vec<&Entry>)> = BTreeMap::new();
    for e in entries {
        let h = hosts.entry(host_key(e)).or_default();
        h.0.extend(e.roles.iter().cloned());
        h.1.push(e);
    }
    let around = Around::new(entries);
    let mut notes: Vec<(u64, String)> = hosts
        .iter()
        .filter_map(|(key, (own, mine))| host_overlap_note(key, own, mine, &around, roles))
        .collect();
    notes.sort();
    let total = notes.len();
    let mut out: Vec<Problem> = notes
        .into_iter()
        .take(MAX_OVERLAP_NOTES)
        .map(|(line, message)| Problem {
            file: file.to_string(),
            line,
            message,
        })
        .collect();
    if total > MAX_OVERLAP_NOTES {
        out.push(Problem {
            file: file.to_string(),
            line: 0,
            message: format!(
                "and {} more hosts or blocks get roles from several inventory lines",
                total - MAX_OVERLAP_NOTES
            ),
        });
    }
    out
}

/// Roles with their families, sorted, each once.
fn closed_roles(rs: &[String], roles: &Roles) -> Vec<String> {
    let mut v: Vec<String> = rs.iter().flat_map(|r| roles.with_ancestors(r)).collect();
    v.sort();
    v.dedup();
    v
}

/// The entries around one: probed by prefix length, as the audit looks addresses up.
struct Around<'a> {
    by_cidr: BTreeMap<Cidr, &'a Entry>,
    /// The prefix lengths entries have, ascending.
    lens: Vec<u8>,
}

impl<'a> Around<'a> {
    fn new(entries: &'a [Entry]) -> Around<'a> {
        let by_cidr = entries.iter().map(|e| (e.cidr, e)).collect();
        let mut lens: Vec<u8> = entries.iter().map(|e| e.cidr.prefix).collect();
        lens.sort_unstable();
        lens.dedup();
        Around { by_cidr, lens }
    }

    /// The entries whose blocks hold `e`'s, widest first.
    fn of(&self, e: &Entry) -> Vec<&'a Entry> {
        self.lens
            .iter()
            .take_while(|&&l| l < e.cidr.prefix)
            .filter_map(|&l| {
                self.by_cidr
                    .get(&Cidr {
                        addr: Cidr::network_of(e.cidr.addr, l),
                        prefix: l,
                    })
                    .copied()
            })
            .collect()
    }
}

/// The note for host `key` (its own roles `own`, its entries `mine`) when entries around it
/// give it roles its own lines do not: (its first line, the note).
fn host_overlap_note(
    key: &str,
    own: &[String],
    mine: &[&Entry],
    around: &Around,
    roles: &Roles,
) -> Option<(u64, String)> {
    let own = closed_roles(own, roles);
    let mut parts = Vec::new();
    let mut first_line = u64::MAX;
    for e in mine {
        first_line = first_line.min(e.line);
        let wider: Vec<String> = around
            .of(e)
            .into_iter()
            .filter(|o| {
                closed_roles(&o.roles, roles)
                    .iter()
                    .any(|r| !own.contains(r))
            })
            .map(|o| format!("{} (line {}: {})", o.cidr, o.line, o.roles.join(";")))
            .collect();
        if !wider.is_empty() {
            parts.push(format!(
                "{} (line {}) is inside {}",
                e.cidr,
                e.line,
                wider.join(" and ")
            ));
        }
    }
    if parts.is_empty() {
        return None;
    }
    // A named block is called by its name; an unnamed entry by its address.
    let label = mine
        .iter()
        .find(|e| !e.name.is_empty())
        .map_or(key, |e| &e.name);
    Some((
        first_line,
        format!(
            "{label} gets roles from several inventory lines: {}; it holds the union of their roles",
            parts.join("; ")
        ),
    ))
}
