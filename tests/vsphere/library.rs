//! Content-library templates: `vm_template_name` naming a VM template in a content library (no VM of
//! that name in the datacenter) is found (`content.library.item.find`, each item's name compared
//! exactly, `vm_template.library_items.get` telling a VM template from an OVF item) and deployed
//! (`?action=deploy` with our placement, powered off), then labelled, sized, powered on and its
//! script run like a full clone; resumption, a lost answer, capacity, delete, preflight.

use integration_tests::fake_api::Fault;
use integration_tests::vsphere_server::{
    CLUSTER, DATASTORE, FOLDERS, LIBRARY_OVF, LIBRARY_TEMPLATE, POOL, VsphereTestServer,
};
use shared::providers::vsphere::labels;
use shared::providers::{ErrorClass, VmProvider, VmState};

const DEPLOY: &str = "POST /vcenter/vm-template/library-items/{item}?action=deploy";

fn library_provider(server: &VsphereTestServer, name: &str) -> shared::providers::vsphere::VsphereProvider {
    let mut cfg = super::config(server);
    cfg.vm_template_name = name.into();
    super::provider_cfg(&cfg, integration_tests::vsphere_server::PASSWORD)
}

#[tokio::test]
async fn a_content_library_template_is_deployed_with_our_placement_and_finished_like_a_clone() {
    let server = VsphereTestServer::start().await;
    let free = server.free_bytes();
    let p = library_provider(&server, LIBRARY_TEMPLATE.0);
    let s = super::spec("library", "pool-a");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);

    let find = server.api().last("POST /content/library/item?action=find").expect("a find");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&find.body).unwrap(),
        serde_json::json!({"name": LIBRARY_TEMPLATE.0})
    );
    let deploy = server.api().last(DEPLOY).expect("a deploy");
    assert_eq!(deploy.path, format!("/vcenter/vm-template/library-items/{}", LIBRARY_TEMPLATE.1));
    let body: serde_json::Value = serde_json::from_str(&deploy.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": s.name, "powered_on": false,
            "placement": {"folder": FOLDERS[1].1, "cluster": CLUSTER.1, "resource_pool": POOL.1},
            "vm_home_storage": {"datastore": DATASTORE.1}, "disk_storage": {"datastore": DATASTORE.1}})
    );
    assert_eq!(server.api().count("POST /vcenter/vm?action=clone"), 0, "deployed, not cloned");

    let t = server.vm(&vm.id).expect("the VM");
    assert_eq!(t.source, format!("library-item:{}", LIBRARY_TEMPLATE.1));
    assert_eq!((t.cpus, t.memory_mib, t.power_state.as_str()), (4, 8192, "POWERED_ON"));
    assert_eq!(t.data_sets.len(), 1);
    assert_eq!(labels::script(&t.data_sets[0].2), labels::Script::Done);
    assert_eq!(t.processes.len(), 1);
    assert_eq!(t.processes[0].2, super::SCRIPT);

    // The same claim again: found by name, nothing deployed or run again.
    let again = p.create_vm(&s).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(server.api().count(DEPLOY), 1);
    assert_eq!(server.vm(&vm.id).unwrap().processes.len(), 1);
    assert_eq!(p.list_vms(&s.labels).await.unwrap().len(), 1);

    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.vms().is_empty());
    assert_eq!(server.free_bytes(), free, "the deployed VM's disk is gone with it");
}

#[tokio::test]
async fn a_lost_deploy_answer_is_finished_by_the_next_attempt_not_deployed_again() {
    let server = VsphereTestServer::start().await;
    let p = library_provider(&server, LIBRARY_TEMPLATE.0);
    let s = super::spec("library", "pool-a");
    server.api().inject(DEPLOY, Fault::DropAnswer, 0, 1);
    let e = p.create_vm(&s).await.expect_err("the answer is lost");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(server.vms().len(), 1, "vCenter made the VM");
    let vm = p.create_vm(&s).await.expect("the next attempt finishes it");
    assert_eq!(server.api().count(DEPLOY), 1);
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(server.vm(&vm.id).unwrap().data_sets.len(), 1, "labelled");
    p.delete_vm(&vm.id).await.expect("delete");
}

#[tokio::test]
async fn only_a_vm_template_item_of_exactly_that_name_is_deployed() {
    let server = VsphereTestServer::start().await;
    let s = super::spec("library", "pool-a");
    // An OVF item: not deployable through vm-template.
    let e = library_provider(&server, LIBRARY_OVF.0).create_vm(&s).await.expect_err("an OVF item");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("vm_template_name") && e.to_string().contains("holds no VM template"), "{e}");
    // vCenter's find ignores case; a name differing in case is not ours.
    let e = library_provider(&server, &LIBRARY_TEMPLATE.0.to_uppercase()).create_vm(&s).await.expect_err("case");
    assert!(e.to_string().contains("no content-library VM template"), "{e}");
    // Nothing at all of that name.
    let e = library_provider(&server, "nope").create_vm(&s).await.expect_err("missing");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("`nope`"), "{e}");
    assert_eq!(server.api().count(DEPLOY), 0);
    assert!(server.vms().is_empty());
}

#[tokio::test]
async fn a_deploy_without_room_is_out_of_capacity_and_preflight_names_the_library_item() {
    let server = VsphereTestServer::start_with_room(0).await;
    let p = library_provider(&server, LIBRARY_TEMPLATE.0);
    let e = p.create_vm(&super::spec("library", "pool-a")).await.expect_err("no room");
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    assert!(server.vms().is_empty());

    let checks = p.preflight().await;
    let t = checks.iter().find(|c| c.name == "template").expect("template check");
    assert!(t.ok && t.detail.contains(LIBRARY_TEMPLATE.1) && t.detail.contains("content-library"), "{t:?}");
    let checks = library_provider(&server, LIBRARY_OVF.0).preflight().await;
    let t = checks.iter().find(|c| c.name == "template").expect("template check");
    assert!(!t.ok && t.detail.contains("holds no VM template"), "{t:?}");
}
