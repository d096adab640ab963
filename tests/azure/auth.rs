//! The client-credentials token: requested as Microsoft Entra ID defines it, cached until near its
//! expiry, fetched again when ARM says it expired, never leaked.

use integration_tests::azure_server::{AzureTestServer, CLIENT_ID, CLIENT_SECRET, SCOPE, TENANT};
use shared::model::{OsFamily, OwnerLabels};
use shared::providers::{ErrorClass, VmProvider};

use super::{config, provider, provider_cfg, spec};

#[tokio::test]
async fn the_token_request_is_client_credentials_with_the_arm_scope_and_is_cached() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    p.create_vm(&spec("prod", "p", OsFamily::Linux)).await.expect("create");
    p.list_vms(&OwnerLabels::deployment("prod")).await.expect("list");
    assert_eq!(server.token_requests(), 1, "one token for every call while it is valid");
    let t = server.requests().into_iter().find(|r| r.route == "/{tenant}/oauth2/v2.0/token").expect("a token request");
    assert_eq!(t.method, "POST");
    assert_eq!(t.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(t.headers.get("content-type").map(String::as_str), Some("application/x-www-form-urlencoded"));
    assert_eq!(t.param("grant_type"), Some("client_credentials"));
    assert_eq!(t.param("client_id"), Some(CLIENT_ID));
    assert_eq!(t.param("scope"), Some(SCOPE));
}

#[tokio::test]
async fn a_token_near_its_expiry_is_replaced_before_use() {
    let server = AzureTestServer::start().await;
    // Lives less than the 5-minute margin: every call fetches a fresh one.
    server.set_token_lifetime(200);
    let p = provider(&server);
    p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_once_and_a_refused_one_is_auth() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    server.expire_tokens();
    p.list_vms(&OwnerLabels::deployment("prod")).await.expect("a new token after ExpiredAuthenticationToken");
    assert_eq!(server.token_requests(), 2);

    // A wrong client secret: Auth, naming the app, never the secret.
    let bad = provider_cfg(&config(&server), "not-the-secret-Zz9");
    let err = bad.list_vms(&OwnerLabels::deployment("prod")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    let text = err.to_string();
    assert!(text.contains("AADSTS7000215") && text.contains(CLIENT_ID), "{text}");
    assert!(!text.contains("not-the-secret-Zz9") && !text.contains(CLIENT_SECRET), "{text}");
}
