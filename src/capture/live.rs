//! Live capture through libpcap (`flowaudit sniff`, cargo feature `live`).
//!
//! The capture thread only captures: it fills batches with `pcap_dispatch` and hands whole
//! batches to the processing thread, which runs the same [`Driver`] as for files (flows sharded
//! over the worker threads by key hash). Reports can be rewritten during the run, atomically.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap::{Capture, Device, Precision};

use crate::capture::writer::PcapngWriter;
use crate::capture::Batch;
use crate::engine::run::{Driver, Event, Feed, RunOutput};
use crate::engine::EngineConfig;

#[derive(Clone, Debug)]
pub struct SniffConfig {
    pub iface: String,
    pub promisc: bool,
    pub snaplen: i32,
    /// Kernel capture buffer in bytes.
    pub buffer_bytes: i32,
    /// A BPF filter in tcpdump syntax.
    pub filter: Option<String>,
    pub duration: Option<Duration>,
    pub max_packets: Option<u64>,
    pub report_every: Option<Duration>,
    /// Save what was captured to this pcapng file (rotated by size when `rotate` is set).
    pub write: Option<PathBuf>,
    pub rotate: Option<u64>,
    /// Drop to this user after opening the interface.
    pub user: Option<String>,
    /// Directories that must take new files after the switch to `user`: tried before any
    /// packet is captured, so that a permissions mistake does not cost the capture window.
    pub writable: Vec<PathBuf>,
    pub batch_packets: usize,
    pub threads: usize,
}

/// libpcap's counters (pcap_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// Interfaces libpcap can open: (name, description).
pub fn list_interfaces() -> Result<Vec<(String, String)>, String> {
    let devs = Device::list().map_err(|e| format!("cannot list interfaces: {e}"))?;
    Ok(devs
        .into_iter()
        .map(|d| (d.name, d.desc.unwrap_or_default()))
        .collect())
}

/// What the capture thread reports besides batches.
enum Note {
    Counters(Counters),
    Failed(String),
}

/// What a live capture tells the user while it runs (the binary prints it; the library does
/// not write to stderr).
#[derive(Debug, Clone)]
pub enum Notice {
    /// The capture is running (as tcpdump says so): scripts wait for this.
    Listening {
        iface: String,
        link: u16,
        snaplen: i32,
    },
    /// libpcap counts drops (said once per run).
    Dropping(Counters),
    /// Saving to the -w file failed and stopped; the capture goes on.
    SavingStopped(String),
}

/// Captures until a stop condition, calling `report` with a snapshot every `report_every` and
/// once more with the final result (the second argument says whether it is final), and
/// `notice` with what the user should know while it runs.
pub fn sniff(
    cfg: &SniffConfig,
    engine_cfg: EngineConfig,
    mut notice: impl FnMut(Notice),
    mut report: impl FnMut(&RunOutput, &Counters, bool) -> std::io::Result<()>,
) -> Result<(RunOutput, Counters), String> {
    let (cap, link, nanos) = open(cfg)?;
    // Opened before capturing, so that a -w path that does not work fails at once.
    let saver = match &cfg.write {
        Some(p) => Some(Saver::new(p.clone(), cfg.rotate, link, cfg.snaplen as u32)?),
        None => None,
    };
    notice(Notice::Listening {
        iface: cfg.iface.clone(),
        link,
        snaplen: cfg.snaplen,
    });
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let source = capture_loop(cap, link, nanos, cfg, stop);
    let mut driver = Driver::new(engine_cfg, cfg.threads)?;
    let mut run = LiveRun::new(saver);
    driver.run(
        64,
        source,
        |d, event| run.on(d, event, cfg, &mut notice, &mut report),
        || "the capture thread panicked".to_string(),
    )?;
    if let Some(s) = run.saver {
        s.finish()
            .map_err(|e| format!("cannot write the capture file: {e}"))?;
    }
    // A live capture has no input damage and no file size: only flows, counts and time.
    let out = driver.finish(Vec::new(), 0);
    report(&out, &run.counters, true).map_err(|e| format!("cannot write reports: {e}"))?;
    if let Some(f) = run.failure {
        return Err(f);
    }
    Ok((out, run.counters))
}

/// The state of a live capture between the capture thread's messages.
struct LiveRun {
    /// The -w file, until saving fails.
    saver: Option<Saver>,
    counters: Counters,
    warned_drops: bool,
    last_report: Instant,
    last_expire: Instant,
    /// The first failure: the run ends with it after writing its reports.
    failure: Option<String>,
}

impl LiveRun {
    fn new(saver: Option<Saver>) -> LiveRun {
        LiveRun {
            saver,
            counters: Counters::default(),
            warned_drops: false,
            last_report: Instant::now(),
            last_expire: Instant::now(),
            failure: None,
        }
    }

