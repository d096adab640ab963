//! `kasm-autoscale import` end to end: the real binary against a small Kasm stand-in of this test's own that
//! answers the five admin calls with the shapes of `shared/src/kasm/fixtures/import/` (Kasm 1.15's), checks the
//! key in the body, and refuses as Kasm does (403 for a wrong key, 401 for a missing permission).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

const KEY: &str = "import-key-1";
const SECRET: &str = "import-secret-5b8f0e2d9c";

fn fixture(call: &str) -> Value {
    let text = match call {
        "get_autoscale_configs" => include_str!("../../../shared/src/kasm/fixtures/import/get_autoscale_configs.json"),
        "get_vm_provider_configs" => {
            include_str!("../../../shared/src/kasm/fixtures/import/get_vm_provider_configs.json")
        }
        "get_dns_provider_configs" => {
            include_str!("../../../shared/src/kasm/fixtures/import/get_dns_provider_configs.json")
        }
        "get_server_pools" => include_str!("../../../shared/src/kasm/fixtures/import/get_server_pools.json"),
        "get_schedules" => include_str!("../../../shared/src/kasm/fixtures/import/get_schedules.json"),
        _ => return Value::Null,
    };
    serde_json::from_str(text).expect("fixture JSON")
}

/// Every secret the stand-in's answers or the operator's environment hold: none may be printed or written.
fn secrets() -> Vec<&'static str> {
    vec![SECRET, "AKIAIMPORTFIXTURE0001", "AKIAIMPORTFIXTURE0002", "**********"]
}

#[derive(Default)]
struct Kasm {
    /// Calls answered 401 (the key lacks their permission).
    denied: HashSet<String>,
    /// Every call made, with its `target_autoscale_config_id` if any.
    calls: Mutex<Vec<String>>,
}

async fn admin(State(k): State<Arc<Kasm>>, UrlPath(call): UrlPath<String>, Json(body): Json<Value>) -> Response {
    k.calls.lock().unwrap().push(match body.get("target_autoscale_config_id").and_then(Value::as_str) {
        Some(id) => format!("{call} {id}"),
        None => call.clone(),
    });
    let f = fixture(&call);
    if f.is_null() {
        return StatusCode::NOT_FOUND.into_response();
    }
    // Kasm's `Authenticated`: a wrong key or secret is 403 "Access Denied"; a missing permission 401.
    if body["api_key"] != KEY || body["api_key_secret"] != SECRET {
        return (StatusCode::FORBIDDEN, Json(json!({"error_message": "Access Denied"}))).into_response();
    }
    if k.denied.contains(&call) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error_message": "Unauthorized"}))).into_response();
    }
    let mut answer = f["response"].clone();
    if call == "get_schedules" {
        let Some(target) = body.get("target_autoscale_config_id").and_then(Value::as_str) else {
            return Json(json!({"error_message": "Invalid Request. Missing required parameters"})).into_response();
        };
        let mine: Vec<Value> = answer["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["autoscale_config_id"] == target)
            .cloned()
            .collect();
        answer = json!({ "schedules": mine });
    }
    Json(answer).into_response()
}

async fn serve(kasm: Arc<Kasm>) -> SocketAddr {
    let app = Router::new().route("/api/admin/{call}", post(admin)).with_state(kasm);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn kasm_autoscale(args: Vec<String>, secret: Option<&str>) -> Output {
    let secret = secret.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kasm-autoscale"));
        cmd.args(&args).env_remove("KASM_API_KEY_SECRET").env_remove("MY_KASM_SECRET");
        if let Some(s) = secret {
            cmd.env("MY_KASM_SECRET", s);
        }
        cmd.output().expect("the binary runs")
    })
    .await
    .unwrap()
}

