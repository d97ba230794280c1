//! Driving the engine: the [`Driver`] every run shares (a batch source on its own thread, the
//! engine on the rayon pool, the [`RunOutput`]), and the source for capture files: open, merge
//! several files in time order, select packets (-f, -c), report progress to a callback.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::capture::{source::open_capture_with, Batch, ReadError, RecordReader};
use crate::engine::{Engine, EngineConfig, Names, Stats};
use crate::flow::store::Flows;

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Packets per batch handed to the workers.
    pub batch_packets: usize,
    /// Call the progress callback of [`run_with_progress`] (the binary draws a bar with it).
    pub progress: bool,
    /// Read plain pcap files through memory maps (else `read` calls).
    pub mmap: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 0,
            batch_packets: 16 * 1024,
            progress: false,
            mmap: true,
        }
    }
}

/// Everything a run produced. `errors` holds damage found in inputs; the flows still include
/// every packet read before it.
pub struct RunOutput {
    pub flows: Flows,
    pub stats: Stats,
    /// Names the inputs gave addresses (DNS answers, TLS server names, Zeek's dns.log/ssl.log).
    pub names: Names,
    pub errors: Vec<ReadError>,
    pub elapsed: Duration,
    /// Bytes read from the inputs (decompressed size for .gz).
    pub input_bytes: u64,
}

/// One input file and its look-ahead batch.
struct Input {
    name: String,
    reader: Box<dyn RecordReader>,
    batch: Batch,
    next: usize,
    done: bool,
}

/// Several captures read as one, in timestamp order (ties: earlier file on the command line).
struct Inputs {
    inputs: Vec<Input>,
    errors: Vec<ReadError>,
}

const LOOKAHEAD: usize = 4096;

impl Inputs {
    fn open(paths: &[PathBuf], mmap: bool) -> Result<Inputs, ReadError> {
        let mut inputs = Vec::new();
        for p in paths {
            inputs.push(Input {
                name: p.display().to_string(),
                reader: open_capture_with(p, mmap)?,
                batch: Batch::default(),
                next: 0,
                done: false,
            });
        }
        Ok(Inputs {
            inputs,
            errors: Vec::new(),
        })
    }

    fn position(&self) -> u64 {
        self.inputs.iter().map(|i| i.reader.position()).sum()
    }

    /// Fills `out`; returns false when every input is exhausted.
    fn fill(&mut self, out: &mut Batch, max_records: usize) -> bool {
        if self.inputs.len() == 1 {
            let inp = &mut self.inputs[0];
            if inp.done {
                return false;
            }
            match inp.reader.fill(out, max_records, 64 << 20) {
                Ok(more) => inp.done = !more,
                Err(e) => {
                    inp.done = true;
                    self.errors.push(e);
                }
            }
            return !out.is_empty() || !inp.done;
        }
        // The same byte budget as a single file: huge records cannot pile up in one batch.
        while out.len() < max_records && out.stored_len() < 64 << 20 {
            let mut best: Option<(i64, usize)> = None;
            for (k, inp) in self.inputs.iter_mut().enumerate() {
                if inp.next >= inp.batch.len() && !inp.done {
                    inp.batch.clear();
                    inp.next = 0;
                    match inp.reader.fill(&mut inp.batch, LOOKAHEAD, 8 << 20) {
                        Ok(more) => inp.done = !more,
                        Err(e) => {
                            inp.done = true;
                            self.errors.push(e);
                        }
                    }
                }
                if inp.next < inp.batch.len() {
                    let ts = inp.batch.records[inp.next].ts_ns;
                    if best.is_none_or(|(b, _)| ts < b) {
                        best = Some((ts, k));
                    }
                }
            }
            let Some((_, k)) = best else {
                return !out.is_empty();
            };
            let inp = &mut self.inputs[k];
            let r = inp.batch.records[inp.next];
            out.push(r.ts_ns, r.link, r.orig_len, inp.batch.packet(inp.next));
            inp.next += 1;
        }
        true
    }
}

/// A packet filter applied to the inputs before the engine sees them (`-f`, see `crate::capture::bpf`).
pub trait PacketFilter: Send {
    /// Whether to keep a packet of link type `link` (a LINKTYPE_* value); Err when the filter
    /// cannot be applied to that link type (the packet is then left out and the error kept).
    fn matches(&mut self, link: u16, packet: &[u8], orig_len: u32) -> Result<bool, String>;
}

