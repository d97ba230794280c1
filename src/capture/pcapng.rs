//! pcapng: sections of either byte order, many interfaces each with its own link type, snaplen and
//! timestamp resolution/offset; EPB, SPB and the obsolete PB carry packets, every other block is
//! skipped by its length.
//!
//! A plain file is read through windows mapped into memory, as plain pcap is: packet blocks are
//! then never copied (the copies made pcapng 1.78x slower than pcap). The mapped path checks
//! every block exactly as the streaming path does and reports damage with the same words and
//! offsets (`tests/hostile.rs` compares the two on damaged files).

use std::fs::File;

use super::pcap::{MAP_ALIGN, PREFETCH_AHEAD, WINDOW};
use super::source::ByteSource;
use super::{Batch, ReadError, ReadWarning, RecordReader, MAX_RECORD_LEN};

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Blocks bigger than this are corruption, not packets (the largest packet plus generous options).
const MAX_BLOCK_LEN: u32 = MAX_RECORD_LEN + 64 * 1024;

#[derive(Debug, Clone, Copy)]
enum TsResol {
    /// Units of 10^-n seconds.
    Decimal(u32),
    /// Units of 2^-n seconds.
    Binary(u32),
}

#[derive(Debug, Clone)]
struct Interface {
    link: u16,
    snaplen: u32,
    resol: TsResol,
    offset_s: i64,
}

impl Interface {
    fn ts_ns(&self, units: u64) -> i64 {
        let ns: i128 = match self.resol {
            TsResol::Decimal(n) if n <= 9 => units as i128 * 10i128.pow(9 - n),
            TsResol::Decimal(n) => units as i128 / 10i128.pow((n - 9).min(30)),
            TsResol::Binary(n) => ((units as u128 * 1_000_000_000u128) >> n.min(127)) as i128,
        };
        (ns + self.offset_s as i128 * 1_000_000_000).clamp(i64::MIN as i128, i64::MAX as i128)
            as i64
    }
}

/// Interfaces one section may define; real files have a handful, a hostile one millions.
const MAX_INTERFACES: usize = 65_536;

/// An option's code and value.
type PcapngOption<'b> = (u16, &'b [u8]);

pub struct PcapngReader {
    src: ByteSource,
    big_endian: bool,
    ifaces: Vec<Interface>,
    /// Timestamp of the previous packet: SPBs have none, so they inherit it.
    last_ts: i64,
    /// The first SHB's type word was consumed by format detection.
    first_block_pending: bool,
    block: Vec<u8>,
    warnings: Vec<ReadWarning>,
    skipped: u64,
    /// The plain file, when it is read through memory maps (its size is known).
    file: Option<File>,
    /// Mapped reading: bytes of the file consumed (whole blocks).
    consumed: u64,
}

/// A packet block's record: (timestamp, link type, original length, where the data starts in
/// the block body, caplen).
type PacketFields = (i64, u16, u32, usize, u32);

impl PcapngReader {
    /// `src` is positioned just after the first SHB's block type.
    pub fn new(src: ByteSource) -> Result<Self, ReadError> {
        Self::with_file(src, None)
    }

    /// [`PcapngReader::new`]; with `file` (the same plain file, whose size `src` knows), blocks
    /// are read from windows of it mapped into memory.
    pub fn with_file(src: ByteSource, file: Option<File>) -> Result<Self, ReadError> {
        let file = file.filter(|_| src.total_len.is_some());
        Ok(PcapngReader {
            src,
            big_endian: false,
            ifaces: Vec::new(),
            last_ts: 0,
            first_block_pending: true,
            block: Vec::new(),
            warnings: Vec::new(),
            skipped: 0,
            file,
            consumed: 0,
        })
    }

