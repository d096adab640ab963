//! One scheduled evaluation of 100 autoscale configs against the DynamoDB store on moto: how long it
//! takes and how many DynamoDB requests it makes per config, in steady state (nothing to create or
//! destroy). `cargo bench -p integration-tests --bench evaluate_moto`; needs moto (see
//! `integration_tests::moto`). Kasm and the VMs are in memory, so the time is the store's and moto's.
//! `EVALUATE_MOTO_CONFIGS` and `EVALUATE_MOTO_RUNS` change the defaults (100 configs, 10 runs).
//!
//! moto copies the whole table before every TransactWriteItems (its rollback snapshot), so a
//! transaction there costs in proportion to the table, which grows by two decision items per config
//! and run: later runs are slower, and the per-operation times show where it goes. The table is the
//! store's without a stream, which moto would copy too (the store never reads it).

use integration_tests::evaluation::{EvalWorld, OpStats};
use integration_tests::moto::Moto;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PROVIDER_CONFIGS: usize = 4;

/// `name` from the environment (for quick trials), else `default`.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let configs = knob("EVALUATE_MOTO_CONFIGS", 100);
    let runs = knob("EVALUATE_MOTO_RUNS", 10);
    // Its own server, one that does not leak a copy of the table per transaction and that isolates
    // the evaluation's concurrent transactions as DynamoDB does (see `Moto::start_untracked`): a
    // shared one grows by gigabytes over a run.
    let moto = Moto::start_untracked();
    let w = EvalWorld::new_without_stream(&moto, configs, PROVIDER_CONFIGS).await;
    eprintln!("evaluate_moto: reaching steady state with {configs} configs...");
    w.reach_steady_state().await;

    let mut times = Vec::with_capacity(runs);
    let mut calls_per_run = Vec::with_capacity(runs);
    let mut ops: BTreeMap<String, OpStats> = BTreeMap::new();
    for run in 0..runs {
        eprintln!("evaluate_moto: run {}/{runs}", run + 1);
        w.calls.reset();
        let start = Instant::now();
        let out = w.evaluate().await;
        times.push(start.elapsed());
        for o in &out {
            let plan = o.result.as_ref().unwrap_or_else(|e| panic!("{}: {e}", o.autoscale_config));
            assert!(plan.create == 0 && plan.actions.is_empty(), "{} left steady state", o.autoscale_config);
        }
        calls_per_run.push(w.calls.total());
        for (op, s) in w.calls.by_operation() {
            let t = ops.entry(op).or_default();
            t.count += s.count;
            t.waited += s.waited;
            t.server_errors += s.server_errors;
        }
    }

    let per_config = |n: f64| format!("{:.2}", n / configs as f64);
    let mut sorted = times.clone();
    sorted.sort();
    let (min, median, max) = (sorted[0], sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    let (lo, hi) = (calls_per_run.iter().min().copied(), calls_per_run.iter().max().copied());
    let calls = match (lo, hi) {
        (Some(lo), Some(hi)) if lo == hi => per_config(lo as f64),
        (Some(lo), Some(hi)) => format!("{} to {}", per_config(lo as f64), per_config(hi as f64)),
        _ => "-".into(),
    };

    println!("evaluate_moto: app::evaluate(ctx, None, \"schedule\") of {configs} autoscale configs over");
    println!(
        "{PROVIDER_CONFIGS} provider configs, one running VM each, steady state; DynamoDB store on moto; {runs} runs"
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| evaluation, min | {} |", ms(min));
    println!("| evaluation, median | {} |", ms(median));
    println!("| evaluation, max | {} |", ms(max));
    println!("| per config, median | {} |", ms(median / configs as u32));
    println!("| DynamoDB requests per config | {calls} |");
    println!();
    println!("| operation | requests per config | mean time per request | 5xx answers (sent again) |");
    println!("|---|---|---|---|");
    for (op, s) in &ops {
        let mean = if s.count == 0 { Duration::ZERO } else { s.waited / s.count as u32 };
        println!("| {op} | {} | {} | {} |", per_config(s.count as f64 / runs as f64), ms(mean), s.server_errors);
    }
    println!();
    let each: Vec<String> = times.iter().map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0)).collect();
    println!("runs in order (ms; the table grows by {} decision items per run): {}", 2 * configs, each.join(", "));
}
