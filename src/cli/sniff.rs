//! `flowaudit sniff`: the command-line side of live capture (feature `live`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use flowaudit::audit::setup::AuditSetup;

use crate::cli::error::{CliError, CmdResult, EXIT_FAIL_ON};
use crate::cli::habits::{parse_duration, parse_size};
use crate::cli::setup_args::AuditSetupArgs;
use crate::EngineArgs;

#[derive(Args)]
// File reading options that mean nothing for a live capture stay out of `sniff --help`.
#[command(mut_arg("no_mmap", |a| a.hide(true)))]
#[command(mut_arg("inventory", |a| a.help(
    "Inventory CSV: with it the reports are a full audit (see `flowaudit audit --help`); \
     without it only flows.csv"
)))]
pub struct SniffArgs {
    /// Interface to capture on (a switch mirror/SPAN port). See --list-interfaces.
    #[arg(short, long, required_unless_present = "list_interfaces")]
    interface: Option<String>,
    /// List the interfaces libpcap can open, and exit (as tcpdump -D; no other option needed).
    #[arg(long, short = 'D')]
    list_interfaces: bool,
    /// Capture filter in tcpdump (BPF) syntax, e.g. 'not port 22'.
    #[arg(short = 'f', long, value_name = "BPF")]
    filter: Option<String>,
    /// Bytes captured per packet. 1024 holds every header the engine reads, DNS answers and TLS
    /// server names; smaller values capture faster.
    #[arg(short = 's', long, default_value_t = 1024)]
    snaplen: i32,
    /// Kernel capture buffer, e.g. 64M. Raise it when the summary reports drops.
    #[arg(short = 'B', long, default_value = "64M", value_parser = parse_size)]
    buffer_size: u64,
    /// Do not put the interface into promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// Stop after this long (e.g. 90s, 30m, 2h, 1d). Default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many packets (as tcpdump -c).
    #[arg(long, short = 'c', value_name = "N", visible_alias = "count")]
    packets: Option<u64>,
    /// Rewrite the reports this often during the run (atomically: write, then rename).
    #[arg(long, value_parser = parse_duration, value_name = "INTERVAL")]
    report_every: Option<Duration>,
    /// Report directory (created if missing): flows.csv, and with --inventory the audit reports.
    /// Checked before the capture starts; with -Z, a new directory is made for that user.
    #[arg(
        short,
        long,
        value_name = "DIR",
        required_unless_present = "list_interfaces"
    )]
    output: Option<PathBuf>,
    /// Also save the packets to this pcapng file, to re-run the audit offline.
    #[arg(short = 'w', long, value_name = "FILE.pcapng")]
    write: Option<PathBuf>,
    /// With --write: start a new numbered file (NAME-00001.pcapng, ...) past this size, e.g. 1G.
    #[arg(long, value_parser = parse_size, requires = "write")]
    rotate: Option<u64>,
    /// After opening the interface, switch to this user (like tcpdump -Z). Reports and --write
    /// files are written after the switch, so before capturing flowaudit creates a missing
    /// output directory for that user, and refuses at once a directory or --write path that
    /// user cannot write.
    #[arg(long, short = 'Z', value_name = "NAME")]
    user: Option<String>,
    #[command(flatten)]
    setup: AuditSetupArgs,
    /// Accepted for tcpdump habit and changes nothing: flowaudit never looks names up.
    #[arg(short = 'n')]
    numeric: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn cmd_sniff(a: SniffArgs) -> CmdResult {
    a.engine.check()?;
    if a.list_interfaces {
        return print_interfaces();
    }
    let setup = a.setup.load()?;
    let Some(output) = a.output.clone() else {
        return Err(CliError::input("-o DIR is needed: where the reports go"));
    };
    let writable = crate::cli::sniff_prep::prepare(&output, a.write.as_deref(), a.user.as_deref())
        .map_err(CliError::input)?;
    let cfg = sniff_config(&a, writable);
    let mut engine_cfg = a.engine.config();
    setup.add_catalog_ports(&mut engine_cfg);
    let inputs = vec![format!("live capture on {}", cfg.iface)];
    let mut target = crate::cli::sniff_prep::Target::new(output.clone());
    let mut failing = None;
    let result = flowaudit::capture::live::sniff(&cfg, engine_cfg, say, |out, counters, last| {
        let audit = setup.audit(out).transpose()?;
        if last {
            failing = audit
                .as_ref()
                .and_then(|au| crate::cli::setup_args::fail_on_reason(&setup, au));
        }
        target.write(|dir| write_reports(dir, &setup, audit.as_ref(), out, &inputs, counters, last))
    });
    let moved = target.moved();
    let (out, c) = result.map_err(|e| {
        let mut lines = vec![e];
        if let Some((d, _)) = &moved {
            lines.push(format!("the reports written so far are in {}", d.display()));
        }
        CliError::input_lines(lines)
    })?;
    if !a.engine.quiet {
        eprint!("{}", flowaudit::report::summary::render(&out));
        eprintln!(
            "libpcap: {} received, {} dropped by the kernel, {} dropped by the interface; reports in {}",
            c.received,
            c.dropped,
            c.if_dropped,
            moved.as_ref().map_or(&output, |(d, _)| d).display()
        );
    }
    if let Some((d, e)) = moved {
        // The capture is safe, but not where it was asked for: scripts must notice.
        return Err(CliError::input(format!(
            "the reports are in {}, not in {} ({e})",
            d.display(),
            output.display()
        )));
    }
    match failing {
        Some(why) => Err(CliError::with_code(EXIT_FAIL_ON, why)),
        None => Ok(0),
    }
}