fn import_args(addr: SocketAddr, out: Option<&Path>) -> Vec<String> {
    let mut a = vec![
        "import".to_string(),
        "--kasm-url".into(),
        format!("http://{addr}"),
        "--api-key".into(),
        KEY.into(),
        "--api-key-secret-env".into(),
        "MY_KASM_SECRET".into(),
    ];
    if let Some(p) = out {
        a.extend(["--out".into(), p.display().to_string()]);
    }
    a
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_no_secret(what: &str, s: &str) {
    for secret in secrets() {
        assert!(!s.contains(secret), "{what} holds the secret {secret}:\n{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_writes_a_file_that_validates_with_placeholders_and_no_secret() {
    let kasm = Arc::new(Kasm::default());
    let addr = serve(kasm.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kasm.yaml");
    let o = kasm_autoscale(import_args(addr, Some(&file)), Some(SECRET)).await;
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let yaml = std::fs::read_to_string(&file).expect("file written");
    for (what, s) in [("stdout", &stdout), ("stderr", &stderr), ("the file", &yaml)] {
        assert_no_secret(what, s);
    }
    // Placeholders in the file, listed at its end and on stderr.
    for (var, field) in [
        ("KASM_IMPORT_AWS_US_EAST_1_AWS_SECRET_ACCESS_KEY", "AWS us-east-1.aws_secret_access_key"),
        ("KASM_IMPORT_AWS_US_EAST_1_AWS_ACCESS_KEY_ID", "AWS us-east-1.aws_access_key_id"),
        ("KASM_IMPORT_WINDOWS_RDP_CONNECTION_PASSWORD", "windows-rdp.connection_password"),
        ("KASM_IMPORT_VSPHERE_DC1_VSPHERE_VCENTER_PASSWORD", "vsphere-dc1.vsphere_vcenter_password"),
    ] {
        assert!(yaml.contains(&format!(": env:{var}\n")), "{var} not referenced:\n{yaml}");
        assert!(yaml.contains(&format!("#   {var}  ({field})\n")), "{var} not listed in the file");
        assert!(stderr.contains(&format!("  {var}  ({field})\n")), "{var} not listed on stderr:\n{stderr}");
    }
    assert!(yaml.contains("    api_key_secret: env:MY_KASM_SECRET\n"), "{yaml}");
    assert!(yaml.contains("  reusable: true\n"), "Kasm's reusable is imported: {yaml}");
    assert!(yaml.contains("#   not imported: windows-rdp.nginx_cert: "), "{yaml}");
    assert!(
        stderr.starts_with(
            "imported 4 autoscale config(s), 7 VM-provider config(s), 5 DNS-provider config(s), 3 schedule(s)"
        ),
        "{stderr}"
    );
    // Only the five read calls, schedules once per autoscale config.
    let calls = kasm.calls.lock().unwrap().clone();
    assert_eq!(
        &calls[..4],
        ["get_autoscale_configs", "get_vm_provider_configs", "get_dns_provider_configs", "get_server_pools"]
    );
    assert_eq!(calls.len(), 8, "{calls:?}");
    assert!(calls[4..].iter().all(|c| c.starts_with("get_schedules ")), "{calls:?}");

    // `validate` accepts what `import` wrote.
    let v = kasm_autoscale(vec!["validate".into(), file.display().to_string()], None).await;
    assert_eq!(v.status.code(), Some(0), "{}{}", text(&v.stdout), text(&v.stderr));
    assert!(text(&v.stdout).starts_with(
        "OK: 1 file(s), 4 autoscale config(s), 7 VM-provider config(s), 5 DNS-provider config(s), 3 schedule(s)"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_out_the_file_goes_to_stdout_and_the_lists_to_stderr() {
    let addr = serve(Arc::new(Kasm::default())).await;
    let o = kasm_autoscale(import_args(addr, None), Some(SECRET)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(stdout.contains("\nautoscale_configs:\n") && stdout.contains("# Secrets: Kasm never returns them"));
    assert!(!stderr.contains("autoscale_configs:"), "{stderr}");
    assert_no_secret("stdout", &stdout);
    assert_no_secret("stderr", &stderr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-stdout.yaml");
    std::fs::write(&file, &stdout).unwrap();
    let v = kasm_autoscale(vec!["validate".into(), file.display().to_string()], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_names_the_call_and_kasm_s_permission() {
    let kasm = Arc::new(Kasm { denied: HashSet::from(["get_vm_provider_configs".to_string()]), ..Kasm::default() });
    let addr = serve(kasm).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kasm.yaml");
    let o = kasm_autoscale(import_args(addr, Some(&file)), Some(SECRET)).await;
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: nothing imported: Kasm answered get_vm_provider_configs with HTTP 401: Unauthorized: the API key lacks the permission VM_PROVIDER_VIEW (\"View VM Provider configurations.\")"),
        "{stderr}"
    );
    assert!(!file.exists(), "nothing is written on a Kasm error");
    assert_no_secret("stderr", &stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_refused_key_not_a_permission() {
    let addr = serve(Arc::new(Kasm::default())).await;
    let o = kasm_autoscale(import_args(addr, None), Some("not-the-secret")).await;
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: nothing imported: Kasm refused the API key on get_autoscale_configs (HTTP 403: Access Denied): the key or its secret is wrong"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());
    assert!(!stderr.contains("not-the-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_comes_from_the_environment_only() {
    let addr = serve(Arc::new(Kasm::default())).await;
    let o = kasm_autoscale(import_args(addr, None), None).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(
        "error: the API key's secret is read from the environment variable MY_KASM_SECRET, which is not set"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_accepts_a_kasm_style_export_as_it_is() {
    let file: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/src/config/kasm_names/kasm-export.yaml");
    let v = kasm_autoscale(vec!["validate".into(), file.display().to_string()], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stdout));
    assert!(text(&v.stdout).starts_with(
        "OK: 1 file(s), 11 autoscale config(s), 11 VM-provider config(s), 5 DNS-provider config(s), 2 schedule(s)"
    ));
    // A value that does not convert is reported naming Kasm's column.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let doc = std::fs::read_to_string(&file)
        .unwrap()
        .replace("    memory_bytes: 4294967296\n", "    memory_bytes: 4000000000\n");
    std::fs::write(&bad, doc).unwrap();
    let v = kasm_autoscale(vec!["validate".into(), bad.display().to_string()], None).await;
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stdout).contains(&format!(
            "{}: kubevirt-gke.memory_bytes: 4000000000 bytes is not a whole number of GiB",
            bad.display()
        )),
        "{}",
        text(&v.stdout)
    );
}
