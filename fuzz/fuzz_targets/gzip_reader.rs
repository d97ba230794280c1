//! Captures through the gzip path. The first byte picks the mode:
//! - even: the rest is a capture, gzip-compressed here (so the pcap/pcapng readers run with
//!   no known file size, as for any .gz), then cut short by the second byte's value (0: whole);
//! - odd: the rest is taken as a gzip stream as is (the gzip magic is forced in front), which
//!   fuzzes the decompressor's error paths and how the readers report them.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        let Some((&cut, capture)) = rest.split_first() else {
            return;
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(capture).unwrap();
        let mut v = gz.finish().unwrap();
        v.truncate(v.len().saturating_sub(cut as usize));
        v
    } else {
        let mut v = vec![0x1f, 0x8b];
        v.extend_from_slice(rest);
        v
    };
    flowaudit_fuzz::read_capture(&bytes, ".pcap.gz");
});
