//! The clone flow against the vCenter test server: the requests' shapes, placement, sizing, labels,
//! the startup script through guest operations, resumption, failures, capacity, delete, preflight.

use integration_tests::vsphere_server::{CLUSTER, DATASTORE, FOLDERS, POOL, TEMPLATE, VsphereTestServer};
use secrecy::SecretString;
use shared::providers::vsphere::labels;
use shared::providers::{ErrorClass, VmProvider, VmState};

#[tokio::test]
async fn create_clones_places_sizes_labels_powers_on_and_runs_the_script() {
    let server = VsphereTestServer::start().await;
    let free = server.free_bytes();
    let p = super::provider(&server);
    let s = super::spec("flow", "pool-a");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(vm.name, s.name);
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);
    assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.starts_with("10.20.0.")), "{vm:?}");

    let clone = server.api().last("POST /vcenter/vm?action=clone").expect("a clone");
    let body: serde_json::Value = serde_json::from_str(&clone.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": s.name, "source": TEMPLATE.1, "power_on": false, "placement":
            {"folder": FOLDERS[1].1, "cluster": CLUSTER.1, "resource_pool": POOL.1, "datastore": DATASTORE.1}})
    );
    assert_eq!(clone.param("vmw-task"), Some("true"));

    let t = server.vm(&vm.id).expect("the VM");
    assert_eq!((t.cpus, t.memory_mib, t.power_state.as_str()), (4, 8192, "POWERED_ON"));
    assert_eq!(t.data_sets.len(), 1);
    assert_eq!(t.data_sets[0].1, labels::DATA_SET);
    assert_eq!(labels::script(&t.data_sets[0].2), labels::Script::Done);
    assert_eq!(t.processes.len(), 1);
    let (prog, args, ran) = &t.processes[0];
    assert_eq!(prog, "/bin/bash");
    assert!(args.contains("/tmp/kasm-autoscale-kasm-") && args.contains("rm -f"), "{args}");
    assert_eq!(ran, super::SCRIPT);
    assert!(t.files.is_empty(), "the script (it holds the manager token) is removed: {:?}", t.files.keys());
    // The session header, never the password, on API calls; the guest password only in guest calls' bodies.
    for r in server.requests() {
        assert!(!format!("{:?}", r.headers).contains(integration_tests::vsphere_server::PASSWORD), "{r:?}");
    }

    // A second create for the claim finds the VM and runs nothing again.
    let again = p.create_vm(&s).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(server.api().count("POST /vcenter/vm?action=clone"), 1);
    assert_eq!(server.vm(&vm.id).unwrap().processes.len(), 1);

    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.vm(&vm.id).is_none());
    assert!(server.vms().is_empty());
    assert_eq!(server.free_bytes(), free, "the clone's disk is gone with it");
    p.delete_vm(&vm.id).await.expect("deleting a missing VM succeeds");
}

#[tokio::test]
async fn a_failing_script_names_its_exit_code_never_its_text_and_the_vm_stays_ours() {
    let server = VsphereTestServer::start().await;
    let p = super::provider(&server);
    let mut s = super::spec("flow", "pool-a");
    s.startup_script = Some(SecretString::from("#!/bin/bash\necho secret-token-xyz\nEXIT_CODE=3 exit 3\n".to_string()));
    let e = p.create_vm(&s).await.expect_err("the script fails");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("exited with code 3") && msg.contains("kasm"), "{msg}");
    assert!(!msg.contains("secret-token-xyz"), "{msg}");
    let listed = p.list_vms(&s.labels).await.expect("list");
    assert_eq!(listed.len(), 1);
    p.delete_vm(&listed[0].id).await.expect("delete");
    assert!(server.vms().is_empty());
}

#[tokio::test]
async fn a_clone_left_unlabelled_by_a_crash_is_finished_not_cloned_again() {
    let server = VsphereTestServer::start().await;
    let p = super::provider(&server);
    let s = super::spec("flow", "pool-a");
    // The clone happened and the process stopped before labelling it: fail the data set's creation once.
    server.api().inject(
        "POST /vcenter/vm/{vm}/data-sets",
        integration_tests::fake_api::Fault::Answer(integration_tests::vsphere_server::err(
            503,
            "SERVICE_UNAVAILABLE",
            "down",
        )),
        0,
        1,
    );
    let p = p.with_retry(shared::http::RetryConfig::none());
    assert_eq!(p.create_vm(&s).await.expect_err("labelling fails").class(), ErrorClass::Transient);
    assert_eq!(server.vms().len(), 1);
    assert!(server.vms()[0].data_sets.is_empty());
    let vm = p.create_vm(&s).await.expect("resumed");
    assert_eq!(server.api().count("POST /vcenter/vm?action=clone"), 1);
    assert!(s.labels.matches(&vm.labels));
    assert_eq!(server.vm(&vm.id).unwrap().processes.len(), 1);
}

