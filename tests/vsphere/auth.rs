//! The vCenter session: created once and shared, recreated once after vCenter forgets it, a refused
//! password is Auth and never printed, ended by `logout` and by `shutdown` (once, bounded, nothing
//! sent when no session was opened).

use integration_tests::fake_api::{Fault, Reply};
use integration_tests::vsphere_server::VsphereTestServer;
use shared::providers::vsphere::SHUTDOWN_WAIT;
use shared::providers::{ErrorClass, VmProvider};
use std::time::{Duration, Instant};

#[tokio::test]
async fn one_session_is_reused_and_recreated_once_after_401() {
    let server = VsphereTestServer::start().await;
    let p = super::provider(&server);
    let s = super::spec("auth", "pool-a");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(server.session_counts(), (1, 0), "every call of a create shares one session");
    let sessions: Vec<_> =
        server.requests().into_iter().filter(|r| r.method == "POST" && r.route == "/session").collect();
    assert_eq!(sessions.len(), 1);
    for r in server.requests().iter().filter(|r| r.route != "/session" && !r.route.starts_with("/transfer/")) {
        assert!(r.headers.contains_key("vmware-api-session-id"), "{r:?}");
        assert!(!r.headers.contains_key("authorization"), "Basic credentials only on POST /api/session: {r:?}");
    }

    server.expire_sessions();
    let got = p.get_vm(&vm.id).await.expect("a new session after the 401");
    assert_eq!(got.id, vm.id);
    assert_eq!(server.session_counts().0, 2);

    p.logout().await.expect("logout");
    assert_eq!(server.session_counts(), (2, 1));
    let last = server.api().last("DELETE /session").expect("DELETE /api/session");
    assert!(last.headers.contains_key("vmware-api-session-id"), "{last:?}");
}

#[tokio::test]
async fn a_refused_password_is_auth_and_never_shown() {
    let server = VsphereTestServer::start().await;
    let p = super::provider_cfg(&super::config(&server), "Wr0ng-pa55word");
    let e = p.list_vms(&shared::model::OwnerLabels::deployment("auth")).await.expect_err("refused");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(!e.to_string().contains("Wr0ng-pa55word"), "{e}");
    // A rotated password is read again from its secret on the next session.
    server.set_password("Wr0ng-pa55word");
    p.list_vms(&shared::model::OwnerLabels::deployment("auth")).await.expect("the rotated password works");
}

#[tokio::test]
async fn shutdown_ends_the_session_once_and_sends_nothing_without_one() {
    let server = VsphereTestServer::start().await;
    // Never used: no session, nothing sent.
    let idle = super::provider(&server);
    idle.shutdown().await;
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    let p = super::provider(&server);
    p.list_vms(&shared::model::OwnerLabels::deployment("auth")).await.expect("list");
    assert_eq!(server.live_sessions(), 1);
    p.shutdown().await;
    assert_eq!(server.session_counts(), (1, 1));
    assert_eq!(server.live_sessions(), 0);
    assert_eq!(server.api().count("DELETE /session"), 1);
    // Again: the session is gone, nothing more is sent.
    p.shutdown().await;
    assert_eq!(server.api().count("DELETE /session"), 1);

    // vCenter does not answer: one request, given up after SHUTDOWN_WAIT, no retry, no error.
    let slow = super::provider(&server);
    slow.list_vms(&shared::model::OwnerLabels::deployment("auth")).await.expect("list");
    server.api().inject(
        "DELETE /session",
        Fault::Stall { hold: Duration::from_secs(30), then: Reply::empty(204) },
        0,
        1,
    );
    let t = Instant::now();
    slow.shutdown().await;
    assert!(t.elapsed() < SHUTDOWN_WAIT + Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(server.api().count("DELETE /session"), 2, "sent once");

    // vCenter refuses (a session it already ended): logged, not retried, no new session made.
    let ended = super::provider(&server);
    ended.list_vms(&shared::model::OwnerLabels::deployment("auth")).await.expect("list");
    let made = server.session_counts().0;
    server.expire_sessions();
    ended.shutdown().await;
    assert_eq!(server.api().count("DELETE /session"), 3);
    assert_eq!(server.session_counts().0, made, "no session is created to end one");

    // `kasm-autoscale preflight` ends the session it opened.
    let before = server.api().count("DELETE /session");
    let cfg = shared::config::VmProviderConfig::Vsphere(super::config(&server));
    let env = super::env(integration_tests::vsphere_server::PASSWORD, super::fast_retry(), Duration::from_secs(10));
    let checks = shared::providers::registry::preflight(&cfg, &env).await;
    assert!(checks.iter().any(|c| c.name == "credentials" && c.ok), "{checks:?}");
    assert_eq!(server.api().count("DELETE /session"), before + 1);
    assert_eq!(server.live_sessions(), 0);
}