    fn u16(&self, b: &[u8]) -> u16 {
        let b = [b[0], b[1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn warn(&mut self, offset: u64, detail: String) {
        // A hostile file could repeat one problem millions of times; keep the first ones only.
        if self.warnings.len() < 1000 {
            self.warnings.push(ReadWarning { offset, detail });
        }
    }

    /// Reads the next block into `self.block` (the body, without type and lengths).
    /// Returns the block type, or None at a clean end of file.
    fn next_block(&mut self) -> Result<Option<(u32, u64)>, ReadError> {
        let Some((at, btype)) = self.block_type()? else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; 4];
        if self.src.read_up_to(&mut len_bytes)? < 4 {
            return Err(self.corrupt(at, "the file ends inside a block header"));
        }
        self.block.clear();
        if btype == SHB {
            self.start_section(at)?;
        }
        // Read only now: a section header's byte-order magic decides how its length reads.
        let total = self.u32(&len_bytes);
        check_block_len(&self.src.path, at, btype, total)?;
        self.read_block_body(at, btype, total)?;
        Ok(Some((btype, at)))
    }

    /// The next block's offset and type, or None at a clean end of file.
    fn block_type(&mut self) -> Result<Option<(u64, u32)>, ReadError> {
        if self.first_block_pending {
            self.first_block_pending = false;
            return Ok(Some((0, SHB)));
        }
        let at = self.src.position();
        let mut t = [0u8; 4];
        match self.src.read_up_to(&mut t)? {
            0 => return Ok(None),
            4 => {}
            n => {
                return Err(self.corrupt(
                    at,
                    format!("the file ends inside a block header ({n} of 8 bytes)"),
                ))
            }
        }
        // The SHB type is a palindrome, so it reads the same before we know the byte order.
        let raw = u32::from_le_bytes(t);
        Ok(Some((at, if raw == SHB { SHB } else { self.u32(&t) })))
    }

    /// A section header block at `at`: its byte-order magic sets the byte order of the section,
    /// whose interfaces start anew. The magic stays at the start of `self.block`.
    fn start_section(&mut self, at: u64) -> Result<(), ReadError> {
        let mut bom = [0u8; 4];
        if self.src.read_up_to(&mut bom)? < 4 {
            return Err(self.corrupt(at, "the file ends inside a section header block"));
        }
        self.big_endian = match u32::from_le_bytes(bom) {
            BYTE_ORDER_MAGIC => false,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
            m => {
                return Err(self.corrupt(
                    at + 8,
                    format!("section header has byte-order magic {m:08x}, expected 1a2b3c4d"),
                ))
            }
        };
        self.ifaces.clear();
        self.block.extend_from_slice(&bom);
        Ok(())
    }

    /// Reads the rest of a block of `total` bytes into `self.block`, and its trailing length.
    fn read_block_body(&mut self, at: u64, btype: u32, total: u32) -> Result<(), ReadError> {
        let already = self.block.len() as u64; // the SHB's byte-order magic
        let body_len = total as u64 - 12;
        if let Some(left) = self.src.remaining() {
            if body_len + 4 - already > left {
                return Err(self.corrupt(
                    at,
                    format!("block of type 0x{btype:08x} claims {total} bytes but only {} remain in the file", left + 8 + already),
                ));
            }
        }
        let want = (body_len - already) as usize;
        let mut body = std::mem::take(&mut self.block);
        let got = self.src.append_up_to(&mut body, want)?;
        self.block = body;
        let mut trailer = [0u8; 4];
        if got < want || self.src.read_up_to(&mut trailer)? < 4 {
            return Err(self.corrupt(
                at,
                format!(
                    "the file ends inside a block of type 0x{btype:08x} ({total} bytes claimed)"
                ),
            ));
        }
        self.check_trailer(at, btype, total, self.u32(&trailer));
        Ok(())
    }

    /// The leading length framed the block; if it was wrong, the next block header will not
    /// parse and we stop there. A bad trailer alone loses nothing: warn.
    #[inline]
    fn check_trailer(&mut self, at: u64, btype: u32, total: u32, trailer: u32) {
        if trailer != total {
            let detail = format!(
                "block of type 0x{btype:08x} has length {total} at its start but {trailer} at its end; trusted the start"
            );
            self.warn(at, detail);
        }
    }

    /// Damage at byte `at` of this file.
    fn corrupt(&self, at: u64, detail: impl Into<String>) -> ReadError {
        ReadError::corrupt(&self.src.path, at, detail)
    }

    /// Walks an options list; returns (code, value) pairs, or an error text when it runs off the block.
    fn options<'b>(&self, mut opts: &'b [u8]) -> Result<Vec<PcapngOption<'b>>, (usize, String)> {
        let mut out = Vec::new();
        let total = opts.len();
        while opts.len() >= 4 {
            let code = self.u16(&opts[0..2]);
            let len = self.u16(&opts[2..4]) as usize;
            if code == 0 {
                break;
            }
            let padded = (len + 3) & !3;
            if 4 + padded > opts.len() {
                return Err((
                    total - opts.len(),
                    format!(
                        "option {code} claims {len} bytes but only {} remain in its block",
                        opts.len() - 4
                    ),
                ));
            }
            out.push((code, &opts[4..4 + len]));
            opts = &opts[4 + padded..];
        }
        Ok(out)
    }

