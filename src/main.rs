//! The `flowaudit` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod cli_habits;
mod collect_cmd;
mod diff_cmd;
mod firewall_cmd;
mod policy_cmd;
#[cfg(feature = "live")]
mod sniff_cmd;
#[cfg(feature = "live")]
mod sniff_prep;

use flowaudit::audit::Severity;
use flowaudit::catalog::Catalogs;
use flowaudit::engine::EngineConfig;
use flowaudit::flow::Timeouts;
use flowaudit::inventory::Inventory;
use flowaudit::report::flows::{write_flows, Format};
use flowaudit::report::write_output;
use flowaudit::run::RunOptions;
use flowaudit::synth::{generate, SynthSpec};

/// Exit codes (docs/exit-codes in README): 0 ok, 1 findings at or above --fail-on, 2 usage or
/// input error, 3 a capture was truncated or corrupt (everything before the damage was reported).
const EXIT_INPUT: u8 = 2;
const EXIT_CORRUPT: u8 = 3;

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
    Diff(diff_cmd::DiffArgs),
    /// Write a firewall policy (nftables, iptables, Windows, Cisco ASA, CSV) from an audit's
    /// report directory: exactly the documented traffic the capture showed (docs/policy.md).
    ///
    /// Example: flowaudit policy report/ --format nftables -o flowaudit.nft
    Policy(policy_cmd::PolicyArgs),
    /// Check a firewall ruleset (nft JSON, iptables-save, ipset save) against an audit.
    ///
    /// Writes firewall.csv (one row per rule: needed, unused, too-wide, allows-undocumented,
    /// drops-documented, not-evaluated) and firewall_services.csv into the report directory,
    /// and adds a section to summary.md and rows to findings.csv (docs/firewall.md). Examples:
    ///
    ///   nft -j list ruleset > fw.json && flowaudit firewall fw.json report/
    ///
    ///   flowaudit firewall rules.v4 ipsets.save report/ --firewall-chain FORWARD
    Firewall(firewall_cmd::FirewallArgs),
    /// List, show and lint port catalogs; list the role vocabulary.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Capture live on an interface (a mirror/SPAN port) and write flows or an audit.
    ///
    /// Runs until Ctrl-C/SIGTERM, --duration or --packets, then finishes every flow in progress
    /// and writes complete reports. Example:
    ///   flowaudit sniff -i eth1 -I hosts.csv -o report/ --report-every 5m -w window.pcapng
    #[cfg(feature = "live")]
    Sniff(sniff_cmd::SniffArgs),
    /// Capture live on an interface: not in this build (it needs libpcap; build with
    /// --features live).
    #[cfg(not(feature = "live"))]
    Sniff(cli_habits::NoLiveArgs),
    /// Collect NetFlow v5/v9 and IPFIX from routers over UDP and write flows or an audit.
    ///
    /// Runs until Ctrl-C/SIGTERM or --duration, then decodes every datagram received and writes
    /// complete reports (collector.txt counts records, missing templates and sequence gaps).
    /// Example:
    ///   flowaudit collect --listen 0.0.0.0:2055 --listen 0.0.0.0:4739 -I hosts.csv -o report/ --report-every 5m
    Collect(collect_cmd::CollectArgs),
    /// Write a deterministic synthetic capture (for benchmarks and demos).
    ///
    /// Example: flowaudit synth --packets 3600000 --flows 200000 -o imix.pcap
    Synth(SynthArgs),
    /// Print shell completions.
    ///
    /// Example: flowaudit completions bash > /etc/bash_completion.d/flowaudit
    Completions(cli_habits::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with -o DIR.
    ///
    /// Example: flowaudit man | man -l -
    Man(cli_habits::ManArgs),
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
    pub(crate) fn check(&self) -> Result<(), ExitCode> {
        if let Some(d) = &self.spill_dir {
            if let Err(e) = tempfile::tempfile_in(d) {
                eprintln!(
                    "flowaudit: cannot use --spill-dir {}: {e}; give a writable directory",
                    d.display()
                );
                return Err(ExitCode::from(EXIT_INPUT));
            }
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

#[derive(Args)]
struct FlowsArgs {
    /// Capture files (.pcap, .pcapng, optionally .gz); several are merged in time order; - reads stdin.
    #[arg(
        required_unless_present_any = ["read", "flows"],
        conflicts_with = "flows",
        value_name = "CAPTURE"
    )]
    captures: Vec<PathBuf>,
    /// Read flow records instead of captures (see `audit --flows`): merge flows.csv files,
    /// Zeek conn.logs or NetFlow/IPFIX exports into one flows report.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    flows: Vec<PathBuf>,
    /// Output file (default: stdout). Written to a temporary name and renamed when complete.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Output format: csv, or jsonl (one JSON object per flow; counts, ports and times are
    /// JSON numbers).
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    format: OutFormat,
    #[command(flatten)]
    read: cli_habits::ReadArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct AuditArgs {
    /// Capture files (.pcap, .pcapng, optionally .gz); several are merged in time order.
    #[arg(
        required_unless_present_any = ["read", "flows"],
        conflicts_with = "flows",
        value_name = "CAPTURE"
    )]
    captures: Vec<PathBuf>,
    /// Audit flow records instead of captures, detected by content: flows.csv/flows.jsonl from
    /// `flowaudit flows` (one per capture, from many machines), Zeek conn.log (TSV or JSON,
    /// optionally .gz; dns.log and ssl.log add names), NetFlow v5/v9/IPFIX export traffic as a
    /// pcap/pcapng of the UDP stream, or an IPFIX file. Records of one connection are paired
    /// into one flow; duplicates from several sources count once. See docs/scale-out.md.
    /// Example: flowaudit audit --flows dc1/conn.log.gz dc2/conn.log.gz -I hosts.csv -o report/
    #[arg(long, num_args = 1.., value_name = "FILE")]
    flows: Vec<PathBuf>,
    /// Inventory CSV: address,roles,name (address or CIDR; roles separated by ';').
    #[arg(long, short = 'I', value_name = "FILE")]
    inventory: PathBuf,
    /// Report directory (created if missing; checked before reading starts).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Extra catalog files (docs/catalog-format.md); rules with a built-in id replace it.
    #[arg(long, value_name = "FILE")]
    catalog: Vec<PathBuf>,
    /// Use only these built-in catalogs (veeam-vbr, veeam-em, veeam-agent, veeam-proxmox,
    /// backup-exec). Default: all.
    #[arg(long, value_name = "ID")]
    product: Vec<String>,
    /// Exit with code 1 when a finding has at least this severity (info, low, medium, high);
    /// stderr then says how many findings did.
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<String>,
    /// What a finding's client and server sides are: `entry` (an inventory entry; rows sharing
    /// one name are one entry), `role` (hosts holding the same roles) or `host` (one row per host
    /// pair). Hosts outside the inventory are grouped by /24 (IPv4) or /64 (IPv6), except with
    /// `host`.
    #[arg(long, value_enum, default_value_t = flowaudit::audit::GroupBy::Entry, value_name = "UNIT")]
    group_by: flowaudit::audit::GroupBy,
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
    changes: diff_cmd::AuditDiffArgs,
    #[command(flatten)]
    read: cli_habits::ReadArgs,
    #[command(flatten)]
    firewall: firewall_cmd::AuditFirewallArgs,
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return cli_habits::usage_error(e),
    };
    match cli.cmd {
        Cmd::Flows(a) => cmd_flows(a),
        Cmd::Synth(a) => cmd_synth(a),
        Cmd::Audit(a) => cmd_audit(a),
        Cmd::Catalog(c) => cmd_catalog(c),
        Cmd::Diff(a) => diff_cmd::cmd_diff(a),
        Cmd::Collect(a) => collect_cmd::cmd_collect(a),
        Cmd::Policy(a) => policy_cmd::cmd_policy(a),
        Cmd::Firewall(a) => firewall_cmd::cmd_firewall(a),
        #[cfg(feature = "live")]
        Cmd::Sniff(a) => sniff_cmd::cmd_sniff(a),
        #[cfg(not(feature = "live"))]
        Cmd::Sniff(a) => cli_habits::cmd_no_live(a),
        Cmd::Completions(a) => cli_habits::cmd_completions(a),
        Cmd::Man(a) => cli_habits::cmd_man(a),
    }
}

