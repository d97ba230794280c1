//! One type per row of the audit's CSV reports (docs/reports.md), shared by the writer and by
//! every reader (`diff`): fields named and ordered as the columns, enum-valued cells as their
//! enums, counts as integers, times as the writer's text, cells that may be empty as `Option`.
//!
//! Free-text cells go through [`safe_cell`] when written and have its apostrophe taken off
//! when read (`#[serde(with = "cell")]`), so a round trip gives the text back.
//!
//! Readers map cells by header name (`read_rows`): column order does not matter and unknown
//! columns are ignored, so older report schemas read into the same types (columns they lack,
//! and columns `diff` does not use, are `#[serde(default)]`, listed in [`ReportRow::OPTIONAL`]).

use std::net::IpAddr;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{safe_cell, SCHEMA_VERSION};
use crate::audit::hosts::GroupKind;
use crate::audit::{Outcome, Severity, UnknownEnd, Verdict};

/// One row of services.csv: a service (client host -> server host, protocol, port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicesRow {
    #[serde(deserialize_with = "address")]
    pub client_addr: IpAddr,
    #[serde(with = "cell")]
    pub client_group: String,
    #[serde(deserialize_with = "address")]
    pub server_addr: IpAddr,
    #[serde(with = "cell")]
    pub server_group: String,
    /// DNS/TLS names of the server, `;`-separated.
    #[serde(default, with = "cell")]
    pub server_dns: String,
    #[serde(with = "cell")]
    pub proto: String,
    /// Empty for protocols without ports.
    pub server_port: Option<u16>,
    pub verdict: Verdict,
    pub outcome: Outcome,
    /// `;`-separated rule ids.
    #[serde(with = "cell")]
    pub rule_ids: String,
    #[serde(default)]
    pub more_rules: u64,
    #[serde(default)]
    pub unknown_end: UnknownEnd,
    #[serde(default)]
    pub flows: u64,
    #[serde(default)]
    pub established: u64,
    #[serde(default)]
    pub refused: u64,
    #[serde(default)]
    pub unanswered: u64,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    /// ISO 8601 UTC (schema 2: epoch seconds).
    #[serde(default, with = "cell")]
    pub first_seen: String,
    /// Seconds with three decimals; schemas 2 and 3 had `last_seen` instead.
    #[serde(default, with = "opt_cell")]
    pub duration: Option<String>,
    /// `basis=count;...`
    #[serde(default, with = "cell")]
    pub direction_basis: String,
    /// Empty, `waived until ...` or `EXPIRED on ...`.
    #[serde(with = "cell")]
    pub waiver: String,
}

/// Whether a rule instance was used in the capture window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleStatus {
    Used,
    Unused,
}

impl RuleStatus {
    pub const ALL: [RuleStatus; 2] = [RuleStatus::Used, RuleStatus::Unused];

    pub fn as_str(&self) -> &'static str {
        match self {
            RuleStatus::Used => "used",
            RuleStatus::Unused => "unused",
        }
    }
}

/// One row of rules.csv: a catalog rule between two groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesRow {
    #[serde(with = "cell")]
    pub rule_id: String,
    #[serde(default, with = "cell")]
    pub product: String,
    #[serde(default, with = "cell")]
    pub section: String,
    #[serde(default, with = "cell")]
    pub from_role: String,
    #[serde(default, with = "cell")]
    pub to_role: String,
    #[serde(with = "cell")]
    pub proto: String,
    #[serde(with = "cell")]
    pub ports: String,
    #[serde(default, with = "cell")]
    pub qualifiers: String,
    #[serde(with = "cell")]
    pub client: String,
    #[serde(with = "cell")]
    pub server: String,
    pub status: RuleStatus,
    #[serde(default)]
    pub host_pairs: u64,
    #[serde(default)]
    pub flows: u64,
    #[serde(default)]
    pub bytes: u64,
    /// Empty for unused rules.
    #[serde(default, with = "opt_cell")]
    pub first_seen: Option<String>,
    #[serde(default, with = "opt_cell")]
    pub last_seen: Option<String>,
    /// Ports seen, compressed (`2500-2502;2505`).
    #[serde(with = "cell")]
    pub ports_seen: String,
    #[serde(default, with = "cell")]
    pub suggested_range: String,
}

