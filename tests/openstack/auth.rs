//! Keystone authentication against the real Keystone: both methods, the token cached until its
//! `expires_at` minus the margin, a token Keystone revoked before its expiry replaced once, a
//! refused credential is Auth and never shown, and an application credential's access rules.

use serde_json::json;
use shared::config::providers::OpenstackAuthMethod;
use shared::model::OwnerLabels;
use shared::providers::{ErrorClass, VmProvider};
use std::time::Duration;

use super::{World, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_methods_authenticate_and_reuse_one_token() {
    let w = World::new("auth-methods").await;
    for method in [OpenstackAuthMethod::Password, OpenstackAuthMethod::ApplicationCredential] {
        let before = w.server.tokens().len();
        let p = w.provider_cfg(&w.config(method));
        let vm = p.create_vm(&spec("auth", "c")).await.unwrap_or_else(|e| panic!("{method:?}: {e}"));
        p.list_vms(&OwnerLabels::deployment("auth")).await.expect("list");
        p.delete_vm(&vm.id).await.expect("delete");
        // Every request of this provider carried one token: cached, not fetched per call.
        assert_eq!(w.server.tokens().len() - before, 1, "{method:?}: one token for all calls");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_its_expiry_is_replaced_and_a_revoked_one_is_replaced_once() {
    let w = World::new("auth-expiry").await;
    // Keystone's tokens live an hour: a margin of an hour less 20 s makes one stale after 20 s.
    let p = w.provider().with_token_margin(Duration::from_secs(3600 - 20));
    p.list_vms(&OwnerLabels::deployment("x")).await.expect("list");
    p.list_vms(&OwnerLabels::deployment("x")).await.expect("list");
    assert_eq!(w.server.tokens().len(), 1, "fresh: reused");
    tokio::time::sleep(Duration::from_secs(21)).await;
    p.list_vms(&OwnerLabels::deployment("x")).await.expect("list");
    assert_eq!(w.server.tokens().len(), 2, "within the margin of its expiry: replaced");

    // Revoked at Keystone while we still hold it (as an expired one): the service refuses it, the
    // provider finds Keystone no longer accepts it, and sends once more with a new token. The
    // service asks Keystone on every request (no token cache), so it sees the revocation at once.
    w.server.set_token_cache_time(Duration::ZERO);
    let p = w.provider();
    p.list_vms(&OwnerLabels::deployment("x")).await.expect("list");
    let held = w.server.tokens().last().cloned().expect("a token");
    // Keystone's revocation events have whole-second precision: a token issued in the second of
    // its revocation may survive it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.keystone.revoke(&held).await;
    let before = w.server.api().count("GET /compute/v2.1/servers/detail");
    p.list_vms(&OwnerLabels::deployment("x")).await.expect("list after the revocation");
    assert_eq!(w.server.api().count("GET /compute/v2.1/servers/detail") - before, 2, "refused once, then sent again");
    assert_ne!(w.server.tokens().last(), Some(&held));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_auth_names_the_field_and_never_shows_the_secret() {
    let w = World::new("auth-refused").await;
    for method in [OpenstackAuthMethod::Password, OpenstackAuthMethod::ApplicationCredential] {
        let cfg = w.config(method);
        let mut secrets = w.secrets();
        let wrong = "wrong-secret-value-Zx81";
        for v in secrets.0.values_mut() {
            *v = wrong.to_string();
        }
        let p = shared::providers::openstack::OpenstackProvider::from_config(
            &cfg,
            &super::env(secrets, super::fast_retry(), Duration::from_secs(10)),
        )
        .expect("build");
        let err = p.list_vms(&OwnerLabels::deployment("x")).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{method:?}: {err}");
        let text = err.to_string();
        let field = if method == OpenstackAuthMethod::Password { "password" } else { "application_credential_secret" };
        assert!(text.contains(field) && !text.contains(wrong), "{text}");
        assert_eq!(w.server.api().requests().len(), 0, "no service call without a token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_rule_refusal_is_auth_and_not_sent_again() {
    // Kasm's rules without `GET /v2.1/servers/detail`.
    let rules = json!([
        {"service": "compute", "method": "GET", "path": "/v2.1/servers"},
        {"service": "compute", "method": "GET", "path": "/v2.1/flavors/**"}
    ]);
    let w = World::with_rules("auth-rules", Some(rules)).await;
    let p = w.provider();
    let err = p.list_vms(&OwnerLabels::deployment("x")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(
        w.server.api().count("GET /compute/v2.1/servers/detail"),
        1,
        "Keystone still accepts the token: not sent again"
    );
}
