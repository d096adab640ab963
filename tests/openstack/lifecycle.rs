//! The create flow and its bodies (checked by the test server against Nova's and Cinder's create
//! schemas for the announced microversion), resumption by name, boot volumes and what a delete
//! leaves, a server that ends in ERROR, quotas, the config override, and scripts too large.

use base64::Engine;
use integration_tests::openstack_server::{IMAGE_ID, NETWORK_ID, NO_VALID_HOST, Quotas};
use secrecy::SecretString;
use serde_json::json;
use shared::config::JsonText;
use shared::config::providers::OpenstackAuthMethod;
use shared::model::OwnerLabels;
use shared::providers::{ErrorClass, VmProvider, VmState};

use super::{SCRIPT, World, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sends_what_nova_names_and_resumes_by_name() {
    let w = World::new("create").await;
    let p = w.provider();
    let s = spec("prod", "Desktop Pool");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(vm.private_ip.as_deref(), Some("10.0.0.2"));
    assert_eq!(vm.labels, s.labels.to_map());
    let req = w.server.api().last("POST /compute/v2.1/servers").expect("a create");
    assert_eq!(req.headers.get("x-openstack-nova-api-version").map(String::as_str), Some("2.90"));
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    let srv = &body["server"];
    assert_eq!(srv["name"], json!(s.name));
    assert_eq!(srv["flavorRef"], json!("2"), "gen.medium resolved to its id");
    assert_eq!(srv["imageRef"], json!(IMAGE_ID));
    assert_eq!(srv["networks"], json!([{"uuid": NETWORK_ID}]));
    assert_eq!(srv["security_groups"], json!([{"name": "kasm-agents"}, {"name": "default"}]));
    assert_eq!(srv["key_name"], json!("kasm-admin"));
    assert_eq!(srv["availability_zone"], json!("nova"));
    assert_eq!(srv["metadata"]["team"], json!("vdi"));
    assert_eq!(srv["metadata"]["kasm-autoscale-deployment"], json!("prod"));
    assert_eq!(srv["metadata"]["kasm-autoscale-claim"], json!(s.claim.as_str()));
    let ud = base64::engine::general_purpose::STANDARD.decode(srv["user_data"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(ud).unwrap(), SCRIPT);
    assert!(srv.get("block_device_mapping_v2").is_none());

    // Again for the same claim: found by name and metadata, no second server.
    let again = p.create_vm(&s).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(w.server.api().count("POST /compute/v2.1/servers"), 1);
    let lookup = w.server.api().last("GET /compute/v2.1/servers/detail").unwrap();
    assert_eq!(lookup.param("name"), Some(format!("^{}$", s.name).as_str()));
    // The user data (it carries the manager token) is never in an error or log line of ours:
    // the recorded request is the server's view, not ours.
    assert!(w.server.volumes().is_empty());
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(w.server.servers().is_empty());
    assert!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().is_empty());
    // Every Nova request announced the configured microversion (Nova would read a missing header
    // as 2.1 and validate against that schema instead).
    for r in w.server.api().requests().iter().filter(|r| r.route.starts_with("/compute")) {
        assert_eq!(
            r.headers.get("x-openstack-nova-api-version").map(String::as_str),
            Some("2.90"),
            "{} {}",
            r.method,
            r.route
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_volumes_carry_our_labels_and_no_volume_outlives_its_server() {
    let w = World::new("volumes").await;
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.create_volume = true;
    cfg.volume_size_gb = Some(30);
    cfg.volume_type = Some("__DEFAULT__".into());
    let p = w.provider_cfg(&cfg);
    for honour in [true, false] {
        w.server.honour_delete_on_termination(honour);
        let s = spec("prod", "p");
        let vm = p.create_vm(&s).await.expect("create");
        let vols = w.server.volumes();
        assert_eq!(vols.len(), 1, "{vols:?}");
        let v = &vols[0];
        assert_eq!(v.size, 30);
        assert_eq!(v.status, "in-use");
        assert_eq!(v.attached_to.as_deref(), Some(vm.id.as_str()));
        assert_eq!(v.metadata, s.labels.to_map(), "the volume carries our labels");
        assert_eq!(v.request["imageRef"], json!(IMAGE_ID));
        assert_eq!(v.request["volume_type"], json!("__DEFAULT__"));
        let srv = &w.servers_request(&vm.id);
        assert_eq!(
            srv["block_device_mapping_v2"],
            json!([{"boot_index": 0, "uuid": v.id, "source_type": "volume", "destination_type": "volume", "delete_on_termination": true}])
        );
        assert!(srv.get("imageRef").is_none());
        p.delete_vm(&vm.id).await.expect("delete");
        assert!(w.server.servers().is_empty());
        assert!(w.server.volumes().is_empty(), "honour={honour}: left {:?}", w.server.volumes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_error_is_classified_and_deleted_and_quotas_are_out_of_capacity() {
    let w = World::new("errors").await;
    let p = w.provider();
    w.server.fail_builds(NO_VALID_HOST, 1);
    let err = p.create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("No valid host"), "{err}");
    assert!(w.server.servers().is_empty(), "the failed server was deleted");
    w.server.fail_builds("Build of instance aborted: Failure prepping block device.", 1);
    assert_eq!(p.create_vm(&spec("prod", "p")).await.unwrap_err().class(), ErrorClass::Transient);
    assert!(w.server.servers().is_empty());

    w.server.set_quotas(Quotas { instances: 0, cores: 40, ram: 81920, volumes: 20, gigabytes: 1000 });
    let err = p.create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("Quota exceeded for instances"), "{err}");
    w.server.set_quotas(Quotas { instances: 10, cores: 40, ram: 81920, volumes: 20, gigabytes: 10 });
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.create_volume = true;
    cfg.volume_size_gb = Some(30);
    let err = w.provider_cfg(&cfg).create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(w.server.servers().is_empty() && w.server.volumes().is_empty());
    // The volume fits but the server does not: the unused boot volume is deleted.
    w.server.set_quotas(Quotas { instances: 0, cores: 40, ram: 81920, volumes: 20, gigabytes: 1000 });
    let err = w.provider_cfg(&cfg).create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert_eq!(w.server.api().count("POST /volume/v3/{project}/volumes"), 2);
    assert!(w.server.servers().is_empty() && w.server.volumes().is_empty(), "{:?}", w.server.volumes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_override_is_merged_and_cannot_drop_our_labels() {
    let w = World::new("override").await;
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.config_override = Some(JsonText(
        json!({"config_drive": true, "description": "Kasm agent", "metadata": {"kasm-autoscale-deployment": "evil", "extra": "1"},
            "os:scheduler_hints": {"group": "3e0d4b4c-6a8e-4b8a-9c1e-1f2a3b4c5d6e"}})
        .as_object()
        .unwrap()
        .clone(),
    ));
    let p = w.provider_cfg(&cfg);
    let s = spec("prod", "p");
    let vm = p.create_vm(&s).await.expect("create");
    let body: serde_json::Value =
        serde_json::from_str(&w.server.api().last("POST /compute/v2.1/servers").unwrap().body).unwrap();
    assert_eq!(body["server"]["config_drive"], json!(true));
    assert_eq!(body["server"]["description"], json!("Kasm agent"));
    assert_eq!(body["os:scheduler_hints"]["group"], json!("3e0d4b4c-6a8e-4b8a-9c1e-1f2a3b4c5d6e"));
    assert_eq!(body["server"]["metadata"]["extra"], json!("1"));
    assert_eq!(body["server"]["metadata"]["kasm-autoscale-deployment"], json!("prod"));
    p.delete_vm(&vm.id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_over_novas_limit_is_refused_before_any_call() {
    let w = World::new("script").await;
    let p = w.provider();
    let mut s = spec("prod", "p");
    s.startup_script = Some(SecretString::from("x".repeat(49_152)));
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("65535"), "{err}");
    assert_eq!(w.server.api().requests().len(), 0);
}
