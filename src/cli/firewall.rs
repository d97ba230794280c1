//! `flowaudit firewall` and the audit's `--firewall` options: check an existing firewall
//! ruleset against an audit's report directory (docs/firewall.md).

use std::path::PathBuf;

use clap::Args;

use flowaudit::firewall::eval::Selection;
use flowaudit::firewall::model::parse_addr_interval;
use flowaudit::firewall::{self, Options};

use crate::cli::error::{CliError, CmdResult};

/// Options shared by `firewall` and `audit --firewall`.
#[derive(Args, Clone, Debug)]
pub struct ChainArgs {
    /// Which base chains to evaluate: a hook (prerouting, input, forward, output, postrouting)
    /// or a base chain's name (nft `forward`, iptables `FORWARD`); repeatable. Default: the
    /// filter chains on the forward hook, i.e. a router between the hosts. Use `input` for a
    /// host firewall on the server.
    #[arg(long = "firewall-chain", value_name = "HOOK|CHAIN")]
    pub chains: Vec<String>,
    /// An interface and the address blocks behind it, for rules matching iifname/oifname
    /// (`-i`/`-o`): `eth1=10.1.0.0/16,10.2.0.0/16`; repeatable. Without it such rules are not
    /// evaluated.
    #[arg(long = "firewall-iface", value_name = "NAME=CIDR[,CIDR]", value_parser = parse_iface)]
    pub ifaces: Vec<(String, Vec<(u128, u128)>)>,
}

impl ChainArgs {
    fn options(&self) -> Options {
        Options {
            selection: if self.chains.is_empty() {
                Selection::default()
            } else {
                Selection {
                    names: self.chains.clone(),
                }
            },
            ifaces: self.ifaces.clone(),
        }
    }
}

fn parse_iface(s: &str) -> Result<(String, Vec<(u128, u128)>), String> {
    let (name, blocks) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write NAME=CIDR[,CIDR], e.g. eth1=10.1.0.0/16"))?;
    let iv = blocks
        .split(',')
        .map(|b| {
            parse_addr_interval(b.trim()).ok_or_else(|| format!("{b:?} is not an address or CIDR"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), iv))
}

/// A ruleset file, checked when the command line is read (before an audit's long run).
fn parse_ruleset(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    let mut rs = firewall::model::Ruleset::default();
    firewall::load_file(&p, &mut rs)?;
    Ok(p)
}

#[derive(Args)]
pub struct FirewallArgs {
    /// Ruleset files: `nft -j list ruleset` output, iptables-save / ip6tables-save output, and
    /// `ipset save` output for the sets iptables rules use (the format is told from the content).
    #[arg(required = true, value_name = "RULESET")]
    pub rulesets: Vec<PathBuf>,
    /// The audit's report directory (`flowaudit audit ... -o DIR`); the reports are written there.
    #[arg(value_name = "REPORT_DIR")]
    pub report_dir: PathBuf,
    #[command(flatten)]
    pub chain: ChainArgs,
    /// No summary line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The audit's `--firewall` options.
#[derive(Args, Clone, Debug)]
pub struct AuditFirewallArgs {
    /// After writing the reports, check this firewall ruleset against them (as `flowaudit
    /// firewall`): nft JSON, iptables-save or ipset save output; repeatable.
    #[arg(long = "firewall", value_name = "RULESET", value_parser = parse_ruleset)]
    pub rulesets: Vec<PathBuf>,
    #[command(flatten)]
    pub chain: ChainArgs,
}

fn run(
    files: &[PathBuf],
    dir: &std::path::Path,
    chain: &ChainArgs,
    quiet: bool,
) -> Result<(), CliError> {
    let result =
        firewall::load(files).and_then(|rs| firewall::run_on_dir(&rs, dir, &chain.options()));
    match result {
        Ok(o) => {
            if !quiet {
                eprintln!(
                    "firewall: {} rules ({}); {} services, {} documented dropped by the ruleset; {} findings{}; firewall.csv in {}",
                    o.rules,
                    o.by_verdict
                        .iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(v, n)| format!("{v} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    o.services,
                    o.dropped_documented,
                    o.findings,
                    if o.skipped > 0 {
                        format!("; {} input lines skipped (see summary.md)", o.skipped)
                    } else {
                        String::new()
                    },
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) => Err(CliError::input(e)),
    }
}

pub fn cmd_firewall(a: FirewallArgs) -> CmdResult {
    run(&a.rulesets, &a.report_dir, &a.chain, a.quiet).map(|()| 0)
}

impl AuditFirewallArgs {
    /// Runs the check on the audit's report directory when `--firewall` was given.
    pub fn after_audit(&self, dir: &std::path::Path, quiet: bool) -> Result<(), CliError> {
        if self.rulesets.is_empty() {
            if !self.chain.chains.is_empty() || !self.chain.ifaces.is_empty() {
                return Err(CliError::input(
                    "--firewall-chain and --firewall-iface need --firewall RULESET",
                ));
            }
            return Ok(());
        }
        run(&self.rulesets, dir, &self.chain, quiet)
    }
}
