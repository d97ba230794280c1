//! The `flowaudit` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod cli;

use flowaudit::audit::catalog::Catalogs;
use flowaudit::audit::setup::load_catalogs;
use flowaudit::engine::run::RunOptions;
use flowaudit::engine::EngineConfig;
use flowaudit::flow::Timeouts;
use flowaudit::report::flows::{write_flows, Format};
use flowaudit::report::write_output;
use flowaudit::synth::{generate, SynthSpec};

use cli::error::{CliError, CmdResult, EXIT_CORRUPT, EXIT_FAIL_ON, EXIT_INPUT};

#[derive(Parser)]
#[command(
    name = "flowaudit",
    version,
    about = "Prove what a backup network really does: flows from captures, audited against vendor port catalogs",
    long_about = "flowaudit reads packet captures (pcap, pcapng, optionally gzip-compressed) or sniffs live, \
rebuilds bidirectional flows with client and server decided the way network people expect, and audits \
them against the port catalogs of Veeam and Veritas backup products.\n\n\
Exit codes: 0 success; 1 findings at or above --fail-on, or a change gate holds (diff --fail-on, \
audit --fail-on-change); 2 usage or input error; \
3 a capture was truncated or corrupt (the packets before the damage were still reported)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Rebuild bidirectional flows from captures and write one row per flow.
    ///
    /// Example: flowaudit flows backup-window.pcapng -o flows.csv
    Flows(FlowsArgs),
    /// Audit captures against the vendor port catalogs, by the roles an inventory gives each host.
    ///
    /// Writes services.csv (one row per host pair and port), findings.csv (grouped by inventory
    /// entry, see --group-by), rules.csv, groups.csv, inventory.csv, summary.md and
    /// manifest.json into the report directory (flows.csv with --write-flows). Example:
    ///   flowaudit audit window.pcapng --inventory hosts.csv -o report/ --fail-on high
    Audit(AuditArgs),
    /// Compare two audits' report directories: what changed, as diff.csv and a Markdown summary.
    ///
    /// Exit 1 when a --fail-on change gate holds. Example:
    ///   flowaudit diff baseline/ report/ -o diff.csv --md diff.md --fail-on new-undocumented
    Diff(cli::diff::DiffArgs),
    /// Write a firewall policy (nftables, iptables, Windows, Cisco ASA, CSV) from an audit's
    /// report directory: exactly the documented traffic the capture showed (docs/policy.md).
    ///
    /// Example: flowaudit policy report/ --format nftables -o flowaudit.nft
    Policy(cli::policy::PolicyArgs),
    /// Check a firewall ruleset (nft JSON, iptables-save, ipset save) against an audit.
    ///
    /// Writes firewall.csv (one row per rule: needed, unused, too-wide, allows-undocumented,
    /// drops-documented, not-evaluated) and firewall_services.csv into the report directory,
    /// and adds a section to summary.md and rows to findings.csv (docs/firewall.md). Examples:
    ///
    ///   nft -j list ruleset > fw.json && flowaudit firewall fw.json report/
    ///
    ///   flowaudit firewall rules.v4 ipsets.save report/ --firewall-chain FORWARD
    Firewall(cli::firewall::FirewallArgs),
    /// List, show and lint port catalogs; list the role vocabulary.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Capture live on an interface (a mirror/SPAN port) and write flows or an audit.
    ///
    /// Runs until Ctrl-C/SIGTERM, --duration or --packets, then finishes every flow in progress
    /// and writes complete reports. Example:
    ///   flowaudit sniff -i eth1 -I hosts.csv -o report/ --report-every 5m -w window.pcapng
    #[cfg(feature = "live")]
    Sniff(cli::sniff::SniffArgs),
    /// Capture live on an interface: not in this build (it needs libpcap; build with
    /// --features live).
    #[cfg(not(feature = "live"))]
    Sniff(cli::habits::NoLiveArgs),
    /// Collect NetFlow v5/v9 and IPFIX from routers over UDP and write flows or an audit.
    ///
    /// Runs until Ctrl-C/SIGTERM or --duration, then decodes every datagram received and writes
    /// complete reports (collector.txt counts records, missing templates and sequence gaps).
    /// Example:
    ///   flowaudit collect --listen 0.0.0.0:2055 --listen 0.0.0.0:4739 -I hosts.csv -o report/ --report-every 5m
    Collect(cli::collect::CollectArgs),
    /// Write a deterministic synthetic capture (for benchmarks and demos).
    ///
    /// Example: flowaudit synth --packets 3600000 --flows 200000 -o imix.pcap
    Synth(SynthArgs),
    /// Print shell completions.
    ///
    /// Example: flowaudit completions bash > /etc/bash_completion.d/flowaudit
    Completions(cli::habits::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with -o DIR.
    ///
    /// Example: flowaudit man | man -l -
    Man(cli::habits::ManArgs),
}

