//! Builds the benchmark's full-size input (1,000 configs, 20,000 agents, 100,000 sessions) and runs
//! `decide_all` once, so its peak memory can be measured:
//! `cargo build --release -p shared --example decide_rss && /usr/bin/time -v target/release/examples/decide_rss`
//! (target: maximum resident set size ≤ 64 MiB).

#[path = "../benches/support/mod.rs"]
mod support;

fn main() {
    let inputs = support::inputs(1000, 20, 100);
    let started = std::time::Instant::now();
    let plans = shared::engine::decide_all(&inputs, support::now());
    let took = started.elapsed();
    let create: u32 = plans.iter().map(|p| p.create).sum();
    let actions: usize = plans.iter().map(|p| p.actions.len()).sum();
    let reasons: usize = plans.iter().map(|p| p.reasons.len()).sum();
    println!(
        "{} configs, {} agents, {} sessions: {} plans, {create} VMs to create, {actions} actions, {reasons} reasons in {:.1} ms",
        inputs.len(),
        inputs.iter().map(|i| i.servers.len()).sum::<usize>(),
        inputs.iter().map(|i| i.sessions.len()).sum::<usize>(),
        plans.len(),
        took.as_secs_f64() * 1000.0
    );
}