    fn on_shb(&mut self, at: u64) {
        // Body: magic(4) major(2) minor(2) section length(8) options. Only options can be off.
        if self.block.len() < 16 {
            return;
        }
        let major = self.u16(&self.block[4..6]);
        let minor = self.u16(&self.block[6..8]);
        // 1.0 is the format; 1.2 was written by old tools for the same format (the pcapng spec
        // says to read it as 1.0). Every other version, whatever its minor number, is read the
        // same way: as 1.0, with a warning.
        if !matches!((major, minor), (1, 0) | (1, 2)) {
            self.warn(
                at,
                format!(
                    "section header version {major}.{minor} (flowaudit reads 1.0, and 1.2 as 1.0); read it as 1.0"
                ),
            );
        }
        if let Err((off, e)) = self.options(&self.block[16..]) {
            // Options start after type, length and 16 bytes of fixed fields.
            self.warn(
                at + 24 + off as u64,
                format!("section header options are malformed ({e}); ignored them"),
            );
        }
    }

    fn on_idb(&mut self, at: u64) {
        if self.ifaces.len() >= MAX_INTERFACES {
            self.warn(
                at,
                format!("more than {MAX_INTERFACES} interfaces in one section; ignored this one"),
            );
            return;
        }
        if self.block.len() < 8 {
            self.warn(
                at,
                "interface description block is too short; interface defined with link type 0xffff"
                    .into(),
            );
            self.ifaces.push(Interface {
                link: 0xffff,
                snaplen: 0,
                resol: TsResol::Decimal(6),
                offset_s: 0,
            });
            return;
        }
        let mut iface = Interface {
            link: self.u16(&self.block[0..2]),
            snaplen: self.u32(&self.block[4..8]),
            resol: TsResol::Decimal(6),
            offset_s: 0,
        };
        let mut problem = None;
        match self.options(&self.block[8..]) {
            Ok(opts) => {
                for (code, v) in opts {
                    match code {
                        9 if v.len() == 1 => {
                            let n = (v[0] & 0x7f) as u32;
                            iface.resol = if v[0] & 0x80 != 0 {
                                TsResol::Binary(n)
                            } else {
                                TsResol::Decimal(n)
                            };
                        }
                        14 if v.len() == 8 => {
                            let b: [u8; 8] = v.try_into().expect("length checked");
                            iface.offset_s = if self.big_endian {
                                i64::from_be_bytes(b)
                            } else {
                                i64::from_le_bytes(b)
                            };
                        }
                        _ => {}
                    }
                }
            }
            Err((_, e)) => problem = Some(e),
        }
        if let Some(e) = problem {
            self.warn(
                at,
                format!("interface description options are malformed ({e}); used defaults"),
            );
        }
        self.ifaces.push(iface);
    }

    fn skip_packet(&mut self, at: u64, why: String) {
        self.skipped += 1;
        self.warn(at, why);
    }

    /// Reads a packet block's body `b`; a block that cannot be attributed or is too short is
    /// counted and warned about, and gives None.
    fn packet_fields(&mut self, btype: u32, at: u64, b: &[u8]) -> Option<PacketFields> {
        let (iface_id, ts_units, caplen, orig_len, data_at) = match btype {
            EPB if b.len() >= 20 => (
                self.u32(&b[0..4]),
                Some(((self.u32(&b[4..8]) as u64) << 32) | self.u32(&b[8..12]) as u64),
                self.u32(&b[12..16]),
                self.u32(&b[16..20]),
                20,
            ),
            PB if b.len() >= 20 => (
                self.u16(&b[0..2]) as u32,
                Some(((self.u32(&b[4..8]) as u64) << 32) | self.u32(&b[8..12]) as u64),
                self.u32(&b[12..16]),
                self.u32(&b[16..20]),
                20,
            ),
            SPB if b.len() >= 4 => {
                let orig = self.u32(&b[0..4]);
                let snap = self.ifaces.first().map(|i| i.snaplen).unwrap_or(0);
                let mut cap = orig.min((b.len() - 4) as u32);
                if snap > 0 {
                    cap = cap.min(snap);
                }
                (0, None, cap, orig, 4)
            }
            _ => {
                self.skip_packet(at, format!("packet block of type {btype} is too short"));
                return None;
            }
        };
        let Some(iface) = self.ifaces.get(iface_id as usize) else {
            self.skip_packet(
                at,
                format!(
                    "packet names interface {iface_id}, which this section never defined; skipped"
                ),
            );
            return None;
        };
        let (link, ts) = (iface.link, ts_units.map(|u| iface.ts_ns(u)));
        if data_at + caplen as usize > b.len() {
            self.skip_packet(
                at,
                format!("packet claims caplen {caplen}, longer than its block; skipped"),
            );
            return None;
        }
        let ts = ts.unwrap_or(self.last_ts);
        self.last_ts = ts;
        Some((ts, link, orig_len, data_at, caplen))
    }

