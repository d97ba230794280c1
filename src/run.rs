//! Driving the engine over capture files: open, merge several files in time order, read on a
//! dedicated thread, process batches on the rayon pool, report progress.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::capture::{source::open_capture_with, Batch, ReadError, RecordReader};
use crate::engine::{Engine, EngineConfig, Stats};
use crate::flowstore::Flows;

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Packets per batch handed to the workers.
    pub batch_packets: usize,
    /// Show a progress bar when stderr is a terminal.
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

enum Msg {
    Batch(Batch),
    Done(Inputs, Selected),
}

/// A packet filter applied to the inputs before the engine sees them (`-f`, see `crate::bpf`).
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
    mut select: Selection,
) -> Result<(RunOutput, Selected), ReadError> {
    let started = Instant::now();
    let mut inputs = Inputs::open(paths, opts.mmap)?;
    let total: Option<u64> = paths
        .iter()
        .map(|p| {
            let gz = p.extension().is_some_and(|e| e == "gz");
            (!gz)
                .then(|| std::fs::metadata(p).ok().map(|m| m.len()))
                .flatten()
        })
        .sum();
    let bar = progress_bar(opts.progress, total);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .expect("building the worker pool");
    let (tx, rx) = mpsc::sync_channel::<Msg>(2);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Batch>();
    let batch_packets = opts.batch_packets.max(1);
    let bar_reader = bar.clone();
    let mut packets = 0u64;
    let mut selected = Selected::default();
    let reader = std::thread::spawn(move || loop {
        let mut batch = recycle_rx.try_recv().unwrap_or_default();
        batch.clear();
        let mut more = inputs.fill(&mut batch, batch_packets);
        if select.apply(&mut batch, &mut selected) {
            more = false;
        }
        if let Some(b) = &bar_reader {
            packets += batch.len() as u64;
            b.set_position(inputs.position());
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{packets} packets, {:.2} M/s",
                packets as f64 / secs / 1e6
            ));
        }
        if !batch.is_empty() && tx.send(Msg::Batch(batch)).is_err() {
            return;
        }
        if !more {
            let _ = tx.send(Msg::Done(inputs, std::mem::take(&mut selected)));
            return;
        }
    });
    let mut engine = Engine::new(cfg);
    let mut finished = None;
    for msg in rx {
        match msg {
            Msg::Batch(mut batch) => {
                pool.install(|| engine.process(&batch));
                // Unmaps a mapped window now, not when the reader reuses the batch.
                batch.clear();
                let _ = recycle_tx.send(batch);
            }
            Msg::Done(inp, sel) => finished = Some((inp, sel)),
        }
    }
    reader.join().expect("reader thread panicked");
    let (mut inputs, selected) = finished.expect("reader ends with Done");
    for inp in &mut inputs.inputs {
        engine.stats.reader_skipped += inp.reader.skipped();
        for w in inp.reader.take_warnings() {
            engine.stats.warnings.push((inp.name.clone(), w));
        }
    }
    let input_bytes = inputs.position();
    let (flows, stats) = pool.install(|| engine.finish());
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let out = RunOutput {
        flows,
        stats,
        errors: inputs.errors,
        elapsed: started.elapsed(),
        input_bytes,
    };
    Ok((out, selected))
}

fn progress_bar(wanted: bool, total: Option<u64>) -> Option<ProgressBar> {
    if !wanted || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {binary_bytes_per_sec}, {msg}")
                .expect("valid template"),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}