/// `--vlan-key` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum VlanKeyArg {
    Outer,
    None,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Worker threads (default, or 0: one per core). The output is identical for any value.
    #[arg(
        long,
        short = 'j',
        default_value_t = 0,
        hide_default_value = true,
        value_name = "N"
    )]
    threads: usize,
    /// Key flows on the innermost packet of GRE, VXLAN, IP-in-IP, 6in4 and 4in6 tunnels.
    /// Default: the outer packet, which is what a firewall between the tunnel endpoints sees.
    #[arg(long)]
    decap: bool,
    /// Which VLAN tag is part of the flow key: `outer` (the outermost 802.1Q/802.1ad tag, like
    /// Zeek) or `none`. Use `none` on a routed trunk where the two directions of one connection
    /// carry different VLAN ids (the summary says when it saw that).
    #[arg(long, value_enum, default_value_t = VlanKeyArg::Outer, value_name = "WHICH")]
    vlan_key: VlanKeyArg,
    /// TCP idle timeout in seconds: a packet after this much silence starts a new flow.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    tcp_timeout: u64,
    /// UDP idle timeout in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    udp_timeout: u64,
    /// Idle timeout in seconds for ICMP and every other protocol.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    other_timeout: u64,
    /// Most flows held open at once; when full, the longest-idle flows are ended early and
    /// counted as evicted in the summary.
    #[arg(long, default_value_t = 4_000_000, value_name = "N")]
    max_flows: usize,
    /// Most fragments held while waiting for their datagram's first fragment, and most first
    /// fragments whose ports are remembered; beyond it they are counted, never silently dropped.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_fragments: usize,
    /// Where finished flows go once memory holds --spill-after of them: sorted runs in unnamed
    /// temporary files, merged back in order at the end (default: $TMPDIR, else /tmp). Needs
    /// about 95 bytes of disk per flow.
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
    /// Finished flows held in memory before they are written to --spill-dir (default: a quarter
    /// of --max-flows, between 65,536 and 1,000,000). Memory then stays bounded by --max-flows
    /// however many flows a capture has.
    #[arg(long, value_name = "N")]
    spill_after: Option<usize>,
    /// Read plain .pcap files with read calls instead of mapping them into memory. Use it when
    /// another program may truncate the file while it is read (logrotate's copytruncate): a
    /// mapped file that shrinks kills the reader with SIGBUS.
    #[arg(long)]
    no_mmap: bool,
    /// Packets per batch handed to the workers (tuning only; the output does not depend on it).
    #[arg(long, default_value_t = 16384, value_name = "N", hide = true)]
    batch: usize,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

impl EngineArgs {
    fn config(&self) -> EngineConfig {
        let s = 1_000_000_000i64;
        EngineConfig {
            timeouts: Timeouts {
                tcp_ns: self.tcp_timeout as i64 * s,
                udp_ns: self.udp_timeout as i64 * s,
                other_ns: self.other_timeout as i64 * s,
            },
            decode: flowaudit::decode::DecodeOptions {
                decap: self.decap,
                vlan_key: match self.vlan_key {
                    VlanKeyArg::Outer => flowaudit::decode::VlanKey::Outer,
                    VlanKeyArg::None => flowaudit::decode::VlanKey::None,
                },
            },
            max_flows: self.max_flows.max(1),
            max_pending_fragments: self.max_fragments.max(1),
            spill_after: self
                .spill_after
                .unwrap_or_else(|| EngineConfig::default_spill_after(self.max_flows))
                .max(1),
            spill_dir: self.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
            ..EngineConfig::default()
        }
    }

