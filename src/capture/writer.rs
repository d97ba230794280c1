//! Writing captures: classic pcap (for the generator and tests) and pcapng (for `sniff --write`).

use std::io::{self, Write};

/// Writes a classic little-endian pcap file, microsecond or nanosecond timestamps.
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W, link: u16, nanos: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        out.write_all(&magic.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&(link as u32).to_le_bytes())?;
        Ok(PcapWriter { out, nanos })
    }

    /// Writes one record; `orig_len` may exceed `data.len()` to model snaplen truncation.
    pub fn write(&mut self, ts_ns: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let secs = ts_ns.div_euclid(1_000_000_000) as u32;
        let ns = ts_ns.rem_euclid(1_000_000_000) as u32;
        let frac = if self.nanos { ns } else { ns / 1000 };
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&secs.to_le_bytes());
        hdr[4..8].copy_from_slice(&frac.to_le_bytes());
        hdr[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        hdr[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.out.write_all(&hdr)?;
        self.out.write_all(data)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes a little-endian pcapng file with nanosecond interfaces.
pub struct PcapngWriter<W: Write> {
    out: W,
    ifaces: usize,
    bytes: u64,
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(out: W) -> io::Result<Self> {
        let mut w = PcapngWriter {
            out,
            ifaces: 0,
            bytes: 0,
        };
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        w.block(0x0a0d_0d0a, &body)?;
        Ok(w)
    }

    /// Defines an interface and returns its id; timestamps are in nanoseconds.
    pub fn add_interface(&mut self, link: u16, snaplen: u32) -> io::Result<u32> {
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&link.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        // if_tsresol = 9 (nanoseconds), then end of options.
        body.extend_from_slice(&9u16.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&[9, 0, 0, 0]);
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(1, &body)?;
        self.ifaces += 1;
        Ok(self.ifaces as u32 - 1)
    }

    pub fn write(&mut self, iface: u32, ts_ns: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let ts = ts_ns.max(0) as u64;
        let mut body = Vec::with_capacity(20 + data.len() + 3);
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    fn block(&mut self, btype: u32, body: &[u8]) -> io::Result<()> {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        self.out.write_all(&btype.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.out.write_all(&total.to_le_bytes())?;
        self.bytes += total as u64;
        Ok(())
    }

    /// Bytes written so far (for size-based rotation).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
