//! Writing reports: CSV and JSON Lines with stable schemas (docs/reports.md), cells made safe for
//! spreadsheets, files replaced atomically.

pub mod audit;
pub mod flows;

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Version of every report schema this build writes. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Neutralises a cell a spreadsheet would run as a formula (OWASP's CSV-injection advice): cells
/// starting with `=`, `+`, `-`, `@`, tab or CR get a leading apostrophe. Quoting of commas, quotes
/// and newlines is the CSV writer's job.
pub fn safe_cell(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// A file written under a temporary name and renamed into place on `commit`, so a reader never
/// sees half a report. Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report".into());
        let tmp = dest.with_file_name(format!(".{name}.tmp{}", std::process::id()));
        let f = File::create(&tmp)?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
            out: Some(BufWriter::with_capacity(1 << 20, f)),
        })
    }

    pub fn commit(mut self) -> io::Result<()> {
        let out = self.out.take().expect("not yet committed");
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.as_mut().expect("open").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().expect("open").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `dest` atomically with `write`, or to stdout when `dest` is `-`.
pub fn write_output(
    dest: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    match dest {
        None => {
            let stdout = io::stdout();
            let mut lock = BufWriter::new(stdout.lock());
            write(&mut lock)?;
            lock.flush()
        }
        Some(p) if p == Path::new("-") => write_output(None, write),
        // Devices, pipes and the like (/dev/null, a FIFO) are written in place: renaming a
        // temporary file over them would replace the device itself.
        Some(p) if std::fs::metadata(p).is_ok_and(|m| !m.is_file()) => {
            let mut f = BufWriter::new(std::fs::OpenOptions::new().write(true).open(p)?);
            write(&mut f)?;
            f.flush()
        }
        Some(p) => {
            let mut f = AtomicFile::create(p)?;
            write(&mut f)?;
            f.commit()
        }
    }
}

/// Seconds since the epoch with nanoseconds, as Zeek-style logs show times.
pub fn format_ts(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let ns = ts_ns.rem_euclid(1_000_000_000);
    format!("{secs}.{ns:09}")
}

/// TCP flags as letters, in tcpdump's order.
pub fn format_flags(f: u8) -> String {
    use crate::decode::tcp_flags::*;
    let mut s = String::new();
    for (bit, c) in [
        (SYN, 'S'),
        (ACK, 'A'),
        (PSH, 'P'),
        (FIN, 'F'),
        (RST, 'R'),
        (0x20, 'U'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}
