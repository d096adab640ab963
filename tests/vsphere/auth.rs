//! The vCenter session: created once and shared, recreated once after vCenter forgets it, a refused
//! password is Auth and never printed, ended by `logout`.

use integration_tests::vsphere_server::VsphereTestServer;
use shared::providers::{ErrorClass, VmProvider};

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
