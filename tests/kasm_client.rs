//! `shared::kasm::KasmClient` against the in-process Kasm test server, which serves only the calls a
//! real Kasm manager has: every `KasmApi` call, the three auth modes, refused keys, missing
//! permissions, outages, malformed answers, and what is (not) retried.

use integration_tests::kasm_server::{AcceptAuth, AgentSpec, Fault, KasmTestServer};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use shared::config::SecretRef;
use shared::config::settings::{AgentRegistration, KasmAuthMode, KasmSettings};
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
        agent_registration: AgentRegistration::RenderedId,
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

/// A cluster: two agents (one disabled), one server-pool server, sessions on agent 1 in four
/// statuses (two hold resources), and a session request not placed yet.
async fn cluster(accept: AcceptAuth) -> KasmTestServer {
    let k = KasmTestServer::start(KEY, SECRET, accept).await;
    let agent = |id: &str, host: &str, enabled| AgentSpec {
        server_id: id.into(),
        hostname: host.into(),
        zone_id: ZONE.into(),
        server_pool_id: Some(POOL.into()),
        enabled,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    };
    k.add_agent(agent(AGENT_1, "agent-1", true));
    k.add_agent(agent(AGENT_2, "agent-2", false));
    k.add_server(SERVER_1, "10.0.2.21", ZONE, POOL, true);
    k.add_session("aa11bb22cc33dd44ee55ff6677889900", AGENT_1, 2.0, 2_768.0);
    k.add_session_with_status("bb22cc33dd44ee55ff66778899001122", AGENT_1, 1.0, 1_000.0, "starting");
    k.add_session_with_status("cc22cc33dd44ee55ff66778899001122", AGENT_1, 4.0, 4_000.0, "delete_pending");
    k.add_session_with_status("dd22cc33dd44ee55ff66778899001122", "", 2.0, 2_000.0, "requested");
    k
}

const MODES: [(KasmAuthMode, AcceptAuth); 3] = [
    (KasmAuthMode::Body, AcceptAuth::Body),
    (KasmAuthMode::Header, AcceptAuth::Header),
    (KasmAuthMode::Basic, AcceptAuth::Basic),
];

#[tokio::test]
async fn reads_in_every_auth_mode_with_kasms_allocation_rule() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let c = client(&k.url, mode);
        let servers = c.list_servers().await.unwrap();
        assert_eq!(servers.len(), 3, "{mode:?}");
        let a1 = servers.iter().find(|s| s.server_id == AGENT_1).unwrap();
        assert_eq!(a1.kind, ServerKind::Agent);
        assert!(a1.enabled);
        assert_eq!(a1.server_pool_id.as_deref(), Some(POOL));
        assert_eq!(a1.reported, Resources::new(4.0, 16_000.0, 0.0));
        // running + starting only, as Kasm's core_calculations/memory_calculations.
        assert_eq!(a1.allocated, Resources::new(3.0, 3_768.0, 0.0));
        assert!(a1.last_reported.is_some());
        let a2 = servers.iter().find(|s| s.server_id == AGENT_2).unwrap();
        assert!(!a2.enabled);
        assert_eq!(a2.allocated, Resources::default());
        let s1 = servers.iter().find(|s| s.server_id == SERVER_1).unwrap();
        assert_eq!(s1.kind, ServerKind::Server);
        assert_eq!(s1.server_pool_id.as_deref(), Some(POOL));
        assert_eq!(s1.max_sessions, Some(1));

        let sessions = c.list_sessions().await.unwrap();
        assert_eq!(sessions.len(), 4);
        assert_eq!(sessions.iter().filter(|s| s.allocates()).count(), 2);
        // Nothing but real calls was made.
        for (path, _) in k.paths_called() {
            assert!(path == "/api/admin/get_servers" || path == "/api/public/get_kasms", "{path}");
        }
    }
}

const AUTOSCALE: &str = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a";
const STAGING_1: &str = "5c1a7e2b9d3f4a6c8e0b2d4f6a8c0e21";
const IMAGE_1: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f1";