/// Which packets of the inputs a run keeps, as tcpdump's filter expression and `-c` do.
#[derive(Default)]
pub struct Selection {
    pub filter: Option<Box<dyn PacketFilter>>,
    /// Stop reading after this many kept packets.
    pub max_packets: Option<u64>,
}

/// What a [`Selection`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Packets read from the inputs (up to the point where `max_packets` stopped reading).
    pub read: u64,
    /// Packets handed to the engine.
    pub kept: u64,
    /// Why the filter could not judge some packets (one message per cause).
    pub filter_errors: Vec<String>,
}

impl Selection {
    /// Keeps the selected records of `batch`; true when `max_packets` is reached.
    fn apply(&mut self, batch: &mut Batch, counts: &mut Selected) -> bool {
        if self.filter.is_none() && self.max_packets.is_none() {
            counts.read += batch.len() as u64;
            counts.kept += batch.len() as u64;
            return false;
        }
        let mut kept = Vec::with_capacity(batch.len());
        let mut full = false;
        for r in &batch.records {
            if self.max_packets.is_some_and(|m| counts.kept >= m) {
                full = true;
                break;
            }
            counts.read += 1;
            let keep = match &mut self.filter {
                None => true,
                Some(f) => f
                    .matches(r.link, batch.record_bytes(r), r.orig_len)
                    .unwrap_or_else(|e| {
                        if !counts.filter_errors.contains(&e) {
                            counts.filter_errors.push(e);
                        }
                        false
                    }),
            };
            if keep {
                counts.kept += 1;
                kept.push(*r);
            }
        }
        batch.records = kept;
        full || self.max_packets.is_some_and(|m| counts.kept >= m)
    }
}

/// Reads `paths` as one capture and returns its flows.
/// Fails before reading anything when an input cannot be opened or is not a capture.
pub fn run_files(
    paths: &[PathBuf],
    cfg: EngineConfig,
    opts: &RunOptions,
) -> Result<RunOutput, ReadError> {
    run_selected(paths, cfg, opts, Selection::default()).map(|(out, _)| out)
}

/// [`run_files`] over the packets `select` keeps; also says how many it read and kept.
pub fn run_selected(
    paths: &[PathBuf],
    cfg: EngineConfig,
    opts: &RunOptions,
    select: Selection,
) -> Result<(RunOutput, Selected), ReadError> {
    run_with_progress(paths, cfg, opts, select, |_| {})
}

/// How far a run over files has got, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Packets handed to the engine so far.
    pub packets: u64,
    /// Bytes read from the inputs so far (decompressed for .gz).
    pub position: u64,
}

/// The inputs' total size in bytes, when it is known before reading (no .gz, no stdin).
pub fn input_size(paths: &[PathBuf]) -> Option<u64> {
    paths
        .iter()
        .map(|p| {
            let gz = p.extension().is_some_and(|e| e == "gz");
            (!gz)
                .then(|| std::fs::metadata(p).ok().map(|m| m.len()))
                .flatten()
        })
        .sum()
}

/// [`run_selected`], calling `progress` after every batch when `opts.progress` is set (on the
/// reading thread; it must be quick).
pub fn run_with_progress(
    paths: &[PathBuf],
    cfg: EngineConfig,
    opts: &RunOptions,
    mut select: Selection,
    mut progress: impl FnMut(Progress) + Send + 'static,
) -> Result<(RunOutput, Selected), ReadError> {
    let mut inputs = Inputs::open(paths, opts.mmap)?;
    let batch_packets = opts.batch_packets.max(1);
    let show = opts.progress;
    let source = move |feed: Feed<()>| {
        let mut selected = Selected::default();
        let mut packets = 0u64;
        loop {
            let mut batch = feed.batch();
            let mut more = inputs.fill(&mut batch, batch_packets);
            if select.apply(&mut batch, &mut selected) {
                more = false;
            }
            packets += batch.len() as u64;
            if show {
                progress(Progress {
                    packets,
                    position: inputs.position(),
                });
            }
            if !batch.is_empty() && !feed.send(batch) {
                break;
            }
            if !more {
                break;
            }
        }
        (inputs, selected)
    };
    let mut driver = Driver::new(cfg, opts.threads).expect("building the worker pool");
    let (mut inputs, selected) = driver
        .run(2, source, |_, _| Ok(()), || "the reading thread panicked")
        .expect("reader thread panicked");
    let stats = driver.stats_mut();
    for inp in &mut inputs.inputs {
        stats.reader_skipped += inp.reader.skipped();
        for w in inp.reader.take_warnings() {
            stats.warnings.push((inp.name.clone(), w));
        }
    }
    let input_bytes = inputs.position();
    Ok((driver.finish(inputs.errors, input_bytes), selected))
}

