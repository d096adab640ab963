//! The local daemon over the embedded state file: stop it, start it again, and it resumes — claims
//! kept, and a claim a crashed evaluation left in `requested` is provisioned by the next start.

use chrono::Utc;
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use secrecy::SecretString;
use shared::app::{Ctx, Tuning};
use shared::clock::SystemClock;
use shared::config::{ConfigFile, ConfigSet};
use shared::daemon::{self, Metrics, Options};
use shared::kasm::KasmClient;
use shared::model::{ClaimId, Instance, InstanceState, OsFamily};
use shared::ports::{Store, VmProvider};
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::{EmbeddedStore, InstanceFilter};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn configs(url: &str) -> ConfigSet {
    let doc = format!(
        r#"
settings:
  deployment_id: restart-test
  kasm: {{url: "{url}", api_key: k, api_key_secret: "env:UNUSED"}}
autoscale_configs:
  - {{autoscale_config_name: agents, server_pool_id: pool, zone_id: zone, vm_provider_config: prov,
      standby_cores: 8, agent_cores_override: 4, agent_memory_override_gb: 8}}
vm_provider_configs:
  - {{provider: proxmox, name: prov, max_instances: 5, host: "pve:8006", username: kasm@pve,
      token_name: t, token_value: "env:PVE_TOKEN", verify_ssl: true, vmid_range_lower: 9000,
      vmid_range_upper: 9099, full_clone: true, template_name: tpl, cluster_node_name: pve1,
      vm_cores: 4, vm_memory: 8, installed_os_type: linux, startup_script_path: /tmp/s.sh}}
"#
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("config parses");
    let mut s = ConfigSet::default();
    s.merge(f);
    s
}

fn ctx(state: &Path, kasm: &KasmTestServer, provider: &Arc<MemoryProvider>) -> Ctx {
    let set = configs(&kasm.url);
    let client = KasmClient::new(set.settings.kasm.as_ref().unwrap(), SecretString::from("s".to_string())).unwrap();
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("prov".into(), provider.clone());
    Ctx {
        store: Arc::new(EmbeddedStore::open(state).expect("state file opens")),
        kasm: Arc::new(client),
        secrets: Arc::new(StaticSecrets::default()),
        clock: Arc::new(SystemClock),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: format!("daemon-{}", ulid_like()),
        tuning: Tuning::default(),
    }
}

fn ulid_like() -> String {
    ClaimId::generate(Utc::now()).0
}

async fn run_until(ctx: Ctx, mut done: impl AsyncFnMut(&dyn Store) -> bool) {
    let store = ctx.store.clone();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let opts = Options { interval: Duration::from_secs(3600), ..Options::default() };
    let h = tokio::spawn(daemon::run(ctx, opts, Arc::new(Metrics::default()), rx, None));
    // A generous bound: under CI's parallel load (two cores, every test binary at once) the first
    // evaluation and the provisioner can take several seconds.
    let mut ok = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if done(store.as_ref()).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = std::time::Instant::now();
    stop.send(true).unwrap();
    h.await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "shutdown took {:?}", t.elapsed());
    assert!(ok, "condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_resumes_from_its_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let kasm = KasmTestServer::start("k", "s", AcceptAuth::Either).await;
    let provider = Arc::new(MemoryProvider::new());

    // First run: 8 standby cores, 4 per VM → two VMs.
    run_until(ctx(&state, &kasm, &provider), async |s| {
        s.list(&InstanceFilter { states: vec![InstanceState::Booting], ..Default::default() }).await.unwrap().len() == 2
    })
    .await;
    assert_eq!(provider.vms().len(), 2);

    // Between runs: an evaluation claimed a third VM and died before any provider call.
    {
        let store = EmbeddedStore::open(&state).unwrap();
        let c = Instance::new_claim(
            ClaimId::generate(Utc::now()),
            "agents",
            "prov",
            "proxmox",
            OsFamily::Linux,
            Utc::now(),
        );
        assert!(store.try_claim(&c, 5).await.unwrap());
    }

    // Second run: the claims are still there, and the orphaned request is provisioned — once.
    run_until(ctx(&state, &kasm, &provider), async |s| {
        s.list(&InstanceFilter { states: vec![InstanceState::Booting], ..Default::default() }).await.unwrap().len() == 3
    })
    .await;
    assert_eq!(provider.vms().len(), 3);
    let store = EmbeddedStore::open(&state).unwrap();
    assert_eq!(store.count_owned("prov").await.unwrap(), 3);
}
