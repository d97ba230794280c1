//! The `flowaudit` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use flowaudit::engine::EngineConfig;
use flowaudit::flow::Timeouts;
use flowaudit::report::flows::{write_flows, Format};
use flowaudit::report::write_output;
use flowaudit::run::{run_files, RunOptions};
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
Exit codes: 0 success; 1 findings at or above --fail-on; 2 usage or input error; \
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
    /// Write a deterministic synthetic capture (for benchmarks and demos).
    ///
    /// Example: flowaudit synth --packets 3600000 --flows 200000 -o imix.pcap
    Synth(SynthArgs),
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Worker threads (default: one per core). The output is identical for any value.
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
    /// Key flows on the innermost packet of GRE, VXLAN, IP-in-IP, 6in4 and 4in6 tunnels.
    /// Default: the outer packet, which is what a firewall between the tunnel endpoints sees.
    #[arg(long)]
    decap: bool,
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
            decode: flowaudit::decode::DecodeOptions { decap: self.decap },
            max_flows: self.max_flows.max(1),
            ..EngineConfig::default()
        }
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            threads: self.threads,
            batch_packets: self.batch.max(1),
            progress: !self.quiet,
        }
    }
}

#[derive(Args)]
struct FlowsArgs {
    /// Capture files (.pcap, .pcapng, optionally .gz); several are merged in time order; - reads stdin.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// Output file (default: stdout). Written to a temporary name and renamed when complete.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    format: OutFormat,
    #[command(flatten)]
    engine: EngineArgs,
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
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output pcap file.
    #[arg(short, long)]
    output: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Flows(a) => cmd_flows(a),
        Cmd::Synth(a) => cmd_synth(a),
    }
}

fn cmd_flows(a: FlowsArgs) -> ExitCode {
    let out = match run_files(&a.captures, a.engine.config(), &a.engine.run_options()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("flowaudit: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let format = match a.format {
        OutFormat::Csv => Format::Csv,
        OutFormat::Jsonl => Format::Jsonl,
    };
    if let Err(e) = write_output(a.output.as_deref(), |w| write_flows(w, &out.flows, format)) {
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
    if out.errors.is_empty() && out.stats.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CORRUPT)
    }
}

fn cmd_synth(a: SynthArgs) -> ExitCode {
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