/// What a batch source's thread sends to the processing thread.
pub enum Msg<N> {
    Batch(Batch),
    /// Anything else the source reports (live capture: libpcap's counters, a failure).
    Note(N),
}

/// The source thread's end of the channel: sends batches and notes, and hands back the batches
/// the processing thread is done with, so that their buffers are reused.
pub struct Feed<N> {
    tx: mpsc::SyncSender<Msg<N>>,
    recycled: mpsc::Receiver<Batch>,
}

impl<N> Feed<N> {
    /// An empty batch, reusing a processed one's buffers when there is one.
    pub fn batch(&self) -> Batch {
        let mut b = self.recycled.try_recv().unwrap_or_default();
        b.clear();
        b
    }

    /// False when the processing side has stopped listening.
    pub fn send(&self, batch: Batch) -> bool {
        self.tx.send(Msg::Batch(batch)).is_ok()
    }

    pub fn note(&self, note: N) -> bool {
        self.tx.send(Msg::Note(note)).is_ok()
    }
}

/// What the driver hands the caller while a run goes on.
pub enum Event<'a, N> {
    /// A batch, before the engine processes it (live capture saves it to a file here).
    Batch(&'a Batch),
    Note(N),
    /// After every message: the moment for periodic work (idle expiry, interim reports).
    Tick,
}

/// The part every run shares, whatever its batches come from: the worker pool and the engine,
/// fed in order from a source on its own thread.
pub struct Driver {
    pool: rayon::ThreadPool,
    engine: Engine,
    started: Instant,
}

impl Driver {
    pub fn new(cfg: EngineConfig, threads: usize) -> Result<Driver, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| format!("cannot start the worker threads: {e}"))?;
        Ok(Driver {
            pool,
            engine: Engine::new(cfg),
            started: Instant::now(),
        })
    }

    /// Runs `source` on its own thread (with a channel of `capacity` messages) and processes
    /// each batch it sends, in order, telling `on` about every message. Returns what `source`
    /// returned; the first error from `on` stops the run (the source then sees a closed feed).
    pub fn run<N, R, E>(
        &mut self,
        capacity: usize,
        source: impl FnOnce(Feed<N>) -> R + Send + 'static,
        mut on: impl FnMut(&mut Driver, Event<'_, N>) -> Result<(), E>,
        panicked: impl FnOnce() -> E,
    ) -> Result<R, E>
    where
        N: Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Msg<N>>(capacity);
        let (recycle_tx, recycled) = mpsc::channel::<Batch>();
        let thread = std::thread::spawn(move || source(Feed { tx, recycled }));
        let mut outcome = Ok(());
        for msg in &rx {
            outcome = match msg {
                Msg::Batch(mut batch) => on(self, Event::Batch(&batch)).map(|()| {
                    self.pool.install(|| self.engine.process(&batch));
                    // Unmaps a mapped window now, not when the source reuses the batch.
                    batch.clear();
                    // The source may have finished: then the batch is simply dropped.
                    let _ = recycle_tx.send(batch);
                }),
                Msg::Note(n) => on(self, Event::Note(n)),
            }
            .and_then(|()| on(self, Event::Tick));
            if outcome.is_err() {
                break;
            }
        }
        drop(rx);
        let result = thread.join().map_err(|_| panicked());
        outcome.and(result)
    }

    /// The engine's counters (the source adds its own, e.g. records a reader skipped).
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.engine.stats
    }

    /// Ends flows idle at wall-clock `now_ns` (live capture: memory stays bounded over days).
    pub fn expire_idle(&mut self, now_ns: i64) {
        let engine = &mut self.engine;
        self.pool.install(|| engine.expire_idle(now_ns));
    }

    /// Everything so far, as if the run ended now (without ending it).
    pub fn snapshot(&self) -> RunOutput {
        let (flows, stats, names) = self.pool.install(|| self.engine.snapshot());
        RunOutput {
            flows,
            stats,
            names,
            errors: Vec::new(),
            elapsed: self.started.elapsed(),
            input_bytes: 0,
        }
    }

    /// Ends every flow and returns the run's output.
    pub fn finish(self, errors: Vec<ReadError>, input_bytes: u64) -> RunOutput {
        let Driver {
            pool,
            engine,
            started,
        } = self;
        let (flows, stats, names) = pool.install(|| engine.finish());
        RunOutput {
            flows,
            stats,
            names,
            errors,
            elapsed: started.elapsed(),
            input_bytes,
        }
    }
}
