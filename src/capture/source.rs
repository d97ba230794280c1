//! Opening a capture: file or stdin, gzip detection, format detection by magic number.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{pcap::PcapReader, pcapng::PcapngReader, ReadError, RecordReader};

/// A buffered byte stream that knows how far it has read, so errors can name offsets.
pub struct ByteSource {
    inner: Box<dyn BufRead + Send>,
    pos: u64,
    /// Size of the stream when known (plain files), to tell "past the end" from "too big".
    pub total_len: Option<u64>,
    pub path: PathBuf,
    /// Reading through gzip: read errors are damage in the compressed stream.
    pub compressed: bool,
}

impl ByteSource {
    pub fn new(inner: Box<dyn BufRead + Send>, total_len: Option<u64>, path: PathBuf) -> Self {
        ByteSource {
            inner,
            pos: 0,
            total_len,
            path,
            compressed: false,
        }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn io_error(&self, err: io::Error) -> ReadError {
        if self.compressed {
            return ReadError::corrupt(
                &self.path,
                self.pos,
                format!("the gzip stream is damaged or cut short ({err}); the offset counts decompressed bytes"),
            );
        }
        ReadError::Io {
            path: self.path.clone(),
            err,
        }
    }

    /// Fills `buf` completely, or as much as the stream has left; returns the count read.
    pub fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        self.pos += done as u64;
        Ok(done)
    }

    /// Like [`ByteSource::read_up_to`], but a failure keeps what was read before it: returns
    /// the count read and the error that stopped it, if any.
    pub fn read_partial(&mut self, buf: &mut [u8]) -> (usize, Option<ReadError>) {
        let mut done = 0;
        let mut failed = None;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(self.io_error(e));
                    break;
                }
            }
        }
        (done, failed)
    }

    /// Appends up to `n` bytes to `out`; returns how many were appended (fewer only at the end).
    pub fn append_up_to(&mut self, out: &mut Vec<u8>, n: usize) -> Result<usize, ReadError> {
        let mut done = 0;
        while done < n {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            if avail.is_empty() {
                break;
            }
            let take = avail.len().min(n - done);
            out.extend_from_slice(&avail[..take]);
            self.inner.consume(take);
            done += take;
        }
        self.pos += done as u64;
        Ok(done)
    }

    /// Skips up to `n` bytes; returns how many were skipped.
    pub fn skip_up_to(&mut self, n: u64) -> Result<u64, ReadError> {
        let mut done = 0u64;
        while done < n {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            if avail == 0 {
                break;
            }
            let take = (avail as u64).min(n - done) as usize;
            self.inner.consume(take);
            done += take as u64;
        }
        self.pos += done;
        Ok(done)
    }

    /// Bytes left in the stream when its size is known.
    pub fn remaining(&self) -> Option<u64> {
        self.total_len.map(|t| t.saturating_sub(self.pos))
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens `path` (or stdin for `-`), unwraps gzip, and picks the reader by magic number.
pub fn open_capture(path: &Path) -> Result<Box<dyn RecordReader>, ReadError> {
    open_capture_with(path, true)
}

/// [`open_capture`]; with `mmap`, a plain (uncompressed) pcap file is read through windows mapped
/// into memory instead of `read` calls.
pub fn open_capture_with(path: &Path, mmap: bool) -> Result<Box<dyn RecordReader>, ReadError> {
    let io_err = |err| ReadError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut plain: Option<File> = None;
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = if path == Path::new("-") {
        (Box::new(io::stdin()), None)
    } else {
        let f = File::open(path).map_err(io_err)?;
        let meta = f.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(ReadError::NotACapture {
                path: path.to_path_buf(),
                detail: "it is a directory".into(),
            });
        }
        if mmap && meta.is_file() {
            plain = f.try_clone().ok();
        }
        // A pipe (`<(zcat f.pcap)`) or device has no size: its length reads as 0.
        let size = meta.is_file().then_some(meta.len());
        (Box::new(f), size)
    };
    // Read the first two bytes fully (a pipe may deliver one at a time), then put them back.
    let mut raw = raw;
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match raw.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    let gz = got == 2 && head == GZIP_MAGIC;
    let rest: Box<dyn Read + Send> = Box::new(io::Cursor::new(head[..got].to_vec()).chain(raw));
    let buffered = BufReader::with_capacity(1 << 20, rest);
    let (stream, size): (Box<dyn BufRead + Send>, Option<u64>) = if gz {
        let dec = flate2::read::MultiGzDecoder::new(buffered);
        (Box::new(BufReader::with_capacity(1 << 20, dec)), None)
    } else {
        (Box::new(buffered), size)
    };
    let mut src = ByteSource::new(stream, size, path.to_path_buf());
    src.compressed = gz;
    let mut magic = [0u8; 4];
    let got = src.read_up_to(&mut magic)?;
    if got < 4 {
        return Err(ReadError::NotACapture {
            path: path.to_path_buf(),
            detail: format!("only {got} bytes long"),
        });
    }
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let file = if gz { None } else { plain };
        return Ok(Box::new(PcapngReader::with_file(src, file)?));
    }
    if let Some(kind) = super::pcap::Magic::detect(magic) {
        let file = if gz { None } else { plain };
        return Ok(Box::new(PcapReader::new(src, kind, file)?));
    }
    Err(ReadError::NotACapture {
        path: path.to_path_buf(),
        detail: format!(
            "unknown magic number {:02x}{:02x}{:02x}{:02x}",
            magic[0], magic[1], magic[2], magic[3]
        ),
    })
}