#[tokio::test]
async fn staging_configs_come_with_their_image_size_and_staged_and_queued_sessions_are_marked() {
    let k = cluster(AcceptAuth::Either).await;
    let c = client(&k.url, KasmAuthMode::Body);
    // No staging config: get_images is not called (a key without Images View keeps working).
    assert!(c.list_staging_configs().await.unwrap().is_empty());
    assert_eq!(k.hits("/api/admin/get_images"), 0);

    k.add_image(IMAGE_1, "Chrome", 2.0, 2_768.0, 0);
    k.add_image("0a1b2c3d4e5f60718293a4b5c6d7e8f4", "Terminal", 0.5, 512.0, 0);
    k.add_staging_config(STAGING_1, ZONE, Some(AUTOSCALE), IMAGE_1, 3);
    k.add_staged_session("ee22cc33dd44ee55ff66778899001122", AGENT_1, STAGING_1, 2.0, 2_768.0);
    k.add_queued_session("ff22cc33dd44ee55ff66778899001122", AUTOSCALE, 2.0, 2_768.0);

    let staging = c.list_staging_configs().await.unwrap();
    assert_eq!(staging.len(), 1);
    let s = &staging[0];
    assert_eq!(s.staging_config_id, STAGING_1);
    assert_eq!(s.zone_id, ZONE);
    assert_eq!(s.autoscale_config_id.as_deref(), Some(AUTOSCALE));
    assert_eq!(s.num_sessions, 3);
    assert_eq!(s.image_size, Resources::new(2.0, 2_768.0, 0.0));
    assert_eq!(s.image_name.as_deref(), Some("Chrome"));

    let sessions = c.list_sessions().await.unwrap();
    let staged: Vec<_> = sessions.iter().filter(|s| s.is_standby).collect();
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].staging_config_id.as_deref(), Some(STAGING_1));
    let queued: Vec<_> = sessions.iter().filter(|s| s.is_queued()).collect();
    assert_eq!(queued.len(), 2, "the cluster's own request and this one");
    assert!(queued.iter().all(|q| !q.is_placed()));
    assert_eq!(queued.iter().filter(|q| q.autoscale_config_id.as_deref() == Some(AUTOSCALE)).count(), 1);

    // A staged session holds its agent's resources like any running one.
    let a1 = c.list_servers().await.unwrap().into_iter().find(|s| s.server_id == AGENT_1).unwrap();
    assert_eq!(a1.allocated, Resources::new(5.0, 6_536.0, 0.0));
}

#[tokio::test]
async fn staging_reads_without_their_permission_name_it() {
    let k = cluster(AcceptAuth::Either).await;
    k.add_image(IMAGE_1, "Chrome", 2.0, 2_768.0, 0);
    k.add_staging_config(STAGING_1, ZONE, Some(AUTOSCALE), IMAGE_1, 1);
    k.revoke("IMAGES_VIEW");
    let c = client(&k.url, KasmAuthMode::Body);
    let e = c.list_staging_configs().await.unwrap_err();
    assert!(
        matches!(&e, KasmError::Permission { call, permission, .. } if call == "get_images" && permission == "Images View"),
        "{e:?}"
    );
    k.revoke("STAGING_VIEW");
    let e = c.list_staging_configs().await.unwrap_err();
    assert!(
        matches!(&e, KasmError::Permission { call, permission, .. } if call == "get_staging_configs" && permission == "Staging View"),
        "{e:?}"
    );
    assert!(e.to_string().contains("Staging View"), "{e}");
}

#[tokio::test]
async fn a_staging_config_whose_image_is_not_listed_is_an_error_naming_both() {
    let k = cluster(AcceptAuth::Either).await;
    k.add_staging_config(STAGING_1, ZONE, Some(AUTOSCALE), IMAGE_1, 1);
    let e = client(&k.url, KasmAuthMode::Body).list_staging_configs().await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(STAGING_1) && text.contains(IMAGE_1), "{text}");
}

