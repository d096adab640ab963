//! The whole serverless loop on the AWS emulator, through the real Lambda binaries.
//!
//! moto (with EC2's real GetPasswordData behaviour, see `Moto::start_with_windows_passwords`) holds
//! the DynamoDB table, the secrets and the EC2 instances; the Kasm test server reports load; each of
//! the four function binaries runs against its own local Runtime API, exactly as on Lambda
//! (`main.rs` wiring, cold start from `KASM_AUTOSCALE_STORE`, events in, responses out). The test
//! plays EventBridge, the Function URL and the DynamoDB event source mappings: the provisioner, the
//! password fetcher and the reaper are fed the real records read from the table's stream.
//!
//! configs applied with `kasm-autoscale apply` → load → scale-evaluator (schedule) → claims →
//! provisioner (stream records, delivered twice) → EC2 instances with our tags → Windows password
//! fetched, decrypted and handed to Kasm → agents check in and are enabled → load drops (signed
//! webhook) → backoff elapses → drain → reaper (stream records) terminates the instances. Secrets
//! never show up in any function's output or in the table.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::Filter;
use integration_tests::kasm_server::{AcceptAuth, AgentSpec, KasmTestServer};
use integration_tests::lambda_world::{LambdaWorld, evaluation, fixture, stream_event};
use integration_tests::moto::{Moto, windows_password_of};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::model::{InstanceState, OwnerLabels};
use shared::ports::Store;
use std::time::Duration;

const KASM_KEY: &str = "e2e-api-key";
const KASM_SECRET: &str = "e2e-kasm-api-secret-Zq81";
const HMAC_SECRET: &str = "e2e-webhook-hmac-secret-Hh42";
const ZONE: &str = "5a1c0e7f2b3d4c5e8f9a0b1c2d3e4f50";
const POOL: &str = "8b2d1f0e3c4a5b6c7d8e9f0a1b2c3d4e";
const WIN_POOL: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
fn config_yaml(dep: &str, kasm_url: &str, windows_standby: u32) -> String {
    format!(
        r#"
settings:
  deployment_id: {dep}
  kasm:
    url: {kasm_url}
    api_key: {KASM_KEY}
    api_key_secret: secretsmanager:{dep}/kasm#api_key_secret
  webhook:
    hmac_secret: secretsmanager:{dep}/webhook
autoscale_configs:
  - autoscale_config_name: linux-agents
    autoscale_type: docker_agent
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: aws-linux
    standby_cores: 8
    agent_cores_override: 4
    agent_memory_override_gb: 8
    downscale_backoff: 2
  - autoscale_config_name: windows-desktops
    autoscale_type: server
    server_pool_id: {WIN_POOL}
    zone_id: {ZONE}
    vm_provider_config: aws-windows
    connection_type: RDP
    connection_port: 3389
    connection_username: kasm-user
    max_simultaneous_sessions_per_server: 1
    minimum_pool_standby_sessions: {windows_standby}
    require_checkin: false
vm_provider_configs:
  - provider: aws
    name: aws-linux
    aws_region: us-east-1
    aws_ec2_ami_id: ami-1e749f67
    aws_ec2_instance_type: t3.xlarge
    max_instances: 3
    aws_ec2_ebs_volume_size_gb: 40
    aws_ec2_ebs_volume_type: gp3
    aws_ec2_custom_tags: '{{"team": "vdi"}}'
    startup_script: |
      #!/bin/bash
      echo "agent {{server_id}}"
  - provider: aws
    name: aws-windows
    aws_region: us-east-1
    aws_ec2_ami_id: ami-12c6146b
    aws_ec2_instance_type: t3.large
    max_instances: 2
    aws_ec2_ebs_volume_size_gb: 60
    aws_ec2_ebs_volume_type: gp3
    retrieve_windows_vm_password: true
    ssh_key_name: {dep}-key
    startup_script: |
      Write-Output "server {{server_id}}"
"#
    )
}

struct World {
    lambda: LambdaWorld,
    ec2: aws_sdk_ec2::Client,
}

impl std::ops::Deref for World {
    type Target = LambdaWorld;
    fn deref(&self) -> &LambdaWorld {
        &self.lambda
    }
}

impl World {
    /// Our live instances (not terminated) of one autoscale config, by EC2's tag filters.
    async fn instances(&self, config: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(Filter::builder().name(format!("tag:{}", OwnerLabels::DEPLOYMENT)).values(&self.dep).build())
            .filters(Filter::builder().name(format!("tag:{}", OwnerLabels::CONFIG)).values(config).build())
            .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
            .send()
            .await
            .expect("describe instances");
        out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()
    }
}

