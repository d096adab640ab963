//! `shared::kasm::KasmClient` against the in-process Kasm test server: every `KasmApi` call, both
//! auth modes, refused keys, outages, malformed answers, and what is (not) retried.

use integration_tests::kasm_server::{AcceptAuth, AgentSpec, Fault, KasmTestServer};
use secrecy::SecretString;
use serde_json::Value;
use shared::config::SecretRef;
use shared::config::settings::{KasmAuthMode, KasmSettings};
use shared::http::RetryConfig;
use shared::kasm::{KasmApi, KasmClient, KasmClientOptions, KasmError, NewServer, ServerKind};
use shared::model::Resources;
use std::time::Duration;

const KEY: &str = "key-1";
const SECRET: &str = "the-api-key-secret-123";
const ZONE: &str = "5a6b7c8d9e0f11223344556677889900";
const POOL: &str = "4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e";
const AGENT_1: &str = "2f4c6e8a0b1d3f5a7c9e1b3d5f7a9c1e";
const AGENT_2: &str = "3a5d7f9b1c2e4a6c8e0a2c4e6a8c0e2a";
const SERVER_1: &str = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f";

fn settings(url: &str, mode: KasmAuthMode) -> KasmSettings {
    KasmSettings {
        url: url.to_string(),
        api_key: KEY.into(),
        api_key_secret: SecretRef::Env("KASM_API_KEY_SECRET".into()),
        auth_mode: mode,
        verify_tls: true,
        manager_token: None,
        upstream_auth_address: None,
    }
}

fn options(timeout: Duration) -> KasmClientOptions {
    KasmClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: timeout,
        read_retry: RetryConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            max_retries: 3,
            budget: Duration::from_secs(3),
        },
        ca_pem: None,
    }
}

fn client_with(url: &str, mode: KasmAuthMode, secret: &str, timeout: Duration) -> KasmClient {
    KasmClient::with_options(&settings(url, mode), SecretString::from(secret.to_string()), options(timeout)).unwrap()
}

fn client(url: &str, mode: KasmAuthMode) -> KasmClient {
    client_with(url, mode, SECRET, Duration::from_secs(5))
}

/// A cluster: two agents (one disabled), one server-pool server, two sessions on agent 1.
async fn cluster(accept: AcceptAuth) -> KasmTestServer {
    let k = KasmTestServer::start(KEY, SECRET, accept).await;
    let agent = |id: &str, host: &str, enabled| AgentSpec {
        server_id: id.into(),
        hostname: host.into(),
        zone_id: ZONE.into(),
        enabled,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    };
    k.add_agent(agent(AGENT_1, "agent-1", true));
    k.add_agent(agent(AGENT_2, "agent-2", false));
    k.add_server(SERVER_1, "10.0.2.21", ZONE, POOL, true);
    k.add_session("aa11bb22cc33dd44ee55ff6677889900", AGENT_1, 2.0, 2_768.0);
    k.add_session("bb22cc33dd44ee55ff66778899001122", AGENT_1, 1.0, 1_000.0);
    k
}

const MODES: [(KasmAuthMode, AcceptAuth); 2] =
    [(KasmAuthMode::Body, AcceptAuth::Body), (KasmAuthMode::Basic, AcceptAuth::Basic)];

