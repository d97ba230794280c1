//! Inputs the fuzzers found crashes with, kept so they stay fixed (docs/fuzzing.md says how
//! each was found).
//!
//! `tests/data/fuzz/capture_reader/`: six of the 32 inputs with which the `capture_reader`
//! target crashed right after plain pcap files started being read through memory maps. All 32
//! hit one wrong `debug_assert!` in `Batch::record_at`, which checked a mapped record against
//! the batch's own (empty) buffer instead of the mapped window, so builds with debug assertions
//! (the fuzzer's `-a`, a debug `cargo test`) panicked on every mapped record. Release builds
//! were not affected. These run in both builds: through the map and through read calls, with
//! the fuzzer's tiny tables, and must agree with each other and with an independent count.

use std::path::Path;

use flowaudit::capture::ReadError;
use flowaudit::engine::EngineConfig;

mod common;

/// (file, records, byte offset of the damage if any). Counted independently by walking the
/// record headers in Python (`struct.unpack` of the 24-byte file header, then 16-byte record
/// headers, 24-byte ones for the "modified" magic 0xa1b2cd34, until caplen passes the end).
const CAPTURE_READER: &[(&str, u64, Option<u64>)] = &[
    // Big-endian, nanosecond, link type 113 (Linux SLL): three records.
    ("crash-0b33ace3f4355245b51a2f1ba672b278ed22031e", 3, None),
    ("crash-3bc49a98319c23b24ceddc16b8259ce101261417", 1, None),
    // The "modified" pcap format (24-byte record headers).
    ("crash-7eb0e61ccfcfd6743fd2fd1eee1d0dbc862f16e4", 1, None),
    ("crash-970fce660f10b4196812cb7b55a27c65a4e7eea7", 1, None),
    // The second record claims caplen 1,409,179,648 with 141 bytes left.
    (
        "crash-9f98a643e025e0611f61dde8dbaae1cc75bad3b6",
        1,
        Some(228),
    ),
    ("crash-e077807923ec2aab65223b7c308c0ae136632859", 2, None),
];

#[test]
fn capture_reader_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/capture_reader");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let listed: Vec<&str> = CAPTURE_READER.iter().map(|c| c.0).collect();
    assert_eq!(
        files,
        listed,
        "every input in {} has its expected counts here",
        dir.display()
    );

    for &(file, records, damage) in CAPTURE_READER {
        let cfg = EngineConfig {
            max_flows: 64,
            max_pending_fragments: 16,
            ..EngineConfig::default()
        };
        let out = common::run_mapped_and_read(&dir.join(file), cfg)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(out.stats.packets, records, "{file}");
        let offsets: Vec<Option<u64>> = out
            .errors
            .iter()
            .map(|e| match e {
                ReadError::Corrupt { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        match damage {
            Some(at) => assert_eq!(offsets, [Some(at)], "{file}"),
            None => assert!(offsets.is_empty(), "{file}: {offsets:?}"),
        }
    }
}