async fn setup() -> World {
    let moto = Moto::start_with_windows_passwords();
    let kasm = KasmTestServer::start(KASM_KEY, KASM_SECRET, AcceptAuth::Either).await;
    let dep = format!("e2e-{}", std::process::id());
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);

    // The operator's set-up: secrets under the deployment's prefix, and the Windows key pair, whose
    // private key (as EC2 hands it out, once) goes to the secret the provider reads.
    let kp = ec2.create_key_pair().key_name(format!("{dep}-key")).send().await.expect("create key pair");
    let pem = kp.key_material().expect("private key").to_string();
    let secrets = [
        (format!("{dep}/kasm"), json!({"api_key_secret": KASM_SECRET}).to_string()),
        (format!("{dep}/webhook"), HMAC_SECRET.to_string()),
        (format!("{dep}/keypairs/{dep}-key"), pem),
    ];
    // `kasm-autoscale apply` validates the file and writes it to the (new) table; the four
    // functions are cold-started after the configs are in the table.
    let yaml = config_yaml(&dep, &kasm.url, 1);
    let lambda = LambdaWorld::start(moto, kasm, &dep, &secrets, &yaml).await;
    World { lambda, ec2 }
}

/// The embedded metric format documents `function` wrote to stdout after the first `from` bytes of
/// its log: every line holding an `_aws` member, each checked against the specification's rules and
/// for the namespace and deployment the function was given.
fn emf_since(w: &World, function: &str, from: usize) -> Vec<Value> {
    let logs = w.logs(function);
    let docs: Vec<Value> = logs[from..]
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d.get("_aws").is_some())
        .collect();
    assert!(!docs.is_empty(), "no embedded metric format line in {function}'s output:\n{}", &logs[from..]);
    for d in &docs {
        assert_eq!(shared::wiring::emf::spec_violations(d), Vec::<String>::new(), "{d}");
        let aws = &d["_aws"];
        assert!(aws["Timestamp"].as_i64().is_some_and(|t| (t - chrono::Utc::now().timestamp_millis()).abs() < 600_000));
        for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], integration_tests::lambda_world::METRICS_NAMESPACE, "{d}");
        }
        assert_eq!(d["Deployment"], w.dep.as_str(), "{d}");
    }
    docs
}

/// The value of `metric` in the one document whose dimensions are `dims` (Deployment aside).
fn emf_value(docs: &[Value], metric: &str, dims: &[(&str, &str)]) -> Value {
    let found: Vec<&Value> =
        docs.iter().filter(|d| d.get(metric).is_some() && dims.iter().all(|(k, v)| d[*k] == *v)).collect();
    assert_eq!(found.len(), 1, "{metric} {dims:?}: {found:?}\nin {docs:#?}");
    found[0][metric].clone()
}

