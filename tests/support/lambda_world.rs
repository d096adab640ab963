//! The serverless deployment as a test world, for any VM provider (PROVIDER-CHECKLIST point 9: "the
//! Lambda provisioner/reaper handlers drive it too").
//!
//! moto holds the DynamoDB table and the secrets; the Kasm stand-in reports load; each of the four
//! function binaries runs against its own local Runtime API, exactly as on Lambda (`main.rs` wiring,
//! cold start from `KASM_AUTOSCALE_STORE`, events in, responses out). The configs are written with the
//! real `kasm-autoscale apply`. The test plays EventBridge and the DynamoDB event source mappings
//! ([`LambdaWorld::stream`] reads the real stream records to hand to the provisioner and the reaper).
//! The VM provider is whatever the configs name: moto's EC2, or a provider's test server reached
//! through the config's `endpoint_url`.

use crate::kasm_server::KasmTestServer;
use crate::moto::Moto;
use crate::runtime_api::{FUNCTIONS, FunctionProcess, RuntimeApi, target_profile_dir, workspace_binaries};
use crate::streams::StreamReader;
use serde_json::{Value, json};
use shared::model::Instance;
use shared::ports::Store;
use shared::store::{DynamoDbStore, InstanceFilter};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one invocation may take.
const WAIT: Duration = Duration::from_secs(60);

/// The deployment: moto, the Kasm stand-in, the table and the four running functions.
#[derive(Debug)]
pub struct LambdaWorld {
    /// The emulator holding the table and the secrets (and EC2, for AWS configs).
    pub moto: Moto,
    /// The Kasm manager stand-in.
    pub kasm: KasmTestServer,
    /// The deployment id (unique per test process), also the secrets' prefix.
    pub dep: String,
    /// The state table's name.
    pub table: String,
    /// The state table, read directly by the test.
    pub store: DynamoDbStore,
    /// A DynamoDB client on moto.
    pub ddb: aws_sdk_dynamodb::Client,
    apis: Vec<RuntimeApi>,
    procs: Vec<FunctionProcess>,
    dir: tempfile::TempDir,
}

/// The CloudWatch namespace the functions are given (not the default, so its use is seen).
pub const METRICS_NAMESPACE: &str = "KasmAutoscaleTest";

impl LambdaWorld {
    /// Creates `secrets` (name, value) in Secrets Manager, applies `config_yaml` with
    /// `kasm-autoscale apply --create-table`, then cold-starts the four functions. `dep` must be the
    /// `deployment_id` the YAML names.
    pub async fn start(
        moto: Moto,
        kasm: KasmTestServer,
        dep: &str,
        secrets: &[(String, String)],
        config_yaml: &str,
    ) -> LambdaWorld {
        let bin = workspace_binaries();
        let sdk = moto.sdk_config().await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        for (name, value) in secrets {
            sm.create_secret().name(name).secret_string(value).send().await.expect("create secret");
        }
        let table = format!("{dep}-state");
        let w = LambdaWorld {
            store: DynamoDbStore::new(ddb.clone(), &table),
            moto,
            kasm,
            dep: dep.to_string(),
            table,
            ddb,
            apis: vec![],
            procs: vec![],
            dir: tempfile::tempdir().expect("tempdir"),
        };
        w.apply_with(&bin, config_yaml);
        let mut w = w;
        let env = w.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for f in FUNCTIONS {
            let api = RuntimeApi::start(f).await;
            let p = FunctionProcess::spawn(&bin.join(f), f, &api, &env, w.dir.path());
            w.apis.push(api);
            w.procs.push(p);
        }
        w
    }

    /// The environment of every function (and of `apply`): moto's endpoint and placeholder
    /// credentials, the store, and a config re-check before every invocation.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("KASM_AUTOSCALE_STORE", format!("dynamodb://{}", self.table)),
            // Warm functions look for configs changed by `apply` before every invocation.
            ("KASM_AUTOSCALE_CONFIG_RECHECK_SECONDS", "0".into()),
            // The stack passes its MetricsNamespace parameter so.
            (shared::wiring::emf::NAMESPACE_ENV, METRICS_NAMESPACE.into()),
        ]
    }

    /// Invokes one function with `event` and returns its response (panics on a function error).
    pub async fn invoke(&self, function: &str, event: Value) -> Value {
        let i = FUNCTIONS.iter().position(|f| *f == function).expect("a function");
        self.apis[i].invoke(event, WAIT).await.ok()
    }

    /// Every claim of one autoscale config, read from the table.
    pub async fn claims(&self, config: &str) -> Vec<Instance> {
        let f = InstanceFilter { autoscale_config: Some(config.into()), ..Default::default() };
        self.store.list(&f).await.expect("list claims")
    }

    /// `kasm-autoscale apply` of `config_yaml` to the table (created the first time); returns its output.
    pub fn apply(&self, config_yaml: &str) -> String {
        self.apply_with(&target_profile_dir(), config_yaml)
    }

    fn apply_with(&self, bin: &Path, config_yaml: &str) -> String {
        let file = self.dir.path().join("kasm-autoscale.yaml");
        std::fs::write(&file, config_yaml).unwrap();
        let out = std::process::Command::new(bin.join("kasm-autoscale"))
            .arg("apply")
            .arg(&file)
            .args(["--store", &format!("dynamodb://{}", self.table), "--create-table"])
            .envs(self.env())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run kasm-autoscale apply");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "apply failed:\n{text}");
        text
    }

    /// A reader of the table's stream, positioned at its first record.
    pub async fn stream(&self) -> StreamReader {
        StreamReader::open(&self.moto.endpoint, &self.table).await
    }

    /// Everything the four functions logged so far.
    pub fn all_logs(&self) -> String {
        self.procs.iter().map(|p| p.logs()).collect::<Vec<_>>().join("\n")
    }

    /// What one function wrote to stdout and stderr so far.
    pub fn logs(&self, function: &str) -> String {
        let i = FUNCTIONS.iter().position(|f| *f == function).expect("a function");
        self.procs[i].logs()
    }
}

