//! The handler over the in-memory ports and a provider whose Windows password appears after a while,
//! fed the payloads in `events/windows-password-fetcher/`.

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use shared::app::Tuning;
use shared::clock::{Clock, VirtualClock};
use shared::config::{ConfigFile, ConfigSet};
use shared::kasm::KasmApi;
use shared::kasm::memory::MemoryKasm;
use shared::model::{ClaimId, Instance, OsFamily, OwnerLabels};
use shared::ports::{Store, VmProvider};
use shared::providers::memory::MemoryProvider;
use shared::providers::{Capabilities, ProviderError, Vm, VmSpec};
use shared::secrets::StaticSecrets;
use shared::store::MemoryStore;

/// The in-memory provider, plus a Windows password that is "not ready" until `ready` is set.
#[derive(Debug, Default)]
struct WindowsProvider {
    inner: MemoryProvider,
    ready: AtomicBool,
}

#[async_trait]
impl VmProvider for WindowsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.windows_password = true;
        c
    }
    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.inner.create_vm(spec).await
    }
    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        self.inner.get_vm(id).await
    }
    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.inner.delete_vm(id).await
    }
    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.inner.list_vms(labels).await
    }
    async fn windows_password(&self, _id: &str) -> Result<Option<SecretString>, ProviderError> {
        Ok(self.ready.load(Ordering::SeqCst).then(|| SecretString::from("Pa55-w0rd!".to_string())))
    }
}

fn json(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/windows-password-fetcher").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// A fixture read the way the function reads its payload: into its typed event.
fn event(name: &str) -> Event {
    read(json(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What the function answers to a fixture, as the JSON the caller receives.
async fn invoke(ctx: &Ctx, name: &str) -> Value {
    serde_json::to_value(handle(ctx, event(name), &Metrics::default()).await).unwrap()
}

#[test]
fn every_fixture_reads_as_its_typed_event() {
    assert!(matches!(event("schedule-every-2-minutes.json"), Event::Schedule(e) if e.detail_type == "Scheduled Event"));
    assert!(matches!(event("dynamodb-stream-windows-booting.json"), Event::Stream(b) if b.records.len() == 1));
    assert!(matches!(event("direct-fetch-now.json"), Event::Direct));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/windows-password-fetcher");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 3, "a new fixture: add it above");
    let e = read(serde_json::json!({"claim": "x"})).expect_err("refused");
    assert!(e.0.starts_with("direct invocation: unknown field `claim`"), "{e}");
}

async fn world() -> (Ctx, Arc<MemoryKasm>, Arc<WindowsProvider>, Arc<VirtualClock>, String) {
    let doc = r#"
autoscale_configs:
  - {autoscale_config_name: windows, autoscale_type: server, server_pool_id: pool, zone_id: zone,
     vm_provider_config: aws-win, connection_type: RDP, minimum_pool_standby_sessions: 1}
vm_provider_configs:
  - {provider: aws, name: aws-win, aws_region: us-east-1, aws_ec2_ami_id: ami-12c6146b,
     aws_ec2_instance_type: t3.large, max_instances: 3, aws_ec2_ebs_volume_size_gb: 60,
     aws_ec2_ebs_volume_type: gp3, retrieve_windows_vm_password: true, ssh_key_name: kasm-win}
"#;
    let f: ConfigFile = serde_yaml_ng::from_str(doc).unwrap();
    let mut set = ConfigSet::default();
    set.merge(f);
    let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
    let store = Arc::new(MemoryStore::new());
    let kasm = Arc::new(MemoryKasm::new());
    let provider = Arc::new(WindowsProvider::default());
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("aws-win".into(), provider.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: kasm.clone(),
        secrets: Arc::new(StaticSecrets::default()),
        clock: clock.clone(),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    // A Windows server claimed and created: the provisioner made its VM and its Kasm server record.
    let now = clock.now();
    let c = Instance::new_claim(ClaimId::generate(now), "windows", "aws-win", "aws", OsFamily::Windows, now);
    assert!(store.try_claim(&c, 3).await.unwrap());
    let r = app::provision(&ctx, &c.id).await.unwrap();
    assert!(matches!(r, app::ProvisionOutcome::Created { .. }), "{r:?}");
    // The claim now holds the id Kasm gave the record made for it.
    let c = store.get(&c.id).await.unwrap().unwrap();
    assert!(kasm.list_servers().await.unwrap().iter().any(|s| s.server_id == c.kasm_server_id));
    (ctx, kasm, provider, clock, c.kasm_server_id)
}

#[tokio::test]
async fn the_password_reaches_kasm_once_it_is_ready() {
    let (ctx, kasm, provider, clock, server_id) = world().await;
    let out = invoke(&ctx, "schedule-every-2-minutes.json").await;
    assert_eq!(out["not_yet"].as_array().unwrap().len(), 1, "{out}");
    assert!(!kasm.has_password(&server_id));

    provider.ready.store(true, Ordering::SeqCst);
    clock.advance(Duration::minutes(4));
    let out = invoke(&ctx, "dynamodb-stream-windows-booting.json").await;
    assert_eq!(out["set"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    assert!(kasm.has_password(&server_id));
    assert!(!out.to_string().contains("Pa55-w0rd!"), "password in the response");

    // Done once: the next pass has nothing to do.
    let out = invoke(&ctx, "direct-fetch-now.json").await;
    assert_eq!(out["set"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(out["not_yet"].as_array().unwrap().len(), 0, "{out}");
}
