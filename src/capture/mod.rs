//! Reading capture files: classic pcap and pcapng, plain or gzip-compressed, from files or stdin.
//!
//! Readers never load a file into memory: they stream records into a reusable [`Batch`], which the
//! engine hands to the decoding workers. Damage stops a reader with a [`ReadError`] that names the
//! file and byte offset; every record before the damage has already been delivered.

#[cfg(feature = "live")]
pub mod bpf;
#[cfg(feature = "live")]
pub mod live;
pub mod pcap;
pub mod pcapng;
pub mod source;
pub mod writer;

use std::fmt;
use std::path::{Path, PathBuf};

pub use source::open_capture;

/// Where one packet's bytes sit inside a [`Batch`], and what the capture said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The link-layer type (LINKTYPE_* value) of the interface the packet came from.
    pub link: u16,
    /// Length of the packet on the wire (may exceed the captured bytes when snaplen cut it).
    pub orig_len: u32,
    /// Offset of the captured bytes in [`Batch::bytes`].
    pub start: u32,
    /// Number of captured bytes.
    pub caplen: u32,
}

/// A run of consecutive packets, stored back to back in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    /// Packet bytes the readers copied here (stdin, .gz, pcapng, live capture, merged inputs).
    pub data: Vec<u8>,
    /// Or a window of a capture file mapped into memory: the records then point into it and
    /// `data` is empty (see [`pcap::PcapReader`]).
    window: Option<memmap2::Mmap>,
    pub records: Vec<RecordMeta>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.data.clear();
        self.window = None;
        self.records.clear();
    }

    /// The bytes the records' `start` offsets point into.
    pub fn bytes(&self) -> &[u8] {
        match &self.window {
            Some(w) => w,
            None => &self.data,
        }
    }

    /// Makes `window` the storage of this batch's records (it must hold none yet).
    pub(crate) fn set_window(&mut self, window: memmap2::Mmap) {
        debug_assert!(self.records.is_empty() && self.data.is_empty());
        self.window = Some(window);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The captured bytes of record `i`.
    pub fn packet(&self, i: usize) -> &[u8] {
        self.record_bytes(&self.records[i])
    }

    /// The captured bytes of `r`, one of this batch's records.
    pub fn record_bytes(&self, r: &RecordMeta) -> &[u8] {
        &self.bytes()[r.start as usize..r.start as usize + r.caplen as usize]
    }

    /// Appends one packet; the reader has already validated its length.
    pub fn push(&mut self, ts_ns: i64, link: u16, orig_len: u32, bytes: &[u8]) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        self.records.push(RecordMeta {
            ts_ns,
            link,
            orig_len: orig_len.max(bytes.len() as u32),
            start,
            caplen: bytes.len() as u32,
        });
    }

    /// Records a packet whose bytes are already in [`Batch::bytes`] at `start`.
    pub fn record_at(&mut self, start: usize, caplen: u32, ts_ns: i64, link: u16, orig_len: u32) {
        debug_assert!(start + caplen as usize <= self.bytes().len());
        self.records.push(RecordMeta {
            ts_ns,
            link,
            orig_len: orig_len.max(caplen),
            start: start as u32,
            caplen,
        });
    }

    /// Bytes stored so far; readers stop filling a batch past a budget.
    pub fn stored_len(&self) -> usize {
        self.bytes().len()
    }
}

/// How a reader fails. Each variant maps to one documented exit code.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read (exit 2).
    Io { path: PathBuf, err: std::io::Error },
    /// The file is not a capture flowaudit can read (exit 2).
    NotACapture { path: PathBuf, detail: String },
    /// The capture is damaged at `offset`; everything before it was read (exit 3).
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
}

impl ReadError {
    pub fn corrupt(path: &Path, offset: u64, detail: impl Into<String>) -> Self {
        ReadError::Corrupt {
            path: path.to_path_buf(),
            offset,
            detail: detail.into(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            ReadError::Io { .. } | ReadError::NotACapture { .. } => 2,
            ReadError::Corrupt { .. } => 3,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, err } => write!(f, "{}: cannot read: {err}", path.display()),
            ReadError::NotACapture { path, detail } => write!(
                f,
                "{}: not a pcap or pcapng capture ({detail}); flowaudit reads .pcap, .pcapng and their .gz forms",
                path.display()
            ),
            ReadError::Corrupt {
                path,
                offset,
                detail,
            } => write!(
                f,
                "{}: corrupt capture at byte {offset}: {detail}; the packets before it were kept",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// Something a reader noticed but could read past (kept for the summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadWarning {
    pub offset: u64,
    pub detail: String,
}

/// A stream of packets from one capture file.
pub trait RecordReader: Send {
    /// Appends records to `batch` until it holds `max_records` records or `max_bytes` bytes, or the
    /// capture ends. Returns `Ok(false)` once the capture is exhausted.
    fn fill(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError>;

    /// Bytes consumed so far (of the decompressed stream for .gz input).
    fn position(&self) -> u64;

    /// Warnings about damage the reader skipped over.
    fn take_warnings(&mut self) -> Vec<ReadWarning>;

    /// Records skipped because they cannot be attributed (e.g. an undefined pcapng interface).
    fn skipped(&self) -> u64 {
        0
    }
}

/// The largest captured length accepted for one record, whatever the header's snaplen says.
/// Bigger claims are corruption (libpcap uses the same order of magnitude).
pub const MAX_RECORD_LEN: u32 = 16 * 1024 * 1024;
