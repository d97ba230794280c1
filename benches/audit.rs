//! Criterion benchmark of the audit stage alone (docs/performance.md, "The audit at scale"): the
//! flows of a synthetic capture, read once beforehand, audited against the built-in catalogs with
//! the CIDR inventory `scripts/bench-inventory.csv` (the one `scripts/bench.sh` uses).
//!
//! - `audit/services`: 200 k flows that are 200 k distinct services (every flow its own host pair
//!   and port), the shape where classification and aggregation cost the most.
//!
//! Throughput is in elements = flows. `cargo bench --bench audit` takes about half a minute.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use flowaudit::audit::catalog::Catalogs;
use flowaudit::audit::inventory::Inventory;
use flowaudit::audit::{audit, AuditOptions};
use flowaudit::engine::run::{run_files, RunOptions, RunOutput};
use flowaudit::engine::EngineConfig;
use flowaudit::synth::{generate, SynthSpec};

/// The flows of a capture of `flows` minimum-size flows, all open at once.
fn flows_of(flows: u64) -> RunOutput {
    let dir = std::env::temp_dir().join(format!("flowaudit-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path: PathBuf = dir.join("services.pcap");
    let spec = SynthSpec {
        packets: flows * 4,
        flows,
        concurrent: flows,
        seed: 7,
        small: true,
    };
    let file = std::fs::File::create(&path).expect("capture file");
    generate(&spec, std::io::BufWriter::new(file)).expect("generating the capture");
    let out = run_files(&[path], EngineConfig::default(), &RunOptions::default()).expect("reading");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn bench_audit(c: &mut Criterion) {
    let cat = Catalogs::builtin(&[]).expect("built-in catalogs");
    let text = include_str!("../scripts/bench-inventory.csv");
    let inv = Inventory::parse("bench-inventory.csv", text, &cat.roles).expect("inventory");
    let out = flows_of(200_000);
    let mut g = c.benchmark_group("audit");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(out.flows.len()));
    g.bench_function("services", |b| {
        b.iter(|| {
            let a = audit(&out.flows, &cat, &inv, &out.names, &AuditOptions::default());
            black_box(a.expect("audit").services.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
