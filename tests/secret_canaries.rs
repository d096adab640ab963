//! Issue 21, point 2: a secret echoed back by a server (or a proxy) never leaves the process, in any
//! encoding, through any exit: `plan`'s and `preflight`'s output, the daemon's log, the state file and
//! `status`, and a Lambda function's log and response.
//!
//! Every server here answers with an "echo" that carries the secrets the calling process holds,
//! plain, JSON-escaped, URL-encoded (both styles), hex and base64 inside a longer base64 text (a
//! `Basic` header, a base64 `user_data`) — as a misbehaving proxy or an API that quotes the request in
//! its error would. The canaries contain characters that every encoding changes (`"`, `/`, `+`, space,
//! `&`, `=`, `%`), so each form is distinct. The checks look for each form independently of the code
//! under test (this file encodes on its own).

use base64::Engine as _;
use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, Fault, KasmTestServer};
use integration_tests::lambda_world::{LambdaWorld, fixture};
use integration_tests::moto::Moto;
use integration_tests::proxmox_server::{self, ProxmoxTestServer};
use integration_tests::runtime_api::workspace_binaries;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "canary-key";
/// The Kasm API key secret.
const KASM_SECRET: &str = "kasm/Ca+na\"ry 01&=x%";
/// The zone manager token, which only travels inside the startup script (the VM's user data).
const MANAGER_TOKEN: &str = "mgr/To+ken\"Ca na&=ry%02";
/// The webhook HMAC secret (Lambda).
const HMAC_SECRET: &str = "hmac/Se+cret\"Ca na&=ry%03";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

/// What an echoing server sends back for `secret`: every encoding at once.
fn echo(secret: &str) -> String {
    let json = serde_json::to_string(secret).unwrap();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let mut out = format!(
        "plain={secret} json={json} form={form} path={} hex={hex} HEX={}",
        form.replace('+', "%20"),
        hex.to_ascii_uppercase()
    );
    // Inside longer base64 texts at each byte alignment, in both alphabets.
    for prefix in ["", "u", "us", "user:"] {
        let text = format!("{prefix}{secret} and the rest of the script");
        out.push_str(&format!(" b64={}", base64::engine::general_purpose::STANDARD.encode(&text)));
        out.push_str(&format!(" b64url={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&text)));
    }
    out
}

/// The forms of `secret` that must not appear anywhere: each encoding of `echo`, the base64 ones by
/// their middle (the characters that depend on the secret's bytes alone, whatever surrounds them).
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![secret.to_string(), json[1..json.len() - 1].to_string(), form.clone(), form.replace('+', "%20")];
    out.push(hex.clone());
    out.push(hex.to_ascii_uppercase());
    for lead in 0..3 {
        let mut bytes = vec![b'u'; lead];
        bytes.extend_from_slice(secret.as_bytes());
        for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE_NO_PAD] {
            let enc = engine.encode(&bytes);
            let enc = enc.trim_end_matches('=');
            out.push(enc[4..enc.len() - 4].to_string());
        }
    }
    out
}

/// Panics naming the first form of any of `secrets` found in `text` (`what` says where).
fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        for f in forms(s) {
            assert!(!text.contains(&f), "{what} leaks {f:?} (a form of a secret):\n{text}");
        }
    }
}

fn config(kasm: &str, pve: &str) -> String {
    format!(
        r#"
settings:
  deployment_id: canary
  kasm:
    url: {kasm}
    api_key: {KEY}
    api_key_secret: env:CANARY_KASM_SECRET
    manager_token: env:CANARY_MANAGER_TOKEN
    upstream_auth_address: kasm.example.test
autoscale_configs:
  - autoscale_config_name: canary-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: pve
    standby_cores: 4
vm_provider_configs:
  - provider: proxmox
    name: pve
    max_instances: 1
    host: pve.invalid:8006
    endpoint_url: {pve}
    username: kasm@pve
    token_name: {token}
    token_value: env:CANARY_PVE_TOKEN
    verify_ssl: false
    vmid_range_lower: 6100
    vmid_range_upper: 6109
    template_name: ubuntu-kasm
    cluster_node_name: pve1
    resource_pool_name: kasm
    vm_cores: 4
    vm_memory: 4
    installed_os_type: linux
    startup_script_path: /tmp
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -i {{server_id}} -M '{{manager_token}}'
"#,
        token = proxmox_server::TOKEN_NAME,
    )
}

fn cli(bin: &std::path::Path) -> Command {
    let mut c = Command::new(bin);
    c.env("CANARY_KASM_SECRET", KASM_SECRET)
        .env("CANARY_MANAGER_TOKEN", MANAGER_TOKEN)
        .env("CANARY_PVE_TOKEN", proxmox_server::TOKEN_SECRET)
        .env_remove("RUST_LOG");
    c
}

/// Output and error of a finished command, together.
fn run_cli(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run kasm-autoscale");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn servers() -> (KasmTestServer, ProxmoxTestServer) {
    let kasm = KasmTestServer::start(KEY, KASM_SECRET, AcceptAuth::Body).await;
    let pve = ProxmoxTestServer::start().await;
    // A static agent (not ours) whose cores are all taken: the pool wants 4 free, so one VM is made.
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);
    (kasm, pve)
}