#[tokio::test]
async fn a_full_datastore_is_out_of_capacity_and_an_operators_vm_is_never_deleted() {
    let server = VsphereTestServer::start_with_room(0).await;
    let p = super::provider(&server);
    let e = p.create_vm(&super::spec("flow", "pool-a")).await.expect_err("no room");
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    assert!(e.to_string().contains("Insufficient disk space"), "{e}");
    assert!(server.vms().is_empty());

    let server = VsphereTestServer::start().await;
    let p = super::provider(&server);
    let foreign = server.add_vm("ops-db");
    assert_eq!(p.delete_vm(&foreign).await.expect_err("not ours").class(), ErrorClass::Invalid);
    assert!(server.vm(&foreign).is_some());
}

#[tokio::test]
async fn preflight_passes_on_a_good_config_and_names_what_is_wrong() {
    let server = VsphereTestServer::start().await;
    let checks = super::provider(&server).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::vsphere::CHECKS);
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");

    let mut cfg = super::config(&server);
    cfg.vm_template_name = "no-such-template".into();
    cfg.cluster_name = Some("Cluster9".into());
    let checks = super::provider_cfg(&cfg, integration_tests::vsphere_server::PASSWORD).preflight().await;
    let failed: Vec<(&str, &str)> = checks.iter().filter(|c| !c.ok).map(|c| (c.name, c.detail.as_str())).collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed[0].0 == "template" && failed[0].1.contains("vm_template_name"), "{failed:?}");
    assert!(failed[1].0 == "placement" && failed[1].1.contains("cluster_name"), "{failed:?}");
    assert!(failed[2].0 == "privileges" && failed[2].1.starts_with("not checked"), "{failed:?}");

    let checks = super::provider_cfg(&super::config(&server), "wrong").preflight().await;
    assert!(!checks[0].ok && checks[0].name == "credentials", "{checks:#?}");
    assert!(!checks[0].detail.contains("wrong"), "{checks:#?}");
}

#[tokio::test]
async fn the_ssh_key_is_installed_once_for_the_guest_user_before_the_script() {
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7 ops@example";
    let server = VsphereTestServer::start().await;
    let mut cfg = super::config(&server);
    cfg.vm_ssh_public_key = Some(KEY.into());
    let p = super::provider_cfg(&cfg, integration_tests::vsphere_server::PASSWORD);
    let s = super::spec("flow", "pool-a");
    let vm = p.create_vm(&s).await.expect("create");
    let t = server.vm(&vm.id).unwrap();
    assert_eq!(t.authorized_keys, [KEY]);
    // The key command first, as the guest user, then the script.
    assert_eq!(t.processes.len(), 2, "{:?}", t.processes);
    let (prog, args, _) = &t.processes[0];
    assert_eq!(prog, "/bin/bash");
    assert!(args.starts_with("-c '") && args.ends_with(&format!(" kasm-autoscale '{KEY}'")), "{args}");
    assert!(args.contains("getent passwd") && args.contains("grep -qxF"), "{args}");
    assert_eq!(t.processes[1].2, super::SCRIPT);
    // (The test vCenter refuses guest calls without the guest user's credentials.)
    // Done is done: a second create for the claim runs neither again.
    p.create_vm(&s).await.expect("create again");
    assert_eq!(server.vm(&vm.id).unwrap().processes.len(), 2);

    // A failing key command fails the create naming the field, the user and the code; the VM stays ours
    // and a retry (the command is idempotent) finishes it.
    let s = super::spec("flow2", "pool-a");
    server.set_key_exit(3);
    let e = p.create_vm(&s).await.expect_err("the key command fails");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("vm_ssh_public_key") && msg.contains("`kasm`") && msg.contains("code 3"), "{msg}");
    assert!(msg.ends_with("(the user has no home directory)"), "{msg}");
    server.set_key_exit(0);
    let vm = p.create_vm(&s).await.expect("resumed");
    let t = server.vm(&vm.id).unwrap();
    assert_eq!(t.authorized_keys, [KEY]);
    assert_eq!(t.processes.len(), 3, "key (failed), key, script: {:?}", t.processes);
    assert_eq!(server.api().count("POST /vcenter/vm?action=clone"), 2);
}