#[tokio::test]
async fn calls_kasm_lacks_are_404_on_the_stand_in() {
    let k = cluster(AcceptAuth::Either).await;
    for path in ["/api/admin/get_agents", "/api/admin/update_agent"] {
        let (status, _) = raw_call(&k.url, path, serde_json::json!({})).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn a_strict_server_refuses_the_other_auth_modes() {
    // Proves each mode really sends the key its way (and only its way).
    for (_, accept) in MODES {
        let k = cluster(accept).await;
        for (mode, a) in MODES {
            let r = client(&k.url, mode).list_sessions().await;
            if a == accept {
                assert!(r.is_ok(), "{mode:?} on {accept:?}");
            } else {
                assert!(matches!(r, Err(KasmError::Auth { .. })), "{mode:?} on {accept:?}: {r:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_naming_the_call_without_secrets() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let wrong = "wrong-secret-value-987";
        let c = client_with(&k.url, mode, wrong, Duration::from_secs(5));
        let e = c.list_sessions().await.unwrap_err();
        match &e {
            KasmError::Auth { call, message } => {
                assert_eq!(call, "get_kasms");
                assert!(message.contains("Access Denied"), "{message}");
            }
            other => panic!("{mode:?}: expected Auth, got {other:?}"),
        }
        let text = format!("{e} {e:?}");
        assert!(!text.contains(wrong) && !text.contains(SECRET), "{text}");
        // A refused key is not retried.
        assert_eq!(k.hits("/api/public/get_kasms"), 1);
    }
}

#[tokio::test]
async fn a_missing_permission_names_the_permission() {
    let k = cluster(AcceptAuth::Either).await;
    let c = client(&k.url, KasmAuthMode::Body);
    k.revoke("SESSIONS_VIEW");
    let e = c.list_sessions().await.unwrap_err();
    assert!(
        matches!(&e, KasmError::Permission { call, permission, .. } if call == "get_kasms" && permission == "Sessions View"),
        "{e:?}"
    );
    assert!(e.to_string().contains("Sessions View"), "{e}");
    // Agents Modify gone: agents can no longer be enabled, servers still can.
    k.revoke("AGENTS_MODIFY");
    let e = c.set_enabled(AGENT_2, true).await.unwrap_err();
    assert!(
        matches!(&e, KasmError::Permission { call, permission, .. } if call == "update_server" && permission == "Agents Modify"),
        "{e:?}"
    );
    c.set_enabled(SERVER_1, false).await.unwrap();
    // Servers Create gone: a server record cannot be made.
    k.revoke("SERVERS_CREATE");
    let e = c.ensure_server(&new_server("kasm-nocreate")).await.unwrap_err();
    assert!(matches!(&e, KasmError::Permission { permission, .. } if permission == "Servers Create"), "{e:?}");
}

#[tokio::test]
async fn set_enabled_is_a_partial_update_that_keeps_the_record() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let c = client(&k.url, mode);
        // A server whose Desktop Service is installed: the flag survives the update.
        let made = c.ensure_server(&new_server("kasm-partial")).await.unwrap();
        assert_eq!(k.agent(&made.server_id).unwrap()["agent_installed"], true);
        c.set_enabled(&made.server_id, true).await.unwrap();
        let rec = k.server(&made.server_id).unwrap();
        assert_eq!(rec["enabled"], true);
        assert_eq!(rec["agent_installed"], true, "{mode:?}: update_server reset agent_installed");
        assert_eq!(rec["connection_port"], 3389);
        c.set_enabled(AGENT_2, true).await.unwrap();
        assert_eq!(k.agent(AGENT_2).unwrap()["enabled"], true);
        assert_eq!(k.agent(AGENT_2).unwrap()["hostname"], "agent-2");
        // Dashed, upper-case spelling of the same id.
        c.set_enabled("9C8B7A6F-5E4D-3C2B-1A0F-9E8D7C6B5A4F", false).await.unwrap();
        assert_eq!(k.server(SERVER_1).unwrap()["enabled"], false);
        assert_eq!(k.server(SERVER_1).unwrap()["hostname"], "10.0.2.21");
        let e = c.set_enabled("00000000000000000000000000000000", true).await.unwrap_err();
        assert!(matches!(e, KasmError::NotFound { .. }), "{e}");
    }
}

#[tokio::test]
async fn delete_is_asynchronous_never_forced_and_never_repeated() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let c = client(&k.url, mode);
        c.delete_server(SERVER_1).await.unwrap();
        assert_eq!(k.server(SERVER_1).unwrap()["operational_status"], "delete_pending", "Kasm only marks it");
        // Already going: no second delete call.
        let before = k.hits("/api/admin/delete_server");
        c.delete_server(SERVER_1).await.unwrap();
        assert_eq!(k.hits("/api/admin/delete_server"), before);
        let listed = c.list_servers().await.unwrap();
        assert!(listed.iter().any(|s| s.server_id == SERVER_1 && s.is_going()));
        k.finish_deletes();
        assert!(k.server(SERVER_1).is_none());
        // Missing: succeeds without a delete call.
        c.delete_server(SERVER_1).await.unwrap();
        assert_eq!(k.hits("/api/admin/delete_server"), before);
        // An agent with sessions: Kasm refuses (force is off) and the record is still there.
        let e = c.delete_server(AGENT_1).await.unwrap_err();
        assert!(
            matches!(&e, KasmError::Api { call, message } if call == "delete_server" && message.contains("kasms")),
            "{e}"
        );
        assert_eq!(k.agent(AGENT_1).unwrap()["operational_status"], "running");
        for s in
            ["aa11bb22cc33dd44ee55ff6677889900", "bb22cc33dd44ee55ff66778899001122", "cc22cc33dd44ee55ff66778899001122"]
        {
            k.remove_session(s);
        }
        c.delete_server(AGENT_1).await.unwrap();
        assert_eq!(k.agent(AGENT_1).unwrap()["operational_status"], "delete_pending");
    }
}

fn new_server(name: &str) -> NewServer {
    NewServer {
        kind: ServerKind::Server,
        friendly_name: name.into(),
        hostname: name.into(),
        zone_id: ZONE.into(),
        server_pool_id: POOL.into(),
        connection_type: Some("RDP".into()),
        connection_port: Some(3389),
        connection_username: Some("Administrator".into()),
        connection_password: Some(SecretString::from("Static-pw-0042".to_string())),
        connection_private_key: None,
        connection_passphrase: None,
        use_user_private_key: false,
        connection_info: None,
        max_simultaneous_sessions: 1,
        max_simultaneous_users: Some(1),
        agent_installed: true,
        enabled: false,
    }
}

#[tokio::test]
async fn ensure_server_takes_kasms_id_and_is_idempotent_on_the_name() {
    for (mode, accept) in MODES {
        let k = cluster(accept).await;
        let c = client(&k.url, mode);
        let first = c.ensure_server(&new_server("kasm-01jd0000000000000000000001")).await.unwrap();
        assert!(first.created);
        let rec = k.server(&first.server_id).unwrap();
        assert_eq!(rec["friendly_name"], "kasm-01jd0000000000000000000001");
        assert_eq!(rec["server_pool_id"], POOL);
        assert_eq!(rec["server_type"], "Desktop");
        assert_eq!(rec["operational_status"], "starting", "agent_installed: Require Checkin");
        assert_eq!(rec["enabled"], false);
        assert_eq!(k.password(&first.server_id).as_deref(), Some("Static-pw-0042"));
        let jwt = first.registration_jwt.as_ref().expect("registration token").expose_secret().to_string();
        assert!(jwt.contains(&first.server_id));
        // A retry (lost answer, duplicate event): no second record.
        let again = c.ensure_server(&new_server("kasm-01jd0000000000000000000001")).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.server_id, first.server_id);
        assert_eq!(k.hits("/api/admin/create_server"), 1);
        assert_eq!(k.named("kasm-01jd0000000000000000000001").len(), 1);
        let found = c.find_by_name("kasm-01jd0000000000000000000001").await.unwrap().unwrap();
        assert_eq!(found.server_id, first.server_id);
        assert!(c.find_by_name("kasm-none").await.unwrap().is_none());
        // An agent record (precreate mode).
        let agent = NewServer { kind: ServerKind::Agent, connection_type: None, ..new_server("kasm-agent-1") };
        let a = c.ensure_server(&agent).await.unwrap();
        assert_eq!(k.agent(&a.server_id).unwrap()["server_type"], "host");
        // The hostname follows the VM's address.
        c.set_hostname(&first.server_id, "10.0.2.99").await.unwrap();
        assert_eq!(k.server(&first.server_id).unwrap()["hostname"], "10.0.2.99");
    }
}

