//! Builds the benchmark's full-size input (1,000 configs, 20,000 agents, 100,000 sessions) and runs
//! `decide_all` once, so its peak memory can be measured:
//! `cargo build --release -p shared --example decide_rss && /usr/bin/time -v target/release/examples/decide_rss`
//! (`--repeat N` decides N times and prints the median)
//! (target: maximum resident set size ≤ 64 MiB). With `--forecast`, every config has predictive
//! scaling on and a three-week demand history (the benchmark's `with_forecasts`).

#[path = "../benches/support/mod.rs"]
mod support;

/// Peak resident set so far (Linux `VmHWM`), in KiB; `None` elsewhere.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut inputs = support::inputs(1000, 20, 100);
    if std::env::args().any(|a| a == "--forecast") {
        support::with_forecasts(&mut inputs);
        let history: usize = inputs
            .iter()
            .filter_map(|i| i.control.history.as_ref())
            .map(|h| std::mem::size_of_val(&h.buckets[..]) + h.boot_seconds.len() * 4)
            .sum();
        println!("forecast on: histories hold {} KiB in all", history / 1024);
    }
    let before = peak_kib();
    // `--repeat N`: decide N times and report the median (a benchmark without criterion's build).
    let args: Vec<String> = std::env::args().collect();
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let mut times = Vec::with_capacity(repeat);
    let mut plans = Vec::new();
    for _ in 0..repeat {
        let started = std::time::Instant::now();
        plans = shared::engine::decide_all(&inputs, support::now());
        times.push(started.elapsed());
        let _ = std::hint::black_box(&plans);
    }
    times.sort();
    let took = times[times.len() / 2];
    if repeat > 1 {
        println!(
            "{repeat} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
            times[0].as_secs_f64() * 1000.0,
            took.as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        );
    }
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