    fn on_packet(&mut self, btype: u32, at: u64, batch: &mut Batch) {
        let block = std::mem::take(&mut self.block);
        if let Some((ts, link, orig_len, data_at, caplen)) = self.packet_fields(btype, at, &block) {
            batch.push(
                ts,
                link,
                orig_len,
                &block[data_at..data_at + caplen as usize],
            );
        }
        self.block = block;
    }

    /// Fills an empty batch with the packets of one window of the file mapped into memory (see
    /// the module comment). Checks and messages follow [`PcapngReader::next_block`].
    fn fill_mapped(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        let Some(total) = self.src.total_len.filter(|_| self.file.is_some()) else {
            unreachable!("fill_mapped needs a plain file of known size");
        };
        if self.consumed >= total {
            return Ok(false);
        }
        let base = self.consumed / MAP_ALIGN * MAP_ALIGN;
        let mut len = ((WINDOW as u64 + (self.consumed - base)).min(total - base)) as usize;
        batch.set_window(self.map(base, len)?);
        let first = (self.consumed - base) as usize;
        let mut fetched = first;
        loop {
            let at = self.consumed;
            let rel = (at - base) as usize;
            prefetch_window(batch, &mut fetched, (rel + PREFETCH_AHEAD).min(len));
            if batch.len() >= max_records || rel - first >= max_bytes {
                return Ok(true);
            }
            if at == total {
                return Ok(false);
            }
            // A block header (with an SHB's byte-order magic) crossing the window's end: the
            // next window starts with it, or this one grows when it is the first block.
            let hdr_want = ((total - at) as usize).min(12);
            if !self.reach(batch, base, &mut len, rel + hdr_want)? {
                return Ok(true);
            }
            let (btype, block_len) = self.mapped_header(at, &batch.bytes()[rel..rel + hdr_want])?;
            let need = block_len as usize;
            // bounded: the header check compared the block's length to the file's size
            if !self.reach(batch, base, &mut len, rel + need)? {
                return Ok(true);
            }
            self.take_mapped_block(batch, btype, at, rel, block_len);
            self.consumed += need as u64;
        }
    }

    /// Makes the window (`len` bytes from `base`) reach `end`. False when it does not and the
    /// batch already holds packets: the batch ends there and the next window starts with the
    /// block. Only a window's first block grows it.
    #[inline]
    fn reach(
        &self,
        batch: &mut Batch,
        base: u64,
        len: &mut usize,
        end: usize,
    ) -> Result<bool, ReadError> {
        if end <= *len {
            return Ok(true);
        }
        if !batch.is_empty() {
            return Ok(false);
        }
        *len = end;
        batch.clear();
        batch.set_window(self.map(base, end)?);
        Ok(true)
    }

    /// The block of `block_len` bytes at `rel` in the window (`at` in the file): its trailer
    /// checked, a section or interface header remembered, a packet recorded in the batch.
    #[inline]
    fn take_mapped_block(
        &mut self,
        batch: &mut Batch,
        btype: u32,
        at: u64,
        rel: usize,
        block_len: u32,
    ) {
        let end = rel + block_len as usize;
        let trailer = self.u32(&batch.bytes()[end - 4..end]);
        self.check_trailer(at, btype, block_len, trailer);
        let body = &batch.bytes()[rel + 8..end - 4];
        match btype {
            SHB | IDB => {
                self.block.clear();
                self.block.extend_from_slice(body);
                if btype == SHB {
                    self.on_shb(at);
                } else {
                    self.on_idb(at);
                }
            }
            EPB | PB | SPB => {
                if let Some((ts, link, orig_len, data_at, caplen)) =
                    self.packet_fields(btype, at, body)
                {
                    batch.record_at(rel + 8 + data_at, caplen, ts, link, orig_len);
                }
            }
            _ => {}
        }
    }