fn cmd_flows(a: FlowsArgs) -> ExitCode {
    if let Err(code) = a.engine.check() {
        return code;
    }
    if let Some(o) = &a.output {
        if let Err(e) = cli_habits::check_output_file(o, "-o") {
            return cli_habits::fail(e);
        }
    }
    let (captures, select) = match a.read.check_positional(&a.captures).and(a.read.selection()) {
        Ok(s) => (a.read.captures(&a.captures), s),
        Err(e) => return cli_habits::fail(e),
    };
    let (out, selected) = match read_inputs(
        &captures,
        &a.flows,
        a.engine.config(),
        &a.engine.run_options(),
        select,
    ) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let filter_ok = a.read.report(&selected, a.engine.quiet);
    let format = match a.format {
        OutFormat::Csv => Format::Csv,
        OutFormat::Jsonl => Format::Jsonl,
    };
    if let Err(e) = write_output(a.output.as_deref(), |w| {
        write_flows(w, out.flows.iter(), format)
    }) {
        eprintln!(
            "flowaudit: cannot write {}: {e}",
            a.output
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "stdout".into())
        );
        return ExitCode::from(EXIT_INPUT);
    }
    if !a.engine.quiet || !out.errors.is_empty() || !out.stats.warnings.is_empty() {
        eprint!("{}", flowaudit::summary::render(&out));
    }
    // Damage the readers could step over still makes the capture corrupt: say so in the exit code.
    if !(out.errors.is_empty() && out.stats.warnings.is_empty()) {
        ExitCode::from(EXIT_CORRUPT)
    } else if !filter_ok {
        ExitCode::from(EXIT_INPUT)
    } else {
        ExitCode::SUCCESS
    }
}

