//! Classic libpcap files: micro- or nanosecond timestamps, either byte order, and the "modified"
//! (Kuznetzov) variant whose record headers carry 8 extra bytes.

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
    magic: Magic,
    link: u16,
    warnings: Vec<ReadWarning>,
}

const FILE_HEADER_LEN: usize = 24;

impl PcapReader {
    /// `src` is positioned just after the 4-byte magic.
    pub fn new(mut src: ByteSource, magic: Magic) -> Result<Self, ReadError> {
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
        Ok(PcapReader {
            src,
            magic,
            link,
            warnings: Vec::new(),
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

impl RecordReader for PcapReader {
    fn fill(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        let hdr_len = if self.magic.modified { 24 } else { 16 };
        let mut hdr = [0u8; 24];
        while batch.len() < max_records && batch.bytes() < max_bytes {
            let at = self.src.position();
            let got = self.src.read_up_to(&mut hdr[..hdr_len])?;
            if got == 0 {
                return Ok(false);
            }
            if got < hdr_len {
                return Err(ReadError::corrupt(
                    &self.src.path,
                    at,
                    format!("the file ends inside a record header ({got} of {hdr_len} bytes)"),
                ));
            }
            let secs = self.u32(&hdr[0..4]) as i64;
            let frac = self.u32(&hdr[4..8]) as i64;
            let caplen = self.u32(&hdr[8..12]);
            let orig_len = self.u32(&hdr[12..16]);
            if let Some(left) = self.src.remaining() {
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
            let ts_ns = secs * 1_000_000_000 + if self.magic.nanos { frac } else { frac * 1000 };
            let start = batch.data.len();
            let n = self.src.append_up_to(&mut batch.data, caplen as usize)?;
            if n < caplen as usize {
                batch.data.truncate(start);
                return Err(ReadError::corrupt(
                    &self.src.path,
                    at,
                    format!(
                        "record claims caplen {caplen} but the file ends after {n} bytes of it"
                    ),
                ));
            }
            batch.record_appended(start, ts_ns, self.link, orig_len);
        }
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.src.position()
    }

    fn take_warnings(&mut self) -> Vec<ReadWarning> {
        std::mem::take(&mut self.warnings)
    }
}