    /// Maps `len` bytes of the file from `base`.
    fn map(&self, base: u64, len: usize) -> Result<memmap2::Mmap, ReadError> {
        let file = self.file.as_ref().expect("mapped reading has a file");
        // SAFETY: as for plain pcap (pcap.rs): read-only and private; `--no-mmap` avoids the
        // SIGBUS a concurrent truncation of the file would raise.
        unsafe { memmap2::MmapOptions::new().offset(base).len(len).map(file) }.map_err(|err| {
            ReadError::Io {
                path: self.src.path.clone(),
                err,
            }
        })
    }

    /// Reads a block header from `h` (the first up to 12 bytes of the block at `at`): the block
    /// type and length, checked as [`PcapngReader::next_block`] checks them.
    fn mapped_header(&mut self, at: u64, h: &[u8]) -> Result<(u32, u32), ReadError> {
        let path = self.src.path.clone();
        if h.len() < 4 {
            return Err(ReadError::corrupt(
                &path,
                at,
                format!(
                    "the file ends inside a block header ({} of 8 bytes)",
                    h.len()
                ),
            ));
        }
        let raw = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let btype = if raw == SHB { SHB } else { self.u32(&h[0..4]) };
        if h.len() < 8 {
            return Err(ReadError::corrupt(
                &path,
                at,
                "the file ends inside a block header",
            ));
        }
        if btype == SHB {
            if h.len() < 12 {
                return Err(ReadError::corrupt(
                    &path,
                    at,
                    "the file ends inside a section header block",
                ));
            }
            self.big_endian = match u32::from_le_bytes([h[8], h[9], h[10], h[11]]) {
                BYTE_ORDER_MAGIC => false,
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
                m => {
                    return Err(ReadError::corrupt(
                        &path,
                        at + 8,
                        format!("section header has byte-order magic {m:08x}, expected 1a2b3c4d"),
                    ))
                }
            };
            self.ifaces.clear();
        }
        let total = self.u32(&h[4..8]);
        check_block_len(&path, at, btype, total)?;
        let left = self.src.total_len.unwrap_or(u64::MAX).saturating_sub(at);
        if total as u64 > left {
            return Err(ReadError::corrupt(
                &path,
                at,
                format!("block of type 0x{btype:08x} claims {total} bytes but only {left} remain in the file"),
            ));
        }
        Ok((btype, total))
    }
}

/// Prefetches the window's bytes from `*fetched` up to `ahead`, a cache line at a time.
#[inline]
fn prefetch_window(batch: &Batch, fetched: &mut usize, ahead: usize) {
    while *fetched < ahead {
        crate::flow::map::prefetch(&batch.bytes()[*fetched]);
        *fetched += 64;
    }
}

/// A block length no block can have.
fn check_block_len(
    path: &std::path::Path,
    at: u64,
    btype: u32,
    total: u32,
) -> Result<(), ReadError> {
    if total < 12
        || !total.is_multiple_of(4)
        || total > MAX_BLOCK_LEN
        || (btype == SHB && total < 28)
    {
        return Err(ReadError::corrupt(
            path,
            at,
            format!("block of type 0x{btype:08x} has an impossible length {total}"),
        ));
    }
    Ok(())
}

impl RecordReader for PcapngReader {
    fn fill(
        &mut self,
        batch: &mut Batch,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        if self.file.is_some() {
            if batch.is_empty() && batch.stored_len() == 0 {
                return self.fill_mapped(batch, max_records, max_bytes);
            }
            // Records for a batch that already holds others are copied into it.
            let mut own = Batch::default();
            let result =
                self.fill_mapped(&mut own, max_records.saturating_sub(batch.len()), max_bytes);
            for (i, r) in own.records.iter().enumerate() {
                batch.push(r.ts_ns, r.link, r.orig_len, own.packet(i));
            }
            return result;
        }
        while batch.len() < max_records && batch.stored_len() < max_bytes {
            let Some((btype, at)) = self.next_block()? else {
                return Ok(false);
            };
            match btype {
                SHB => self.on_shb(at),
                IDB => self.on_idb(at),
                EPB | PB | SPB => self.on_packet(btype, at, batch),
                _ => {} // statistics, name resolution, custom and unknown blocks
            }
        }
        Ok(true)
    }

    fn position(&self) -> u64 {
        if self.file.is_some() {
            return self.consumed;
        }
        self.src.position()
    }

    fn take_warnings(&mut self) -> Vec<ReadWarning> {
        std::mem::take(&mut self.warnings)
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