/// One row of findings.csv. `kind` is text: besides the audit's [`FindingKind`]s
/// (crate::audit::FindingKind), `flowaudit firewall` adds `firewall-*` rows, whose counts,
/// groups and times are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingsRow {
    pub severity: Severity,
    #[serde(with = "cell")]
    pub kind: String,
    #[serde(with = "cell")]
    pub subject: String,
    #[serde(with = "cell")]
    pub client_group: String,
    #[serde(with = "cell")]
    pub server_group: String,
    #[serde(with = "cell")]
    pub proto: String,
    #[serde(with = "cell")]
    pub ports: String,
    #[serde(default)]
    pub host_pairs: Option<u64>,
    #[serde(default)]
    pub flows: Option<u64>,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default, with = "opt_cell")]
    pub first_seen: Option<String>,
    #[serde(default, with = "opt_cell")]
    pub last_seen: Option<String>,
    /// A few host pairs, `;`-separated.
    #[serde(default, with = "cell")]
    pub examples: String,
    #[serde(default, with = "cell")]
    pub reason: String,
    #[serde(default, with = "cell")]
    pub evidence: String,
    /// Empty, a waiver's mark, or a partly-waived note.
    #[serde(with = "cell")]
    pub waiver: String,
}

/// One row of groups.csv: a set of hosts findings are reported under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupsRow {
    #[serde(with = "cell")]
    pub group: String,
    pub kind: GroupKind,
    /// `;`-separated role names.
    #[serde(with = "cell")]
    pub roles: String,
    /// `;`-separated address blocks.
    #[serde(default, with = "cell")]
    pub blocks: String,
}

/// A report row type and the file it is a row of.
pub trait ReportRow: DeserializeOwned {
    const FILE: &'static str;
    /// Columns a reader does without (they read as their `#[serde(default)]`): those older
    /// schemas lack (services' `duration`) and those `diff` does not use, so that a report
    /// trimmed to what the diff reads (as tests and other tools write them) still reads.
    const OPTIONAL: &'static [&'static str];
}

impl ReportRow for ServicesRow {
    const FILE: &'static str = "services.csv";
    const OPTIONAL: &'static [&'static str] = &[
        "server_dns",
        "more_rules",
        "unknown_end",
        "flows",
        "established",
        "refused",
        "unanswered",
        "packets",
        "bytes",
        "first_seen",
        "duration",
        "direction_basis",
    ];
}
impl ReportRow for RulesRow {
    const FILE: &'static str = "rules.csv";
    const OPTIONAL: &'static [&'static str] = &[
        "product",
        "section",
        "from_role",
        "to_role",
        "qualifiers",
        "host_pairs",
        "flows",
        "bytes",
        "first_seen",
        "last_seen",
        "suggested_range",
    ];
}
impl ReportRow for FindingsRow {
    const FILE: &'static str = "findings.csv";
    const OPTIONAL: &'static [&'static str] = &[
        "host_pairs",
        "flows",
        "bytes",
        "first_seen",
        "last_seen",
        "examples",
        "reason",
        "evidence",
    ];
}
impl ReportRow for GroupsRow {
    const FILE: &'static str = "groups.csv";
    const OPTIONAL: &'static [&'static str] = &["blocks"];
}

/// The column names of row type `T`, in order: its serde field names.
pub fn columns<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(FieldNamesFound(fields)) => fields,
        Ok(_) => unreachable!("FieldNames never yields a value"),
    }
}

/// Reads `dir/T::FILE` into rows with their line numbers. Errors name the file (and line): a
/// missing column, a cell that is not of its column's type, invalid CSV.
pub fn read_rows<T: ReportRow>(dir: &Path) -> Result<Vec<(u64, T)>, String> {
    let path = dir.join(T::FILE);
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| format!("{shown}: not valid CSV: {e}"))?
        .clone();
    for n in columns::<T>() {
        if !T::OPTIONAL.contains(n) && !headers.iter().any(|h| h == *n) {
            return Err(format!(
                "{shown}: no {n:?} column: not a flowaudit audit report of schema version {SCHEMA_VERSION}"
            ));
        }
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| format!("{shown}: not valid CSV: {e}"))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let row = rec
            .deserialize::<T>(Some(&headers))
            .map_err(|e| format!("{shown}:{line}: {}", cell_error(&e, &headers, &rec)))?;
        rows.push((line, row));
    }
    Ok(rows)
}

/// What is wrong with a row, from a csv deserialize error: `column "cell": what is wrong` for
/// errors the csv crate finds (a count that is not a number); the messages of the row types'
/// own checks (enums, addresses) show the cell themselves (csv gives them no column).
fn cell_error(e: &csv::Error, headers: &csv::StringRecord, rec: &csv::StringRecord) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(i) => format!(
                "{} {:?}: {}",
                headers.get(i as usize).unwrap_or("?"),
                rec.get(i as usize).unwrap_or(""),
                err.kind()
            ),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    }
}

/// An address cell; the error shows the cell (serde's own does not).
fn address<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|_| de::Error::custom(format!("{s:?} is not an address")))
}

/// A free-text cell: [`safe_cell`] on the way out, its apostrophe taken off on the way in.
mod cell {
    use super::*;

