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
