//! Helpers shared by the fuzz targets.
//!
//! The capture readers only open paths (`flowaudit::capture::open_capture`), so the capture
//! targets write each input to a per-process file in /dev/shm (memory, no disk I/O) and read it
//! back through the same code `flowaudit flows` uses. Every record is then decoded and run
//! through an engine whose tables are tiny, so that flow eviction and the pending-fragment
//! limit are exercised on every input too.

use std::path::PathBuf;

use flowaudit::capture::{open_capture, Batch, ReadError};
use flowaudit::engine::{Engine, EngineConfig};

/// A scratch file private to this fuzzing process.
pub fn scratch_path(suffix: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!(
        "flowaudit-fuzz-{}-{}{}",
        std::process::id(),
        suffix.trim_start_matches('.'),
        suffix
    ))
}

/// Writes `bytes` to the scratch file and reads it as `flowaudit flows` would: every record
/// through the engine (decode, fragments, flow tables), then `finish`. Checks the invariants
/// that hold for any input: every packet is either in a flow or counted as skipped, and errors
/// name the file.
pub fn read_capture(bytes: &[u8], suffix: &str) {
    let path = scratch_path(suffix);
    std::fs::write(&path, bytes).expect("write scratch file");
    let name = path.display().to_string();
    // Removed on the way out, even if an assertion fails (fork mode starts many processes).
    struct Remove<'p>(&'p std::path::Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&path);
    let mut reader = match open_capture(&path) {
        Ok(r) => r,
        Err(e) => {
            check_error(&e, &name);
            return;
        }
    };
    let cfg = EngineConfig {
        max_flows: 64,
        max_pending_fragments: 16,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let mut batch = Batch::default();
    let mut records = 0u64;
    loop {
        batch.clear();
        let r = reader.fill(&mut batch, 64, 1 << 20);
        for i in 0..batch.len() {
            let m = batch.records[i];
            assert_eq!(batch.packet(i).len(), m.caplen as usize);
            assert!(m.orig_len >= m.caplen, "orig_len below caplen: {m:?}");
        }
        records += batch.len() as u64;
        if !batch.is_empty() {
            engine.process(&batch);
        }
        match r {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                check_error(&e, &name);
                break;
            }
        }
    }
    let _ = reader.take_warnings();
    let (flows, stats, _names) = engine.finish();
    let flows = flows.to_vec().expect("flows held in memory read back");
    assert_eq!(stats.packets, records);
    let skipped: u64 = stats.skipped.values().sum();
    assert_eq!(
        stats.flow_packets + skipped,
        stats.packets,
        "every packet is in a flow or counted as skipped: {stats:?}"
    );
    let in_flows: u64 = flows
        .iter()
        .map(|f| f.flow.packets[0] + f.flow.packets[1])
        .sum();
    assert_eq!(in_flows, stats.flow_packets, "flow packet counts add up");
    let evicted = flows.iter().filter(|f| f.flow.evicted).count() as u64;
    assert_eq!(evicted, stats.evicted_flows);
    assert!(stats.peak_live_flows <= 64);
}

fn check_error(e: &ReadError, name: &str) {
    let msg = e.to_string();
    assert!(msg.contains(name), "error does not name the file: {msg}");
    if let ReadError::Corrupt { .. } = e {
        assert!(msg.contains("at byte "), "corrupt without offset: {msg}");
    }
}
