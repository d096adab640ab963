//! Benchmark of `engine::decide_all`: 1,000 autoscale configs with 20,000 agents and 100,000 sessions
//! (20 agents and 100 sessions each), and 10× and 100× fewer configs to show the cost grows linearly.
//! Target: ≤ 100 ms for the full size on one core. `decide_all_forecast` decides the full size again
//! with predictive scaling on and a three-week history per config (target: ≤ 10 % more).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

mod support;

fn bench(c: &mut Criterion) {
    let now = support::now();
    let mut group = c.benchmark_group("decide_all");
    for configs in [10usize, 100, 1000] {
        let inputs = support::inputs(configs, 20, 100);
        let agents: usize = inputs.iter().map(|i| i.servers.len()).sum();
        group.throughput(Throughput::Elements(configs as u64));
        group.bench_with_input(
            BenchmarkId::new("configs", format!("{configs} ({agents} agents, {} sessions)", configs * 100)),
            &inputs,
            |b, inputs| b.iter(|| black_box(shared::engine::decide_all(black_box(inputs), now))),
        );
    }
    group.finish();
    let mut group = c.benchmark_group("decide_all_forecast");
    let plain = support::inputs(1000, 20, 100);
    let mut forecast = plain.clone();
    support::with_forecasts(&mut forecast);
    group.throughput(Throughput::Elements(1000));
    for (name, inputs) in [("without", &plain), ("with", &forecast)] {
        group.bench_with_input(BenchmarkId::new("1000 configs", name), inputs, |b, inputs| {
            b.iter(|| black_box(shared::engine::decide_all(black_box(inputs), now)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