    /// A --spill-dir the user named must work before hours of reading, not at the first spill.
    pub(crate) fn check(&self) -> Result<(), CliError> {
        if let Some(d) = &self.spill_dir {
            tempfile::tempfile_in(d).map_err(|e| {
                CliError::input(format!(
                    "cannot use --spill-dir {}: {e}; give a writable directory",
                    d.display()
                ))
            })?;
        }
        Ok(())
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            threads: self.threads,
            batch_packets: self.batch.max(1),
            progress: !self.quiet,
            mmap: !self.no_mmap,
        }
    }
}

/// What `flows` and `audit` read: captures, or flow records.
#[derive(Args)]
struct InputArgs {
    /// Capture files (.pcap, .pcapng, optionally .gz); several are merged in time order; - reads
    /// stdin.
    #[arg(
        required_unless_present_any = ["read", "flows"],
        conflicts_with = "flows",
        value_name = "CAPTURE"
    )]
    captures: Vec<PathBuf>,
    /// Read flow records instead of captures, detected by content: flows.csv/flows.jsonl from
    /// `flowaudit flows` (one per capture, from many machines), Zeek conn.log (TSV or JSON,
    /// optionally .gz; dns.log and ssl.log add names), NetFlow v5/v9/IPFIX export traffic as a
    /// pcap/pcapng of the UDP stream, or an IPFIX file. Records of one connection are paired
    /// into one flow; duplicates from several sources count once. See docs/scale-out.md.
    /// Example: flowaudit audit --flows dc1/conn.log.gz dc2/conn.log.gz -I hosts.csv -o report/
    #[arg(long, num_args = 1.., value_name = "FILE")]
    flows: Vec<PathBuf>,
}

