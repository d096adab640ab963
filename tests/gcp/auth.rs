//! The service-account token flow against the test server's token endpoint: the key file's
//! `token_uri` is where the assertion goes, tokens are cached until expiry minus the margin, a
//! refused token is dropped (and the request sent again only when the key file changed), and no
//! secret reaches an error.

use integration_tests::gcp_server::{CLIENT_EMAIL, GcpTestServer, key_file};
use secrecy::SecretString;
use serde_json::Value;
use shared::config::SecretRef;
use shared::providers::gcp::GcpProvider;
use shared::providers::{BuildEnv, ErrorClass, VmProvider};
use std::sync::Arc;

use super::{config, fast_retry, fast_timings, provider, provider_cfg};

#[tokio::test]
async fn the_assertion_goes_to_the_key_files_token_uri_and_the_token_is_cached() {
    let server = GcpTestServer::start().await;
    let p = provider(&server);
    for _ in 0..3 {
        let _ = p.get_vm("kasm-nothing").await;
    }
    assert_eq!(server.tokens_issued(), 1, "one token for three calls");
    let t = server.api().last("POST /token").expect("a token request");
    assert_eq!(t.param("grant_type"), Some(shared::providers::gcp::GRANT_TYPE));
    let jwt = t.param("assertion").unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], format!("{}/token", server.url), "the key file's token_uri is the audience");
    assert_eq!(claims["iss"], CLIENT_EMAIL);

    // A token_uri elsewhere is used as given: the token comes from the other server, which this one refuses.
    let other = GcpTestServer::start().await;
    let key = key_file(&other.url);
    let cfg = config(&server);
    let env = super::env(&key, fast_retry(), std::time::Duration::from_secs(5));
    let p2 = GcpProvider::from_config(&cfg, &env).unwrap();
    let e = p2.get_vm("kasm-x").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "a token from another server is refused here: {e}");
    assert_eq!(other.tokens_issued(), 1, "the assertion went to the other server's token_uri");
}

#[tokio::test]
async fn a_token_expiring_within_the_margin_is_fetched_anew() {
    let server = GcpTestServer::start().await;
    // `expires_in` 200 s is inside the 300 s refresh margin: every call wants a fresh token.
    server.set_token_ttl(200);
    let p = provider(&server);
    for _ in 0..3 {
        let _ = p.get_vm("kasm-nothing").await;
    }
    assert_eq!(server.tokens_issued(), 3);
    // 400 s is outside it: the next token is kept.
    server.set_token_ttl(400);
    for _ in 0..3 {
        let _ = p.get_vm("kasm-nothing").await;
    }
    assert_eq!(server.tokens_issued(), 4);
    assert_eq!(shared::providers::gcp::REFRESH_MARGIN, std::time::Duration::from_secs(300));
}

#[tokio::test]
async fn a_refused_token_is_dropped_and_a_new_one_fetched_next_time() {
    let server = GcpTestServer::start().await;
    let p = provider(&server);
    let _ = p.get_vm("kasm-nothing").await;
    server.revoke_tokens();
    server.api().clear_requests();
    let e = p.get_vm("kasm-nothing").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    let gets = server.requests().iter().filter(|r| r.method == "GET").count();
    assert_eq!(gets, 1, "the same key file: the refused request is not sent again");
    let e = p.get_vm("kasm-nothing").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound, "the next call fetched a new token: {e}");
    assert_eq!(server.tokens_issued(), 2);
}

/// A key file an operator rotates.
#[derive(Debug)]
struct Rotating(std::sync::Mutex<String>);

#[async_trait::async_trait]
impl shared::secrets::Secrets for Rotating {
    async fn resolve(&self, _r: &SecretRef) -> Result<SecretString, shared::secrets::SecretError> {
        Ok(SecretString::from(self.0.lock().unwrap().clone()))
    }
}

#[tokio::test]
async fn a_rotated_key_file_is_read_again_after_a_401_and_used_at_once() {
    let server = GcpTestServer::start().await;
    let secret = Arc::new(Rotating(std::sync::Mutex::new(key_file(&server.url))));
    let env = BuildEnv { retry: fast_retry(), timings: fast_timings(), ..BuildEnv::new(secret.clone(), "t") };
    let p = GcpProvider::from_config(&config(&server), &env).unwrap();
    let _ = p.get_vm("kasm-nothing").await;
    server.revoke_tokens();
    let mut rotated: Value = serde_json::from_str(&key_file(&server.url)).unwrap();
    rotated["private_key_id"] = "rotated-key-id".into();
    *secret.0.lock().unwrap() = rotated.to_string();
    server.api().clear_requests();
    let e = p.get_vm("kasm-nothing").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound, "sent again with the new key's token: {e}");
    let order: Vec<String> = server.requests().iter().map(|r| r.key()).collect();
    assert_eq!(order.len(), 3, "refused, a new token, sent again: {order:?}");
    assert_eq!(order[1], "POST /token");
}

#[tokio::test]
async fn bad_key_files_are_auth_errors_naming_the_field_never_the_key() {
    let server = GcpTestServer::start().await;
    for (key, says) in [
        ("not json".to_string(), "gcp_credentials"),
        (r#"{"type":"service_account"}"#.to_string(), "client_email"),
        (key_file(&server.url).replace("BEGIN PRIVATE KEY", "BEGIN NOTHING"), "private_key"),
    ] {
        let env = super::env(&key, fast_retry(), std::time::Duration::from_secs(5));
        let p = GcpProvider::from_config(&config(&server), &env).unwrap();
        let e = p.create_vm(&super::spec("prod", "p")).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth, "{e}");
        let text = e.to_string();
        assert!(text.contains(says) && text.contains("gcp_credentials"), "{text}");
        assert!(!text.contains("MII") && !text.contains("PRIVATE KEY"), "a secret in {text}");
    }
    assert!(server.instances().is_empty());
    // A key the token endpoint refuses (another service account).
    let mut v: Value = serde_json::from_str(&key_file(&server.url)).unwrap();
    v["client_email"] = "someone-else@example.iam.gserviceaccount.com".into();
    let p = provider_cfg(&server, &config(&server));
    drop(p);
    let env = super::env(&v.to_string(), fast_retry(), std::time::Duration::from_secs(5));
    let e = GcpProvider::from_config(&config(&server), &env).unwrap().get_vm("kasm-x").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(e.to_string().contains("refused the key") && e.to_string().contains("invalid_grant"), "{e}");
}