    /// One message of the capture thread: a batch is saved, counters kept (drops said once),
    /// and on each tick idle flows end and interim reports are written when due.
    fn on(
        &mut self,
        d: &mut Driver,
        event: Event<'_, Note>,
        cfg: &SniffConfig,
        notice: &mut impl FnMut(Notice),
        report: &mut impl FnMut(&RunOutput, &Counters, bool) -> std::io::Result<()>,
    ) -> Result<(), String> {
        match event {
            Event::Batch(b) => {
                // A full disk stops the saving, not the capture: the flows and reports go on.
                if let Some(Err(e)) = self.saver.as_mut().map(|s| s.write(b)) {
                    let e = format!("cannot write the capture file (saving stopped): {e}");
                    notice(Notice::SavingStopped(e.clone()));
                    self.saver = None;
                    self.failure.get_or_insert(e);
                }
            }
            Event::Note(Note::Counters(c)) => {
                self.counters = c;
                if (c.dropped > 0 || c.if_dropped > 0) && !self.warned_drops {
                    self.warned_drops = true;
                    notice(Notice::Dropping(c));
                }
            }
            Event::Note(Note::Failed(e)) => self.failure = Some(e),
            Event::Tick => self.tick(d, cfg, report)?,
        }
        Ok(())
    }

    fn tick(
        &mut self,
        d: &mut Driver,
        cfg: &SniffConfig,
        report: &mut impl FnMut(&RunOutput, &Counters, bool) -> std::io::Result<()>,
    ) -> Result<(), String> {
        if self.last_expire.elapsed() >= Duration::from_secs(1) {
            // Flows idle past their timeout end now, so memory stays bounded over days.
            d.expire_idle(wall_clock_ns());
            self.last_expire = Instant::now();
        }
        if cfg
            .report_every
            .is_some_and(|every| self.last_report.elapsed() >= every)
        {
            report(&d.snapshot(), &self.counters, false)
                .map_err(|e| format!("cannot write reports: {e}"))?;
            self.last_report = Instant::now();
        }
        Ok(())
    }
}

/// Opens the interface (nanosecond timestamps when it can), applies the filter, and drops to
/// `cfg.user` after trying the directories that user must write. Returns the capture, its
/// link type and whether timestamps are in nanoseconds.
fn open(cfg: &SniffConfig) -> Result<(Capture<pcap::Active>, u16, bool), String> {
    let open = |precision| {
        Capture::from_device(cfg.iface.as_str())
            .map_err(|e| format!("{}: {e}", cfg.iface))?
            .promisc(cfg.promisc)
            .snaplen(cfg.snaplen)
            .buffer_size(cfg.buffer_bytes)
            .timeout(100)
            .precision(precision)
            .open()
            .map_err(|e| format!("cannot capture on {}: {e} (are you root, or does the binary have CAP_NET_RAW?)", cfg.iface))
    };
    let (mut cap, nanos) = match open(Precision::Nano) {
        Ok(c) => (c, true),
        Err(_) => (open(Precision::Micro)?, false),
    };
    if let Some(f) = &cfg.filter {
        cap.filter(f, true)
            .map_err(|e| format!("bad capture filter {f:?}: {e}"))?;
    }
    let link = cap.get_datalink().0 as u16;
    // Non-blocking, with our own poll(2): on Linux a blocking read with a timeout can wait
    // forever on a quiet interface (the timeout starts with the first packet), and the loop must
    // notice Ctrl-C, --duration and idle expiry regardless of traffic.
    let cap = cap
        .setnonblock()
        .map_err(|e| format!("cannot make the capture non-blocking: {e}"))?;
    if let Some(user) = &cfg.user {
        drop_privileges(user)?;
        for d in &cfg.writable {
            tempfile::tempfile_in(d).map_err(|e| {
                format!(
                    "{}: user {user} cannot write there ({e}): nothing was captured; make it \
                     writable for {user} (e.g. chown {user} {0}) or choose another path",
                    d.display()
                )
            })?;
        }
    }
    Ok((cap, link, nanos))
}

