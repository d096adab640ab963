//! The Windows-password fetcher over the in-memory ports, with a provider whose GetPasswordData answers
//! are scripted: "not yet", then a ciphertext made by the openssl CLI and decrypted by the real
//! [`decrypt_windows_password`] (the EC2 path minus the wire, which moto cannot answer with real data).

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use secrecy::SecretString;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::*;
use crate::clock::VirtualClock;
use crate::config::{ConfigFile, ConfigSet};
use crate::kasm::memory::MemoryKasm;
use crate::kasm::{KasmError, KasmServer, ServerKind};
use crate::model::{ClaimId, Instance, InstanceState, OsFamily, OwnerLabels, Resources};
use crate::providers::aws::decrypt_windows_password;
use crate::providers::memory::MemoryProvider;
use crate::providers::{Capabilities, ProviderError, Vm, VmProvider, VmSpec};
use crate::secrets::StaticSecrets;
use crate::store::{MemoryStore, Store, moved};

const PASSWORD: &str = "Wx9!rT-2kLp";

/// One scripted GetPasswordData answer.
#[derive(Debug)]
enum Answer {
    NotYet,
    Ciphertext(String),
    Fail(ProviderError),
}

/// A provider whose `windows_password` plays back answers; everything else is the in-memory provider.
#[derive(Debug)]
struct PasswordProvider {
    inner: MemoryProvider,
    key: SecretString,
    answers: Mutex<VecDeque<Answer>>,
    calls: Mutex<u32>,
    /// What the config says, as AWS's `Capabilities::windows_password` does.
    retrieve: bool,
}

impl PasswordProvider {
    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }
    fn push(&self, a: Answer) {
        self.answers.lock().unwrap().push_back(a);
    }
}

#[async_trait]
impl VmProvider for PasswordProvider {
    fn name(&self) -> &'static str {
        "aws"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { idempotency_token: true, windows_password: self.retrieve, server_side_label_filter: true }
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
        *self.calls.lock().unwrap() += 1;
        match self.answers.lock().unwrap().pop_front().unwrap_or(Answer::NotYet) {
            Answer::NotYet => Ok(None),
            Answer::Ciphertext(ct) => decrypt_windows_password(&ct, &self.key)
                .map(Some)
                .map_err(|e| ProviderError::Invalid { provider: "aws", message: e.to_string() }),
            Answer::Fail(e) => Err(e),
        }
    }
}

struct World {
    ctx: Ctx,
    store: Arc<MemoryStore>,
    kasm: Arc<MemoryKasm>,
    provider: Arc<PasswordProvider>,
    clock: Arc<VirtualClock>,
    ciphertext: String,
}

fn configs(connection_password: bool, retrieve: bool) -> ConfigSet {
    let password = if connection_password { "    connection_password: env:RDP_PASSWORD\n" } else { "" };
    let doc = format!(
        r##"
autoscale_configs:
  - autoscale_config_name: rdp
    autoscale_type: server
    connection_type: RDP
    connection_username: Administrator
{password}    server_pool_id: pool
    zone_id: zone
    vm_provider_config: aws1
vm_provider_configs:
  - provider: aws
    name: aws1
    aws_region: us-east-1
    aws_ec2_ami_id: ami-12c6146b
    aws_ec2_instance_type: t3.medium
    max_instances: 5
    aws_ec2_ebs_volume_size_gb: 60
    aws_ec2_ebs_volume_type: gp3
    ssh_key_name: kasm-key
    retrieve_windows_vm_password: {retrieve}
"##
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("test config parses");
    let mut s = ConfigSet::default();
    s.merge(f);
    s
}

fn world(set: ConfigSet) -> World {
    let (pem, _, ciphertext) = crate::providers::aws::tests::openssl_fixture(PASSWORD);
    let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()));
    let store = Arc::new(MemoryStore::new());
    let kasm = Arc::new(MemoryKasm::new());
    let provider = Arc::new(PasswordProvider {
        inner: MemoryProvider::new(),
        key: SecretString::from(pem),
        answers: Mutex::new(VecDeque::new()),
        calls: Mutex::new(0),
        retrieve: set.provider("aws1").is_some_and(|c| c.common().retrieves_windows_password()),
    });
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("aws1".into(), provider.clone());
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
    World { ctx, store, kasm, provider, clock, ciphertext }
}

/// A claim of `os` that reached `booting` with a VM and a Kasm server record.
async fn booted(w: &World, os: OsFamily) -> Instance {
    let c = Instance::new_claim(ClaimId::generate(w.clock.now()), "rdp", "aws1", "aws", os, w.clock.now());
    assert!(w.store.try_claim(&c, 100).await.unwrap());
    let c = w.store.get(&c.id).await.unwrap().unwrap();
    let c = w.store.update(&moved(&c, InstanceState::Creating, w.clock.now()).unwrap()).await.unwrap();
    let mut b = moved(&c, InstanceState::Booting, w.clock.now()).unwrap();
    b.vm_id = Some(format!("i-{}", c.id));
    let b = w.store.update(&b).await.unwrap();
    w.kasm.upsert_server(KasmServer {
        server_id: b.kasm_server_id.clone(),
        kind: ServerKind::Server,
        hostname: Some(b.vm_name.clone()),
        public_ip: None,
        zone_id: "zone".into(),
        friendly_name: None,
        autoscale_config_id: None,
        server_pool_id: Some("pool".into()),
        enabled: true,
        operational_status: "starting".into(),
        last_reported: None,
        reported: Resources::default(),
        overridden: Resources::default(),
        allocated: Resources::default(),
        max_sessions: Some(1),
        agent_installed: false,
    });
    b
}

