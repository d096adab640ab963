//! Benchmark of `simulate`: the shipped 10-hour morning-rush trace at 15-second steps (2,401
//! evaluate → provision → reap cycles through the real engine, lifecycle and in-memory store).
//! Target: ≤ 2 s.

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::Duration;

fn simulate(c: &mut Criterion) {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations/morning-rush.json");
    let loaded = shared::sim::load(&trace).expect("shipped trace loads");
    assert_eq!(loaded.trace.duration_minutes, 600);
    assert_eq!(loaded.trace.step_seconds, 15);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("morning-rush 10h @15s", |b| {
        b.iter(|| {
            let r = rt.block_on(shared::sim::run(&loaded));
            assert!(!r.summary.max_instances_exceeded);
            r
        })
    });
    g.finish();
}

criterion_group!(benches, simulate);
criterion_main!(benches);