#[tokio::test]
async fn cloud_init_sets_the_customization_while_off_and_uses_no_guest_operation() {
    let server = VsphereTestServer::start().await;
    let mut cfg = super::config(&server);
    cfg.startup_script_method = shared::config::providers::VsphereStartupScriptMethod::CloudInit;
    // No guest account is used: a password reference that resolves nowhere is never read.
    cfg.guest_vm_password = shared::config::SecretRef::Env("NOT_SET_ANYWHERE".into());
    let p = super::provider_cfg(&cfg, integration_tests::vsphere_server::PASSWORD);
    let s = super::spec("flow", "pool-a");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    let t = server.vm(&vm.id).unwrap();
    // Set before the power-on that applied it, with the script as the user data.
    let (meta, user) = t.cloud_init.clone().expect("the guest booted with the cloud-init data");
    assert_eq!(user, super::SCRIPT);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta, serde_json::json!({"instance-id": s.name, "local-hostname": s.name}));
    assert_eq!(t.pending_cloud_init, None);
    let put = server.api().last("PUT /vcenter/vm/{vm}/guest/customization").expect("the customization");
    let body: serde_json::Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(body["spec"]["interfaces"], serde_json::json!([]));
    assert_eq!(body["spec"]["global_DNS_settings"], serde_json::json!({}));
    assert_eq!(body["spec"]["configuration_spec"]["cloud_config"]["type"], "CLOUDINIT");
    // No guest operation at all, and the progress is recorded.
    for route in [
        "GET /vcenter/vm/{vm}/tools",
        "POST /vcenter/vm/{vm}/guest/filesystem?action=create",
        "POST /vcenter/vm/{vm}/guest/processes?action=create",
    ] {
        assert_eq!(server.api().count(route), 0, "{route}");
    }
    assert!(t.processes.is_empty());
    assert_eq!(labels::script(&t.data_sets[0].2), labels::Script::Done);
    // Done is done: another create for the claim sets nothing again.
    p.create_vm(&s).await.expect("create again");
    assert_eq!(server.api().count("PUT /vcenter/vm/{vm}/guest/customization"), 1);

    // A create that died after the power-on (customization applied, progress not recorded) only
    // records it; one that died before the power-on sets the customization again.
    let p = p.with_retry(shared::http::RetryConfig::none());
    let down = || {
        integration_tests::fake_api::Fault::Answer(integration_tests::vsphere_server::err(
            503,
            "SERVICE_UNAVAILABLE",
            "down",
        ))
    };
    // A create for `name` that fails at `route`: the claim's spec and its clone's id.
    let fail_at = |name: &'static str, route: &'static str| {
        let s = super::spec(name, "pool-a");
        server.api().inject(route, down(), 0, 1);
        let (p, server) = (&p, &server);
        async move {
            p.create_vm(&s).await.expect_err(route);
            let id = server.vms().into_iter().find(|v| v.name == s.name).expect("the clone").id;
            (s, id)
        }
    };
    let (s, id) = fail_at("flow2", "PATCH /vcenter/vm/{vm}/data-sets/{ds}").await;
    assert!(server.vm(&id).unwrap().cloud_init.is_some());
    p.create_vm(&s).await.expect("resumed");
    assert_eq!(server.api().count("PUT /vcenter/vm/{vm}/guest/customization"), 2);
    assert_eq!(labels::script(&server.vm(&id).unwrap().data_sets[0].2), labels::Script::Done);

    let (s, id) = fail_at("flow3", "POST /vcenter/vm/{vm}/power?action=start").await;
    assert!(server.vm(&id).unwrap().pending_cloud_init.is_some());
    p.create_vm(&s).await.expect("resumed");
    let t = server.vm(&id).unwrap();
    assert_eq!((t.cloud_init.map(|c| c.1), t.pending_cloud_init), (Some(super::SCRIPT.to_string()), None));
    assert_eq!(server.api().count("PUT /vcenter/vm/{vm}/guest/customization"), 4);
}
