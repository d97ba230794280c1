//! The audit options every auditing command shares (`audit`, `sniff`, `collect`): one clap
//! block, flattened into each, turned into the library's [`AuditSetup`] the same way.

use std::path::PathBuf;

use clap::Args;

use flowaudit::audit::setup::{AuditSetup, SetupSpec};
use flowaudit::audit::{Audit, GroupBy};

use crate::cli::diff::WaiverArgs;
use crate::cli::error::CliError;

#[derive(Args)]
pub struct AuditSetupArgs {
    /// Inventory CSV: address,roles,name (address or CIDR; roles separated by ';').
    #[arg(long, short = 'I', value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Extra catalog files (docs/catalog-format.md); rules with a built-in id replace it.
    #[arg(long, value_name = "FILE")]
    pub catalog: Vec<PathBuf>,
    /// Use only these built-in catalogs (veeam-vbr, veeam-em, veeam-agent, veeam-proxmox,
    /// backup-exec). Default: all.
    #[arg(long, value_name = "ID")]
    pub product: Vec<String>,
    /// Exit with code 1 when a finding has at least this severity (info, low, medium, high);
    /// stderr then says how many findings did.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    /// What a finding's client and server sides are: `entry` (an inventory entry; rows sharing
    /// one name are one entry), `role` (hosts holding the same roles) or `host` (one row per host
    /// pair). Hosts outside the inventory are grouped by /24 (IPv4) or /64 (IPv6), except with
    /// `host`.
    #[arg(long, value_enum, default_value_t = GroupBy::Entry, value_name = "UNIT")]
    pub group_by: GroupBy,
    #[command(flatten)]
    pub waivers: WaiverArgs,
}

impl AuditSetupArgs {
    /// Loads everything the options name; the inventory's warnings are printed.
    pub fn load(&self) -> Result<AuditSetup, CliError> {
        let spec = SetupSpec {
            products: self.product.clone(),
            catalogs: self.catalog.clone(),
            inventory: self.inventory.clone(),
            waivers: self.waivers.waivers.clone(),
            today: self.waivers.today,
            group_by: self.group_by,
            fail_on: self.fail_on.clone(),
        };
        let setup = AuditSetup::load(&spec).map_err(CliError::input_lines)?;
        for w in setup.warnings() {
            eprintln!("flowaudit: warning: {w}");
        }
        Ok(setup)
    }
}

/// Why the run exits 1 for `--fail-on`, or None.
pub fn fail_on_reason(setup: &AuditSetup, audit: &Audit) -> Option<String> {
    let t = setup.fail_on?;
    let (counted, waived) = setup.failing(audit);
    crate::cli::habits::fail_on_reason(counted, waived, t.as_str())
}

/// The reports of a live run (`sniff`, `collect`): the audit's, with the flows (a live window
/// has no capture file to go back to), or flows.csv alone without an inventory.
pub fn write_audit_or_flows(
    dir: &std::path::Path,
    setup: &AuditSetup,
    audit: Option<&Audit>,
    out: &flowaudit::engine::run::RunOutput,
    inputs: &[String],
) -> std::io::Result<()> {
    if let Some(audit) = audit {
        let waivers = setup.waiver_report();
        let write = flowaudit::report::audit::WriteOptions {
            flows: true,
            waivers: waivers.as_ref(),
            jsonl: false,
        };
        return flowaudit::report::audit::write_audit_with(dir, audit, out, inputs, &write);
    }
    let mut f = flowaudit::report::AtomicFile::create(&dir.join("flows.csv"))?;
    flowaudit::report::flows::write_flows(
        &mut f,
        out.flows.iter(),
        flowaudit::report::flows::Format::Csv,
    )?;
    f.commit()
}