    pub fn serialize<S: Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&safe_cell(s))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(unsafe_cell(String::deserialize(d)?))
    }
}

/// A free-text cell that may be empty.
mod opt_cell {
    use super::*;

    pub fn serialize<S: Serializer>(s: &Option<String>, ser: S) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => ser.serialize_some(&*safe_cell(s)),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(unsafe_cell))
    }
}

/// Undoes [`safe_cell`]: the apostrophe before `=`, `+`, `-`, `@`, tab or CR.
pub fn unsafe_cell(s: String) -> String {
    match s.as_bytes() {
        [b'\'', b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r', ..] => s[1..].to_string(),
        _ => s,
    }
}

/// Serde for an enum written as its `as_str` text: `what` names it in errors.
macro_rules! text_enum {
    ($t:ty, $what:literal, $all:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $all.into_iter()
                    .find(|x: &$t| x.as_str() == s)
                    .ok_or_else(|| {
                        de::Error::custom(format!(
                            "{s:?} is not {}; use {}",
                            $what,
                            $all.map(|x: $t| x.as_str()).join(", ")
                        ))
                    })
            }
        }
    };
}

text_enum!(Verdict, "a verdict", Verdict::ALL);
text_enum!(Outcome, "an outcome", Outcome::ALL);
text_enum!(
    Severity,
    "a severity",
    [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info
    ]
);
text_enum!(
    UnknownEnd,
    "an unknown end",
    [
        UnknownEnd::None,
        UnknownEnd::Client,
        UnknownEnd::Server,
        UnknownEnd::Both
    ]
);
text_enum!(
    GroupKind,
    "a group kind",
    [
        GroupKind::Entry,
        GroupKind::Roles,
        GroupKind::Host,
        GroupKind::Unlisted,
        GroupKind::Name
    ]
);
text_enum!(RuleStatus, "a rule status", RuleStatus::ALL);

/// A deserializer that only asks a struct for its field names.
struct FieldNames;

#[derive(Debug)]
struct FieldNamesFound(&'static [&'static str]);

impl std::fmt::Display for FieldNamesFound {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "fields {:?}", self.0)
    }
}

impl std::error::Error for FieldNamesFound {}

impl de::Error for FieldNamesFound {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        FieldNamesFound(&[])
    }
}

impl<'de> Deserializer<'de> for FieldNames {
    type Error = FieldNamesFound;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::audit::{FINDINGS_COLUMNS, GROUPS_COLUMNS, RULES_COLUMNS, SERVICES_COLUMNS};

    #[test]
    fn row_types_have_the_report_columns_in_order() {
        assert_eq!(columns::<ServicesRow>(), SERVICES_COLUMNS);
        assert_eq!(columns::<RulesRow>(), RULES_COLUMNS);
        assert_eq!(columns::<FindingsRow>(), FINDINGS_COLUMNS);
        assert_eq!(columns::<GroupsRow>(), GROUPS_COLUMNS);
        // The documented columns (docs/reports.md) of two of them, by hand.
        assert_eq!(columns::<GroupsRow>(), ["group", "kind", "roles", "blocks"]);
        assert_eq!(
            columns::<FindingsRow>()[..3],
            ["severity", "kind", "subject"]
        );
    }

    fn write<T: Serialize>(rows: &[T]) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows {
            w.serialize(r).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn enums_and_unsafe_cells_round_trip_as_text() {
        let g = GroupsRow {
            group: "=cmd".into(),
            kind: GroupKind::Unlisted,
            roles: "a;b".into(),
            blocks: "10.0.0.0/24,x".into(),
        };
        let text = write(std::slice::from_ref(&g));
        assert_eq!(
            text,
            "group,kind,roles,blocks\n'=cmd,not-in-inventory,a;b,\"10.0.0.0/24,x\"\n"
        );
        let dir = std::env::temp_dir().join(format!("flowaudit-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("groups.csv"), &text).unwrap();
        assert_eq!(read_rows::<GroupsRow>(&dir).unwrap(), vec![(2, g)]);
        std::fs::write(
            dir.join("groups.csv"),
            "kind,group,roles,blocks,extra\nhost,h1,,,1\nnope,h2,,,\n",
        )
        .unwrap();
        let shown = dir.join("groups.csv").display().to_string();
        assert_eq!(
            read_rows::<GroupsRow>(&dir).unwrap_err(),
            format!(
                "{shown}:3: \"nope\" is not a group kind; use entry, roles, host, not-in-inventory, dns-name"
            )
        );
        std::fs::write(dir.join("groups.csv"), "group,roles,blocks\n").unwrap();
        assert_eq!(
            read_rows::<GroupsRow>(&dir).unwrap_err(),
            format!("{shown}: no \"kind\" column: not a flowaudit audit report of schema version {SCHEMA_VERSION}")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
