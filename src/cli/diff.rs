//! `flowaudit diff`, and the waiver and baseline options of `flowaudit audit` (docs/diff.md).

use std::path::{Path, PathBuf};

use clap::Args;

use flowaudit::audit::catalog::Roles;
use flowaudit::audit::waiver::{Date, Waivers};
use flowaudit::diff::{self, Gate, Report};

use crate::cli::error::{CliError, CmdResult, EXIT_FAIL_ON};

fn parse_gate(s: &str) -> Result<Gate, String> {
    Gate::parse(s)
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s)
}

#[derive(Args)]
pub struct WaiverArgs {
    /// Accepted exceptions, a CSV of client,server,proto,ports,reason,owner,expires
    /// (docs/diff.md). Waived findings are reported as waived and do not count for the gates;
    /// from its expires date on, a waiver no longer holds.
    #[arg(long, value_name = "FILE")]
    pub waivers: Option<PathBuf>,
    /// The date waivers are judged on (default: today's date in UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date, hide = true)]
    pub today: Option<Date>,
}

impl WaiverArgs {
    fn today(&self) -> Date {
        self.today.unwrap_or_else(Date::today_utc)
    }

    /// The waiver file, parsed; each problem names its line.
    fn load(&self, roles: &Roles) -> Result<Option<Waivers>, CliError> {
        let Some(p) = &self.waivers else {
            return Ok(None);
        };
        let loaded = Waivers::load(p, roles);
        for w in loaded.iter().flat_map(|w| &w.warnings) {
            eprintln!("flowaudit: warning: {w}");
        }
        loaded.map(Some).map_err(|problems| {
            CliError::input_lines(problems.iter().map(|p| p.to_string()).collect())
        })
    }
}

#[derive(Args)]
pub struct DiffArgs {
    /// The earlier audit's report directory (`flowaudit audit -o DIR`).
    #[arg(value_name = "BASELINE_DIR")]
    baseline: PathBuf,
    /// The later audit's report directory.
    #[arg(value_name = "CURRENT_DIR")]
    current: PathBuf,
    /// Where to write diff.csv (- for stdout, then give --md a file).
    #[arg(short, long, value_name = "FILE", default_value = "diff.csv")]
    output: PathBuf,
    /// Write the Markdown summary to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    md: Option<PathBuf>,
    /// Exit with code 1 when this holds; repeatable. new-undocumented: a service that is not
    /// documented appeared or changed verdict; new-refused: a documented service is newly
    /// refused or unanswered; new-findings: a finding counts that did not; any-change: diff.csv
    /// has a row. Waived findings never count.
    #[arg(long, value_name = "CONDITION", value_parser = parse_gate)]
    fail_on: Vec<Gate>,
    #[command(flatten)]
    waivers: WaiverArgs,
}

/// The baseline options of `audit`: diff against an earlier audit in one step.
#[derive(Args)]
pub struct AuditDiffArgs {
    /// Compare with this earlier audit's report directory after writing the reports: adds
    /// diff.csv and diff.md to the report directory (as `flowaudit diff DIR OUTPUT`).
    #[arg(long, value_name = "DIR")]
    baseline: Option<PathBuf>,
    /// With --baseline: exit with code 1 when this change gate holds; repeatable
    /// (new-undocumented, new-refused, new-findings, any-change; see `flowaudit diff --help`).
    #[arg(long, value_name = "CONDITION", value_parser = parse_gate, requires = "baseline")]
    fail_on_change: Vec<Gate>,
}

/// What `audit` prepared before reading the captures, so that a bad baseline fails before the
/// long part.
pub struct AuditExtras {
    baseline: Option<Report>,
    gates: Vec<Gate>,
}

impl AuditDiffArgs {
    pub fn prepare(&self) -> Result<AuditExtras, CliError> {
        let baseline = match &self.baseline {
            None => None,
            Some(d) => {
                Some(Report::load(d).map_err(|e| CliError::input(format!("--baseline: {e}")))?)
            }
        };
        Ok(AuditExtras {
            baseline,
            gates: self.fail_on_change.clone(),
        })
    }
}

impl AuditExtras {
    /// With --baseline, after the reports are written: diff.csv and diff.md into `dir`, the
    /// waivers judged as the audit judged them. Ok(true) when a --fail-on-change gate holds.
    pub fn diff_after(
        &self,
        dir: &Path,
        quiet: bool,
        setup: &flowaudit::audit::setup::AuditSetup,
    ) -> Result<bool, CliError> {
        let Some(base) = &self.baseline else {
            // A diff from an earlier run into this directory no longer describes it.
            remove_stale_diff(dir)?;
            return Ok(false);
        };
        let cur = Report::load(dir).map_err(CliError::input)?;
        let d = diff::diff(
            base,
            &cur,
            &diff::Options {
                waivers: setup.waivers.as_ref(),
                today: setup.today,
                gates: &self.gates,
            },
        );
        write_diff(&d, &dir.join("diff.csv"), Some(&dir.join("diff.md")))?;
        if !quiet {
            eprintln!("{}", one_line(&d));
        }
        Ok(d.failed())
    }
}

/// Removes diff.csv and diff.md left in a report directory by an earlier `audit --baseline`.
fn remove_stale_diff(dir: &Path) -> Result<(), CliError> {
    for name in ["diff.csv", "diff.md"] {
        let p = dir.join(name);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CliError::input(format!(
                    "{}: cannot remove this diff of an earlier run: {e}",
                    p.display()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn one_line(d: &diff::Diff) -> String {
    let gates: Vec<String> = d
        .gates
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g.gate.as_str(),
                if g.hits.is_empty() {
                    "passed".to_string()
                } else {
                    format!("FAILED ({})", g.hits.len())
                }
            )
        })
        .collect();
    format!(
        "diff against {}: {} changes{}",
        d.baseline,
        d.changes.len(),
        if gates.is_empty() {
            String::new()
        } else {
            format!("; {}", gates.join(", "))
        }
    )
}

fn write_diff(d: &diff::Diff, csv: &Path, md: Option<&Path>) -> Result<(), CliError> {
    let fail =
        |p: &Path, e: std::io::Error| CliError::input(format!("cannot write {}: {e}", p.display()));
    diff::write_csv(csv, d).map_err(|e| fail(csv, e))?;
    match md {
        Some(p) if p != Path::new("-") => diff::write_md(p, d).map_err(|e| fail(p, e)),
        _ => {
            print!("{}", diff::markdown(d));
            Ok(())
        }
    }
}

pub fn cmd_diff(a: DiffArgs) -> CmdResult {
    let md_to_stdout = a.md.as_deref().is_none_or(|p| p == Path::new("-"));
    if a.output == Path::new("-") && md_to_stdout {
        return Err(CliError::input(
            "diff.csv and the Markdown summary cannot both go to stdout: give --md FILE or -o FILE",
        ));
    }
    for (p, flag) in [(Some(&a.output), "-o"), (a.md.as_ref(), "--md")] {
        if let Some(p) = p {
            crate::cli::habits::check_output_file(p, flag).map_err(CliError::input)?;
        }
    }
    let waivers = a.waivers.load(&Roles::builtin())?;
    let baseline = Report::load(&a.baseline).map_err(CliError::input)?;
    let current = Report::load(&a.current).map_err(CliError::input)?;
    let d = diff::diff(
        &baseline,
        &current,
        &diff::Options {
            waivers: waivers.as_ref(),
            today: a.waivers.today(),
            gates: &a.fail_on,
        },
    );
    write_diff(&d, &a.output, a.md.as_deref())?;
    Ok(if d.failed() { EXIT_FAIL_ON } else { 0 })
}
