//! Classic libpcap files: micro- or nanosecond timestamps, either byte order, and the "modified"
//! (Kuznetzov) variant whose record headers carry 8 extra bytes.

use std::fs::File;

use super::source::ByteSource;
use super::{Batch, ReadError, ReadWarning, RecordReader, MAX_RECORD_LEN};

/// What the magic number says about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Magic {
    pub swapped: bool,
    pub nanos: bool,
    pub modified: bool,
}

impl Magic {
    pub fn detect(bytes: [u8; 4]) -> Option<Magic> {
        let le = u32::from_le_bytes(bytes);
        let be = u32::from_be_bytes(bytes);
        // The writer stored the magic in its own byte order; we decode as little-endian first.
        for (value, swapped) in [(le, false), (be, true)] {
            let (nanos, modified) = match value {
                0xa1b2_c3d4 => (false, false),
                0xa1b2_3c4d => (true, false),
                0xa1b2_cd34 => (false, true),
                _ => continue,
            };
            return Some(Magic {
                swapped,
                nanos,
                modified,
            });
        }
        None
    }
}

pub struct PcapReader {
    src: ByteSource,
    /// The plain file behind `src`, when records can be read from it mapped into memory.
    file: Option<File>,
    magic: Magic,
    link: u16,
    warnings: Vec<ReadWarning>,
    /// Stream bytes read but not yet part of a whole record (at most one record and header).
    carry: Vec<u8>,
    /// Offset of the first byte not yet part of a record: where the next record starts.
    consumed: u64,
    /// A read error met after some bytes were read, returned when those are used up.
    failed: Option<ReadError>,
}

const FILE_HEADER_LEN: usize = 24;