#[tokio::test]
async fn not_yet_then_the_decrypted_password_reaches_kasm_once() {
    let w = world(configs(false, true));
    let c = booted(&w, OsFamily::Windows).await;

    w.provider.push(Answer::NotYet);
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep.not_yet, vec![c.id.clone()], "{rep:?}");
    assert!(rep.set.is_empty() && rep.errors.is_empty());
    assert!(!w.kasm.has_password(&c.kasm_server_id));

    w.clock.advance(Duration::minutes(5));
    w.provider.push(Answer::Ciphertext(w.ciphertext.clone()));
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep.set, vec![c.id.clone()], "{rep:?}");
    assert!(w.kasm.password_is(&c.kasm_server_id, PASSWORD), "Kasm did not get the decrypted password");
    let stored = w.store.get(&c.id).await.unwrap().unwrap();
    assert!(stored.password_set);
    let record = serde_json::to_string(&stored).unwrap();
    assert!(!record.contains(PASSWORD), "the password was stored on the claim");
    assert!(!format!("{rep:?}").contains(PASSWORD));

    // Marked: later passes leave it alone.
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep, PasswordReport::default());
    assert_eq!(w.provider.calls(), 2);
}

#[tokio::test]
async fn it_gives_up_after_the_wait_budget_and_says_why_once() {
    let w = world(configs(false, true));
    let c = booted(&w, OsFamily::Windows).await;
    assert!(w.ctx.tuning.password_wait_seconds >= 15 * 60);

    w.clock.advance(Duration::seconds(w.ctx.tuning.password_wait_seconds as i64 - 60));
    assert_eq!(fetch_password(&w.ctx).await.not_yet, vec![c.id.clone()]);

    w.clock.advance(Duration::seconds(120));
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep.gave_up, vec![c.id.clone()], "{rep:?}");
    let stored = w.store.get(&c.id).await.unwrap().unwrap();
    assert!(stored.last_error.as_deref().is_some_and(|e| e.contains("gave up waiting for the Windows password")));
    assert!(!stored.password_set);
    let calls = w.provider.calls();

    // Past the budget the provider is not asked again and the claim is not rewritten.
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep.gave_up, vec![c.id.clone()]);
    assert_eq!(w.provider.calls(), calls);
    assert_eq!(w.store.get(&c.id).await.unwrap().unwrap().version, stored.version);
}

#[tokio::test]
async fn only_windows_claims_without_a_configured_password_are_fetched() {
    // The autoscale config has its own connection password: the generated one is not used.
    let w = world(configs(true, true));
    booted(&w, OsFamily::Windows).await;
    assert_eq!(fetch_password(&w.ctx).await, PasswordReport::default());
    // The provider config does not retrieve passwords.
    let w2 = world(configs(false, false));
    booted(&w2, OsFamily::Windows).await;
    assert_eq!(fetch_password(&w2.ctx).await, PasswordReport::default());
    // Linux claims never have one.
    let w3 = world(configs(false, true));
    booted(&w3, OsFamily::Linux).await;
    assert_eq!(fetch_password(&w3.ctx).await, PasswordReport::default());
    assert_eq!(w.provider.calls() + w2.provider.calls() + w3.provider.calls(), 0);
}

#[tokio::test]
async fn failures_are_reported_and_retried_without_marking_the_claim() {
    let w = world(configs(false, true));
    let c = booted(&w, OsFamily::Windows).await;

    // A key that does not fit (decryption fails): reported, nothing revealed, retried later.
    w.provider.push(Answer::Ciphertext("bm90IGEgY2lwaGVydGV4dA==".into()));
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert!(rep.errors[0].contains("RSA decryption failed"), "{rep:?}");

    // Kasm down: the decrypted password is not lost for good, the next pass sets it.
    w.kasm.fail_with(Some(KasmError::Unreachable { call: "update_server".into(), message: "refused".into() }));
    w.provider.push(Answer::Ciphertext(w.ciphertext.clone()));
    let rep = fetch_password(&w.ctx).await;
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert!(!format!("{rep:?}").contains(PASSWORD));
    assert!(!w.store.get(&c.id).await.unwrap().unwrap().password_set);

    w.kasm.fail_with(None);
    w.provider.push(Answer::Fail(ProviderError::RateLimited {
        provider: "aws",
        message: "RequestLimitExceeded".into(),
        retry_after: None,
    }));
    assert_eq!(fetch_password(&w.ctx).await.errors.len(), 1);
    w.provider.push(Answer::Ciphertext(w.ciphertext.clone()));
    assert_eq!(fetch_password(&w.ctx).await.set, vec![c.id.clone()]);
    assert!(w.kasm.password_is(&c.kasm_server_id, PASSWORD));
}

#[test]
fn claims_stored_before_the_marker_existed_read_as_not_set() {
    let c = Instance::new_claim(ClaimId("01old".into()), "rdp", "aws1", "aws", OsFamily::Windows, Utc::now());
    let mut v = serde_json::to_value(&c).unwrap();
    v.as_object_mut().unwrap().remove("password_set").expect("the field is serialized");
    let back: Instance = serde_json::from_value(v).unwrap();
    assert!(!back.password_set);
}
