//! `flowaudit collect`: a NetFlow v5/v9/IPFIX collector over UDP that writes the same reports
//! as `audit --flows`, with `sniff`'s run/stop behaviour: interim reports every
//! --report-every (atomically), and on Ctrl-C/SIGTERM or --duration every datagram already
//! received is decoded before the final reports are written.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Args;

use flowaudit::audit::setup::AuditSetup;
use flowaudit::engine::run::RunOutput;
use flowaudit::flowinput::{make_output, netflow::Decoder, FlowInputStats, Rec};

use crate::cli::error::{CliError, CmdResult, EXIT_FAIL_ON};
use crate::cli::habits::parse_duration;
use crate::cli::setup_args::AuditSetupArgs;
use crate::EngineArgs;

#[derive(Args)]
#[command(mut_arg("inventory", |a| a.help(
    "Inventory CSV: with it the reports are a full audit (see `flowaudit audit --help`); \
     without it only flows.csv"
)))]
pub struct CollectArgs {
    /// UDP address to receive export packets on, e.g. 0.0.0.0:2055 (NetFlow) or [::]:4739
    /// (IPFIX). Repeat for several; port 0 picks a free port (printed at start).
    #[arg(long, required = true, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Report directory (created if missing).
    #[arg(short, long, value_name = "DIR")]
    output: std::path::PathBuf,
    /// Rewrite the reports this often during the run (e.g. 5m), atomically.
    #[arg(long, value_parser = parse_duration, value_name = "INTERVAL")]
    report_every: Option<Duration>,
    /// Stop after this long (e.g. 90s, 30m, 2h, 1d). Default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    setup: AuditSetupArgs,
    #[command(flatten)]
    engine: EngineArgs,
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

pub fn cmd_collect(a: CollectArgs) -> CmdResult {
    a.engine.check()?;
    let setup = a.setup.load()?;
    std::fs::create_dir_all(&a.output)
        .map_err(|e| CliError::input(format!("cannot create {}: {e}", a.output.display())))?;
    let mut cfg = a.engine.config();
    setup.add_catalog_ports(&mut cfg);
    let stop = stop_on_signals()?;
    let (tx, rx) = mpsc::channel();
    let (receivers, inputs) = listen(&a.listen, &stop, tx)?;
    let started = Instant::now();
    let mut state = Collected::default();
    let write = |c: &Collected, last: bool| {
        let out = make_output(
            c.recs.to_vec(),
            c.stats.clone(),
            Default::default(),
            &cfg,
            started,
            c.counters.bytes,
        );
        write_reports(&a.output, &out, &c.counters, last, &setup, &inputs)
    };
    receive(&a, &rx, &stop, started, &mut state, &write);
    for r in receivers {
        r.join()
            .map_err(|_| CliError::input("a receiving thread panicked"))?;
    }
    state.dec.finish(&mut state.stats);
    let failing = write(&state, true).map_err(|e| {
        CliError::input(format!(
            "cannot write reports to {}: {e}",
            a.output.display()
        ))
    })?;
    if !a.engine.quiet {
        eprintln!(
            "collector: {} datagrams, {} records, {} data sets without template, {} sequence gaps; reports in {}",
            state.counters.datagrams,
            state.stats.records,
            state.stats.missing_template_sets,
            state.stats.sequence_gaps,
            a.output.display()
        );
    }
    match failing {
        Some(why) => Err(CliError::with_code(EXIT_FAIL_ON, why)),
        None => Ok(0),
    }
}

/// A flag SIGINT and SIGTERM set: the collector stops receiving and writes its reports.
fn stop_on_signals() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| CliError::input(format!("cannot install signal handler: {e}")))?;
    }
    Ok(stop)
}

type Receivers = Vec<std::thread::JoinHandle<()>>;

/// Binds every listen address and starts a receiving thread for each, sending to `tx`; with
/// the inputs as the reports name them.
fn listen(
    addrs: &[SocketAddr],
    stop: &Arc<AtomicBool>,
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) -> Result<(Receivers, Vec<String>), CliError> {
    let mut receivers = Vec::new();
    let mut inputs = Vec::new();
    for addr in addrs {
        let sock = UdpSocket::bind(addr).map_err(|e| {
            CliError::input(format!(
                "cannot listen on udp {addr}: {e} (in use, or a port below 1024 without root?)"
            ))
        })?;
        let bound = sock.local_addr().unwrap_or(*addr);
        // Like sniff: tells the user (and scripts) the collector is running, and where.
        eprintln!("flowaudit: listening on udp {bound} for NetFlow v5/v9 and IPFIX");
        inputs.push(format!("NetFlow/IPFIX collector on udp {bound}"));
        receivers.push(spawn_receiver(sock, Arc::clone(stop), tx.clone()));
    }
    Ok((receivers, inputs))
}

/// Decodes datagrams until every receiver has ended (after a signal or `--duration`), writing
/// interim reports every `--report-every`.
fn receive(
    a: &CollectArgs,
    rx: &mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    stop: &AtomicBool,
    started: Instant,
    state: &mut Collected,
    write: &dyn Fn(&Collected, bool) -> std::io::Result<Option<String>>,
) {
    let mut last_report = Instant::now();
    loop {
        if a.duration.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((from, data)) => state.decode(from, &data),
            // Every receiver has ended (only after stop): everything received is decoded.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(every) = a.report_every {
            if last_report.elapsed() >= every && !stop.load(Ordering::Relaxed) {
                if let Err(e) = write(state, false) {
                    eprintln!("flowaudit: cannot write interim reports: {e}");
                }
                last_report = Instant::now();
            }
        }
    }
}

/// Everything received so far, decoded.
#[derive(Default)]
struct Collected {
    dec: Decoder,
    stats: FlowInputStats,
    recs: Vec<Rec>,
    counters: Counters,
}

impl Collected {
    fn decode(&mut self, from: SocketAddr, data: &[u8]) {
        self.counters.datagrams += 1;
        self.counters.bytes += data.len() as u64;
        let label = from.ip().to_string();
        let n = self.counters.datagrams;
        self.dec.decode(
            from,
            &label,
            data,
            &|| format!("datagram {n} from {from}"),
            &mut self.stats,
            &mut self.recs,
        );
    }
}

/// One round of reports, and collector.txt; the `--fail-on` reason of this round's audit.
fn write_reports(
    dir: &std::path::Path,
    out: &RunOutput,
    c: &Counters,
    last: bool,
    setup: &AuditSetup,
    inputs: &[String],
) -> std::io::Result<Option<String>> {
    let audit = setup.audit(out).transpose()?;
    crate::cli::setup_args::write_audit_or_flows(dir, setup, audit.as_ref(), out, inputs)?;
    let st = out.stats.flow_input.as_deref().cloned().unwrap_or_default();
    let mut f = flowaudit::report::AtomicFile::create(&dir.join("collector.txt"))?;
    use std::io::Write;
    writeln!(
        f,
        "{}datagrams: {}  bytes: {}\nrecords: {}\ndata sets without template: {}\nsequence gaps: {} (lost: {})\n{}",
        flowaudit::report::summary::render(out),
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
    f.commit()?;
    Ok(audit
        .as_ref()
        .and_then(|au| crate::cli::setup_args::fail_on_reason(setup, au)))
}
