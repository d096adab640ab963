use super::*;
use crate::clock::SystemClock;
use crate::config::{ConfigFile, ConfigSet};
use crate::kasm::memory::MemoryKasm;
use crate::providers::memory::MemoryProvider;
use crate::secrets::StaticSecrets;
use crate::store::{MemoryStore, Store};
use secrecy::SecretString;
use std::collections::HashMap;

fn ctx() -> (Ctx, Arc<MemoryStore>, Arc<MemoryProvider>) {
    let doc = r#"
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: pool
    zone_id: zone
    vm_provider_config: prov
    standby_cores: 8
    agent_cores_override: 4
    agent_memory_override_gb: 8
vm_provider_configs:
  - provider: proxmox
    name: prov
    max_instances: 5
    host: pve.example.com:8006
    username: kasm@pve
    token_name: autoscale
    token_value: env:PVE_TOKEN
    verify_ssl: true
    vmid_range_lower: 9000
    vmid_range_upper: 9099
    full_clone: true
    template_name: ubuntu-kasm
    cluster_node_name: pve1
    vm_cores: 4
    vm_memory: 8
    installed_os_type: linux
    startup_script_path: /tmp/kasm-startup.sh
"#;
    let f: ConfigFile = serde_yaml_ng::from_str(doc).unwrap();
    let mut set = ConfigSet::default();
    set.merge(f);
    let store = Arc::new(MemoryStore::new());
    let provider = Arc::new(MemoryProvider::new());
    let mut providers: HashMap<String, Arc<dyn crate::ports::VmProvider>> = HashMap::new();
    providers.insert("prov".into(), provider.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(StaticSecrets::default()),
        clock: Arc::new(SystemClock),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "daemon-test".into(),
        tuning: app::Tuning::default(),
    };
    (ctx, store, provider)
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(ctx: Ctx, interval: Duration) -> Running {
    let opts = Options {
        interval,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        keys: webhook::Keys {
            hmac_secret: Some(SecretString::from("s3cret".to_string())),
            hec_token: Some(SecretString::from("tok".to_string())),
            max_body_bytes: 0,
            ..Default::default()
        },
        grace: Duration::from_secs(2),
        debounce: Duration::from_millis(50),
        ..Options::default()
    };
    let (stop, rx) = watch::channel(false);
    let (btx, brx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(run(ctx, opts, Arc::new(Metrics::default()), rx, Some(btx)));
    let addr = brx.await.expect("listener bound");
    Running { addr, stop, handle }
}

/// A generous bound for what the daemon does in the background: under CI's parallel load (two
/// cores, every test binary at once) a first evaluation can take several seconds.
const PATIENCE: Duration = Duration::from_secs(60);

async fn wait_for(mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in {} s", PATIENCE.as_secs());
}

/// The status of the first answer to `GET url` (a listener bound in the background), if one comes.
async fn first_answer(http: &reqwest::Client, url: &str) -> Option<reqwest::StatusCode> {
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await {
            return Some(r.status());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_a_signed_webhook_that_triggers_provisioning() {
    let (ctx, store, provider) = ctx();
    // A long interval: only the first tick runs on its own; later work must come from the webhook.
    let d = start(ctx, Duration::from_secs(3600)).await;
    let http = crate::http::build_client(&Default::default()).unwrap();
    let base = format!("http://{}", d.addr);
    let h = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);

    // The first tick evaluates: 8 standby cores / 4 per agent = 2 claims, provisioned via the feed.
    wait_for(async || provider.vms().len() == 2).await;

    // Bad signature: 401, nothing happens.
    let r = http.post(&base).body(r#"{"type":"session.created"}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let body = r#"{"type":"session.created","autoscale_config":"agents"}"#;
    let ts = chrono::Utc::now().timestamp();
    let sig = webhook::sign(&SecretString::from("s3cret".to_string()), ts, body.as_bytes());
    let r = http
        .post(&base)
        .header(webhook::TIMESTAMP_HEADER, ts.to_string())
        .header(webhook::SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(async || store.decisions(Some("agents"), 10).await.unwrap().iter().any(|d| d.trigger == "webhook")).await;

    let m = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("kasm_autoscale_evaluations_total{autoscale_config=\"agents\",result=\"ok\"}"), "{m}");
    assert!(m.contains("kasm_autoscale_vms{autoscale_config=\"agents\",state=\"booting\"} 2"), "{m}");
    assert!(m.contains("kasm_autoscale_webhooks_total{status=\"401\"} 1"), "{m}");

    let t = std::time::Instant::now();
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_and_keeps_claims() {
    let (ctx, store, _) = ctx();
    let d = start(ctx, Duration::from_millis(100)).await;
    wait_for(async || !store.list(&InstanceFilter::default()).await.unwrap().is_empty()).await;
    let t = std::time::Instant::now();
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert_eq!(store.list(&InstanceFilter::default()).await.unwrap().len(), 2);
}

async fn start_with(ctx: Ctx, tweak: impl FnOnce(&mut Options)) -> Running {
    let mut opts = Options {
        interval: Duration::from_secs(3600),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        keys: webhook::Keys { hmac_secret: Some(SecretString::from("s3cret".to_string())), ..Default::default() },
        grace: Duration::from_secs(2),
        debounce: Duration::from_millis(50),
        ..Options::default()
    };
    tweak(&mut opts);
    let (stop, rx) = watch::channel(false);
    let (btx, brx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(run(ctx, opts, Arc::new(Metrics::default()), rx, Some(btx)));
    let addr = brx.await.expect("listener bound");
    Running { addr, stop, handle }
}

/// Reads what the server sends until it closes the connection or `within` passes; `None` = still open.
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// Issue 21 point 5: an unsigned request is refused from its headers, before its (announced 2 MB)
/// body is read: the answer comes at once although the body never arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_requests_are_refused_before_the_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let (ctx, _, _) = ctx();
    let d = start_with(ctx, |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n{\"type\":").await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(3), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .expect("answered without waiting for the body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // Signed headers but a body over the limit: 413 after at most `max_body_bytes` are read.
    let http = crate::http::build_client(&Default::default()).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let big = vec![b' '; 300_000];
    let sig = webhook::sign(&SecretString::from("s3cret".to_string()), ts, &big);
    let r = http
        .post(format!("http://{}", d.addr))
        .header(webhook::TIMESTAMP_HEADER, ts.to_string())
        .header(webhook::SIGNATURE_HEADER, sig)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
}

/// Slow clients (slowloris): beyond the connection limit a connection is closed at once; a client
/// that trickles its headers is cut off after the header timeout; the listener keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_bounded() {
    use tokio::io::AsyncWriteExt;
    let (ctx, _, _) = ctx();
    let limits = listener::Limits {
        max_connections: 8,
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        connection_lifetime: Duration::from_secs(30),
    };
    let d = start_with(ctx, |o| o.limits = limits).await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The ninth is closed at once.
    let mut ninth = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    assert!(read_until_closed(&mut ninth, Duration::from_millis(400)).await.is_some(), "over the limit: closed");
    // The trickling ones are closed after the header timeout.
    for s in &mut slow {
        assert!(read_until_closed(s, Duration::from_secs(3)).await.is_some(), "slow headers: closed");
    }
    // A signed request that never sends its body gets 408 after the body timeout.
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let ts = chrono::Utc::now().timestamp();
    let sig = webhook::sign(&SecretString::from("s3cret".to_string()), ts, b"{}");
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n{}: {ts}\r\n{}: {sig}\r\n\r\n{{",
            webhook::TIMESTAMP_HEADER,
            webhook::SIGNATURE_HEADER
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(3)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let http = crate::http::build_client(&Default::default()).unwrap();
    let base = format!("http://{}", d.addr);
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    let m = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("kasm_autoscale_connections_refused_total 1"), "{m}");
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
}

/// `/metrics` requires the bearer token when one is set, and moves to the admin address when given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_take_a_bearer_token_or_their_own_address() {
    let (ctx, _, _) = ctx();
    let http = crate::http::build_client(&Default::default()).unwrap();
    let d = start_with(ctx.clone(), |o| o.keys.metrics_token = Some(SecretString::from("m-tok".to_string()))).await;
    let url = format!("http://{}/metrics", d.addr);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let ok = http.get(&url).bearer_auth("m-tok").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("kasm_autoscale_evaluations_total"));
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();

    // With an admin address the webhook listener does not serve /metrics; the admin one does not
    // take webhooks.
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let d = start_with(ctx, |o| o.admin_listen = Some(admin)).await;
    assert_ne!(http.get(format!("http://{}/metrics", d.addr)).send().await.unwrap().status(), 200);
    let served = first_answer(&http, &format!("http://{admin}/metrics")).await;
    assert_eq!(served, Some(reqwest::StatusCode::OK));
    assert_eq!(http.post(format!("http://{admin}/")).body("{}").send().await.unwrap().status(), 404);
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
}

/// Issue 22 point 5: `/` serves the page (no data in it, a strict Content-Security-Policy) and
/// `/status` the data, behind the `/metrics` token; with an admin address both move there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_and_its_json_are_bound_and_authenticated_like_metrics() {
    let (ctx, _, provider) = ctx();
    let http = crate::http::build_client(&Default::default()).unwrap();
    let d = start_with(ctx.clone(), |o| o.keys.metrics_token = Some(SecretString::from("m-tok".to_string()))).await;
    let base = format!("http://{}", d.addr);
    wait_for(async || provider.vms().len() == 2).await;

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'sha256-") && csp.contains("default-src 'none'"), "{csp}");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert_eq!(html, status::PAGE_RESPONSE.1, "the page is the static file: no data in it");

    let url = format!("{base}/status");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let mut v = serde_json::Value::Null;
    wait_for(async || {
        v = http.get(&url).bearer_auth("m-tok").send().await.unwrap().json().await.unwrap();
        v["configs"][0]["vms_by_state"]["booting"] == 2
    })
    .await;
    let c = &v["configs"][0];
    assert_eq!(c["name"], "agents");
    assert_eq!(c["kind"], "docker_agent");
    assert_eq!(c["vms"].as_array().unwrap().len(), 2);
    assert!(c["decisions"][0]["line"].as_str().unwrap().starts_with("+2 agents — free cores 0 < standby 8"), "{v:#}");
    assert_eq!(c["last"]["capacity"][0]["unit"], "cores");
    assert_eq!(c["last"]["capacity"][0]["standby"], 8.0);
    assert!(!c["series"].as_array().unwrap().is_empty(), "{v:#}");
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();

    // With an admin address, the page and /status are served there only.
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let d = start_with(ctx, |o| o.admin_listen = Some(admin)).await;
    assert_ne!(http.get(format!("http://{}/status", d.addr)).send().await.unwrap().status(), 200);
    let main_root = http.get(format!("http://{}/", d.addr)).send().await.unwrap();
    assert!(!main_root.text().await.unwrap().contains("<html"), "no page on the webhook listener");
    let served = first_answer(&http, &format!("http://{admin}/status")).await;
    assert_eq!(served, Some(reqwest::StatusCode::OK));
    assert_eq!(http.get(format!("http://{admin}/")).send().await.unwrap().status(), 200);
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
}