#[derive(Args)]
struct FlowsArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Output file (default: stdout). Written to a temporary name and renamed when complete.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Output format: csv, or jsonl (one JSON object per flow; counts, ports and times are
    /// JSON numbers).
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    format: OutFormat,
    #[command(flatten)]
    read: cli::habits::ReadArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
// An audit without an inventory has nothing to audit by (`sniff` and `collect` then write flows).
#[command(mut_arg("inventory", |a| a.required(true)))]
struct AuditArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Report directory (created if missing; checked before reading starts).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    setup: cli::setup_args::AuditSetupArgs,
    /// Also write flows.csv (one row per flow, turned as the audit decided). Off by default: on a
    /// large capture it is most of the report's size, and services.csv already holds the
    /// evidence per host pair.
    #[arg(long)]
    write_flows: bool,
    /// Report format: csv, or jsonl to write services.jsonl, findings.jsonl, rules.jsonl and
    /// groups.jsonl beside the CSV files (one JSON object per row; counts and ports are JSON
    /// numbers, times ISO 8601 strings). The CSV files are always written: diff, policy and
    /// firewall read them.
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    format: OutFormat,
    #[command(flatten)]
    changes: cli::diff::AuditDiffArgs,
    #[command(flatten)]
    read: cli::habits::ReadArgs,
    #[command(flatten)]
    firewall: cli::firewall::AuditFirewallArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// List rules as CSV, optionally filtered.
    ///
    /// Example: flowaudit catalog list --product veeam-vbr --port 6162
    List {
        /// Only this built-in catalog (veeam-vbr, veeam-em, veeam-agent, veeam-proxmox,
        /// backup-exec).
        #[arg(long, value_name = "ID")]
        product: Option<String>,
        /// Rules where this role is either end (families included: gateway-server matches
        /// windows-gateway-server rules only if you name the child).
        #[arg(long)]
        role: Option<String>,
        /// Rules whose port ranges include this port.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Show one rule in full (with the decision taken where the document was unclear), or one
    /// role with its families and the decision behind them. Example: `flowaudit catalog show
    /// VBR-068`, `flowaudit catalog show wan-accelerator`.
    Show {
        /// A rule id as `flowaudit catalog list` shows it (VBR-007), or a role id.
        id: String,
    },
    /// Check a catalog or roles file: unknown roles, old role ids, bad or glued ranges, ports
    /// above 65535, duplicate ids, dangling references; in a roles file, unknown parents and
    /// roles that duplicate another (same wording or description under another id). Without
    /// FILE, check the built-in catalogs and roles. Exit 1 when problems are found.
    ///
    /// Examples: `flowaudit catalog lint my-rules.csv`, `flowaudit catalog lint my-roles.csv`,
    /// `flowaudit catalog lint`.
    Lint {
        /// The catalog or roles file to check (docs/catalog-format.md); none: the built-in ones.
        file: Option<PathBuf>,
    },
    /// List the role vocabulary (CSV, or the Markdown of docs/roles.md with --markdown).
    Roles {
        /// Print the Markdown table of docs/roles.md instead of CSV.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Csv,
    Jsonl,
}

#[derive(Args)]
struct SynthArgs {
    /// Packets to write.
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Flows in the whole capture.
    #[arg(long, default_value_t = 50_000)]
    flows: u64,
    /// Flows open at the same time (default: all of them).
    #[arg(long)]
    concurrent: Option<u64>,
    /// Minimum-size frames instead of the IMIX mix (64/594/1518 bytes in 7:4:1).
    #[arg(long)]
    small: bool,
    /// Seed of the pseudo-random generator: the same seed and sizes give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the demo backup window (fixtures/demo) instead; the size options are ignored.
    #[arg(long)]
    demo: bool,
    /// Output pcap file.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

/// The one exit point: every command returns its exit code or the error that stopped it.
fn main() -> ExitCode {
    let code = match Cli::try_parse() {
        Ok(cli) => run(cli).unwrap_or_else(CliError::report),
        Err(e) => cli::habits::usage_error(e),
    };
    ExitCode::from(code)
}

fn run(cli: Cli) -> CmdResult {
    match cli.cmd {
        Cmd::Flows(a) => cmd_flows(a),
        Cmd::Synth(a) => cmd_synth(a),
        Cmd::Audit(a) => cmd_audit(a),
        Cmd::Catalog(c) => cmd_catalog(c),
        Cmd::Diff(a) => cli::diff::cmd_diff(a),
        Cmd::Collect(a) => cli::collect::cmd_collect(a),
        Cmd::Policy(a) => cli::policy::cmd_policy(a),
        Cmd::Firewall(a) => cli::firewall::cmd_firewall(a),
        #[cfg(feature = "live")]
        Cmd::Sniff(a) => cli::sniff::cmd_sniff(a),
        #[cfg(not(feature = "live"))]
        Cmd::Sniff(a) => cli::habits::cmd_no_live(a),
        Cmd::Completions(a) => cli::habits::cmd_completions(a),
        Cmd::Man(a) => cli::habits::cmd_man(a),
    }
}

fn cmd_flows(a: FlowsArgs) -> CmdResult {
    a.engine.check()?;
    if let Some(o) = &a.output {
        cli::habits::check_output_file(o, "-o").map_err(CliError::input)?;
    }
    let (captures, select) = selection(&a.read, &a.input.captures)?;
    let cfg = a.engine.config();
    let (out, selected) = read_inputs(
        &captures,
        &a.input.flows,
        cfg,
        &a.engine.run_options(),
        select,
    )?;
    let filter_ok = a.read.report(&selected, a.engine.quiet);
    let format = match a.format {
        OutFormat::Csv => Format::Csv,
        OutFormat::Jsonl => Format::Jsonl,
    };
    write_output(a.output.as_deref(), |w| {
        write_flows(w, out.flows.iter(), format)
    })
    .map_err(|e| cli::habits::cannot_write(a.output.as_deref(), e))?;
    if !a.engine.quiet || !out.errors.is_empty() || !out.stats.warnings.is_empty() {
        eprint!("{}", flowaudit::report::summary::render(&out));
    }
    finished(&out, filter_ok)
}

/// The exit code of a run whose reports are written: damage the readers could step over still
/// makes the capture corrupt (3); a filter that could not judge some packets is an input
/// error (2, its messages printed already).
fn finished(out: &flowaudit::engine::run::RunOutput, filter_ok: bool) -> CmdResult {
    if !(out.errors.is_empty() && out.stats.warnings.is_empty()) {
        Ok(EXIT_CORRUPT)
    } else if !filter_ok {
        Err(CliError::quiet(EXIT_INPUT))
    } else {
        Ok(0)
    }
}

/// The captures to read (-r files, then the positional ones) and the packet selection (-f, -c).
fn selection(
    read: &cli::habits::ReadArgs,
    positional: &[PathBuf],
) -> Result<(Vec<PathBuf>, flowaudit::engine::run::Selection), CliError> {
    read.check_positional(positional)
        .and(read.selection())
        .map(|s| (read.captures(positional), s))
        .map_err(CliError::input)
}

/// The run's flows: from flow records (`--flows`) through flowinput, or from the captures'
/// selected packets through the engine; the same RunOutput either way, so everything after
/// this does not care which.
fn read_inputs(
    captures: &[PathBuf],
    flows: &[PathBuf],
    cfg: EngineConfig,
    opts: &RunOptions,
    select: flowaudit::engine::run::Selection,
) -> Result<
    (
        flowaudit::engine::run::RunOutput,
        flowaudit::engine::run::Selected,
    ),
    CliError,
> {
    if !flows.is_empty() {
        if select.filter.is_some() || select.max_packets.is_some() {
            return Err(CliError::input(
                "-f and -c select packets of captures; they do not apply to --flows",
            ));
        }
        return flowaudit::flowinput::run_flow_files(flows, &cfg)
            .map(|o| (o, flowaudit::engine::run::Selected::default()))
            .map_err(CliError::input);
    }
    let bar =
        cli::habits::progress_bar(opts.progress, flowaudit::engine::run::input_size(captures));
    let shown = bar.clone();
    let started = std::time::Instant::now();
    let result = flowaudit::engine::run::run_with_progress(captures, cfg, opts, select, move |p| {
        if let Some(b) = &shown {
            b.set_position(p.position);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{} packets, {:.2} M/s",
                p.packets,
                p.packets as f64 / secs / 1e6
            ));
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result.map_err(|e| CliError::with_code(e.exit_code() as u8, e))
}

fn cmd_synth(a: SynthArgs) -> CmdResult {
    cli::habits::check_output_file(&a.output, "-o").map_err(CliError::input)?;
    let cannot =
        |e: std::io::Error| CliError::input(format!("cannot write {}: {e}", a.output.display()));
    if a.demo {
        return std::fs::File::create(&a.output)
            .and_then(|f| flowaudit::synth::demo(std::io::BufWriter::new(f)))
            .map(|()| 0)
            .map_err(cannot);
    }
    let spec = SynthSpec {
        packets: a.packets,
        flows: a.flows,
        concurrent: a.concurrent.unwrap_or(a.flows),
        seed: a.seed,
        small: a.small,
    };
    let flows = std::fs::File::create(&a.output)
        .and_then(|f| generate(&spec, std::io::BufWriter::with_capacity(1 << 20, f)))
        .map_err(cannot)?;
    eprintln!(
        "wrote {} packets in {flows} flows to {}",
        a.packets,
        a.output.display()
    );
    Ok(0)
}

fn cmd_audit(a: AuditArgs) -> CmdResult {
    // Everything that can be wrong with the command line or its files fails here, before the
    // reading, which may take hours.
    a.engine.check()?;
    let setup = a.setup.load()?;
    let extras = a.changes.prepare()?;
    cli::habits::check_output_dir(&a.output, "-o").map_err(CliError::input)?;
    let (captures, select) = selection(&a.read, &a.input.captures)?;
    let mut cfg = a.engine.config();
    setup.add_catalog_ports(&mut cfg);
    let (out, selected) = read_inputs(
        &captures,
        &a.input.flows,
        cfg,
        &a.engine.run_options(),
        select,
    )?;
    let filter_ok = a.read.report(&selected, a.engine.quiet);
    let audit = match setup.audit(&out) {
        Some(a) => a.map_err(CliError::input)?,
        None => return Err(CliError::input("audit needs an inventory: give -I FILE")),
    };
    let inputs: Vec<String> = captures
        .iter()
        .chain(&a.input.flows)
        .map(|p| p.display().to_string())
        .collect();
    let waivers = setup.waiver_report();
    let opts = flowaudit::report::audit::WriteOptions {
        flows: a.write_flows,
        waivers: waivers.as_ref(),
        jsonl: matches!(a.format, OutFormat::Jsonl),
    };
    write_audit_or_fallback(&a.output, |dir| {
        flowaudit::report::audit::write_audit_with(dir, &audit, &out, &inputs, &opts)
    })?;
    if !a.engine.quiet || !out.errors.is_empty() {
        eprint!("{}", flowaudit::report::summary::render(&out));
        eprintln!("{}", audit_line(&audit, &a.output));
    }
    a.firewall.after_audit(&a.output, a.engine.quiet)?;
    let changed = extras.diff_after(&a.output, a.engine.quiet, &setup)?;
    let code = finished(&out, filter_ok)?;
    if code != 0 {
        return Ok(code);
    }
    // Waived findings do not count; an expired waiver makes its finding count again.
    match cli::setup_args::fail_on_reason(&setup, &audit) {
        Some(why) => Err(CliError::with_code(EXIT_FAIL_ON, why)),
        None if changed => Ok(EXIT_FAIL_ON),
        None => Ok(0),
    }
}

/// Writes the reports into `dir`; when that fails, into a fresh temporary directory, because the
/// reading may have taken hours: its result is kept somewhere before giving up (exit 2).
fn write_audit_or_fallback(
    dir: &std::path::Path,
    write: impl Fn(&std::path::Path) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let Err(e) = write(dir) else {
        return Ok(());
    };
    let saved = cli::habits::fallback_dir().and_then(|d| write(&d).map(|()| d));
    Err(CliError::input(match saved {
        Ok(d) => format!(
            "cannot write reports to {}: {e}; wrote them to {} instead",
            dir.display(),
            d.display()
        ),
        Err(e2) => format!(
            "cannot write reports to {}: {e} (nor to a temporary directory: {e2})",
            dir.display()
        ),
    }))
}

/// `services: N (verdict n, ...); findings: N; reports in DIR`.
fn audit_line(audit: &flowaudit::audit::Audit, dir: &std::path::Path) -> String {
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &audit.services {
        *by.entry(s.verdict.as_str()).or_default() += 1;
    }
    format!(
        "services: {} ({}); findings: {}; reports in {}",
        audit.services.len(),
        by.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        audit.findings.len(),
        dir.display()
    )
}

fn cmd_catalog(c: CatalogCmd) -> CmdResult {
    let stdout = |e: std::io::Error| cli::habits::cannot_write(None, e);
    match c {
        CatalogCmd::Lint { file } => catalog_lint(file),
        CatalogCmd::Roles { markdown } => {
            let roles = flowaudit::audit::catalog::Roles::builtin();
            if markdown {
                print!("{}", flowaudit::audit::catalog::roles_markdown(&roles));
                return Ok(0);
            }
            roles_csv(&roles).map_err(stdout)?;
            Ok(0)
        }
        CatalogCmd::List {
            product,
            role,
            port,
        } => {
            let only: Vec<String> = product.into_iter().collect();
            let cat = load_catalogs(&only, &[]).map_err(CliError::input)?;
            // An old role id lists the rules of the role that replaced it.
            let role = role.map(|r| match cat.roles.canonical(&r) {
                Some((id, _)) => id.to_string(),
                None => r,
            });
            rules_csv(&cat, role.as_deref(), port).map_err(stdout)?;
            Ok(0)
        }
        CatalogCmd::Show { id } => catalog_show(&id),
    }
}

/// `catalog lint [FILE]`: problems on stdout, a count on stderr; exit 1 when there are some.
fn catalog_lint(file: Option<PathBuf>) -> CmdResult {
    let Some(file) = file else {
        let problems = Catalogs::lint_builtin();
        for p in &problems {
            println!("{p}");
        }
        eprintln!("built-in catalogs and roles: {} problems", problems.len());
        return Ok(u8::from(!problems.is_empty()));
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::input(format!("{}: cannot read: {e}", file.display())))?;
    let problems = Catalogs::lint(&file.display().to_string(), &text);
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        eprintln!("{}: no problems", file.display());
        Ok(0)
    } else {
        eprintln!("{}: {} problems", file.display(), problems.len());
        Ok(EXIT_FAIL_ON)
    }
}

/// `catalog roles` as CSV on stdout.
fn roles_csv(roles: &flowaudit::audit::catalog::Roles) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record(flowaudit::audit::catalog::ROLE_COLUMNS)?;
    for d in roles.defs.values() {
        w.write_record([
            d.id.as_str(),
            &d.parents.join(";"),
            &d.description,
            &d.aliases.join(";"),
            &d.replaces.join(";"),
            &d.decision,
        ])?;
    }
    w.flush()
}

/// `catalog list` as CSV on stdout: the rules where `role` is either end and whose ports
/// include `port`.
fn rules_csv(cat: &Catalogs, role: Option<&str>, port: Option<u16>) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record([
        "id",
        "product",
        "section",
        "from_role",
        "to_role",
        "proto",
        "ports",
        "qualifiers",
        "host_pattern",
        "note",
    ])?;
    for r in &cat.rules {
        if role.is_some_and(|x| x != r.from_role && x != r.to_role) {
            continue;
        }
        if port.is_some_and(|p| !r.ports.iter().any(|x| x.contains(p))) {
            continue;
        }
        w.write_record([
            r.id.as_str(),
            &r.product,
            &r.section,
            &r.from_role,
            &r.to_role,
            &r.protocols_str(),
            &r.ports_str(),
            &r.qualifiers_str(),
            r.host_pattern.as_deref().unwrap_or(""),
            &r.note,
        ])?;
    }
    w.flush()
}

/// `catalog show ID`: one rule in full, or one role.
fn catalog_show(id: &str) -> CmdResult {
    let cat = load_catalogs(&[], &[]).map_err(CliError::input)?;
    if let Some(r) = cat.rules.iter().find(|r| r.id == id) {
        println!("id:          {}\nproduct:     {}\nsection:     {}\nfrom role:   {}\nto role:     {}\nprotocols:   {}\nports:       {}\nqualifiers:  {}\nhost:        {}\nnote:        {}\ndecision:    {}\nsource line: {}{}",
            r.id, r.product, r.section, r.from_role, r.to_role, r.protocols_str(), r.ports_str(), r.qualifiers_str(),
            r.host_pattern.as_deref().unwrap_or(""), r.note, r.decision, r.source_line,
            r.via.as_ref().map(|v| format!("\nvia:         {v} (reference row)")).unwrap_or_default());
        return Ok(0);
    }
    if cat.roles.canonical(id).is_some() {
        print!("{}", flowaudit::audit::catalog::role_text(&cat.roles, id));
        return Ok(0);
    }
    Err(CliError::input(format!(
        "no rule or role {id:?}; `flowaudit catalog list` and `flowaudit catalog roles` show the ids"
    )))
}
