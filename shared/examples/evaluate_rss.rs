//! The scale-evaluator's own memory over 1,000 configs, measured on the path it runs
//! (`app::evaluate`: Kasm read once for all configs, then `evaluation_concurrency` configs at a time,
//! each reading its claims and control record — with its demand history — from the store, deciding,
//! and writing back), rather than `decide_rss`'s 1,000 engine inputs held at once:
//! `cargo build --release -p shared --example evaluate_rss && target/release/examples/evaluate_rss [--forecast]`
//!
//! The same data as `decide_rss` (`benches/support`: 1,000 configs, 20,000 agents, 100,000 sessions;
//! with `--forecast` predictive scaling on and a three-week history per config), except that every
//! config has its own server pool (the app scopes Kasm's records by zone and pool; one pool for all would
//! give every config every record). The claims and control records sit in the in-memory store and the
//! agents and sessions in a Kasm stand-in before the evaluation starts: on AWS they are in DynamoDB and
//! the Kasm manager, not in the function. So the figure that matters is the **evaluation's own peak**:
//! the peak resident set while `app::evaluate` runs (Linux `VmHWM`, reset just before through
//! `/proc/self/clear_refs`) minus the resident set before it. Both are printed.

#[path = "../benches/support/mod.rs"]
mod support;

use async_trait::async_trait;
use secrecy::SecretString;
use shared::app::{Ctx, Tuning, evaluate};
use shared::clock::VirtualClock;
use shared::config::{ConfigFile, ConfigSet};
use shared::kasm::{EnsuredServer, KasmApi, KasmError, KasmServer, KasmSession, KasmStagingConfig, NewServer};
use shared::ports::VmProvider;
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::Store;
use shared::store::memory::MemoryStore;
use std::collections::HashMap;
use std::sync::Arc;

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`); `None` elsewhere.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident set to the current one (Linux ≥ 4.0: `5` in `clear_refs`).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The Kasm manager's answers, as the HTTP client would hand them over: every call of `list_*` returns
/// fresh vectors (the client parses a new body each time). Writes succeed and change nothing.
#[derive(Debug)]
struct KasmStandIn {
    servers: Vec<KasmServer>,
    sessions: Vec<KasmSession>,
}

#[async_trait]
impl KasmApi for KasmStandIn {
    async fn list_servers(&self) -> Result<Vec<KasmServer>, KasmError> {
        Ok(self.servers.clone())
    }
    async fn list_sessions(&self) -> Result<Vec<KasmSession>, KasmError> {
        Ok(self.sessions.clone())
    }
    async fn list_staging_configs(&self) -> Result<Vec<KasmStagingConfig>, KasmError> {
        Ok(Vec::new())
    }
    async fn set_enabled(&self, _: &str, _: bool) -> Result<(), KasmError> {
        Ok(())
    }
    async fn delete_server(&self, _: &str) -> Result<(), KasmError> {
        Ok(())
    }
    async fn find_by_name(&self, _: &str) -> Result<Option<KasmServer>, KasmError> {
        Ok(None)
    }
    async fn ensure_server(&self, new: &NewServer) -> Result<EnsuredServer, KasmError> {
        Err(KasmError::Config { message: format!("the benchmark makes no records ({})", new.friendly_name) })
    }
    async fn set_hostname(&self, _: &str, _: &str) -> Result<(), KasmError> {
        Ok(())
    }
    async fn set_connection_password(&self, _: &str, _: &SecretString) -> Result<(), KasmError> {
        Ok(())
    }
}

/// One provider config for every autoscale config, with room for every claim.
const PROVIDER: &str = r##"
vm_provider_configs:
  - provider: proxmox
    name: provider
    max_instances: 100000
    host: pve.example.com:8006
    username: kasm@pve
    token_name: autoscale
    token_value: env:PVE_TOKEN
    verify_ssl: true
    vmid_range_lower: 1000
    vmid_range_upper: 999999
    full_clone: true
    template_name: ubuntu-kasm
    cluster_node_name: pve1
    vm_cores: 8
    vm_memory: 32
    installed_os_type: linux
    startup_script_path: /tmp/kasm-startup.sh
    startup_script: "#!/bin/sh\necho {server_id}"
"##;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let forecast = std::env::args().any(|a| a == "--forecast");
    let mut inputs = support::inputs(1000, 20, 100);
    for (c, input) in inputs.iter_mut().enumerate() {
        let pool = format!("pool-{c}");
        for s in &mut input.servers {
            s.server_pool_id = Some(pool.clone());
        }
        input.config.server_pool_id = pool;
    }
    if forecast {
        support::with_forecasts(&mut inputs);
    }

    let store = Arc::new(MemoryStore::new());
    let mut configs = ConfigSet::default();
    configs.merge(serde_yaml_ng::from_str::<ConfigFile>(PROVIDER).expect("the provider config parses"));
    let (mut servers, mut sessions) = (Vec::new(), Vec::new());
    for input in inputs {
        let name = input.config.autoscale_config_name.clone();
        for inst in &input.instances {
            assert!(store.try_claim(inst, u32::MAX).await.expect("claim"), "claim refused");
        }
        store.put_control(&name, &input.control, 0).await.expect("control record");
        servers.extend(input.servers);
        sessions.extend(input.sessions);
        configs.autoscale_configs.push(input.config);
    }
    let n_configs = configs.autoscale_configs.len();
    let (n_servers, n_sessions) = (servers.len(), sessions.len());
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("provider".into(), Arc::new(MemoryProvider::new()));
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(KasmStandIn { servers, sessions }),
        secrets: Arc::new(StaticSecrets::default()),
        clock: Arc::new(VirtualClock::new(support::now())),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(configs),
        holder: "evaluate-rss".into(),
        tuning: Tuning::default(),
    };

    let before = status_kib("VmRSS:");
    let reset = reset_peak();
    let started = std::time::Instant::now();
    let outcomes = evaluate(&ctx, None, "benchmark").await;
    let took = started.elapsed();
    let peak = status_kib("VmHWM:");

    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.autoscale_config)))
        .collect();
    assert!(failed.is_empty(), "{} evaluations failed, first: {}", failed.len(), failed[0]);
    let claimed: usize = outcomes.iter().map(|o| o.claimed.len()).sum();
    println!(
        "{n_configs} configs (forecasts {}), {n_servers} agents, {n_sessions} sessions: {} evaluated, {claimed} claims in {:.1} ms (concurrency {})",
        if forecast { "on, three-week histories" } else { "off" },
        outcomes.len(),
        took.as_secs_f64() * 1000.0,
        ctx.tuning.evaluation_concurrency
    );
    match (before, peak, reset) {
        (Some(before), Some(peak), true) => println!(
            "resident before the evaluation: {before} KiB (store and Kasm stand-in loaded); peak during it: {peak} KiB; the evaluation's own peak: {} KiB ({:.1} MiB)",
            peak.saturating_sub(before),
            peak.saturating_sub(before) as f64 / 1024.0
        ),
        _ => println!("peak resident set not measurable here (needs Linux /proc/self/status and clear_refs)"),
    }
}