/// A sample event from the repository's `events/` folder.
pub fn fixture(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events").join(path);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A DynamoDB stream event carrying `records`, as the event source mapping delivers it.
pub fn stream_event(records: &[Value]) -> Value {
    json!({ "Records": records })
}

/// The scale-evaluator's evaluation of one autoscale config in its response.
pub fn evaluation<'a>(resp: &'a Value, config: &str) -> &'a Value {
    resp["evaluations"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["autoscale_config"] == config))
        .unwrap_or_else(|| panic!("no evaluation of {config} in {resp}"))
}

/// One provider's agent pool through the Lambda functions: what [`agent_pool_loop`] needs to know.
pub struct AgentPool<'a> {
    /// The deployment id (unique per test process); secrets are named under it.
    pub dep: &'a str,
    /// The `vm_provider_configs` entry (YAML, a list item indented by two spaces) of a config named
    /// `pool-vms` making 4-core VMs, reaching the provider's test server through `endpoint_url`.
    pub provider_yaml: &'a str,
    /// The provider's secrets (name, value) for Secrets Manager (its config references them).
    pub secrets: Vec<(String, String)>,
    /// The provider's live VMs of this deployment, by id, read from its test server.
    pub vms: &'a (dyn Fn() -> Vec<String> + Sync),
    /// Provider-specific checks of the created VM (tags, script, dependents), given its claim.
    pub on_created: &'a (dyn Fn(&Instance) + Sync),
    /// Provider-specific checks once the VM is gone (no disk, NIC, tag... left), given its claim.
    pub on_deleted: &'a (dyn Fn(&Instance) + Sync),
}

impl std::fmt::Debug for AgentPool<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPool").field("dep", &self.dep).finish_non_exhaustive()
    }
}

/// The manager token the loop's startup scripts carry (read from Secrets Manager by the provisioner).
pub const POOL_MANAGER_TOKEN: &str = "lambda-pool-manager-token-Mn08";
const POOL_KEY: &str = "lambda-pool-key";
const POOL_SECRET: &str = "lambda-pool-kasm-secret-Wq52";
const POOL_ZONE: &str = "1f2e3d4c5b6a79889706a5b4c3d2e1f0";
const POOL_ID: &str = "b1c2d3e4f5a60718293a4b5c6d7e8f91";
const POOL_STATIC: &str = "0000000000000000000000000000b22d";
const SCHEDULE: &str = "scale-evaluator/schedule-every-minute.json";

/// The startup script of [`AgentPool::provider_yaml`] configs: Kasm's agent install line (as a YAML
/// block scalar's content, indented for a `startup_script: |` at the entry's field level).
pub const POOL_SCRIPT: &str = "      #!/bin/bash\n      bash kasm_release/install.sh -S agent -m {upstream_auth_address} -i {server_id} -r {provider_name} -M {manager_token}\n";