#[tokio::test]
async fn two_records_with_our_name_are_an_error_not_a_guess() {
    let k = cluster(AcceptAuth::Either).await;
    k.add_server("11111111111111111111111111111111", "kasm-dup", ZONE, POOL, true);
    k.add_server("22222222222222222222222222222222", "kasm-dup", ZONE, POOL, true);
    let c = client(&k.url, KasmAuthMode::Body);
    let e = c.find_by_name("kasm-dup").await.unwrap_err();
    assert!(e.to_string().contains("2 records"), "{e}");
    assert!(c.ensure_server(&new_server("kasm-dup")).await.is_err());
    assert_eq!(k.hits("/api/admin/create_server"), 0);
}

#[tokio::test]
async fn set_connection_password_hands_it_over_and_never_leaks_it() {
    for (mode, accept) in MODES {
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
    assert_eq!(sessions.len(), 4);
    assert_eq!(k.hits("/api/public/get_kasms"), 2);
}

#[tokio::test]
async fn a_slow_read_is_retried_but_a_slow_write_is_not() {
    let k = cluster(AcceptAuth::Either).await;
    let c = client_with(&k.url, KasmAuthMode::Body, SECRET, Duration::from_millis(400));
    k.inject("/api/admin/get_servers", Fault::Slow(Duration::from_millis(1200)), 1);
    c.set_enabled(AGENT_2, true).await.unwrap();
    assert_eq!(k.hits("/api/admin/get_servers"), 2, "the timed-out read was retried");

    k.inject("/api/admin/update_server", Fault::Slow(Duration::from_millis(1200)), 1);
    let e = c.set_enabled(AGENT_2, false).await.unwrap_err();
    assert!(matches!(&e, KasmError::Unreachable { call, .. } if call == "update_server"), "{e:?}");
    assert_eq!(k.hits("/api/admin/update_server"), 2, "one for the first set_enabled, one (not retried) here");
    // The server did the work after we gave up: why writes are never sent twice.
    assert_eq!(k.agent(AGENT_2).unwrap()["enabled"], false);
}

/// The test server answers with the fixtures' shapes: every field it sends is one the fixture of
/// that call has too.
#[tokio::test]
async fn the_test_server_speaks_the_fixture_shapes() {
    let k = cluster(AcceptAuth::Either).await;
    k.add_image(IMAGE_1, "Chrome", 2.0, 2_768.0, 0);
    k.add_staging_config(STAGING_1, ZONE, Some(AUTOSCALE), IMAGE_1, 3);
    k.add_staged_session("ee22cc33dd44ee55ff66778899001122", AGENT_1, STAGING_1, 2.0, 2_768.0);
    k.add_queued_session("ff22cc33dd44ee55ff66778899001122", AUTOSCALE, 2.0, 2_768.0);
    let fixtures: [(&str, &str, &str); 4] = [
        ("/api/admin/get_servers", "servers", include_str!("../shared/src/kasm/fixtures/get_servers.json")),
        ("/api/public/get_kasms", "kasms", include_str!("../shared/src/kasm/fixtures/get_kasms.json")),
        (
            "/api/admin/get_staging_configs",
            "staging_configs",
            include_str!("../shared/src/kasm/fixtures/get_staging_configs.json"),
        ),
        ("/api/admin/get_images", "images", include_str!("../shared/src/kasm/fixtures/get_images.json")),
    ];
    for (path, key, text) in fixtures {
        let fixture: Value = serde_json::from_str(text).unwrap();
        let known: std::collections::BTreeSet<String> = fixture["response"][key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect();
        let (status, answer) =
            raw_call(&k.url, path, serde_json::json!({"api_key": KEY, "api_key_secret": SECRET})).await;
        assert_eq!(status, 200);
        let records = answer[key].as_array().unwrap();
        assert!(!records.is_empty(), "{path}");
        for r in records {
            for field in r.as_object().unwrap().keys() {
                assert!(known.contains(field), "{path}: the test server sends `{field}`, the fixture does not");
            }
        }
    }
}

/// A bare HTTP/1.1 POST (no client library in the way): the status and the JSON body (Null if none).
async fn raw_call(base: &str, path: &str, body: Value) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (_, json_body) = out.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(json_body).unwrap_or(Value::Null))
}
