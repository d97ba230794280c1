//! The run summary printed on stderr: what was read, what was skipped and why.

use std::fmt::Write;

use crate::engine::run::RunOutput;

pub fn render(out: &RunOutput) -> String {
    let s = &out.stats;
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "packets: {}  bytes: {}  flows: {}  in {:.3} s ({:.2} M packets/s, {:.1} MiB/s read)",
        // Every record read, including those the reader could not attribute to an interface.
        s.packets + s.reader_skipped,
        s.wire_bytes,
        out.flows.len(),
        secs,
        s.packets as f64 / secs / 1e6,
        out.input_bytes as f64 / secs / (1024.0 * 1024.0),
    );
    let skipped = s.skipped_total();
    if skipped > 0 {
        let _ = writeln!(t, "skipped packets: {skipped} (no flow made from them)");
        for (reason, n) in &s.skipped {
            let _ = writeln!(t, "  {n:>10}  {}", reason.label());
        }
        if s.reader_skipped > 0 {
            let _ = writeln!(
                t,
                "  {:>10}  records the capture file could not attribute (see warnings)",
                s.reader_skipped
            );
        }
    }
    crate::decode::summary::render(s, &mut t);
    if s.fragment_table_full > 0 {
        let _ = writeln!(
            t,
            "fragment table full: {} first fragments not remembered (raise --max-fragments); their later fragments count as orphans",
            s.fragment_table_full
        );
    }
    if s.evicted_flows > 0 {
        let _ = writeln!(
            t,
            "evicted flows: {} (the flow table was full: raise --max-flows; evicted flows were ended early and may be split)",
            s.evicted_flows
        );
    }
    if s.spilled_flows > 0 {
        let _ = writeln!(
            t,
            "finished flows written to the spill directory while running: {} (merged back in order)",
            s.spilled_flows
        );
    }
    if let Some(e) = &s.spill_error {
        let _ = writeln!(t, "warning: {e}");
    }
    for (file, w) in s.warnings.iter().take(20) {
        let _ = writeln!(t, "warning: {file}: byte {}: {}", w.offset, w.detail);
    }
    if s.warnings.len() > 20 {
        let _ = writeln!(t, "warning: ... and {} more", s.warnings.len() - 20);
    }
    if let Some(fi) = &s.flow_input {
        t.push_str(&crate::flowinput::render(fi));
    }
    for e in &out.errors {
        let _ = writeln!(t, "error: {e}");
    }
    t
}