/// `plan` and `preflight`: the Kasm manager and the Proxmox API echo the secrets the command holds in
/// their errors; neither command prints any form of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_preflight_print_no_echoed_secret() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let (kasm, pve) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &pve.url)).unwrap();
    // `plan` holds the Kasm API key secret: the manager echoes it.
    let echoed = format!("bad request {}", echo(KASM_SECRET));

    // A JSON answer quoting the request (4xx: not retried).
    let quoted = json!({"error": "bad request", "request": {"api_key_secret": KASM_SECRET, "echo": echoed}});
    kasm.inject("/api/admin/get_servers", Fault::Answer(400, quoted.to_string()), 1);
    let text = run_cli(cli(&bin).args(["plan", "--config", cfg.to_str().unwrap(), "--json"]));
    assert!(
        text.contains("get_servers failed: HTTP 400") && text.contains("bad request"),
        "plan says which call failed and what the manager said, nothing it echoed:\n{text}"
    );
    assert_clean("plan --json", &text, &[KASM_SECRET]);
    // A text answer (5xx: retried, so every attempt gets it).
    kasm.inject("/api/admin/get_servers", Fault::Answer(500, echoed.clone()), 10);
    let text = run_cli(cli(&bin).args(["plan", "--config", cfg.to_str().unwrap()]));
    assert!(
        text.contains("get_servers") && text.contains("[REDACTED]"),
        "plan says which call failed, redacted:\n{text}"
    );
    assert_clean("plan", &text, &[KASM_SECRET]);

    // `preflight` holds only the provider's credentials: the Proxmox API echoes its token.
    let echoed = format!("permission check failed: {}", echo(proxmox_server::TOKEN_SECRET));
    pve.inject("GET", "/access/permissions", 500, &echoed, 10);
    let text = run_cli(cli(&bin).args(["preflight", "--config", cfg.to_str().unwrap()]));
    assert!(text.contains("FAIL pve.") && text.contains("[REDACTED]"), "preflight fails the check, redacted:\n{text}");
    assert_clean("preflight", &text, &[proxmox_server::TOKEN_SECRET]);
}

/// `run`: the Proxmox API echoes the startup script (which carries the manager token) when writing it
/// fails. The daemon's log, the state file and `status` (text and JSON) hold no form of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_status_keep_no_echoed_secret() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let (kasm, pve) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &pve.url)).unwrap();
    let all = [KASM_SECRET, MANAGER_TOKEN, proxmox_server::TOKEN_SECRET];
    let echoed = format!("cannot write file: {} {}", echo(MANAGER_TOKEN), echo(proxmox_server::TOKEN_SECRET));
    pve.inject("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write", 500, &echoed, 100);

    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        cli(&bin)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1", "--log-format", "text"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the script write to fail", Duration::from_secs(60), || {
        logs().contains("[REDACTED]") && pve.requests().iter().any(|r| r.path.ends_with("/agent/file-write"))
    })
    .await;
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
    assert_clean("the daemon's log", &logs(), &all);

    // The state file, as bytes (redb stores the claim's JSON as it is).
    let bytes = std::fs::read(&state).unwrap();
    assert_clean("the state file", &String::from_utf8_lossy(&bytes), &all);

    // `status` in another process, which knows no secret: the stored error was sanitised when written.
    let store = format!("embedded:{}", state.display());
    let text = run_cli(Command::new(&bin).args(["status", "--store", &store]));
    assert!(text.contains("canary-agents") && text.contains("[REDACTED]"), "status shows the error, redacted:\n{text}");
    assert_clean("status", &text, &all);
    let text = run_cli(Command::new(&bin).args(["status", "--store", &store, "--json"]));
    assert!(text.contains("last_error"), "{text}");
    assert_clean("status --json", &text, &all);
}

/// A Lambda function (scale-evaluator, on the emulator): the Kasm manager echoes the function's
/// secrets in an error; neither the function's log (CloudWatch's input) nor its response holds any
/// form of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_functions_log_and_response_hold_no_echoed_secret() {
    let moto = Moto::start();
    let kasm = KasmTestServer::start(KEY, KASM_SECRET, AcceptAuth::Either).await;
    let dep = format!("canary-{}", std::process::id());
    let yaml = format!(
        r#"
settings:
  deployment_id: {dep}
  kasm:
    url: {url}
    api_key: {KEY}
    api_key_secret: secretsmanager:{dep}/kasm#api_key_secret
  webhook:
    hmac_secret: secretsmanager:{dep}/webhook
autoscale_configs:
  - autoscale_config_name: linux-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: aws-linux
    standby_cores: 8
vm_provider_configs:
  - provider: aws
    name: aws-linux
    aws_region: us-east-1
    aws_ec2_ami_id: ami-1e749f67
    aws_ec2_instance_type: t3.xlarge
    max_instances: 1
    aws_ec2_ebs_volume_size_gb: 40
    aws_ec2_ebs_volume_type: gp3
    startup_script: |
      #!/bin/bash
      echo "agent {{server_id}}"
"#,
        url = kasm.url
    );
    let secrets = [
        (format!("{dep}/kasm"), json!({"api_key_secret": KASM_SECRET}).to_string()),
        (format!("{dep}/webhook"), HMAC_SECRET.to_string()),
    ];
    let w = LambdaWorld::start(moto, kasm, &dep, &secrets, &yaml).await;
    let echoed = format!("upstream said: {} {}", echo(KASM_SECRET), echo(HMAC_SECRET));
    w.kasm.inject("/api/admin/get_servers", Fault::Answer(502, echoed), 10);
    let resp = w.invoke("scale-evaluator", fixture("scale-evaluator/schedule-every-minute.json")).await;
    let resp = resp.to_string();
    assert!(resp.contains("get_servers"), "the response says which call failed: {resp}");
    assert_clean("the evaluator's response", &resp, &[KASM_SECRET, HMAC_SECRET]);
    let logs = w.all_logs();
    assert!(logs.contains("[REDACTED]"), "the error was logged, redacted:\n{logs}");
    assert_clean("the functions' logs", &logs, &[KASM_SECRET, HMAC_SECRET]);
}