/// Captures through the packet engine, or flow records (`--flows`) through flowinput: the
/// same RunOutput either way, so everything after this does not care which.
/// The run's flows: from flow records (`--flows`) or from the captures' selected packets.
fn read_inputs(
    captures: &[PathBuf],
    flows: &[PathBuf],
    cfg: EngineConfig,
    opts: &RunOptions,
    select: flowaudit::run::Selection,
) -> Result<(flowaudit::run::RunOutput, flowaudit::run::Selected), ExitCode> {
    if !flows.is_empty() {
        if select.filter.is_some() || select.max_packets.is_some() {
            eprintln!(
                "flowaudit: -f and -c select packets of captures; they do not apply to --flows"
            );
            return Err(ExitCode::from(EXIT_INPUT));
        }
        return flowaudit::flowinput::run_flow_files(flows, &cfg)
            .map(|o| (o, flowaudit::run::Selected::default()))
            .map_err(|e| {
                eprintln!("flowaudit: {e}");
                ExitCode::from(EXIT_INPUT)
            });
    }
    flowaudit::run::run_selected(captures, cfg, opts, select).map_err(|e| {
        eprintln!("flowaudit: {e}");
        ExitCode::from(e.exit_code() as u8)
    })
}

fn cmd_synth(a: SynthArgs) -> ExitCode {
    if let Err(e) = cli_habits::check_output_file(&a.output, "-o") {
        return cli_habits::fail(e);
    }
    if a.demo {
        let r = std::fs::File::create(&a.output)
            .and_then(|f| flowaudit::synth::demo(std::io::BufWriter::new(f)));
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flowaudit: cannot write {}: {e}", a.output.display());
                ExitCode::from(EXIT_INPUT)
            }
        };
    }
    let spec = SynthSpec {
        packets: a.packets,
        flows: a.flows,
        concurrent: a.concurrent.unwrap_or(a.flows),
        seed: a.seed,
        small: a.small,
    };
    let result = std::fs::File::create(&a.output)
        .and_then(|f| generate(&spec, std::io::BufWriter::with_capacity(1 << 20, f)));
    match result {
        Ok(flows) => {
            eprintln!(
                "wrote {} packets in {flows} flows to {}",
                a.packets,
                a.output.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flowaudit: cannot write {}: {e}", a.output.display());
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn load_catalogs(product: &[String], extra: &[PathBuf]) -> Result<Catalogs, String> {
    let known = [
        "veeam-vbr",
        "veeam-em",
        "veeam-agent",
        "veeam-proxmox",
        "backup-exec",
    ];
    for p in product {
        if !known.contains(&p.as_str()) {
            return Err(format!(
                "unknown --product {p:?}; choose from {}",
                known.join(", ")
            ));
        }
    }
    let mut cat = Catalogs::builtin(product).map_err(|p| {
        format!(
            "built-in catalogs are broken: {}",
            p.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    for f in extra {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("{}: cannot read: {e}", f.display()))?;
        let problems = cat.add_file(&f.display().to_string(), &text);
        if !problems.is_empty() {
            return Err(problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"));
        }
    }
    Ok(cat)
}

/// Single documented ports tell the engine which end usually serves.
fn add_catalog_ports(cfg: &mut EngineConfig, cat: &Catalogs) {
    for r in &cat.rules {
        for p in &r.protocols {
            for range in &r.ports {
                if range.lo == range.hi {
                    cfg.ports.add(*p, range.lo);
                }
            }
        }
    }
}

fn cmd_audit(a: AuditArgs) -> ExitCode {
    if let Err(code) = a.engine.check() {
        return code;
    }
    let fail_on = match a.fail_on.as_deref().map(|s| (s, Severity::parse(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((s, None)) => {
            eprintln!("flowaudit: --fail-on {s:?}: use info, low, medium or high");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let cat = match load_catalogs(&a.product, &a.catalog) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowaudit: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let inv_text = match std::fs::read_to_string(&a.inventory) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "flowaudit: {}: cannot read the inventory: {e}",
                a.inventory.display()
            );
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let inv = match Inventory::parse(&a.inventory.display().to_string(), &inv_text, &cat.roles) {
        Ok(i) => {
            for w in i.warnings.iter().chain(&i.overlaps) {
                eprintln!("flowaudit: warning: {w}");
            }
            i
        }
        Err(problems) => {
            for p in problems {
                eprintln!("flowaudit: {p}");
            }
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let extras = match a.changes.prepare(&cat.roles) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(e) = cli_habits::check_output_dir(&a.output, "-o") {
        return cli_habits::fail(e);
    }
    let (captures, select) = match a.read.check_positional(&a.captures).and(a.read.selection()) {
        Ok(s) => (a.read.captures(&a.captures), s),
        Err(e) => return cli_habits::fail(e),
    };
    let mut cfg = a.engine.config();
    add_catalog_ports(&mut cfg, &cat);
    let (out, selected) =
        match read_inputs(&captures, &a.flows, cfg, &a.engine.run_options(), select) {
            Ok(o) => o,
            Err(code) => return code,
        };
    let filter_ok = a.read.report(&selected, a.engine.quiet);
    let mut opts = extras.audit_options(a.group_by);
    opts.sampled = out
        .stats
        .flow_input
        .as_ref()
        .is_some_and(|fi| fi.sampled() || fi.sequence_gaps > 0 || fi.missing_template_sets > 0);
    let audit = match flowaudit::audit::audit(&out.flows, &cat, &inv, &out.stats.names, &opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flowaudit: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let inputs: Vec<String> = captures
        .iter()
        .chain(&a.flows)
        .map(|p| p.display().to_string())
        .collect();
    let waived = extras.report();
    let opts = flowaudit::report::audit::WriteOptions {
        flows: a.write_flows,
        waivers: waived.as_ref(),
        jsonl: matches!(a.format, OutFormat::Jsonl),
    };
    let write = |dir: &std::path::Path| {
        flowaudit::report::audit::write_audit_with(dir, &audit, &out, &inputs, &opts)
    };
    if let Err(e) = write(&a.output) {
        // The reading may have taken hours: keep its result somewhere before giving up.
        let saved = cli_habits::fallback_dir().and_then(|d| write(&d).map(|()| d));
        return cli_habits::fail(match saved {
            Ok(d) => format!(
                "cannot write reports to {}: {e}; wrote them to {} instead",
                a.output.display(),
                d.display()
            ),
            Err(e2) => format!(
                "cannot write reports to {}: {e} (nor to a temporary directory: {e2})",
                a.output.display()
            ),
        });
    }
    if !a.engine.quiet || !out.errors.is_empty() {
        eprint!("{}", flowaudit::summary::render(&out));
        let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &audit.services {
            *by.entry(s.verdict.as_str()).or_default() += 1;
        }
        eprintln!(
            "services: {} ({}); findings: {}; reports in {}",
            audit.services.len(),
            by.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            audit.findings.len(),
            a.output.display()
        );
    }
    if let Some(code) = a.firewall.after_audit(&a.output, a.engine.quiet) {
        return code;
    }
    let changed = match extras.diff_after(&a.output, a.engine.quiet) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !out.errors.is_empty() || !out.stats.warnings.is_empty() {
        return ExitCode::from(EXIT_CORRUPT);
    }
    if !filter_ok {
        return ExitCode::from(EXIT_INPUT);
    }
    // Waived findings do not count; an expired waiver makes its finding count again.
    let at_or_above = |t, counts: bool| {
        audit
            .findings
            .iter()
            .filter(|f| f.severity >= t && f.counts == counts)
            .count()
    };
    let reason = fail_on.and_then(|t| {
        cli_habits::fail_on_reason(at_or_above(t, true), at_or_above(t, false), t.as_str())
    });
    match reason {
        Some(why) => {
            eprintln!("flowaudit: {why}");
            ExitCode::from(1)
        }
        None if changed => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    }
}

fn cmd_catalog(c: CatalogCmd) -> ExitCode {
    match c {
        CatalogCmd::Lint { file: None } => {
            let problems = Catalogs::lint_builtin();
            for p in &problems {
                println!("{p}");
            }
            eprintln!("built-in catalogs and roles: {} problems", problems.len());
            ExitCode::from(u8::from(!problems.is_empty()))
        }
        CatalogCmd::Lint { file: Some(file) } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("flowaudit: {}: cannot read: {e}", file.display());
                    return ExitCode::from(EXIT_INPUT);
                }
            };
            let problems = Catalogs::lint(&file.display().to_string(), &text);
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                eprintln!("{}: no problems", file.display());
                ExitCode::SUCCESS
            } else {
                eprintln!("{}: {} problems", file.display(), problems.len());
                ExitCode::from(1)
            }
        }
        CatalogCmd::Roles { markdown } => {
            let roles = flowaudit::catalog::Roles::builtin();
            if markdown {
                print!("{}", flowaudit::catalog::roles_markdown(&roles));
                return ExitCode::SUCCESS;
            }
            let mut w = csv::Writer::from_writer(std::io::stdout());
            let _ = w.write_record(flowaudit::catalog::ROLE_COLUMNS);
            for d in roles.defs.values() {
                let _ = w.write_record([
                    d.id.as_str(),
                    &d.parents.join(";"),
                    &d.description,
                    &d.aliases.join(";"),
                    &d.replaces.join(";"),
                    &d.decision,
                ]);
            }
            let _ = w.flush();
            ExitCode::SUCCESS
        }
        CatalogCmd::List {
            product,
            role,
            port,
        } => {
            let only: Vec<String> = product.into_iter().collect();
            let cat = match load_catalogs(&only, &[]) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("flowaudit: {e}");
                    return ExitCode::from(EXIT_INPUT);
                }
            };
            // An old role id lists the rules of the role that replaced it.
            let role = role.map(|r| match cat.roles.canonical(&r) {
                Some((id, _)) => id.to_string(),
                None => r,
            });
            let mut w = csv::Writer::from_writer(std::io::stdout());
            let _ = w.write_record([
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
            ]);
            for r in &cat.rules {
                if role
                    .as_ref()
                    .is_some_and(|x| *x != r.from_role && *x != r.to_role)
                {
                    continue;
                }
                if port.is_some_and(|p| !r.ports.iter().any(|x| x.contains(p))) {
                    continue;
                }
                let _ = w.write_record([
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
                ]);
            }
            let _ = w.flush();
            ExitCode::SUCCESS
        }
        CatalogCmd::Show { id } => {
            let cat = match load_catalogs(&[], &[]) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("flowaudit: {e}");
                    return ExitCode::from(EXIT_INPUT);
                }
            };
            match cat.rules.iter().find(|r| r.id == id) {
                Some(r) => {
                    println!("id:          {}\nproduct:     {}\nsection:     {}\nfrom role:   {}\nto role:     {}\nprotocols:   {}\nports:       {}\nqualifiers:  {}\nhost:        {}\nnote:        {}\ndecision:    {}\nsource line: {}{}",
                        r.id, r.product, r.section, r.from_role, r.to_role, r.protocols_str(), r.ports_str(), r.qualifiers_str(),
                        r.host_pattern.as_deref().unwrap_or(""), r.note, r.decision, r.source_line,
                        r.via.as_ref().map(|v| format!("\nvia:         {v} (reference row)")).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                None if cat.roles.canonical(&id).is_some() => {
                    print!("{}", flowaudit::catalog::role_text(&cat.roles, &id));
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("flowaudit: no rule or role {id:?}; `flowaudit catalog list` and `flowaudit catalog roles` show the ids");
                    ExitCode::from(EXIT_INPUT)
                }
            }
        }
    }
}