impl PcapReader {
    /// `src` is positioned just after the 4-byte magic. With `file` (the same plain file, whose
    /// size `src` knows), records are read from windows of it mapped into memory.
    pub fn new(mut src: ByteSource, magic: Magic, file: Option<File>) -> Result<Self, ReadError> {
        let mut hdr = [0u8; FILE_HEADER_LEN - 4];
        let got = src.read_up_to(&mut hdr)?;
        if got < hdr.len() {
            return Err(ReadError::corrupt(
                &src.path,
                4 + got as u64,
                format!(
                    "the pcap file header is cut short ({} of 24 bytes)",
                    4 + got
                ),
            ));
        }
        let u16_at = |i: usize| {
            let b = [hdr[i], hdr[i + 1]];
            if magic.swapped {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |i: usize| {
            let b = [hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]];
            if magic.swapped {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (major, minor) = (u16_at(0), u16_at(2));
        if major != 2 {
            return Err(ReadError::corrupt(
                &src.path,
                4,
                format!("unsupported pcap version {major}.{minor} (only 2.x exists)"),
            ));
        }
        // The upper bits of the link-type field carry FCS information (pcap 2.4 spec).
        let link = (u32_at(16) & 0x0fff_ffff) as u16;
        let file = file.filter(|_| src.total_len.is_some());
        Ok(PcapReader {
            src,
            file,
            magic,
            link,
            warnings: Vec::new(),
            carry: Vec::new(),
            consumed: FILE_HEADER_LEN as u64,
            failed: None,
        })
    }

    fn u32(&self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.magic.swapped {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
}

/// Bytes asked of the stream at a time. Reads go straight into the batch (one copy from the
/// kernel, none through a buffer of ours): a third of a run's time went into the extra copy.
const READ_CHUNK: usize = 1 << 20;

impl PcapReader {
    /// Appends at least `min` more bytes of the stream to `data` (fewer only at its end);
    /// returns how many were appended. A read error is returned once the bytes before it have
    /// been handed out (the records in them are kept).
    fn read_more(&mut self, data: &mut Vec<u8>, min: usize) -> Result<usize, ReadError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let start = data.len();
        let mut want = min.max(READ_CHUNK);
        if let Some(total) = self.src.total_len {
            // Never ask past the end of a plain file: zero-filling it would cost as much as a read.
            let left = total.saturating_sub(self.src.position()) as usize;
            want = want.min(left.max(min));
        }
        data.resize(start + want, 0);
        let (n, failed) = self.src.read_partial(&mut data[start..]);
        data.truncate(start + n);
        match failed {
            Some(e) if n == 0 => Err(e),
            Some(e) => {
                self.failed = Some(e);
                Ok(n)
            }
            None => Ok(n),
        }
    }
}

/// Bytes of the file mapped at a time (a record that is larger gets a window of its own size).
pub(super) const WINDOW: usize = 8 << 20;
/// How far ahead of the record being read its window is prefetched.
pub(super) const PREFETCH_AHEAD: usize = 4096;
/// Mapping offsets must be multiples of the page size: 64 KiB is one of every page size in use.
pub(super) const MAP_ALIGN: u64 = 64 << 10;

impl PcapReader {
    /// The record header fields: (timestamp in ns, caplen, original length).
    fn header(&self, hdr: &[u8]) -> (i64, u32, u32) {
        let secs = self.u32(&hdr[0..4]) as i64;
        let frac = self.u32(&hdr[4..8]) as i64;
        let ts_ns = secs * 1_000_000_000 + if self.magic.nanos { frac } else { frac * 1000 };
        (ts_ns, self.u32(&hdr[8..12]), self.u32(&hdr[12..16]))
    }

    /// A caplen the file cannot hold, or no real packet has: the damage, if any.
    fn check_caplen(&self, at: u64, hdr_len: usize, caplen: u32) -> Result<(), ReadError> {
        if let Some(total) = self.src.total_len {
            let left = total.saturating_sub(at + hdr_len as u64);
            if caplen as u64 > left {
                return Err(ReadError::corrupt(
                    &self.src.path,
                    at,
                    format!(
                        "record claims caplen {caplen} but only {left} bytes remain in the file"
                    ),
                ));
            }
        }
        // The header's snaplen is not trusted: a hostile 0xffffffff must not lift the limit.
        if caplen > MAX_RECORD_LEN {
            return Err(ReadError::corrupt(
                &self.src.path,
                at,
                format!(
                    "record claims caplen {caplen}, more than any real packet (limit {MAX_RECORD_LEN})"
                ),
            ));
        }
        Ok(())
    }

    /// Fills an empty batch with the records of one window of the file mapped into memory: the
    /// packets are never copied (the kernel's copy into a read buffer was the largest cost of a
    /// run after the flow table).
    fn fill_mapped(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        let (Some(file), Some(total)) = (&self.file, self.src.total_len) else {
            unreachable!("fill_mapped needs a plain file of known size");
        };
        let hdr_len = if self.magic.modified { 24 } else { 16 };
        let base = self.consumed / MAP_ALIGN * MAP_ALIGN;
        let mut len = ((WINDOW as u64 + (self.consumed - base)).min(total - base)) as usize;
        if len == 0 || self.consumed >= total {
            return Ok(false);
        }
        let map = |len: usize| {
            // SAFETY: the mapping is read-only and private to this process. Its contents change
            // only if another program writes the capture file while we read it; a program that
            // truncates it (logrotate's copytruncate) would make reading the lost pages raise
            // SIGBUS, which is why `--no-mmap` exists (docs/flows.md).
            unsafe { memmap2::MmapOptions::new().offset(base).len(len).map(file) }.map_err(|err| {
                ReadError::Io {
                    path: self.src.path.clone(),
                    err,
                }
            })
        };
        batch.set_window(map(len)?);
        let first = (self.consumed - base) as usize;
        // Record sizes vary, so the CPU's own prefetcher does not see the next header coming:
        // without this, the load of each record header waited on memory (81 % of this
        // function's time on an IMIX file). Every cache line up to PREFETCH_AHEAD bytes past the
        // current record is requested, which also warms the packets for the decoders.
        let mut fetched = first;
        loop {
            let at = self.consumed;
            let rel = (at - base) as usize;
            let ahead = (rel + PREFETCH_AHEAD).min(len);
            while fetched < ahead {
                crate::flow::map::prefetch(&batch.bytes()[fetched]);
                fetched += 64;
            }
            if batch.len() >= max_records || rel - first >= max_bytes {
                return Ok(true);
            }
            if at == total {
                return Ok(false);
            }
            if total - at < hdr_len as u64 {
                let got = total - at;
                return Err(ReadError::corrupt(
                    &self.src.path,
                    at,
                    format!("the file ends inside a record header ({got} of {hdr_len} bytes)"),
                ));
            }
            if rel + hdr_len > len {
                return Ok(true); // the next window starts with this record
            }
            let (ts_ns, caplen, orig_len) = self.header(&batch.bytes()[rel..rel + hdr_len]);
            self.check_caplen(at, hdr_len, caplen)?;
            let need = hdr_len + caplen as usize;
            if rel + need > len {
                if !batch.is_empty() {
                    return Ok(true);
                }
                // A record larger than the window: map enough for it (the check above bounds it).
                len = rel + need;
                batch.clear();
                batch.set_window(map(len)?);
            }
            batch.record_at(rel + hdr_len, caplen, ts_ns, self.link, orig_len);
            self.consumed += need as u64;
        }
    }
}

impl PcapReader {
    /// Fills the batch from the file mapped into memory: in place when the batch is empty,
    /// else copied into it.
    fn fill_from_map(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        if batch.is_empty() && batch.stored_len() == 0 {
            return self.fill_mapped(batch, max_records, max_bytes);
        }
        // Records for a batch that already holds others are copied into it.
        let mut own = Batch::default();
        let result = self.fill_mapped(&mut own, max_records.saturating_sub(batch.len()), max_bytes);
        for (i, r) in own.records.iter().enumerate() {
            batch.push(r.ts_ns, r.link, r.orig_len, own.packet(i));
        }
        result
    }

    /// Fills the batch from a stream (stdin, gzip), copying the records' bytes into it.
    fn fill_streamed(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        let hdr_len = if self.magic.modified { 24 } else { 16 };
        // Bytes read last time past the last whole record start this batch.
        let first = batch.data.len();
        batch.data.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut cur = first;
        let mut more = true;
        let result = loop {
            if batch.len() >= max_records || cur - first >= max_bytes {
                break Ok(());
            }
            match self.read_record(batch, cur, hdr_len) {
                Ok(Some(need)) => cur += need,
                Ok(None) => {
                    more = false;
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        // What was read past the last whole record waits for the next batch.
        self.carry.extend_from_slice(&batch.data[cur..]);
        batch.data.truncate(cur);
        result.map(|()| more)
    }

    /// Reads the record starting at `cur` in the batch's bytes (reading more of the stream as
    /// needed) and records it; returns its length, or None at a clean end of file.
    fn read_record(
        &mut self,
        batch: &mut Batch,
        cur: usize,
        hdr_len: usize,
    ) -> Result<Option<usize>, ReadError> {
        let at = self.consumed;
        let mut avail = batch.data.len() - cur;
        while avail < hdr_len {
            match self.read_more(&mut batch.data, hdr_len - avail)? {
                0 if avail == 0 => return Ok(None),
                0 => {
                    return Err(ReadError::corrupt(
                        &self.src.path,
                        at,
                        format!(
                            "the file ends inside a record header ({avail} of {hdr_len} bytes)"
                        ),
                    ))
                }
                _ => avail = batch.data.len() - cur,
            }
        }
        let (ts_ns, caplen, orig_len) = self.header(&batch.data[cur..cur + hdr_len]);
        self.check_caplen(at, hdr_len, caplen)?;
        let need = hdr_len + caplen as usize;
        if avail < need {
            let n = self.read_more(&mut batch.data, need - avail)?;
            if n < need - avail {
                let have = avail + n - hdr_len;
                return Err(ReadError::corrupt(
                    &self.src.path,
                    at,
                    format!(
                        "record claims caplen {caplen} but the file ends after {have} bytes of it"
                    ),
                ));
            }
        }
        batch.record_at(cur + hdr_len, caplen, ts_ns, self.link, orig_len);
        self.consumed += need as u64;
        Ok(Some(need))
    }
}

impl RecordReader for PcapReader {
    fn fill(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        if self.file.is_some() {
            return self.fill_from_map(batch, max_records, max_bytes);
        }
        self.fill_streamed(batch, max_records, max_bytes)
    }

    fn position(&self) -> u64 {
        self.consumed
    }

    fn take_warnings(&mut self) -> Vec<ReadWarning> {
        std::mem::take(&mut self.warnings)
    }
}
