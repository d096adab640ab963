//! Benchmark of the four Lambda functions as deployed: the size of each stripped release binary, its
//! init time — process start to its first `GET /runtime/invocation/next` on a local Runtime API stub —
//! and its first answer: process start to the response of a first, cheap invocation, which includes
//! building the context (the configs read from a DynamoDB table, the secrets from Secrets Manager, both
//! on a local moto server: loopback, so no network latency is in the figures). The functions build their
//! context on the first invocation, so "first answer" is the cold start a caller waits for.
//!
//! `cargo build --release -p scale-evaluator -p provisioner -p reaper -p windows-password-fetcher`
//! then `cargo bench -p integration-tests --bench lambda`. Targets: ≤ 10 MiB with every provider feature on (issue 11), ≤ 20 ms.
//! `KASM_AUTOSCALE_BIN_DIR` points at other binaries (default: this bench's own `target/<profile>`).

use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::moto::Moto;
use integration_tests::runtime_api::{FunctionProcess, RuntimeApi, target_profile_dir};
use shared::config::{ConfigFile, ConfigSet};
use shared::ports::Store;
use shared::store::{DynamoDbStore, dynamodb};
use std::time::{Duration, Instant};

const FUNCTIONS: [&str; 4] = ["scale-evaluator", "provisioner", "reaper", "windows-password-fetcher"];
/// A first invocation that needs the whole context and does little else.
const FIRST_EVENTS: [&str; 4] = [
    "scale-evaluator/webhook-bad-signature.json",
    "provisioner/direct-claim-ids.json",
    "reaper/direct-reap-now.json",
    "windows-password-fetcher/direct-fetch-now.json",
];
const RUNS: usize = 20;
const SIZE_TARGET_MIB: f64 = 10.0;
const INIT_TARGET_MS: f64 = 20.0;

fn configs(dep: &str, kasm_url: &str) -> ConfigSet {
    let doc = format!(
        r#"
settings:
  deployment_id: {dep}
  kasm:
    url: {kasm_url}
    api_key: bench-key
    api_key_secret: secretsmanager:{dep}/kasm#api_key_secret
  webhook:
    hmac_secret: secretsmanager:{dep}/webhook
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: 8b2d1f0e3c4a5b6c7d8e9f0a1b2c3d4e
    zone_id: 5a1c0e7f2b3d4c5e8f9a0b1c2d3e4f50
    vm_provider_config: aws
    standby_cores: 8
    agent_cores_override: 4
vm_provider_configs:
  - provider: aws
    name: aws
    aws_region: us-east-1
    aws_ec2_ami_id: ami-1e749f67
    aws_ec2_instance_type: t3.xlarge
    max_instances: 10
    aws_ec2_ebs_volume_size_gb: 40
    aws_ec2_ebs_volume_type: gp3
    retrieve_windows_vm_password: true
    ssh_key_name: {dep}-key
"#
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("bench config");
    let mut s = ConfigSet::default();
    s.merge(f);
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let dir =
        std::env::var_os("KASM_AUTOSCALE_BIN_DIR").map(std::path::PathBuf::from).unwrap_or_else(target_profile_dir);
    let missing: Vec<&str> = FUNCTIONS.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
    if !missing.is_empty() {
        eprintln!(
            "release binaries missing in {}: {missing:?}\nbuild them first: cargo build --release -p scale-evaluator -p provisioner -p reaper -p windows-password-fetcher",
            dir.display()
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let moto = Moto::start();
        let kasm = KasmTestServer::start("bench-key", "bench-secret", AcceptAuth::Either).await;
        let dep = format!("bench-{}", std::process::id());
        let table = format!("{dep}-state");
        let sdk = moto.sdk_config().await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        dynamodb::create_table(&ddb, &table).await.expect("table");
        DynamoDbStore::new(ddb, &table).save_configs(&configs(&dep, &kasm.url)).await.expect("configs");
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        for (name, value) in [
            (format!("{dep}/kasm"), r#"{"api_key_secret": "bench-secret"}"#.to_string()),
            (format!("{dep}/webhook"), "bench-hmac".to_string()),
        ] {
            sm.create_secret().name(name).secret_string(value).send().await.expect("secret");
        }
        let store = format!("dynamodb://{table}");
        let env = [
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("KASM_AUTOSCALE_STORE", store.as_str()),
        ];
        let logs = tempfile::tempdir().expect("tempdir");

        println!("Lambda functions (release, stripped), init = process start → first Runtime API request, {RUNS} cold starts each");
        println!("| function | binary size | init min | init median | init p90 | first answer median | first answer p90 |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut over = vec![];
        for (f, first) in FUNCTIONS.into_iter().zip(FIRST_EVENTS) {
            let event: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(first))
                    .expect("event fixture"),
            )
            .expect("event JSON");
            let mut answers = Vec::with_capacity(RUNS);
            let size = std::fs::metadata(dir.join(f)).expect("binary").len() as f64 / (1024.0 * 1024.0);
            let mut times = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let api = RuntimeApi::start(f).await;
                let mut p = FunctionProcess::spawn(&dir.join(f), f, &api, &env, logs.path());
                let deadline = Instant::now() + Duration::from_secs(10);
                let polled = loop {
                    if let Some(t) = api.first_poll() {
                        break t;
                    }
                    if !p.running() || Instant::now() > deadline {
                        panic!("{f} did not reach the Runtime API: {:?}\n{}", api.init_error(), p.logs());
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                };
                times.push((polled - p.started).as_secs_f64() * 1000.0);
                if let integration_tests::runtime_api::Outcome::Error(e) =
                    api.invoke(event.clone(), Duration::from_secs(10)).await
                {
                    panic!("{f} failed its first invocation: {e}\n{}", p.logs());
                }
                answers.push(p.started.elapsed().as_secs_f64() * 1000.0);
                drop(p);
            }
            times.sort_by(f64::total_cmp);
            answers.sort_by(f64::total_cmp);
            let (min, med, p90) = (times[0], percentile(&times, 0.5), percentile(&times, 0.9));
            let (amed, ap90) = (percentile(&answers, 0.5), percentile(&answers, 0.9));
            println!(
                "| {f} | {size:.2} MiB | {min:.1} ms | {med:.1} ms | {p90:.1} ms | {amed:.1} ms | {ap90:.1} ms |"
            );
            if size > SIZE_TARGET_MIB {
                over.push(format!("{f}: {size:.2} MiB > {SIZE_TARGET_MIB} MiB"));
            }
            if med > INIT_TARGET_MS {
                over.push(format!("{f}: median init {med:.1} ms > {INIT_TARGET_MS} ms"));
            }
        }
        if over.is_empty() {
            println!("all within target (≤ {SIZE_TARGET_MIB} MiB, median init ≤ {INIT_TARGET_MS} ms)");
        } else {
            println!("OVER TARGET: {}", over.join("; "));
        }
    });
}
