//! Firewall rows in `flowaudit diff`: rules that appeared, went, or whose verdict changed
//! between two audits that both ran the firewall check.
//!
//! A rule is matched across the two audits by its chain and text (and which occurrence of that
//! text it is), not by its position, so inserting one rule does not make every later rule
//! "changed".

use std::collections::BTreeMap;
use std::path::Path;

use crate::diff::{Change, ChangeKind};

/// One row of firewall.csv, as the diff needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRow {
    pub position: String,
    pub chain: String,
    pub text: String,
    pub verdict: String,
}

impl FirewallRow {
    fn subject(&self) -> String {
        format!("firewall {}: {}", self.position, self.text)
    }
}

/// firewall.csv of a report directory; `None` when the audit did not run the firewall check.
pub fn load(dir: &Path) -> Result<Option<Vec<FirewallRow>>, String> {
    let path = dir.join("firewall.csv");
    if !path.exists() {
        return Ok(None);
    }
    let shown = path.display().to_string();
    let mut rdr =
        csv::Reader::from_path(&path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let header = rdr
        .headers()
        .map_err(|e| format!("{shown}: not valid CSV: {e}"))?
        .clone();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| format!("{shown}: no {n:?} column: not a flowaudit firewall.csv"))
    };
    let (p, c, t, v) = (
        col("position")?,
        col("chain")?,
        col("text")?,
        col("verdict")?,
    );
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| format!("{shown}: not valid CSV: {e}"))?;
        let get = |i: usize| unescape(rec.get(i).unwrap_or("")).to_string();
        rows.push(FirewallRow {
            position: get(p),
            chain: get(c),
            text: get(t),
            verdict: get(v),
        });
    }
    Ok(Some(rows))
}

fn unescape(s: &str) -> &str {
    match s.as_bytes() {
        [b'\'', b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r', ..] => &s[1..],
        _ => s,
    }
}

type Key = (String, String, usize);

fn keyed(rows: &[FirewallRow]) -> BTreeMap<Key, &FirewallRow> {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut m = BTreeMap::new();
    for r in rows {
        let n = seen.entry((r.chain.clone(), r.text.clone())).or_default();
        *n += 1;
        m.insert((r.chain.clone(), r.text.clone(), *n), r);
    }
    m
}

/// The diff.csv rows for firewall rules; none unless both audits ran the firewall check.
pub fn changes(base: Option<&[FirewallRow]>, cur: Option<&[FirewallRow]>) -> Vec<Change> {
    let (Some(base), Some(cur)) = (base, cur) else {
        return Vec::new();
    };
    let (b, c) = (keyed(base), keyed(cur));
    let row = |k: ChangeKind, r: &FirewallRow, before: &str, after: &str| Change {
        change: k,
        subject: r.subject(),
        baseline: before.to_string(),
        current: after.to_string(),
        ..Default::default()
    };
    let mut out = Vec::new();
    for (k, r) in &c {
        match b.get(k) {
            None => out.push(row(ChangeKind::FirewallRuleNew, r, "", &r.verdict)),
            Some(o) if o.verdict != r.verdict => out.push(row(
                ChangeKind::FirewallVerdictChanged,
                r,
                &o.verdict,
                &r.verdict,
            )),
            Some(_) => {}
        }
    }
    for (k, r) in &b {
        if !c.contains_key(k) {
            out.push(row(ChangeKind::FirewallRuleGone, r, &r.verdict, ""));
        }
    }
    // diff.csv orders rows by change, then subject.
    out.sort_by(|x, y| (x.change, &x.subject).cmp(&(y.change, &y.subject)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(pos: &str, text: &str, verdict: &str) -> FirewallRow {
        FirewallRow {
            position: pos.into(),
            chain: "inet filter forward".into(),
            text: text.into(),
            verdict: verdict.into(),
        }
    }

    #[test]
    fn rules_are_matched_by_text_not_position() {
        let base = vec![
            r("inet filter forward #1", "tcp dport 22 accept", "needed"),
            r(
                "inet filter forward #2",
                "tcp dport 5000-6000 accept",
                "too-wide",
            ),
            r("inet filter forward #3", "tcp dport 9 accept", "unused"),
        ];
        let cur = vec![
            r("inet filter forward #1", "tcp dport 443 accept", "needed"),
            r("inet filter forward #2", "tcp dport 22 accept", "needed"),
            r(
                "inet filter forward #3",
                "tcp dport 5000-6000 accept",
                "allows-undocumented",
            ),
        ];
        let ch = changes(Some(&base), Some(&cur));
        let got: Vec<(&str, &str, &str, &str)> = ch
            .iter()
            .map(|c| {
                (
                    c.change.as_str(),
                    c.subject.as_str(),
                    c.baseline.as_str(),
                    c.current.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "firewall-rule-new",
                    "firewall inet filter forward #1: tcp dport 443 accept",
                    "",
                    "needed"
                ),
                (
                    "firewall-rule-gone",
                    "firewall inet filter forward #3: tcp dport 9 accept",
                    "unused",
                    ""
                ),
                (
                    "firewall-verdict-changed",
                    "firewall inet filter forward #3: tcp dport 5000-6000 accept",
                    "too-wide",
                    "allows-undocumented"
                ),
            ]
        );
        assert!(changes(None, Some(&cur)).is_empty());
    }
}