#[tokio::test]
async fn reads_in_both_auth_modes() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let c = client(&k.url, mode);
        let mut servers = c.list_servers().await.unwrap();
        servers.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        assert_eq!(servers.len(), 3, "{mode:?}");
        let a1 = servers.iter().find(|s| s.server_id == AGENT_1).unwrap();
        assert_eq!(a1.kind, ServerKind::Agent);
        assert!(a1.enabled);
        assert_eq!(a1.reported, Resources::new(4.0, 16_000.0, 0.0));
        assert_eq!(a1.allocated, Resources::new(3.0, 3_768.0, 0.0), "summed from live sessions");
        assert!(a1.last_checkin.is_some());
        let a2 = servers.iter().find(|s| s.server_id == AGENT_2).unwrap();
        assert!(!a2.enabled);
        assert_eq!(a2.allocated, Resources::default());
        let s1 = servers.iter().find(|s| s.server_id == SERVER_1).unwrap();
        assert_eq!(s1.kind, ServerKind::Server);
        assert_eq!(s1.pool_id.as_deref(), Some(POOL));
        assert_eq!(s1.max_sessions, Some(1));

        let sessions = c.list_sessions().await.unwrap();
        assert_eq!(sessions.len(), 2);
        assert!(sessions.iter().all(|s| s.server_id == AGENT_1 && s.status == "running"));
    }
}

#[tokio::test]
async fn the_other_auth_mode_is_refused_by_a_strict_server() {
    // Proves each mode really sends the key its way (and only its way).
    let k = cluster(AcceptAuth::Basic).await;
    let e = client(&k.url, KasmAuthMode::Body).list_sessions().await.unwrap_err();
    assert!(matches!(e, KasmError::Auth { .. }), "{e}");
    let k = cluster(AcceptAuth::Body).await;
    let e = client(&k.url, KasmAuthMode::Basic).list_sessions().await.unwrap_err();
    assert!(matches!(e, KasmError::Auth { .. }), "{e}");
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_naming_the_call_without_secrets() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let wrong = "wrong-secret-value-987";
        let c = client_with(&k.url, mode, wrong, Duration::from_secs(5));
        let e = c.list_sessions().await.unwrap_err();
        match &e {
            KasmError::Auth { call, .. } => assert_eq!(call, "get_kasms"),
            other => panic!("{mode:?}: expected Auth, got {other:?}"),
        }
        let text = format!("{e} {e:?}");
        assert!(text.contains("get_kasms"), "{text}");
        assert!(!text.contains(wrong) && !text.contains(SECRET), "{text}");
        // A refused key is not retried.
        assert_eq!(k.hits("/api/public/get_kasms"), 1);
    }
}

#[tokio::test]
async fn an_injected_401_is_an_auth_error() {
    let k = cluster(AcceptAuth::Either).await;
    k.inject("/api/admin/get_servers", Fault::Status(401), 1);
    let e = client(&k.url, KasmAuthMode::Body).create_server(&new_server("1f2e3d4c5b6a79880716253443526170")).await;
    let e = e.unwrap_err();
    assert!(matches!(&e, KasmError::Auth { call, .. } if call == "get_servers"), "{e:?}");
    // The 401 body echoed the request, credentials included: none of it reaches the error.
    assert!(!format!("{e} {e:?}").contains(SECRET), "{e:?}");
}

#[tokio::test]
async fn set_enabled_on_agents_and_servers() {
    for (mode, accept) in MODES {
        set_enabled_in(mode, accept).await;
    }
}

