//! `audit --format jsonl`: services.jsonl, findings.jsonl, rules.jsonl and groups.jsonl beside
//! the CSV files (docs/reports.md). Each is made from the CSV just written, row by row, so the two
//! can never disagree: the same rows in the same order, the same fields in column order, counts
//! and ports as JSON numbers (`null` for an empty cell), every other cell the CSV's text.

use std::io::{self, Write};
use std::path::Path;

use super::AtomicFile;

/// The files written, with the columns that hold numbers.
pub const JSONL_FILES: &[(&str, &[&str])] = &[
    (
        "services",
        &[
            "server_port",
            "more_rules",
            "flows",
            "established",
            "refused",
            "unanswered",
            "packets",
            "bytes",
            "duration",
        ],
    ),
    ("rules", &["host_pairs", "flows", "bytes"]),
    ("findings", &["host_pairs", "flows", "bytes"]),
    ("groups", &[]),
];

/// The .jsonl file names, in [`JSONL_FILES`] order.
pub fn file_names() -> impl Iterator<Item = String> {
    JSONL_FILES.iter().map(|(n, _)| format!("{n}.jsonl"))
}

/// Writes every NAME.jsonl of [`JSONL_FILES`] from `dir`'s NAME.csv.
pub fn write_all(dir: &Path) -> io::Result<()> {
    for (name, numeric) in JSONL_FILES {
        let csv_path = dir.join(format!("{name}.csv"));
        let mut f = AtomicFile::create(&dir.join(format!("{name}.jsonl")))?;
        convert(&csv_path, numeric, &mut f)?;
        f.commit()?;
    }
    Ok(())
}

/// Removes the .jsonl files an earlier run left: they would not belong to this audit.
pub fn remove_stale(dir: &Path) -> io::Result<()> {
    for name in file_names() {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn convert(csv_path: &Path, numeric: &[&str], out: &mut dyn Write) -> io::Result<()> {
    let mut r = csv::Reader::from_path(csv_path)?;
    // Field names as JSON strings once, and whether each column holds numbers.
    let header: Vec<(String, bool)> = r
        .headers()?
        .iter()
        .map(|h| (json_string(h), numeric.contains(&h)))
        .collect();
    let mut line = Vec::with_capacity(512);
    for rec in r.records() {
        let rec = rec?;
        line.clear();
        line.push(b'{');
        for (i, ((name, is_number), cell)) in header.iter().zip(rec.iter()).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(name.as_bytes());
            line.push(b':');
            match (*is_number, cell) {
                (true, "") => line.extend_from_slice(b"null"),
                (true, n) => {
                    // Counts and durations the audit wrote (`12`, `14.306`): valid JSON numbers
                    // as they are.
                    if !is_plain_number(n) {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: {n:?} is not a number", csv_path.display()),
                        ));
                    }
                    line.extend_from_slice(n.as_bytes());
                }
                (false, text) => line.extend_from_slice(json_string(text).as_bytes()),
            }
        }
        line.extend_from_slice(b"}\n");
        out.write_all(&line)?;
    }
    Ok(())
}

/// Digits, and at most one `.` with digits on both sides.
fn is_plain_number(n: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match n.split_once('.') {
        Some((whole, frac)) => digits(whole) && digits(frac),
        None => digits(n),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}
