//! What an audit needs besides the flows, built the same way by every command that audits
//! (`audit`, `sniff`, `collect`): the catalogs, the inventory, the waivers and the options.
//! Everything here is loaded and checked before any packet is read, so that a typo in a file
//! name does not cost a capture window.

use std::path::{Path, PathBuf};

use crate::audit::catalog::Catalogs;
use crate::audit::inventory::Inventory;
use crate::audit::waiver::{Date, Waivers};
use crate::audit::{Audit, AuditOptions, GroupBy, Severity};
use crate::engine::run::RunOutput;
use crate::engine::EngineConfig;
use crate::report::audit::WaiverReport;

/// The built-in catalog ids `--product` accepts.
pub const PRODUCTS: [&str; 5] = [
    "veeam-vbr",
    "veeam-em",
    "veeam-agent",
    "veeam-proxmox",
    "backup-exec",
];

/// What the command line asked for, before anything is read.
#[derive(Debug, Clone)]
pub struct SetupSpec {
    /// Only these built-in catalogs (empty: all).
    pub products: Vec<String>,
    /// Extra catalog files.
    pub catalogs: Vec<PathBuf>,
    /// The inventory CSV; without it there is no audit, only flows.
    pub inventory: Option<PathBuf>,
    /// The waiver CSV.
    pub waivers: Option<PathBuf>,
    /// The date waivers are judged on (None: today in UTC).
    pub today: Option<Date>,
    pub group_by: GroupBy,
    /// `--fail-on` as typed (info, low, medium, high).
    pub fail_on: Option<String>,
}

/// The loaded setup. Problems found while loading are returned as messages, one per line,
/// each naming its file (and line where there is one).
pub struct AuditSetup {
    pub catalogs: Catalogs,
    pub inventory: Option<Inventory>,
    pub waivers: Option<Waivers>,
    pub today: Date,
    pub group_by: GroupBy,
    pub fail_on: Option<Severity>,
}

impl AuditSetup {
    /// Loads and checks everything `spec` names, in the order a user fixes them: the options,
    /// the catalogs, the inventory, the waivers. The inventory's warnings (old role ids) do not
    /// stop the run: [`AuditSetup::warnings`] has them.
    pub fn load(spec: &SetupSpec) -> Result<AuditSetup, Vec<String>> {
        let fail_on =
            match &spec.fail_on {
                None => None,
                Some(s) => Some(Severity::parse(s).ok_or_else(|| {
                    vec![format!("--fail-on {s:?}: use info, low, medium or high")]
                })?),
            };
        let catalogs = load_catalogs(&spec.products, &spec.catalogs).map_err(|e| vec![e])?;
        let inventory = match &spec.inventory {
            None => None,
            Some(p) => Some(load_inventory(p, &catalogs)?),
        };
        let waivers = match &spec.waivers {
            None => None,
            Some(p) => Some(
                Waivers::load(p, &catalogs.roles)
                    .map_err(|ps| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>())?,
            ),
        };
        Ok(AuditSetup {
            catalogs,
            inventory,
            waivers,
            today: spec.today.unwrap_or_else(Date::today_utc),
            group_by: spec.group_by,
            fail_on,
        })
    }

    /// The inventory's and the waivers' notes that do not stop the audit (old role ids, hosts
    /// that get roles from several inventory lines).
    pub fn warnings(&self) -> Vec<String> {
        let inventory = self
            .inventory
            .iter()
            .flat_map(|i| i.warnings.iter().chain(&i.overlaps));
        let waivers = self.waivers.iter().flat_map(|w| &w.warnings);
        inventory.chain(waivers).map(|w| w.to_string()).collect()
    }

    /// The engine configuration with the catalogs' single documented ports, which tell the
    /// engine which end of a flow usually serves.
    pub fn add_catalog_ports(&self, cfg: &mut EngineConfig) {
        for r in &self.catalogs.rules {
            for p in &r.protocols {
                for range in &r.ports {
                    if range.lo == range.hi {
                        cfg.ports.add(*p, range.lo);
                    }
                }
            }
        }
    }

    /// The audit options for a run's output: flows from sampled or incomplete flow records make
    /// "unanswered" and "never used" weak evidence.
    pub fn options(&self, out: &RunOutput) -> AuditOptions<'_> {
        AuditOptions {
            group_by: self.group_by,
            sampled: out.stats.flow_input.as_ref().is_some_and(|fi| {
                fi.sampled() || fi.sequence_gaps > 0 || fi.missing_template_sets > 0
            }),
            waivers: self.waivers.as_ref().map(|w| (w, self.today)),
        }
    }

    /// The audit of a run's flows, or None without an inventory (flows only).
    pub fn audit(&self, out: &RunOutput) -> Option<std::io::Result<Audit>> {
        let inv = self.inventory.as_ref()?;
        Some(crate::audit::audit(
            &out.flows,
            &self.catalogs,
            inv,
            &out.names,
            &self.options(out),
        ))
    }

    /// The waivers as the reports list them.
    pub fn waiver_report(&self) -> Option<WaiverReport<'_>> {
        self.waivers.as_ref().map(|w| WaiverReport {
            waivers: w,
            today: self.today,
        })
    }

    /// Findings at or above `--fail-on` that count, and those that would but are waived
    /// (an expired waiver makes its finding count again). (0, 0) without `--fail-on`.
    pub fn failing(&self, audit: &Audit) -> (usize, usize) {
        let Some(t) = self.fail_on else {
            return (0, 0);
        };
        let at_or_above = |counts: bool| {
            audit
                .findings
                .iter()
                .filter(|f| f.severity >= t && f.counts == counts)
                .count()
        };
        (at_or_above(true), at_or_above(false))
    }
}

/// The built-in catalogs (all, or those in `products`) and the extra catalog files.
pub fn load_catalogs(products: &[String], extra: &[PathBuf]) -> Result<Catalogs, String> {
    for p in products {
        if !PRODUCTS.contains(&p.as_str()) {
            return Err(format!(
                "unknown --product {p:?}; choose from {}",
                PRODUCTS.join(", ")
            ));
        }
    }
    let mut cat = Catalogs::builtin(products)
        .map_err(|p| format!("built-in catalogs are broken: {}", joined(&p, "; ")))?;
    for f in extra {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("{}: cannot read: {e}", f.display()))?;
        let problems = cat.add_file(&f.display().to_string(), &text);
        if !problems.is_empty() {
            return Err(joined(&problems, "\n"));
        }
    }
    Ok(cat)
}

fn load_inventory(path: &Path, cat: &Catalogs) -> Result<Inventory, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![format!(
            "{}: cannot read the inventory: {e}",
            path.display()
        )]
    })?;
    Inventory::parse(&path.display().to_string(), &text, &cat.roles)
        .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
}

fn joined(items: &[impl ToString], sep: &str) -> String {
    items
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}
