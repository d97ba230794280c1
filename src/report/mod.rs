//! Writing reports: CSV and JSON Lines with stable schemas (docs/reports.md), cells made safe for
//! spreadsheets, files replaced atomically.

pub mod audit;
pub mod audit_jsonl;
pub mod flows;
pub mod flows_jsonl;
pub mod html;
pub mod manifest;
pub mod rows;
pub mod summary;
pub mod time;

pub use time::{format_iso, push_duration, push_iso};

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Version of every report schema this build writes. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 4;

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

/// Seconds since the epoch with nanoseconds, as Zeek-style logs show times (the `*_epoch`
/// columns of flows.csv; every other report time is [`format_iso`]'s).
pub fn format_ts(ts_ns: i64) -> String {
    let mut buf = Vec::with_capacity(20);
    push_ts(&mut buf, ts_ns);
    String::from_utf8(buf).expect("digits and a dot")
}

/// TCP flags as letters, in tcpdump's order.
pub fn format_flags(f: u8) -> String {
    let mut buf = Vec::with_capacity(6);
    push_flags(&mut buf, f);
    String::from_utf8(buf).expect("ASCII letters")
}

// The push_* functions append to a report buffer without `fmt`: with a million flows the
// `write!` machinery was most of the time spent writing flows.csv.

/// Appends [`format_ts`]'s text.
pub fn push_ts(buf: &mut Vec<u8>, ts_ns: i64) {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let ns = ts_ns.rem_euclid(1_000_000_000) as u32;
    buf.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
    buf.push(b'.');
    // Nine digits, leading zeros included: 1_000_000_000 + ns has ten, the first a 1.
    buf.extend_from_slice(&itoa::Buffer::new().format(1_000_000_000 + ns).as_bytes()[1..]);
}

/// Appends [`format_flags`]'s text.
pub fn push_flags(buf: &mut Vec<u8>, f: u8) {
    use crate::decode::tcp_flags::*;
    for (bit, c) in [
        (SYN, b'S'),
        (ACK, b'A'),
        (PSH, b'P'),
        (FIN, b'F'),
        (RST, b'R'),
        (0x20, b'U'),
    ] {
        if f & bit != 0 {
            buf.push(c);
        }
    }
}

/// Appends a number in decimal.
pub fn push_int(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends an address as [`Addr`]'s `Display` shows it (IPv4 dotted, IPv6 by the standard
/// library), the common IPv4 case without `fmt`.
pub fn push_addr(buf: &mut Vec<u8>, a: crate::decode::Addr) {
    match a.to_ip() {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                push_int(buf, o);
            }
        }
        ip => {
            use std::io::Write as _;
            let _ = write!(buf, "{ip}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;

    #[test]
    fn timestamps_print_as_seconds_and_nine_digits_of_nanoseconds() {
        assert_eq!(format_ts(1_506_883_716_995_391_962), "1506883716.995391962");
        assert_eq!(format_ts(1_000_000_000), "1.000000000");
        assert_eq!(format_ts(7), "0.000000007");
        // Before the epoch the seconds round down and the fraction stays positive: -1 ns is
        // second -1 plus 999,999,999 ns.
        assert_eq!(format_ts(-1), "-1.999999999");
        assert_eq!(format_ts(i64::MIN), "-9223372037.145224192");
    }

    #[test]
    fn flags_and_addresses_print_like_their_display_forms() {
        assert_eq!(format_flags(0x3f), "SAPFRU");
        assert_eq!(format_flags(0x12), "SA");
        assert_eq!(format_flags(0), "");
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "2001:db8::1",
            "::",
            "::1",
        ] {
            let mut buf = Vec::new();
            push_addr(
                &mut buf,
                Addr::from(ip.parse::<std::net::IpAddr>().unwrap()),
            );
            assert_eq!(String::from_utf8(buf).unwrap(), ip);
        }
    }
}
