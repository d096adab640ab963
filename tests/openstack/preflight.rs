//! `preflight` against the real Keystone and the test services: every check passes on a good
//! config, and each names what is missing or refused.

use serde_json::json;
use shared::config::providers::OpenstackAuthMethod;
use shared::providers::Check;
use shared::providers::openstack::CHECKS;

use super::World;

fn by_name<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_passes_and_names_what_is_missing() {
    let w = World::new("preflight").await;
    for method in [OpenstackAuthMethod::ApplicationCredential, OpenstackAuthMethod::Password] {
        let mut cfg = w.config(method);
        cfg.create_volume = true;
        cfg.volume_size_gb = Some(20);
        let checks = w.provider_cfg(&cfg).preflight().await;
        assert_eq!(checks.iter().map(|c| c.name).collect::<Vec<_>>(), CHECKS.to_vec());
        assert!(checks.iter().all(|c| c.ok), "{method:?}: {checks:#?}");
    }
    // Only reads were sent.
    assert!(w.server.api().requests().iter().all(|r| r.method == "GET"), "{:?}", w.server.api().requests());

    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.flavor = "gen.huge".into();
    cfg.image_id = "00000000-1111-4222-8333-444444444444".into();
    cfg.network_id = "00000000-1111-4222-8333-555555555555".into();
    cfg.security_groups.0 = vec!["kasm-agents".into(), "nope".into()];
    cfg.key_name = Some("lost-key".into());
    cfg.project_name = "someone-else".into();
    let checks = w.provider_cfg(&cfg).preflight().await;
    for (name, says) in [
        ("project_scope", "someone-else"),
        ("flavor", "gen.huge"),
        ("image", "00000000-1111-4222-8333-444444444444"),
        ("network", "00000000-1111-4222-8333-555555555555"),
        ("security_groups", "nope"),
        ("key_name", "lost-key"),
    ] {
        let c = by_name(&checks, name);
        assert!(!c.ok && c.detail.contains(says), "{name}: {c:?}");
    }
    assert!(by_name(&checks, "credentials").ok);

    let mut cfg = w.config(OpenstackAuthMethod::Password);
    let checks = {
        let mut secrets = w.secrets();
        secrets.0.insert("env:OS_PASSWORD".into(), "not-the-password".into());
        cfg.name = "wrong".into();
        shared::providers::openstack::OpenstackProvider::from_config(
            &cfg,
            &super::env(secrets, super::fast_retry(), std::time::Duration::from_secs(10)),
        )
        .unwrap()
        .preflight()
        .await
    };
    assert!(!by_name(&checks, "credentials").ok, "{checks:?}");
    assert!(!by_name(&checks, "credentials").detail.contains("not-the-password"));
    assert!(by_name(&checks, "startup_script").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_rules_check_names_each_refused_read_path() {
    // Kasm's minimum rules, less `GET /v2.1/flavors` and the image schema.
    let rules = json!([
        {"service": "volumev3", "method": "POST", "path": "/v3/*/volumes"},
        {"service": "volumev3", "method": "DELETE", "path": "/v3/*/volumes/*"},
        {"service": "volumev3", "method": "GET", "path": "/v3/*/volumes"},
        {"service": "volumev3", "method": "GET", "path": "/v3/*/volumes/*"},
        {"service": "volumev3", "method": "GET", "path": "/v3/*/volumes/detail"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/detail"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers"},
        {"service": "compute", "method": "GET", "path": "/v2.1/flavors/*"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/*/os-volume_attachments"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/*"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/*/os-interface"},
        {"service": "compute", "method": "POST", "path": "/v2.1/servers"},
        {"service": "compute", "method": "DELETE", "path": "/v2.1/servers/*"},
        {"service": "image", "method": "GET", "path": "/v2/images/*"}
    ]);
    let w = World::with_rules("preflight-rules", Some(rules)).await;
    let checks = w.provider().preflight().await;
    let c = by_name(&checks, "access_rules");
    assert!(!c.ok, "{c:?}");
    assert!(c.detail.contains("compute GET /v2.1/flavors (HTTP 401)"), "{c:?}");
    assert!(c.detail.contains("image GET /v2/schemas/image (HTTP 401)"), "{c:?}");
    assert!(!c.detail.contains("servers/detail"), "{c:?}");
}
