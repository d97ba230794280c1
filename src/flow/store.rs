//! Finished flows, held in memory up to a limit and then written to sorted runs on disk, so that
//! a capture with tens of millions of flows (a SYN flood, a scan) costs memory for the live flow
//! table only. Reading them back merges the runs: flows come out in report order, each once.
//!
//! Runs are unnamed temporary files (`O_TMPFILE`): nothing is left behind when the process ends,
//! however it ends.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use crate::flow::{FlowRecord, RECORD_LEN};

/// Most runs kept before they are merged into one, which bounds open files and read buffers.
const MAX_RUNS: usize = 64;
/// Read-back buffer per run: with up to 64 runs merged at once, 4 MiB in all.
const READ_BUF: usize = 64 * 1024;

/// One sorted run of flows in a spill file.
struct Run {
    file: File,
    records: u64,
}

/// Where finished flows go once memory holds enough of them.
pub struct Spill {
    dir: PathBuf,
    runs: Vec<Arc<Run>>,
    /// Flows written to disk (counted once, even when runs are merged).
    pub spilled: u64,
}

impl Spill {
    pub fn new(dir: PathBuf) -> Spill {
        Spill {
            dir,
            runs: Vec::new(),
            spilled: 0,
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Sorts `flows` and writes them as a new run. On error nothing is lost: the flows are
    /// handed back, and the caller keeps them in memory.
    pub fn write(
        &mut self,
        mut flows: Vec<FlowRecord>,
    ) -> Result<(), (io::Error, Vec<FlowRecord>)> {
        flows.par_sort_unstable_by(FlowRecord::report_cmp);
        let n = flows.len() as u64;
        match write_run(&self.dir, flows.iter().map(|f| Ok(*f))) {
            Ok(run) => {
                self.runs.push(Arc::new(run));
                self.spilled += n;
            }
            Err(e) => return Err((e, flows)),
        }
        if self.runs.len() >= MAX_RUNS {
            // Merging rewrites what is on disk; if that fails the old runs are still valid.
            let all = Flows {
                runs: self.runs.clone(),
                mem: Vec::new(),
            };
            if let Ok(run) = write_run(&self.dir, all.iter()) {
                self.runs = vec![Arc::new(run)];
            }
        }
        Ok(())
    }

    /// Every flow: the runs plus `mem` (any order), as one sorted set.
    pub fn finish(&self, mut mem: Vec<FlowRecord>) -> Flows {
        mem.par_sort_unstable_by(FlowRecord::report_cmp);
        Flows {
            runs: self.runs.clone(),
            mem,
        }
    }
}

fn write_run(
    dir: &std::path::Path,
    flows: impl Iterator<Item = io::Result<FlowRecord>>,
) -> io::Result<Run> {
    let file = tempfile::tempfile_in(dir)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut buf = [0u8; RECORD_LEN];
    let mut records = 0u64;
    for f in flows {
        f?.encode(&mut buf);
        w.write_all(&buf)?;
        records += 1;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    Ok(Run { file, records })
}

/// All the flows of a run, in report order: some on disk, some in memory.
#[derive(Default)]
pub struct Flows {
    runs: Vec<Arc<Run>>,
    /// Sorted in report order.
    mem: Vec<FlowRecord>,
}

impl Flows {
    /// Flows held in memory only (sorted here).
    pub fn from_vec(mut mem: Vec<FlowRecord>) -> Flows {
        mem.par_sort_unstable_by(FlowRecord::report_cmp);
        Flows {
            runs: Vec::new(),
            mem,
        }
    }

    pub fn len(&self) -> u64 {
        self.mem.len() as u64 + self.runs.iter().map(|r| r.records).sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flows in report order. Items are errors only if a spill file cannot be read back.
    pub fn iter(&self) -> FlowIter<'_> {
        if self.runs.is_empty() {
            return FlowIter::Mem(self.mem.iter());
        }
        let mut readers: Vec<RunReader> = self.runs.iter().map(RunReader::new).collect();
        let mut heap = BinaryHeap::new();
        let mut failed = None;
        for (i, r) in readers.iter_mut().enumerate() {
            match r.next() {
                Some(Ok(rec)) => heap.push(Head { rec, src: i }),
                Some(Err(e)) => failed = Some(e),
                None => {}
            }
        }
        let mut mem = self.mem.iter();
        if let Some(rec) = mem.next() {
            heap.push(Head {
                rec: *rec,
                src: readers.len(),
            });
        }
        FlowIter::Merge(Box::new(Merge {
            readers,
            mem,
            heap,
            failed,
        }))
    }

    /// The flows as one slice, when none were spilled to disk.
    pub fn in_memory(&self) -> Option<&[FlowRecord]> {
        self.runs.is_empty().then_some(self.mem.as_slice())
    }

    /// Everything in memory (tests and small captures).
    pub fn to_vec(&self) -> io::Result<Vec<FlowRecord>> {
        self.iter().collect()
    }
}

/// The flows of a [`Flows`], in report order.
pub enum FlowIter<'a> {
    Mem(std::slice::Iter<'a, FlowRecord>),
    Merge(Box<Merge<'a>>),
}

pub struct Merge<'a> {
    readers: Vec<RunReader>,
    mem: std::slice::Iter<'a, FlowRecord>,
    heap: BinaryHeap<Head>,
    failed: Option<io::Error>,
}

impl Iterator for FlowIter<'_> {
    type Item = io::Result<FlowRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let m = match self {
            FlowIter::Mem(it) => return it.next().map(|r| Ok(*r)),
            FlowIter::Merge(m) => m,
        };
        if let Some(e) = m.failed.take() {
            m.heap.clear();
            return Some(Err(e));
        }
        let Head { rec, src } = m.heap.pop()?;
        let next = if src == m.readers.len() {
            m.mem.next().map(|r| Ok(*r))
        } else {
            m.readers[src].next()
        };
        match next {
            Some(Ok(rec)) => m.heap.push(Head { rec, src }),
            Some(Err(e)) => m.failed = Some(e),
            None => {}
        }
        Some(Ok(rec))
    }
}

/// A run's next record, for the merge heap (a max-heap, so the order is reversed).
struct Head {
    rec: FlowRecord,
    src: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rec
            .report_cmp(&self.rec)
            .then(other.src.cmp(&self.src))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// Reads a run with positioned reads, so any number of readers can share its file.
struct RunReader {
    run: Arc<Run>,
    /// Next byte of the file to read into `buf`.
    offset: u64,
    buf: Vec<u8>,
    at: usize,
}

impl RunReader {
    fn new(run: &Arc<Run>) -> RunReader {
        RunReader {
            run: Arc::clone(run),
            offset: 0,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next(&mut self) -> Option<io::Result<FlowRecord>> {
        if self.at + RECORD_LEN > self.buf.len() {
            let end = self.run.records * RECORD_LEN as u64;
            if self.offset >= end {
                return None;
            }
            let want = (READ_BUF / RECORD_LEN * RECORD_LEN) as u64;
            let n = want.min(end - self.offset) as usize;
            self.buf.resize(n, 0);
            if let Err(e) = self.run.file.read_exact_at(&mut self.buf, self.offset) {
                return Some(Err(spill_error(e)));
            }
            self.offset += n as u64;
            self.at = 0;
        }
        let bytes: &[u8; RECORD_LEN] = self.buf[self.at..self.at + RECORD_LEN]
            .try_into()
            .expect("slice of RECORD_LEN");
        self.at += RECORD_LEN;
        Some(FlowRecord::decode(bytes).ok_or_else(|| {
            spill_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "a record does not decode",
            ))
        }))
    }
}

fn spill_error(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("reading back flows spilled to disk failed ({e}): is the spill directory's disk healthy?"),
    )
}