/// What the capture says while it runs, on stderr.
fn say(n: flowaudit::capture::live::Notice) {
    use flowaudit::capture::live::Notice;
    match n {
        // Like tcpdump: tells the user (and scripts) the capture is running.
        Notice::Listening {
            iface,
            link,
            snaplen,
        } => eprintln!(
            "flowaudit: listening on {iface}, link type {link}, snapshot length {snaplen} bytes"
        ),
        Notice::Dropping(c) => eprintln!(
            "flowaudit: warning: packets are being dropped ({} by the kernel, {} by the interface): every 'never seen' finding is weaker; raise --buffer-size or filter with -f",
            c.dropped, c.if_dropped
        ),
        Notice::SavingStopped(e) => eprintln!("flowaudit: {e}"),
    }
}

/// `sniff -D`: the interfaces libpcap can open, numbered as tcpdump -D numbers them.
fn print_interfaces() -> CmdResult {
    let list = flowaudit::capture::live::list_interfaces().map_err(CliError::input)?;
    for (i, (name, desc)) in list.iter().enumerate() {
        println!(
            "{}.{name}{}",
            i + 1,
            if desc.is_empty() {
                String::new()
            } else {
                format!(" ({desc})")
            }
        );
    }
    Ok(0)
}

fn sniff_config(a: &SniffArgs, writable: Vec<PathBuf>) -> flowaudit::capture::live::SniffConfig {
    flowaudit::capture::live::SniffConfig {
        iface: a.interface.clone().unwrap_or_default(),
        promisc: !a.no_promisc,
        snaplen: a.snaplen.max(64),
        buffer_bytes: a.buffer_size.min(i32::MAX as u64) as i32,
        filter: a.filter.clone(),
        duration: a.duration,
        max_packets: a.packets,
        report_every: a.report_every,
        write: a.write.clone(),
        rotate: a.rotate,
        user: a.user.clone(),
        writable,
        batch_packets: 4096,
        threads: a.engine.threads,
    }
}

/// One round of reports into `dir`: the audit's (or flows.csv alone), and capture.txt.
fn write_reports(
    dir: &std::path::Path,
    setup: &AuditSetup,
    audit: Option<&flowaudit::audit::Audit>,
    out: &flowaudit::engine::run::RunOutput,
    inputs: &[String],
    counters: &flowaudit::capture::live::Counters,
    last: bool,
) -> std::io::Result<()> {
    crate::cli::setup_args::write_audit_or_flows(dir, setup, audit, out, inputs)?;
    let mut f = flowaudit::report::AtomicFile::create(&dir.join("capture.txt"))?;
    use std::io::Write;
    writeln!(
        f,
        "{}libpcap: received {} dropped {} interface-dropped {}{}\n{}",
        flowaudit::report::summary::render(out),
        counters.received,
        counters.dropped,
        counters.if_dropped,
        if counters.dropped + counters.if_dropped > 0 {
            " (drops weaken every 'never seen' finding: unused rules and unanswered services may have been missed)"
        } else {
            ""
        },
        if last {
            "final"
        } else {
            "interim: the capture is still running"
        }
    )?;
    f.commit()
}