/// PROVIDER-CHECKLIST point 9 for one provider: the four real Lambda binaries on moto scale an agent
/// pool up and down on the provider's test server. The schedule claims one VM (4 cores wanted, none
/// free); the provisioner, fed the stream records **twice**, makes exactly one VM whose id the claim
/// records and whose script carries the claim's server id and the manager token; the agent checks in
/// and the next schedule enables it; load drops, the backoff elapses, the agent is drained; the reaper,
/// fed twice, deletes the Kasm record and the VM. No secret reaches the functions' logs.
pub async fn agent_pool_loop(pool: AgentPool<'_>) -> LambdaWorld {
    let kasm = KasmTestServer::start(POOL_KEY, POOL_SECRET, crate::kasm_server::AcceptAuth::Either).await;
    let dep = pool.dep;
    let yaml = format!(
        r#"
settings:
  deployment_id: {dep}
  kasm:
    url: {kasm}
    api_key: {POOL_KEY}
    api_key_secret: secretsmanager:{dep}/kasm#api_key_secret
    manager_token: secretsmanager:{dep}/kasm#manager_token
    upstream_auth_address: kasm.example.test
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: {POOL_ID}
    zone_id: {POOL_ZONE}
    vm_provider_config: pool-vms
    standby_cores: 4
    agent_cores_override: 4
    agent_memory_override_gb: 8
    downscale_backoff: 2
vm_provider_configs:
{provider}"#,
        kasm = kasm.url,
        provider = pool.provider_yaml,
    );
    let mut secrets = vec![(
        format!("{dep}/kasm"),
        json!({"api_key_secret": POOL_SECRET, "manager_token": POOL_MANAGER_TOKEN}).to_string(),
    )];
    secrets.extend(pool.secrets.iter().cloned());
    let w = LambdaWorld::start(Moto::start(), kasm, dep, &secrets, &yaml).await;
    let mut stream = w.stream().await;
    let _ = stream.read().await; // the configs written by `apply`

    // Load: a static agent (not ours) whose 4 cores are all taken.
    w.kasm.add_agent(crate::kasm_server::AgentSpec {
        server_id: POOL_STATIC.into(),
        hostname: "static-agent".into(),
        zone_id: POOL_ZONE.into(),
        server_pool_id: Some(POOL_ID.into()),
        enabled: true,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    });
    w.kasm.check_in(POOL_STATIC);
    w.kasm.add_session("s1", POOL_STATIC, 2.0, 2_000.0);
    w.kasm.add_session("s2", POOL_STATIC, 2.0, 2_000.0);

    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "agents")["claimed"], 1, "{resp}");
    assert!((pool.vms)().is_empty(), "the evaluator itself never creates a VM");

    let records = stream.read().await;
    let resp = w.invoke("provisioner", stream_event(&records)).await;
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}\n{}", w.all_logs());
    let again = w.invoke("provisioner", stream_event(&records)).await;
    assert_eq!(again["batchItemFailures"], json!([]), "{again}");
    let vms = (pool.vms)();
    assert_eq!(vms.len(), 1, "a redelivered batch must not create another VM: {vms:?}\n{}", w.all_logs());
    let claim = w.claims("agents").await.pop().expect("the claim");
    assert_eq!(claim.state, shared::model::InstanceState::Booting, "{claim:?}");
    assert_eq!(claim.vm_id.as_deref(), Some(vms[0].as_str()), "the claim records the VM");
    (pool.on_created)(&claim);

    // The VM boots: its agent registers under the claim's id (disabled); the next schedule enables it.
    w.kasm.add_agent(crate::kasm_server::AgentSpec {
        server_id: claim.kasm_server_id.clone(),
        hostname: claim.vm_name.clone(),
        zone_id: POOL_ZONE.into(),
        server_pool_id: Some(POOL_ID.into()),
        enabled: false,
        cores: 4.0,
        memory_mb: 8_000.0,
        gpus: 0.0,
    });
    w.kasm.check_in(&claim.kasm_server_id);
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "agents")["claimed"], 0, "{resp}");
    assert_eq!(w.kasm.agent(&claim.kasm_server_id).unwrap()["enabled"], true, "agent not enabled");

    // Load drops: the next evaluation starts the backoff clock; after it our agent is drained.
    w.kasm.remove_session("s1");
    w.kasm.remove_session("s2");
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "agents")["actions"], 0, "drained before the backoff: {resp}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    w.kasm.check_in(&claim.kasm_server_id);
    w.kasm.check_in(POOL_STATIC);
    let _ = stream.read().await;
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "agents")["actions"], 1, "{resp}");
    assert_eq!(w.kasm.agent(&claim.kasm_server_id).unwrap()["enabled"], false, "drained agent still enabled");

    // The reaper, fed the drain records twice, deletes the Kasm record and the VM.
    let records = stream.read().await;
    let resp = w.invoke("reaper", stream_event(&records)).await;
    assert_eq!(resp["deleted"], json!([claim.id.to_string()]), "{resp}\n{}", w.all_logs());
    let again = w.invoke("reaper", stream_event(&records)).await;
    assert_eq!(again["deleted"], json!([]), "{again}");
    assert!((pool.vms)().is_empty(), "VM not deleted: {:?}", (pool.vms)());
    assert!(w.kasm.is_gone(&claim.kasm_server_id), "Kasm record left behind");
    assert!(w.kasm.agent(POOL_STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(w.claims("agents").await.iter().all(|c| c.state == shared::model::InstanceState::Deleted));
    assert_eq!(w.store.count_owned("pool-vms").await.unwrap(), 0, "the cap counts no VM of ours");
    (pool.on_deleted)(&claim);

    let logs = w.all_logs();
    assert!(logs.contains("evaluation"), "the functions' logs were not captured:\n{logs}");
    for s in [POOL_SECRET, POOL_MANAGER_TOKEN]
        .iter()
        .map(|s| s.to_string())
        .chain(pool.secrets.iter().map(|(_, v)| v.clone()))
    {
        assert!(!logs.contains(&s), "a secret reached the logs");
    }
    w
}
