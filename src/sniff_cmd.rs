//! `flowaudit sniff`: the command-line side of live capture (feature `live`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::{load_catalogs, EngineArgs, EXIT_INPUT};

#[derive(Args)]
// File reading options that mean nothing for a live capture stay out of `sniff --help`.
#[command(mut_arg("no_mmap", |a| a.hide(true)))]
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
    /// Inventory CSV: with it the reports are a full audit (see `flowaudit audit --help`).
    #[arg(long, short = 'I', value_name = "FILE")]
    inventory: Option<PathBuf>,
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
    /// Use only these built-in catalogs (as `flowaudit audit --product`). Default: all.
    #[arg(long, value_name = "ID")]
    product: Vec<String>,
    /// Accepted for tcpdump habit and changes nothing: flowaudit never looks names up.
    #[arg(short = 'n')]
    numeric: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

/// `90s`, `30m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// `1G`, `500M`, `64K`, or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with K, M or G"))?;
    let mul = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{s:?}: unit must be K, M or G")),
    };
    Ok(n * mul)
}

pub fn cmd_sniff(a: SniffArgs) -> ExitCode {
    if let Err(code) = a.engine.check() {
        return code;
    }
    use flowaudit::live::{list_interfaces, sniff, SniffConfig};
    if a.list_interfaces {
        return match list_interfaces() {
            Ok(list) => {
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
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("flowaudit: {e}");
                ExitCode::from(EXIT_INPUT)
            }
        };
    }
    let cat = match load_catalogs(&a.product, &[]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowaudit: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let inventory = match &a.inventory {
        None => None,
        Some(p) => {
            let text = match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("flowaudit: {}: cannot read the inventory: {e}", p.display());
                    return ExitCode::from(EXIT_INPUT);
                }
            };
            match flowaudit::inventory::Inventory::parse(
                &p.display().to_string(),
                &text,
                &cat.roles,
            ) {
                Ok(i) => {
                    for w in &i.warnings {
                        eprintln!("flowaudit: warning: {w}");
                    }
                    Some(i)
                }
                Err(problems) => {
                    for p in problems {
                        eprintln!("flowaudit: {p}");
                    }
                    return ExitCode::from(EXIT_INPUT);
                }
            }
        }
    };
    let Some(output) = a.output.clone() else {
        return crate::cli_habits::fail("-o DIR is needed: where the reports go");
    };
    let writable = match crate::sniff_prep::prepare(&output, a.write.as_deref(), a.user.as_deref())
    {
        Ok(w) => w,
        Err(e) => return crate::cli_habits::fail(e),
    };
    let cfg = SniffConfig {
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
    };
    let mut engine_cfg = a.engine.config();
    crate::add_catalog_ports(&mut engine_cfg, &cat);
    let inputs = vec![format!("live capture on {}", cfg.iface)];
    let mut target = crate::sniff_prep::Target::new(output.clone());
    let result = sniff(&cfg, engine_cfg, |out, counters, last| {
        let audit = match &inventory {
            Some(inv) => Some(flowaudit::audit::audit(
                &out.flows,
                &cat,
                inv,
                &out.stats.names,
                &flowaudit::audit::AuditOptions::default(),
            )?),
            None => None,
        };
        target.write(|dir| write_reports(dir, audit.as_ref(), out, &inputs, counters, last))
    });
    let moved = target.moved();
    match result {
        Ok((out, c)) => {
            if !a.engine.quiet {
                eprint!("{}", flowaudit::summary::render(&out));
                eprintln!(
                    "libpcap: {} received, {} dropped by the kernel, {} dropped by the interface; reports in {}",
                    c.received,
                    c.dropped,
                    c.if_dropped,
                    moved.as_ref().map_or(&output, |(d, _)| d).display()
                );
            }
            match moved {
                // The capture is safe, but not where it was asked for: scripts must notice.
                Some((d, e)) => crate::cli_habits::fail(format!(
                    "the reports are in {}, not in {} ({e})",
                    d.display(),
                    output.display()
                )),
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("flowaudit: {e}");
            if let Some((d, _)) = moved {
                eprintln!(
                    "flowaudit: the reports written so far are in {}",
                    d.display()
                );
            }
            ExitCode::from(EXIT_INPUT)
        }
    }
}

/// One round of reports into `dir`: the audit's (or flows.csv alone), and capture.txt.
fn write_reports(
    dir: &std::path::Path,
    audit: Option<&flowaudit::audit::Audit>,
    out: &flowaudit::run::RunOutput,
    inputs: &[String],
    counters: &flowaudit::live::Counters,
    last: bool,
) -> std::io::Result<()> {
    {
        match audit {
            Some(audit) => {
                // A live window has no capture file to go back to: keep its flows.
                let write = flowaudit::report::audit::WriteOptions {
                    flows: true,
                    waivers: None,
                    jsonl: false,
                };
                flowaudit::report::audit::write_audit_with(dir, audit, out, inputs, &write)?;
            }
            None => {
                let mut f = flowaudit::report::AtomicFile::create(&dir.join("flows.csv"))?;
                flowaudit::report::flows::write_flows(
                    &mut f,
                    out.flows.iter(),
                    flowaudit::report::flows::Format::Csv,
                )?;
                f.commit()?;
            }
        }
        let mut f = flowaudit::report::AtomicFile::create(&dir.join("capture.txt"))?;
        use std::io::Write;
        writeln!(
            f,
            "{}libpcap: received {} dropped {} interface-dropped {}{}\n{}",
            flowaudit::summary::render(out),
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
}
