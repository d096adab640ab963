//! `preflight` against the real Keystone and the test services: every check passes on a good
//! config, and each names what is missing or refused.

use integration_tests::fake_api::Reply;
use integration_tests::openstack_server::err;
use serde_json::json;
use shared::config::providers::OpenstackAuthMethod;
use shared::model::OwnerLabels;
use shared::providers::openstack::CHECKS;
use shared::providers::{Check, VmProvider};

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

/// Kasm's minimum application-credential access rules (the seed's "Application Credential Access
/// Rules"), as Keystone's `access_rules`.
fn kasm_rules() -> serde_json::Value {
    json!([
        {"service": "volumev3", "method": "POST", "path": "/v3/*/volumes"},
        {"service": "volumev3", "method": "DELETE", "path": "/v3/*/volumes/*"},
        {"service": "volumev3", "method": "GET", "path": "/v3/*/volumes"},
        {"service": "volumev3", "method": "GET", "path": "/v3/*/volumes/*"},
        {"service": "volumev3", "method": "GET", "path": "/v3/*/volumes/detail"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/detail"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers"},
        {"service": "compute", "method": "GET", "path": "/v2.1/flavors"},
        {"service": "compute", "method": "GET", "path": "/v2.1/flavors/*"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/*/os-volume_attachments"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/*"},
        {"service": "compute", "method": "GET", "path": "/v2.1/servers/*/os-interface"},
        {"service": "compute", "method": "POST", "path": "/v2.1/servers"},
        {"service": "compute", "method": "DELETE", "path": "/v2.1/servers/*"},
        {"service": "image", "method": "GET", "path": "/v2/images/*"},
        {"service": "image", "method": "GET", "path": "/v2/schemas/image"}
    ])
}

/// Kasm's minimum rules, for a user holding only the `member` role (the README's), on a cloud whose
/// policy keeps the image read for admins: every check passes; the reads kasm-autoscale does not
/// make are "not checked", each saying whether the access rules (401) or the policy (403) refused
/// it; and the whole create/list/delete flow works under these rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_kasms_minimum_rules_only_reads_the_flow_makes_can_fail() {
    let w = World::with_rules("preflight-kasm", Some(kasm_rules())).await;
    w.server.admin_only(
        "GET /image/v2/images/{id}",
        Reply::text(403, "403 Forbidden\n\nYou are not authorized to complete get_image action.\n\n"),
    );
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.create_volume = true;
    cfg.volume_size_gb = Some(20);
    let p = w.provider_cfg(&cfg);
    let checks = p.preflight().await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert!(checks.iter().all(|c| !c.detail.contains('\n')), "one line each: {checks:#?}");
    let creds = by_name(&checks, "credentials");
    assert!(creds.detail.contains("\"member\"") && !creds.detail.contains("\"admin\""), "{creds:?}");
    for (name, rule) in [
        (
            "network",
            "network GET /v2.0/networks/{id} is refused by the application credential's access rules (HTTP 401)",
        ),
        (
            "security_groups",
            "network GET /v2.0/security-groups is refused by the application credential's access rules (HTTP 401)",
        ),
        (
            "key_name",
            "compute GET /v2.1/os-keypairs/{name} is refused by the application credential's access rules (HTTP 401)",
        ),
        (
            "compute_quota",
            "compute GET /v2.1/limits is refused by the application credential's access rules (HTTP 401)",
        ),
        (
            "volume_quota",
            "volumev3 GET /v3/{project_id}/limits is refused by the application credential's access rules (HTTP 401)",
        ),
        (
            "image",
            "image GET /v2/images/{id} is forbidden by policy (HTTP 403: 403 Forbidden You are not authorized to complete get_image action.)",
        ),
    ] {
        let c = by_name(&checks, name);
        assert!(c.detail.starts_with("not checked: ") && c.detail.contains(rule), "{name}: {c:?}");
        assert!(c.detail.contains("kasm-autoscale does not need this read"), "{name}: {c:?}");
    }
    let rules = by_name(&checks, "access_rules");
    assert!(rules.detail.contains("not needed by kasm-autoscale"), "{rules:?}");
    assert!(rules.detail.contains("image GET /v2/images/* is forbidden by policy (HTTP 403"), "{rules:?}");
    for name in ["flavor", "project_scope", "startup_script"] {
        assert!(!by_name(&checks, name).detail.starts_with("not checked"), "{name}: {checks:#?}");
    }

    // The rules are enough for the flow itself: create (boot volume), list, delete.
    let s = super::spec("prod", "p");
    let vm = p.create_vm(&s).await.expect("create under Kasm's rules");
    assert_eq!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().len(), 1);
    p.delete_vm(&vm.id).await.expect("delete under Kasm's rules");
    assert!(w.server.servers().is_empty() && w.server.volumes().is_empty());
}

/// A read the flow makes, refused, fails its check, and says how; missing (404) reads differently
/// from forbidden (403), one line each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_read_the_flow_needs_fails_and_missing_is_not_forbidden() {
    // Kasm's rules less `flavors/*`: the flavor list the flow makes is refused by the rules.
    let mut rules = kasm_rules();
    rules.as_array_mut().unwrap().retain(|r| r["path"] != "/v2.1/flavors/*");
    let w = World::with_rules("preflight-need", Some(rules)).await;
    w.server.admin_only(
        "GET /compute/v2.1/servers/detail",
        err(403, "forbidden", "Policy doesn't allow os_compute_api:servers:detail to be performed."),
    );
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.image_id = "00000000-1111-4222-8333-444444444444".into();
    let checks = w.provider_cfg(&cfg).preflight().await;
    let c = by_name(&checks, "access_rules");
    assert!(!c.ok, "{c:?}");
    assert!(
        c.detail.contains(
            "compute GET /v2.1/servers/detail is forbidden by policy (HTTP 403: forbidden: Policy doesn't allow os_compute_api:servers:detail to be performed.)"
        ),
        "{c:?}"
    );
    assert!(
        c.detail.contains("compute GET /v2.1/flavors/* (flavors/detail) is refused by the application credential's access rules (HTTP 401)"),
        "{c:?}"
    );
    let f = by_name(&checks, "flavor");
    assert!(!f.ok && f.detail.contains("refused by the application credential's access rules (HTTP 401)"), "{f:?}");
    assert!(f.detail.contains("kasm-autoscale needs this read"), "{f:?}");
    let i = by_name(&checks, "image");
    assert!(!i.ok && i.detail.contains("does not exist") && !i.detail.contains("forbidden"), "{i:?}");
    assert!(checks.iter().all(|c| !c.detail.contains('\n')), "one line each: {checks:#?}");
}
