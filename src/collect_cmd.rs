//! `flowaudit collect`: a NetFlow v5/v9/IPFIX collector over UDP that writes the same reports
//! as `audit --flows`, with `sniff`'s run/stop behaviour: interim reports every
//! --report-every (atomically), and on Ctrl-C/SIGTERM or --duration every datagram already
//! received is decoded before the final reports are written.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Args;

use flowaudit::flowinput::{make_output, netflow::Decoder, FlowInputStats, Rec};
use flowaudit::run::RunOutput;

use crate::{load_catalogs, EngineArgs, EXIT_INPUT};

#[derive(Args)]
pub struct CollectArgs {
    /// UDP address to receive export packets on, e.g. 0.0.0.0:2055 (NetFlow) or [::]:4739
    /// (IPFIX). Repeat for several; port 0 picks a free port (printed at start).
    #[arg(long, required = true, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Inventory CSV: with it the reports are a full audit (see `flowaudit audit --help`);
    /// without it only flows.csv.
    #[arg(long, short = 'I', value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Report directory (created if missing).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Rewrite the reports this often during the run (e.g. 5m), atomically.
    #[arg(long, value_parser = parse_duration, value_name = "INTERVAL")]
    report_every: Option<Duration>,
    /// Stop after this long (e.g. 90s, 30m, 2h, 1d). Default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Use only these built-in catalogs (see `audit --product`).
    #[arg(long, value_name = "ID")]
    product: Vec<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// `90s`, `30m`, `2h`, `1d`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
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

/// What the collector counted besides the records.
#[derive(Default)]
struct Counters {
    datagrams: u64,
    bytes: u64,
}

/// One receiving socket per --listen address, each on its own thread until `stop`; then it
/// reads what the kernel still holds and ends.
fn spawn_receiver(
    sock: UdpSocket,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping {
                let _ = sock.set_nonblocking(true);
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if tx.send((from, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stopping {
                        return;
                    }
                }
                Err(_) if stopping => return,
                Err(_) => {}
            }
        }
    })
}

pub fn cmd_collect(a: CollectArgs) -> ExitCode {
    if let Err(code) = a.engine.check() {
        return code;
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
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => {
                eprintln!("flowaudit: {}: cannot read the inventory: {e}", p.display());
                return ExitCode::from(EXIT_INPUT);
            }
            Ok(text) => match flowaudit::inventory::Inventory::parse(
                &p.display().to_string(),
                &text,
                &cat.roles,
            ) {
                Ok(i) => Some(i),
                Err(problems) => {
                    for p in problems {
                        eprintln!("flowaudit: {p}");
                    }
                    return ExitCode::from(EXIT_INPUT);
                }
            },
        },
    };
    if let Err(e) = std::fs::create_dir_all(&a.output) {
        eprintln!("flowaudit: cannot create {}: {e}", a.output.display());
        return ExitCode::from(EXIT_INPUT);
    }
    let mut cfg = a.engine.config();
    crate::add_catalog_ports(&mut cfg, &cat);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("flowaudit: cannot install signal handler: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    }
    let (tx, rx) = mpsc::channel();
    let mut receivers = Vec::new();
    let mut inputs = Vec::new();
    for addr in &a.listen {
        let sock = match UdpSocket::bind(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("flowaudit: cannot listen on udp {addr}: {e} (in use, or a port below 1024 without root?)");
                return ExitCode::from(EXIT_INPUT);
            }
        };
        let bound = sock.local_addr().unwrap_or(*addr);
        // Like sniff: tells the user (and scripts) the collector is running, and where.
        eprintln!("flowaudit: listening on udp {bound} for NetFlow v5/v9 and IPFIX");
        inputs.push(format!("NetFlow/IPFIX collector on udp {bound}"));
        receivers.push(spawn_receiver(sock, Arc::clone(&stop), tx.clone()));
    }
    drop(tx);
    let started = Instant::now();
    let mut dec = Decoder::default();
    let mut st = FlowInputStats::default();
    let mut recs: Vec<Rec> = Vec::new();
    let mut counters = Counters::default();
    let mut last_report = Instant::now();
    let write = |recs: &[Rec], st: &FlowInputStats, c: &Counters, last: bool| {
        let out = make_output(
            recs.to_vec(),
            st.clone(),
            Default::default(),
            &cfg,
            started,
            c.bytes,
        );
        write_reports(&a.output, &out, c, last, inventory.as_ref(), &cat, &inputs)
    };
    loop {
        let time_up = a.duration.is_some_and(|d| started.elapsed() >= d);
        if time_up {
            stop.store(true, Ordering::Relaxed);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((from, data)) => {
                counters.datagrams += 1;
                counters.bytes += data.len() as u64;
                let label = from.ip().to_string();
                let n = counters.datagrams;
                dec.decode(
                    from,
                    &label,
                    &data,
                    &|| format!("datagram {n} from {from}"),
                    &mut st,
                    &mut recs,
                );
            }
            // Every receiver has ended (only after stop): everything received is decoded.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(every) = a.report_every {
            if last_report.elapsed() >= every && !stop.load(Ordering::Relaxed) {
                if let Err(e) = write(&recs, &st, &counters, false) {
                    eprintln!("flowaudit: cannot write interim reports: {e}");
                }
                last_report = Instant::now();
            }
        }
    }
    for r in receivers {
        let _ = r.join();
    }
    dec.finish(&mut st);
    if let Err(e) = write(&recs, &st, &counters, true) {
        eprintln!(
            "flowaudit: cannot write reports to {}: {e}",
            a.output.display()
        );
        return ExitCode::from(EXIT_INPUT);
    }
    if !a.engine.quiet {
        eprintln!(
            "collector: {} datagrams, {} records, {} data sets without template, {} sequence gaps; reports in {}",
            counters.datagrams,
            st.records,
            st.missing_template_sets,
            st.sequence_gaps,
            a.output.display()
        );
    }
    ExitCode::SUCCESS
}

fn write_reports(
    dir: &std::path::Path,
    out: &RunOutput,
    c: &Counters,
    last: bool,
    inventory: Option<&flowaudit::inventory::Inventory>,
    cat: &flowaudit::catalog::Catalogs,
    inputs: &[String],
) -> std::io::Result<()> {
    match inventory {
        Some(inv) => {
            let opts = flowaudit::audit::AuditOptions::default();
            let audit = flowaudit::audit::audit(&out.flows, cat, inv, &out.stats.names, &opts)?;
            // Records received live exist nowhere else: keep the flows.
            let write = flowaudit::report::audit::WriteOptions {
                flows: true,
                waivers: None,
                jsonl: false,
            };
            flowaudit::report::audit::write_audit_with(dir, &audit, out, inputs, &write)?;
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
    let st = out.stats.flow_input.as_deref().cloned().unwrap_or_default();
    let mut f = flowaudit::report::AtomicFile::create(&dir.join("collector.txt"))?;
    use std::io::Write;
    writeln!(
        f,
        "{}datagrams: {}  bytes: {}\nrecords: {}\ndata sets without template: {}\nsequence gaps: {} (lost: {})\n{}",
        flowaudit::summary::render(out),
        c.datagrams,
        c.bytes,
        st.records,
        st.missing_template_sets,
        st.sequence_gaps,
        st.lost_exports,
        if last {
            "final"
        } else {
            "interim: the collector is still running"
        }
    )?;
    f.commit()
}
