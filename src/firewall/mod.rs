//! Checking an existing firewall ruleset against the observed traffic (docs/firewall.md).
//!
//! - [`model`]: the ruleset as chains of rules of matches and actions
//! - [`nft`]: `nft -j list ruleset` into the model
//! - [`iptables`]: `iptables-save` / `ip6tables-save` and `ipset save` into the model
//! - [`eval`]: one packet through the ruleset, as the kernel would
//! - [`input`]: services.csv and inventory.csv of an audit's report directory
//! - [`check`]: every service through the ruleset, and a verdict for every rule
//! - [`report`]: firewall.csv, firewall_services.csv, summary.md and findings.csv
//! - [`diff`]: firewall rows compared between two audits

pub mod check;
pub mod diff;
pub mod eval;
pub mod input;
pub mod iptables;
pub mod model;
pub mod nft;
pub mod report;

use std::path::Path;

pub use check::Options;
use model::Ruleset;

/// The syntax of a ruleset file, told by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    NftJson,
    IptablesSave,
    IpsetSave,
}

pub fn detect(text: &str) -> Option<Format> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    if first.starts_with('{') {
        Some(Format::NftJson)
    } else if first.starts_with('*') {
        Some(Format::IptablesSave)
    } else if first.starts_with("create ") {
        Some(Format::IpsetSave)
    } else {
        None
    }
}

/// Reads one ruleset file into `rs`.
pub fn load_file(path: &Path, rs: &mut Ruleset) -> Result<(), String> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    load_text(&shown, &text, rs)
}

pub fn load_text(name: &str, text: &str, rs: &mut Ruleset) -> Result<(), String> {
    match detect(text) {
        Some(Format::NftJson) => nft::parse(name, text, rs),
        Some(Format::IptablesSave) => iptables::parse(name, text, rs),
        Some(Format::IpsetSave) => iptables::parse_ipset(name, text, rs),
        None => Err(format!(
            "{name}: neither `nft -j list ruleset` JSON, iptables-save / ip6tables-save text (a *filter line first) nor `ipset save` output (create lines first)"
        )),
    }
}

/// Reads every ruleset file and resolves named sets across them.
pub fn load(paths: &[impl AsRef<Path>]) -> Result<Ruleset, String> {
    let mut rs = Ruleset::default();
    for p in paths {
        load_file(p.as_ref(), &mut rs)?;
    }
    rs.resolve_sets();
    Ok(rs)
}

/// What one run of the check did, for the command's stderr line.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rules: usize,
    pub services: usize,
    pub by_verdict: Vec<(&'static str, usize)>,
    pub dropped_documented: usize,
    pub findings: usize,
    pub skipped: usize,
}

/// Runs the check on an audit's report directory and writes its reports there.
pub fn run_on_dir(rs: &Ruleset, dir: &Path, opts: &Options) -> Result<Outcome, String> {
    let audit = input::AuditDir::load(dir)?;
    let bases = opts.selection.base_chains(rs);
    if bases.is_empty() {
        let present: Vec<String> = rs
            .chains
            .iter()
            .filter_map(|c| {
                c.hook
                    .as_ref()
                    .map(|h| format!("{} ({} hook, {})", c.label(), h.hook, h.kind))
            })
            .collect();
        return Err(format!(
            "no filter base chain matches --firewall-chain {}: the ruleset has {}",
            opts.selection.names.join(","),
            if present.is_empty() {
                "no base chains".to_string()
            } else {
                present.join(", ")
            }
        ));
    }
    let check = check::run(rs, &audit, opts);
    let werr = |e: std::io::Error| format!("{}: cannot write: {e}", dir.display());
    report::write_firewall_csv(dir, &check).map_err(werr)?;
    report::write_services_csv(dir, rs, &audit, &check).map_err(werr)?;
    let f = report::findings(rs, &audit, &check);
    report::merge_findings(dir, &f)?;
    report::append_summary(dir, &report::summary_section(rs, &audit, &check))?;
    Ok(Outcome {
        rules: check.rows.len(),
        services: audit.services.len(),
        by_verdict: check::RuleVerdict::ALL
            .iter()
            .map(|v| {
                (
                    v.as_str(),
                    check.rows.iter().filter(|r| r.verdict == *v).count(),
                )
            })
            .collect(),
        dropped_documented: f
            .iter()
            .filter(|r| r[1] == "firewall-drops-documented")
            .count(),
        findings: f.len(),
        skipped: rs.skipped.len() + audit.skipped.len(),
    })
}
