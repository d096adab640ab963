//! Builds the benchmark's full-size input (1,000 configs, 20,000 agents, 100,000 sessions) and runs
//! `decide_all` once, so its peak memory can be measured:
//! `cargo build --release -p shared --example decide_rss && /usr/bin/time -v target/release/examples/decide_rss`
//! (target: maximum resident set size ≤ 64 MiB).

#[path = "../benches/support/mod.rs"]
mod support;

/// Peak resident set so far (Linux `VmHWM`), in KiB; `None` elsewhere.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let inputs = support::inputs(1000, 20, 100);
    let before = peak_kib();
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
    if let (Some(before), Some(after)) = (before, peak_kib()) {
        println!("peak RSS: {before} KiB with the input built, {after} KiB after decide_all");
    }
}