/// A Function URL request carrying a signed webhook, as Lambda delivers it.
fn signed_webhook(body: &str) -> Value {
    let mut ev = fixture("scale-evaluator/webhook-signed-session-created.json");
    let ts = chrono::Utc::now().timestamp();
    let sig = shared::webhook::sign(&SecretString::from(HMAC_SECRET.to_string()), ts, body.as_bytes());
    ev["headers"]["x-kasm-autoscale-timestamp"] = json!(ts.to_string());
    ev["headers"]["x-kasm-autoscale-signature"] = json!(sig);
    ev["body"] = json!(body);
    ev["requestContext"]["timeEpoch"] = json!(ts * 1000);
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_loop_runs_through_the_lambda_functions_on_the_emulator() {
    let w = setup().await;
    let mut stream = w.stream().await;
    let _ = stream.read().await; // the configs written by `apply`

    // Load: a static agent (not ours) whose 8 cores are taken by two sessions; the pool needs 8 free.
    w.kasm.add_agent(AgentSpec {
        server_id: "0000000000000000000000000000a11c".into(),
        hostname: "static-agent".into(),
        zone_id: ZONE.into(),
        server_pool_id: Some(POOL.into()),
        enabled: true,
        cores: 8.0,
        memory_mb: 32768.0,
        gpus: 0.0,
    });
    w.kasm.check_in("0000000000000000000000000000a11c");
    w.kasm.add_session("s1", "0000000000000000000000000000a11c", 4.0, 4096.0);
    w.kasm.add_session("s2", "0000000000000000000000000000a11c", 4.0, 4096.0);

    // EventBridge's schedule → two agent claims (8 standby cores / 4 per agent) and one Windows server.
    let seen = w.logs("scale-evaluator").len();
    let resp = w.invoke("scale-evaluator", fixture("scale-evaluator/schedule-every-minute.json")).await;
    assert_eq!(evaluation(&resp, "linux-agents")["claimed"], 2, "{resp}");
    assert_eq!(evaluation(&resp, "windows-desktops")["claimed"], 1, "{resp}");
    // Its stdout carries the invocation's counts as CloudWatch embedded metric format documents.
    let emf = emf_since(&w, "scale-evaluator", seen);
    assert_eq!(emf_value(&emf, "Evaluations", &[("AutoscaleConfig", "linux-agents"), ("Result", "ok")]), json!(1.0));
    assert_eq!(emf_value(&emf, "Decisions", &[("AutoscaleConfig", "linux-agents"), ("Kind", "create")]), json!(2.0));
    assert_eq!(
        emf_value(&emf, "Decisions", &[("AutoscaleConfig", "windows-desktops"), ("Kind", "create")]),
        json!(1.0)
    );
    assert_eq!(emf_value(&emf, "Vms", &[("AutoscaleConfig", "linux-agents"), ("State", "requested")]), json!(2.0));
    assert!(emf_value(&emf, "OldestBootingSeconds", &[("AutoscaleConfig", "linux-agents")]).as_f64().unwrap() >= 0.0);
    assert!(w.instances("linux-agents").await.is_empty(), "the evaluator itself never creates a VM");

    // The event source mapping hands the provisioner the stream records — twice (at-least-once).
    let records = stream.read().await;
    assert!(records.iter().any(|r| r["eventName"] == "INSERT"), "no claim in the stream: {records:?}");
    let resp = w.invoke("provisioner", stream_event(&records)).await;
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    let again = w.invoke("provisioner", stream_event(&records)).await;
    assert_eq!(again["batchItemFailures"], json!([]), "{again}");

    let linux = w.instances("linux-agents").await;
    let windows = w.instances("windows-desktops").await;
    assert_eq!((linux.len(), windows.len()), (2, 1), "a redelivered batch must not create more instances");
    let claims = w.claims("linux-agents").await;
    for i in &linux {
        let tags: std::collections::HashMap<&str, &str> =
            i.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
        assert_eq!(tags.get(OwnerLabels::DEPLOYMENT), Some(&w.dep.as_str()));
        assert_eq!(tags.get("team"), Some(&"vdi"), "custom tags");
        let claim = tags.get(OwnerLabels::CLAIM).expect("claim tag");
        let c = claims.iter().find(|c| c.id.as_str() == *claim).expect("the tag names a claim");
        assert_eq!(c.vm_id.as_deref(), i.instance_id());
        assert_eq!(c.state, InstanceState::Booting);
    }

    // The Windows server: its Kasm record was created by the provisioner; the fetcher gets the
    // password EC2 encrypted with the key pair, decrypts it and hands it to that record.
    let win = w.claims("windows-desktops").await.pop().expect("windows claim");
    assert!(w.kasm.server(&win.kasm_server_id).is_some(), "server record not created");
    let win_vm = windows[0].instance_id().unwrap().to_string();
    let records = stream.read().await;
    let resp = w.invoke("windows-password-fetcher", stream_event(&records)).await;
    assert_eq!(resp["set"], json!([win.id]), "{resp}");
    assert_eq!(w.kasm.password(&win.kasm_server_id), Some(windows_password_of(&win_vm)));

    // The operator raises the Windows standby with `apply`; the warm functions pick it up.
    let diff = w.apply(&config_yaml(&w.dep, &w.kasm.url, 2));
    assert!(diff.contains("minimum_pool_standby_sessions"), "apply shows the change:\n{diff}");

    // The agents boot and check in (disabled, as the installer leaves them); the next schedule enables
    // them, and claims the second Windows server.
    for c in &claims {
        w.kasm.add_agent(AgentSpec {
            server_id: c.kasm_server_id.clone(),
            hostname: c.vm_name.clone(),
            zone_id: ZONE.into(),
            server_pool_id: Some(POOL.into()),
            enabled: false,
            cores: 4.0,
            memory_mb: 8192.0,
            gpus: 0.0,
        });
        w.kasm.check_in(&c.kasm_server_id);
    }
    let seen = w.logs("scale-evaluator").len();
    let resp = w.invoke("scale-evaluator", fixture("scale-evaluator/schedule-every-minute.json")).await;
    assert_eq!(evaluation(&resp, "linux-agents")["claimed"], 0, "{resp}");
    assert_eq!(evaluation(&resp, "windows-desktops")["claimed"], 1, "new configs not in force: {resp}");
    for c in &claims {
        assert_eq!(w.kasm.agent(&c.kasm_server_id).unwrap()["enabled"], true, "agent not enabled");
    }
    // The check-ins are counted, with each claim's age at check-in (one value per agent).
    let emf = emf_since(&w, "scale-evaluator", seen);
    assert_eq!(emf_value(&emf, "Decisions", &[("AutoscaleConfig", "linux-agents"), ("Kind", "activate")]), json!(2.0));
    let ages = emf_value(&emf, "ClaimAgeAtCheckIn", &[("AutoscaleConfig", "linux-agents")]);
    let ages = ages.as_array().unwrap_or_else(|| panic!("one value per check-in: {ages}"));
    assert_eq!(ages.len(), 2, "{ages:?}");
    assert!(ages.iter().all(|a| a.as_f64().is_some_and(|a| (0.0..600.0).contains(&a))), "{ages:?}");
    assert_eq!(emf_value(&emf, "Vms", &[("AutoscaleConfig", "linux-agents"), ("State", "running")]), json!(2.0));
    assert!(w.claims("linux-agents").await.iter().all(|c| c.state == InstanceState::Running));

    // Load drops: the sessions end and Kasm's hook says so (a signed webhook on the Function URL).
    w.kasm.remove_session("s1");
    w.kasm.remove_session("s2");
    let body = r#"{"type":"session.destroyed","autoscale_config":"linux-agents"}"#;
    let resp = w.invoke("scale-evaluator", signed_webhook(body)).await;
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert!(
        w.claims("linux-agents").await.iter().all(|c| c.state == InstanceState::Running),
        "drained before the backoff"
    );
    // A forged one is refused and changes nothing.
    let mut forged = signed_webhook(body);
    forged["headers"]["x-kasm-autoscale-signature"] = json!(format!("sha256={}", "0".repeat(64)));
    assert_eq!(w.invoke("scale-evaluator", forged).await["statusCode"], 401);

    // The backoff (2 s) elapses; the next evaluation drains both idle agents (16 free cores with the
    // static agent's 8, 8 wanted): disabled in Kasm first, so no session lands on them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for c in &claims {
        w.kasm.check_in(&c.kasm_server_id);
    }
    let _ = stream.read().await;
    let resp = w.invoke("scale-evaluator", fixture("scale-evaluator/schedule-every-minute.json")).await;
    assert_eq!(evaluation(&resp, "linux-agents")["actions"], 2, "{resp}");
    let draining = w.claims("linux-agents").await;
    assert!(draining.iter().all(|c| c.state == InstanceState::Draining), "{draining:?}");
    for c in &draining {
        assert_eq!(w.kasm.agent(&c.kasm_server_id).unwrap()["enabled"], false, "drained agent still enabled");
    }

    // The reaper, fed the drain records (twice), deletes the Kasm records and terminates the instances.
    let records = stream.read().await;
    let resp = w.invoke("reaper", stream_event(&records)).await;
    let mut deleted: Vec<String> = serde_json::from_value(resp["deleted"].clone()).unwrap();
    deleted.sort();
    let mut want: Vec<String> = claims.iter().map(|c| c.id.to_string()).collect();
    want.sort();
    assert_eq!(deleted, want, "{resp}");
    let again = w.invoke("reaper", stream_event(&records)).await;
    assert_eq!(again["deleted"], json!([]), "{again}");
    assert!(w.instances("linux-agents").await.is_empty(), "instances not terminated");
    for i in &linux {
        let d = w.ec2.describe_instances().instance_ids(i.instance_id().unwrap()).send().await.unwrap();
        let state = d.reservations()[0].instances()[0].state().and_then(|s| s.name()).unwrap().as_str().to_string();
        assert!(state == "terminated" || state == "shutting-down", "{state}");
    }
    for c in &claims {
        assert!(w.kasm.is_gone(&c.kasm_server_id), "Kasm agent record left behind");
    }
    assert!(w.claims("linux-agents").await.iter().all(|c| c.state == InstanceState::Deleted));
    assert_eq!(w.instances("windows-desktops").await.len(), 1, "the Windows standby stays");
    assert_eq!(w.claims("windows-desktops").await.len(), 2);
    assert_eq!(w.store.count_owned("aws-linux").await.unwrap(), 0);

    // Secrets went nowhere: not in any function's output, not in the table.
    let logs = w.all_logs();
    assert!(logs.contains("evaluation"), "the functions' logs were not captured:\n{logs}");
    let password = windows_password_of(&win_vm);
    for secret in [KASM_SECRET, HMAC_SECRET, password.as_str(), "PRIVATE KEY"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    let items = w.ddb.scan().table_name(&w.table).send().await.unwrap();
    for item in items.items() {
        for v in item.values() {
            if let AttributeValue::S(s) = v {
                assert!(!s.contains(&password) && !s.contains(KASM_SECRET), "a secret reached the table");
            }
        }
    }
}