/// The capture thread's work: fill batches with `pcap_dispatch` and send them whole (every
/// `batch_packets` packets or 50 ms), libpcap's counters every second, until a stop condition.
fn capture_loop(
    mut cap: Capture<pcap::Active>,
    link: u16,
    nanos: bool,
    cfg: &SniffConfig,
    stop: Arc<AtomicBool>,
) -> impl FnOnce(Feed<Note>) + Send + 'static {
    let batch_packets = cfg.batch_packets.max(1);
    let (duration, max_packets) = (cfg.duration, cfg.max_packets);
    move |feed: Feed<Note>| {
        let mut batch = feed.batch();
        let mut seen = 0u64;
        let mut last_send = Instant::now();
        let mut last_stats = Instant::now();
        let begun = Instant::now();
        loop {
            let limit_hit = max_packets.is_some_and(|m| seen >= m);
            let time_up = duration.is_some_and(|d| begun.elapsed() >= d);
            let stopping = stop.load(Ordering::Relaxed) || limit_hit || time_up;
            if !stopping {
                let room = max_packets.map(|m| (m - seen) as usize);
                let r = cap.dispatch(room, |p| {
                    let ts = p.header.ts.tv_sec * 1_000_000_000
                        + p.header.ts.tv_usec * if nanos { 1 } else { 1000 };
                    batch.push(ts, link, p.header.len, p.data);
                });
                match r {
                    Ok(0) => wait_readable(&cap, 50),
                    Ok(n) => seen += n as u64,
                    Err(pcap::Error::TimeoutExpired) => {}
                    Err(e) => {
                        // The processing side may be gone already; then nobody is left to tell.
                        let _ = feed.note(Note::Failed(format!(
                            "capture on the interface failed: {e}"
                        )));
                        break;
                    }
                }
            }
            if !batch.is_empty()
                && (stopping
                    || batch.len() >= batch_packets
                    || last_send.elapsed() >= Duration::from_millis(50))
            {
                let full = std::mem::replace(&mut batch, feed.batch());
                if !feed.send(full) {
                    return;
                }
                last_send = Instant::now();
            }
            if stopping || last_stats.elapsed() >= Duration::from_secs(1) {
                if let Ok(s) = cap.stats() {
                    let c = Counters {
                        received: s.received as u64,
                        dropped: s.dropped as u64,
                        if_dropped: s.if_dropped as u64,
                    };
                    if !feed.note(Note::Counters(c)) {
                        return;
                    }
                }
                last_stats = Instant::now();
            }
            if stopping {
                return;
            }
        }
    }
}

/// Waits up to `ms` for packets to arrive on the capture's file descriptor.
fn wait_readable(cap: &impl std::os::fd::AsRawFd, ms: i32) {
    let mut pfd = libc::pollfd {
        fd: cap.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; errors (EINTR) just end the wait.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Writes captured packets to pcapng, starting a new numbered file past `rotate` bytes.
struct Saver {
    path: PathBuf,
    rotate: Option<u64>,
    link: u16,
    snaplen: u32,
    index: u32,
    out: PcapngWriter<std::io::BufWriter<std::fs::File>>,
}

impl Saver {
    fn file_name(path: &std::path::Path, rotate: Option<u64>, index: u32) -> PathBuf {
        if rotate.is_none() {
            return path.to_path_buf();
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = path
            .extension()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pcapng".into());
        path.with_file_name(format!("{stem}-{index:05}.{ext}"))
    }

    fn open(
        path: &std::path::Path,
        link: u16,
        snaplen: u32,
    ) -> std::io::Result<PcapngWriter<std::io::BufWriter<std::fs::File>>> {
        let f = std::fs::File::create(path)?;
        let mut w = PcapngWriter::new(std::io::BufWriter::with_capacity(1 << 20, f))?;
        w.add_interface(link, snaplen)?;
        Ok(w)
    }

    fn new(path: PathBuf, rotate: Option<u64>, link: u16, snaplen: u32) -> Result<Saver, String> {
        let first = Self::file_name(&path, rotate, 0);
        let out =
            Self::open(&first, link, snaplen).map_err(|e| format!("{}: {e}", first.display()))?;
        Ok(Saver {
            path,
            rotate,
            link,
            snaplen,
            index: 0,
            out,
        })
    }

    fn write(&mut self, b: &Batch) -> std::io::Result<()> {
        for (i, r) in b.records.iter().enumerate() {
            if self
                .rotate
                .is_some_and(|max| self.out.bytes_written() >= max)
            {
                self.out.flush()?;
                self.index += 1;
                let next = Self::file_name(&self.path, self.rotate, self.index);
                self.out = Self::open(&next, self.link, self.snaplen)?;
            }
            self.out.write(0, r.ts_ns, b.packet(i), r.orig_len)?;
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Switches to `user` (and its primary group) for the rest of the run, like tcpdump -Z.
fn drop_privileges(user: &str) -> Result<(), String> {
    let name = std::ffi::CString::new(user).map_err(|_| format!("bad user name {user:?}"))?;
    // SAFETY: getpwnam returns a pointer into static storage, read before any other call.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(format!("--user {user}: no such user"));
        }
        let (uid, gid) = ((*pw).pw_uid, (*pw).pw_gid);
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(format!(
                "--user {user}: cannot switch user: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