async fn set_enabled_in(mode: KasmAuthMode, accept: AcceptAuth) {
    let k = cluster(accept).await;
    let c = client(&k.url, mode);
    c.set_enabled(AGENT_2, true).await.unwrap();
    assert_eq!(k.agent(AGENT_2).unwrap()["enabled"], true);
    // Read-modify-write kept the rest of the record.
    assert_eq!(k.agent(AGENT_2).unwrap()["hostname"], "agent-2");
    // Dashed, upper-case spelling of the same id.
    c.set_enabled("9C8B7A6F-5E4D-3C2B-1A0F-9E8D7C6B5A4F", false).await.unwrap();
    assert_eq!(k.server(SERVER_1).unwrap()["enabled"], false);
    assert_eq!(k.server(SERVER_1).unwrap()["hostname"], "10.0.2.21");
    let e = c.set_enabled("00000000000000000000000000000000", true).await.unwrap_err();
    assert!(matches!(e, KasmError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn delete_server_removes_records_and_missing_ones_are_done() {
    for (mode, accept) in MODES {
        delete_in(mode, accept).await;
    }
}

async fn delete_in(mode: KasmAuthMode, accept: AcceptAuth) {
    let k = cluster(accept).await;
    let c = client(&k.url, mode);
    c.delete_server(SERVER_1).await.unwrap();
    assert!(k.server(SERVER_1).is_none());
    c.delete_server(AGENT_2).await.unwrap();
    assert!(k.agent(AGENT_2).is_none());
    // Missing: succeeds without a delete call.
    let before = k.hits("/api/admin/delete_server");
    c.delete_server(SERVER_1).await.unwrap();
    assert_eq!(k.hits("/api/admin/delete_server"), before);
    // An agent with sessions: Kasm refuses (force is off) and the record is still there.
    let e = c.delete_server(AGENT_1).await.unwrap_err();
    assert!(
        matches!(&e, KasmError::Api { call, message } if call == "delete_server" && message.contains("sessions")),
        "{e}"
    );
    assert!(k.agent(AGENT_1).is_some());
    // Once the sessions end, the agent goes.
    k.remove_session("aa11bb22cc33dd44ee55ff6677889900");
    k.remove_session("bb22cc33dd44ee55ff66778899001122");
    c.delete_server(AGENT_1).await.unwrap();
    assert!(k.agent(AGENT_1).is_none());
}

fn new_server(id: &str) -> NewServer {
    NewServer {
        server_id: id.into(),
        hostname: "10.0.2.37".into(),
        zone_id: ZONE.into(),
        pool_id: POOL.into(),
        connection_type: "RDP".into(),
        connection_port: Some(3389),
        connection_username: Some("Administrator".into()),
        max_simultaneous_sessions: 1,
        require_checkin: true,
        enabled: true,
    }
}

#[tokio::test]
async fn create_server_is_idempotent_on_the_id() {
    for (mode, accept) in MODES {
        create_in(mode, accept).await;
    }
}

async fn create_in(mode: KasmAuthMode, accept: AcceptAuth) {
    let k = cluster(accept).await;
    let c = client(&k.url, mode);
    let id = "1f2e3d4c5b6a79880716253443526170";
    c.create_server(&new_server(id)).await.unwrap();
    let rec = k.server(id).unwrap();
    assert_eq!(rec["hostname"], "10.0.2.37");
    assert_eq!(rec["server_pool_id"], POOL);
    assert_eq!(rec["connection_port"], 3389);
    c.create_server(&new_server(id)).await.unwrap();
    assert_eq!(k.hits("/api/admin/create_server"), 1);
    assert_eq!(k.server_count(), 2);
    let listed = c.list_servers().await.unwrap();
    assert!(listed.iter().any(|s| s.server_id == id && s.kind == ServerKind::Server && s.enabled));
}

#[tokio::test]
async fn set_connection_password_hands_it_over_and_never_leaks_it() {
    for (mode, accept) in MODES {
        password_in(mode, accept).await;
    }
}

async fn password_in(mode: KasmAuthMode, accept: AcceptAuth) {
    let k = cluster(accept).await;
    let c = client(&k.url, mode);
    let pw = SecretString::from("Winpass-!-4567".to_string());
    c.set_connection_password(SERVER_1, &pw).await.unwrap();
    assert_eq!(k.password(SERVER_1).as_deref(), Some("Winpass-!-4567"));
    let e = c.set_connection_password("00000000000000000000000000000000", &pw).await.unwrap_err();
    assert!(matches!(e, KasmError::NotFound { .. }), "{e}");
    // A failing write whose error body echoes the request (password and key secret included).
    k.inject("/api/admin/update_server", Fault::Status(500), 1);
    let e = c.set_connection_password(SERVER_1, &pw).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(&e, KasmError::Api { call, .. } if call == "update_server"), "{text}");
    assert!(!text.contains("Winpass") && !text.contains(SECRET), "{text}");
    assert_eq!(k.hits("/api/admin/update_server"), 2, "a failed write is not retried");
}

#[tokio::test]
async fn an_unreachable_manager_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"), KasmAuthMode::Body);
    let e = c.list_sessions().await.unwrap_err();
    assert!(matches!(&e, KasmError::Unreachable { call, .. } if call == "get_kasms"), "{e:?}");
    assert!(!format!("{e:?}").contains(SECRET));
}

#[tokio::test]
async fn a_malformed_answer_is_a_parse_error() {
    let k = cluster(AcceptAuth::Either).await;
    k.inject("/api/public/get_kasms", Fault::Malformed, 1);
    let e = client(&k.url, KasmAuthMode::Body).list_sessions().await.unwrap_err();
    assert!(matches!(&e, KasmError::Parse { call, .. } if call == "get_kasms"), "{e:?}");
    assert_eq!(k.hits("/api/public/get_kasms"), 1, "a malformed answer is not retried");
}

#[tokio::test]
async fn a_read_is_retried_after_a_500() {
    let k = cluster(AcceptAuth::Either).await;
    k.inject("/api/public/get_kasms", Fault::Status(500), 1);
    let sessions = client(&k.url, KasmAuthMode::Body).list_sessions().await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(k.hits("/api/public/get_kasms"), 2);
}

#[tokio::test]
async fn a_slow_read_is_retried_but_a_slow_write_is_not() {
    let k = cluster(AcceptAuth::Either).await;
    let c = client_with(&k.url, KasmAuthMode::Body, SECRET, Duration::from_millis(400));
    k.inject("/api/admin/get_agents", Fault::Slow(Duration::from_millis(1200)), 1);
    c.set_enabled(AGENT_2, true).await.unwrap();
    assert_eq!(k.hits("/api/admin/get_agents"), 2, "the timed-out read was retried");

    k.inject("/api/admin/update_agent", Fault::Slow(Duration::from_millis(1200)), 1);
    let e = c.set_enabled(AGENT_2, false).await.unwrap_err();
    assert!(matches!(&e, KasmError::Unreachable { call, .. } if call == "update_agent"), "{e:?}");
    assert_eq!(k.hits("/api/admin/update_agent"), 2, "one for the first set_enabled, one (not retried) here");
    // The server did the work after we gave up: why writes are never sent twice.
    assert_eq!(k.agent(AGENT_2).unwrap()["enabled"], false);
}

/// The test server answers with the recorded fixtures' shapes: every field it sends is one the
/// fixture of that call has too.
#[tokio::test]
async fn the_test_server_speaks_the_fixture_shapes() {
    let k = cluster(AcceptAuth::Either).await;
    let fixtures: [(&str, &str, &str); 3] = [
        ("/api/admin/get_agents", "agents", include_str!("../shared/src/kasm/fixtures/get_agents.json")),
        ("/api/admin/get_servers", "servers", include_str!("../shared/src/kasm/fixtures/get_servers.json")),
        ("/api/public/get_kasms", "kasms", include_str!("../shared/src/kasm/fixtures/get_kasms.json")),
    ];
    for (path, key, text) in fixtures {
        let fixture: Value = serde_json::from_str(text).unwrap();
        let known: std::collections::BTreeSet<String> = fixture["response"][key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect();
        let answer = raw_call(&k.url, path).await;
        let records = answer[key].as_array().unwrap();
        assert!(!records.is_empty(), "{path}");
        for r in records {
            for field in r.as_object().unwrap().keys() {
                assert!(known.contains(field), "{path}: the test server sends `{field}`, the fixture does not");
            }
        }
    }
}

/// A bare HTTP/1.1 POST (no client library in the way).
async fn raw_call(base: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = serde_json::json!({"api_key": KEY, "api_key_secret": SECRET}).to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (_, json_body) = out.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json_body).unwrap()
}
