//! `flowaudit policy`: the firewall ruleset for an audit's documented traffic (docs/policy.md).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use flowaudit::policy::{self, input::Report, GroupBy, Options};
use flowaudit::report::write_output;

use crate::cli::error::{CliError, CmdResult};

#[derive(Clone, Copy, ValueEnum)]
pub enum PolicyFormat {
    /// nftables ruleset for `nft -f`: table inet flowaudit, named interval sets, chain allow.
    Nftables,
    /// Shell script: ipset restore, iptables-restore and ip6tables-restore (chain FLOWAUDIT).
    Iptables,
    /// PowerShell New-NetFirewallRule commands, inbound rules per server host (-Target NAME).
    Windows,
    /// Cisco ASA object-group network and access-list FLOWAUDIT extended lines.
    Asa,
    /// Neutral CSV table (groups, addresses, protocol, ports, rule ids, evidence).
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GroupByArg {
    /// One address group per role a rule names (hosts holding the role or a child role).
    Role,
    /// One group per inventory row (address block) as written.
    Entry,
    /// One group per inventory host: rows sharing a name (IPv4 and IPv6 of one host) together.
    Host,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
flowaudit policy report/ --format nftables -o flowaudit.nft && nft -c -f flowaudit.nft\n  \
flowaudit policy report/ --format iptables --group-by host -o flowaudit.sh\n  \
flowaudit policy report/ --format windows -o policy.ps1   (then on vbr01: policy.ps1 -Target vbr01)\n  \
flowaudit policy report/ --format asa --include-unused --default-drop -o asa.txt\n\n\
Only documented traffic the capture showed is allowed, with its ports narrowed to those seen; \
undocumented, role-mismatch, reverse and unknown-host traffic is listed commented out for review. \
Return traffic is allowed once, through connection tracking. Read docs/policy.md before applying.")]
pub struct PolicyArgs {
    /// The audit's report directory (`flowaudit audit ... -o DIR`).
    #[arg(value_name = "REPORT_DIR")]
    report: PathBuf,
    /// The firewall language to write.
    #[arg(long, value_enum)]
    format: PolicyFormat,
    /// Output file (default: stdout). Written to a temporary name and renamed when complete.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// How addresses are grouped into sets/objects.
    #[arg(long, value_enum, default_value_t = GroupByArg::Role)]
    group_by: GroupByArg,
    /// Also allow documented rules never seen in the capture (jobs that did not run in the
    /// window: restores, upgrades), each marked UNUSED, with the vendor's full ports.
    #[arg(long)]
    include_unused: bool,
    /// Allow a rule's whole documented port range instead of only the ports the capture showed
    /// (the vendor range is always named in the rule's comment).
    #[arg(long)]
    keep_vendor_ranges: bool,
    /// Drop everything the policy does not allow (nftables: a forward base chain; iptables:
    /// FORWARD policy DROP; Windows: default inbound Block; ASA: a final deny). Without it the
    /// output is a chain or list your own ruleset jumps to.
    #[arg(long)]
    default_drop: bool,
}

pub fn cmd_policy(a: PolicyArgs) -> CmdResult {
    let report = Report::load(&a.report).map_err(CliError::input)?;
    let opts = Options {
        group_by: match a.group_by {
            GroupByArg::Role => GroupBy::Role,
            GroupByArg::Entry => GroupBy::Entry,
            GroupByArg::Host => GroupBy::Host,
        },
        include_unused: a.include_unused,
        keep_vendor_ranges: a.keep_vendor_ranges,
        default_drop: a.default_drop,
    };
    let p = policy::build(&report, opts);
    for n in &p.notes {
        eprintln!("flowaudit policy: {n}");
    }
    let bytes = match a.format {
        PolicyFormat::Nftables => policy::nftables::write(&p).into_bytes(),
        PolicyFormat::Iptables => policy::iptables::write(&p).into_bytes(),
        PolicyFormat::Windows => policy::windows::write(&p).into_bytes(),
        PolicyFormat::Asa => policy::asa::write(&p).into_bytes(),
        PolicyFormat::Csv => policy::csv::write(&p)
            .map_err(|e| CliError::input(format!("cannot write the CSV: {e}")))?,
    };
    write_output(a.output.as_deref(), |w| w.write_all(&bytes))
        .map_err(|e| crate::cli::habits::cannot_write(a.output.as_deref(), e))?;
    eprintln!(
        "flowaudit policy: {} allow rules ({} unused), {} groups, {} candidates for review",
        p.allows.len(),
        p.allows.iter().filter(|x| x.unused()).count(),
        p.groups.len(),
        p.candidates.len()
    );
    Ok(0)
}
