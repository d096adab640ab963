//! Linked clones from a snapshot and Storage DRS placement, made through vCenter's vim25 SOAP API
//! (`POST /sdk`) of the test vCenter, which checks every request against
//! `tests/vsphere/vim25-subset.json` (pyvmomi's type tables); then the same `/api` flow as a full
//! clone. Faults, the session, preflight.

use integration_tests::vsphere_server::soap::{POD, ROOT_POOL, SNAPSHOTS, subset};
use integration_tests::vsphere_server::{DATASTORE, FOLDERS, PASSWORD, POOL, TEMPLATE, VsphereTestServer};
use shared::config::providers::{VsphereCloneType, VsphereConfig};
use shared::providers::vsphere::vim25;
use shared::providers::vsphere::{On, PRIVILEGES};
use shared::providers::{ErrorClass, VmProvider, VmState};

fn linked(server: &VsphereTestServer, snapshot: &str) -> VsphereConfig {
    let mut c = super::config(server);
    c.clone_type = VsphereCloneType::Linked;
    c.vm_snapshot_name = Some(snapshot.into());
    c
}

fn pod(server: &VsphereTestServer) -> VsphereConfig {
    let mut c = super::config(server);
    c.datastore_name = None;
    c.datastore_cluster_name = Some(POD.0.into());
    c
}

#[tokio::test]
async fn a_linked_clone_is_made_from_the_named_snapshot_then_finished_over_the_api() {
    let server = VsphereTestServer::start().await;
    let free = server.free_bytes();
    let p = super::provider_cfg(&linked(&server, "kasm-1.19"), PASSWORD);
    let s = super::spec("vim", "pool-l");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());

    let clones = server.soap_calls("CloneVM_Task");
    assert_eq!(clones.len(), 1);
    let body = &clones[0];
    assert!(body.contains(&format!("<_this type=\"VirtualMachine\">{}</_this>", TEMPLATE.1)), "{body}");
    assert!(
        body.contains(&format!("<snapshot type=\"VirtualMachineSnapshot\">{}</snapshot>", SNAPSHOTS[1].1)),
        "{body}"
    );
    assert!(body.contains("<diskMoveType>createNewChildDiskBacking</diskMoveType>"), "{body}");
    assert!(body.contains("<template>false</template><powerOn>false</powerOn>"), "{body}");
    assert!(!body.contains(PASSWORD), "{body}");
    assert_eq!(server.api().count("POST /vcenter/vm?action=clone"), 0, "no /api clone");
    let made = server.vim_clone(&vm.id).expect("a vim25 clone");
    assert_eq!(made.snapshot.as_deref(), Some(SNAPSHOTS[1].1));
    assert_eq!(made.disk_move.as_deref(), Some(vim25::LINKED_DISK_MOVE));
    assert_eq!((made.pool.as_str(), made.folder.as_str()), (POOL.1, FOLDERS[1].1));
    assert_eq!(made.datastore.as_deref(), Some(DATASTORE.1));
    // The /api flow after the clone: sizing, labels, power, the script.
    let t = server.vm(&vm.id).expect("the VM");
    assert_eq!((t.cpus, t.memory_mib, t.power_state.as_str()), (4, 8192, "POWERED_ON"));
    assert_eq!(t.processes.len(), 1);
    // The password travels in the Login body only, escaped.
    let logins = server.soap_calls("Login");
    assert_eq!(logins.len(), 1);
    assert!(logins[0].contains("<password>vC3nter-pa55word!</password>"), "{}", logins[0]);

    // Idempotent: the claim's VM is found by name, not cloned again.
    assert_eq!(p.create_vm(&s).await.expect("again").id, vm.id);
    assert_eq!(server.soap_calls("CloneVM_Task").len(), 1);
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.vms().is_empty());
    assert_eq!(server.free_bytes(), free);
    p.shutdown().await;
    assert_eq!(server.soap_sessions().1, 0, "the vim25 session is ended at shutdown");
}

#[tokio::test]
async fn storage_drs_places_full_and_linked_clones_in_the_datastore_cluster() {
    let server = VsphereTestServer::start().await;
    let p = super::provider_cfg(&pod(&server), PASSWORD);
    let vm = p.create_vm(&super::spec("vim", "pool-p")).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());
    let rec = server.soap_calls("RecommendDatastores");
    assert_eq!(rec.len(), 1);
    let body = &rec[0];
    assert!(body.contains("<storageSpec><type>clone</type>"), "{body}");
    assert!(body.contains(&format!("<vm type=\"VirtualMachine\">{}</vm>", TEMPLATE.1)), "{body}");
    assert!(
        body.contains(&format!(
            "<podSelectionSpec><storagePod type=\"StoragePod\">{}</storagePod></podSelectionSpec>",
            POD.1
        )),
        "{body}"
    );
    assert!(body.contains(&format!("<cloneName>{}</cloneName>", vm.name)), "{body}");
    assert!(!body.contains("<datastore") && !body.contains("diskMoveType"), "Storage DRS picks the datastore: {body}");
    assert_eq!(server.soap_calls("ApplyStorageDrsRecommendation_Task").len(), 1);
    assert!(server.soap_calls("CloneVM_Task").is_empty());
    let made = server.vim_clone(&vm.id).expect("placed");
    assert_eq!(made.pod.as_deref(), Some(POD.1));

    let mut cfg = pod(&server);
    cfg.clone_type = VsphereCloneType::Linked;
    cfg.vm_snapshot_name = Some("base".into());
    cfg.resource_pool = None;
    let p = super::provider_cfg(&cfg, PASSWORD);
    let vm = p.create_vm(&super::spec("vim", "pool-pl")).await.expect("create linked in the pod");
    let body = server.soap_calls("RecommendDatastores").pop().unwrap();
    assert!(body.contains("<diskMoveType>createNewChildDiskBacking</diskMoveType>"), "{body}");
    assert!(
        body.contains(&format!("<pool type=\"ResourcePool\">{ROOT_POOL}</pool>")),
        "the cluster's root pool: {body}"
    );
    assert!(
        body.contains(&format!("<snapshot type=\"VirtualMachineSnapshot\">{}</snapshot>", SNAPSHOTS[0].1)),
        "{body}"
    );
    assert_eq!(server.vim_clone(&vm.id).unwrap().snapshot.as_deref(), Some(SNAPSHOTS[0].1));
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());
}

#[tokio::test]
async fn clone_task_faults_map_to_the_classes_the_engine_acts_on() {
    let server = VsphereTestServer::start().await;
    let p = super::provider_cfg(&linked(&server, "kasm-1.19"), PASSWORD);
    server.fail_next_vim_task("InsufficientStorageSpace", "Insufficient disk space on datastore 'ssd-01'.");
    let e = p.create_vm(&super::spec("vim", "pool-f")).await.expect_err("no room");
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    assert!(e.to_string().contains("InsufficientStorageSpace") && e.to_string().contains("CloneVM_Task"), "{e}");
    server.fail_next_vim_task("NoDiskSpace", "No space left on device.");
    assert_eq!(p.create_vm(&super::spec("vim", "pool-f")).await.unwrap_err().class(), ErrorClass::OutOfCapacity);
    server.fail_next_vim_task("InsufficientMemoryResourcesFault", "Insufficient memory resources.");
    assert_eq!(p.create_vm(&super::spec("vim", "pool-f")).await.unwrap_err().class(), ErrorClass::OutOfCapacity);
    server.inject_soap_fault("CloneVM_Task", "NoPermission", "Permission to perform this operation was denied.");
    let e = p.create_vm(&super::spec("vim", "pool-f")).await.expect_err("no privilege");
    assert_eq!(e.class(), ErrorClass::Permission, "{e}");
    server.fail_next_vim_task("SystemError", "A general system error occurred.");
    assert_eq!(p.create_vm(&super::spec("vim", "pool-f")).await.unwrap_err().class(), ErrorClass::Transient);
    assert!(server.vms().is_empty());
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());

    // The snapshot must name exactly one snapshot of the template.
    for (name, says) in [("dup", "2 snapshots"), ("nope", "no snapshot named `nope`")] {
        let p = super::provider_cfg(&linked(&server, name), PASSWORD);
        let e = p.create_vm(&super::spec("vim", "pool-f")).await.expect_err("bad snapshot");
        assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
        assert!(e.to_string().contains("vm_snapshot_name") && e.to_string().contains(says), "{e}");
    }
    server.drop_snapshots();
    let e =
        super::provider_cfg(&linked(&server, "base"), PASSWORD).create_vm(&super::spec("vim", "x")).await.unwrap_err();
    assert!(e.to_string().contains("has no snapshots"), "{e}");
    assert!(server.soap_calls("CloneVM_Task").len() == 5 && server.vms().is_empty());
}

#[tokio::test]
async fn an_api_id_that_names_another_vim25_vm_fails_loudly_and_clones_nothing() {
    let server = VsphereTestServer::start().await;
    server.set_vim25_template_name("ops-database");
    let p = super::provider_cfg(&linked(&server, "kasm-1.19"), PASSWORD);
    let e = p.create_vm(&super::spec("vim", "pool-i")).await.expect_err("ids differ");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("does not document") && e.to_string().contains(TEMPLATE.1), "{e}");
    assert!(server.soap_calls("CloneVM_Task").is_empty() && server.vms().is_empty());
}

#[tokio::test]
async fn an_expired_vim25_session_is_made_again_once_and_a_wrong_password_is_auth() {
    let server = VsphereTestServer::start().await;
    let p = super::provider_cfg(&linked(&server, "kasm-1.19"), PASSWORD);
    p.create_vm(&super::spec("vim", "pool-s")).await.expect("first");
    assert_eq!(server.soap_sessions(), (1, 1));
    server.expire_soap_sessions();
    p.create_vm(&super::spec("vim", "pool-s")).await.expect("after the session expired");
    assert_eq!(server.soap_sessions(), (2, 1), "one new login");
    // vCenter refusing the session twice in a row: Auth, not a loop.
    server.inject_soap_fault("RetrievePropertiesEx", "NotAuthenticated", "The session is not authenticated.");
    server.inject_soap_fault("RetrievePropertiesEx", "NotAuthenticated", "The session is not authenticated.");
    let e = p.create_vm(&super::spec("vim", "pool-s")).await.expect_err("refused twice");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert_eq!(server.soap_sessions().0, 3);
    // A password vCenter's vim25 login refuses (InvalidLogin) is Auth and never shown.
    server.inject_soap_fault(
        "Login",
        "InvalidLogin",
        "Cannot complete login due to an incorrect user name or password.",
    );
    server.expire_soap_sessions();
    let e = p.create_vm(&super::spec("vim", "pool-s")).await.expect_err("login refused");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(!e.to_string().contains(PASSWORD), "{e}");
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());
}

#[tokio::test]
async fn preflight_resolves_the_snapshot_and_the_datastore_cluster() {
    let server = VsphereTestServer::start().await;
    let mut cfg = linked(&server, "kasm-1.19");
    cfg.datastore_name = None;
    cfg.datastore_cluster_name = Some(POD.0.into());
    let checks = super::provider_cfg(&cfg, PASSWORD).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::vsphere::CHECKS);
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    let snap = checks.iter().find(|c| c.name == "snapshot").unwrap();
    assert!(snap.detail.contains(SNAPSHOTS[1].1), "{snap:?}");

    cfg.vm_snapshot_name = Some("nope".into());
    cfg.datastore_cluster_name = Some("pod-none".into());
    let checks = super::provider_cfg(&cfg, PASSWORD).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, ["snapshot", "datastore_cluster"], "{checks:#?}");
    // A datastore's name is not a datastore cluster.
    cfg.vm_snapshot_name = Some("base".into());
    cfg.datastore_cluster_name = Some(DATASTORE.0.into());
    let checks = super::provider_cfg(&cfg, PASSWORD).preflight().await;
    let pod = checks.iter().find(|c| c.name == "datastore_cluster").unwrap();
    assert!(!pod.ok && pod.detail.contains("not a datastore cluster"), "{pod:?}");
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());
    assert!(server.vms().is_empty(), "preflight is read-only");
}

#[tokio::test]
async fn preflight_asks_each_privilege_on_its_object_and_names_every_missing_one() {
    let server = VsphereTestServer::start().await;
    let p = super::provider(&server);
    let privileges =
        |checks: &[shared::providers::Check]| checks.iter().find(|c| c.name == "privileges").cloned().unwrap();
    let c = privileges(&p.preflight().await);
    assert!(c.ok && c.detail.contains("all 16 asked"), "{c:?}");
    // One request, asking every privilege on the template, the folder, the pool and the datastore,
    // with this session's id.
    let calls = server.soap_calls("HasPrivilegeOnEntities");
    assert_eq!(calls.len(), 1);
    for want in [
        format!("<entity type=\"VirtualMachine\">{}</entity>", TEMPLATE.1),
        format!("<entity type=\"Folder\">{}</entity>", FOLDERS[1].1),
        format!("<entity type=\"ResourcePool\">{}</entity>", POOL.1),
        format!("<entity type=\"Datastore\">{}</entity>", DATASTORE.1),
        "<sessionId>5220f274-9ba1-a663-b51f-".to_string(),
    ] {
        assert!(calls[0].contains(&want), "{want}: {}", calls[0]);
    }
    for priv_ in PRIVILEGES {
        assert!(calls[0].contains(&format!("<privId>{}</privId>", priv_.id)), "{}", priv_.id);
    }

    // A privilege the clones need, missing on the folder only: the resource pool grants it (a VM
    // inherits both), so nothing is missing.
    server.revoke_privilege(FOLDERS[1].1, "VirtualMachine.GuestOperations.Execute");
    assert!(privileges(&p.preflight().await).ok);
    // Missing on both, and Allocate space on the datastore, and Deploy template on the template.
    server.revoke_privilege(POOL.1, "VirtualMachine.GuestOperations.Execute");
    server.revoke_privilege(DATASTORE.1, "Datastore.AllocateSpace");
    server.revoke_privilege(TEMPLATE.1, "VirtualMachine.Provisioning.DeployTemplate");
    let c = privileges(&p.preflight().await);
    assert!(!c.ok, "{c:?}");
    for want in [
        "missing on datastore `ssd-01` (datastore-15): Datastore.AllocateSpace (Allocate space)",
        "missing on template `ubuntu-2204-kasm` (vm-100): VirtualMachine.Provisioning.DeployTemplate (Deploy template)",
        "VirtualMachine.GuestOperations.Execute (Guest operation program execution)",
        "folder `Kasm/Autoscale` (group-v32) and resource pool `Kasm` (resgroup-21)",
    ] {
        assert!(c.detail.contains(want), "{want}: {c:?}");
    }
    assert!(!c.detail.contains("Datastore.Browse"), "{c:?}");

    // A refused call is not checked, with the cause: never a pass.
    server.inject_soap_fault(
        "HasPrivilegeOnEntities",
        "NoPermission",
        "Permission to perform this operation was denied.",
    );
    let c = privileges(&p.preflight().await);
    assert!(!c.ok && c.detail.starts_with("not checked") && c.detail.contains("NoPermission"), "{c:?}");
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());
    assert!(server.vms().is_empty(), "preflight is read-only");

    // Without vm_folder or resource_pool/cluster, the template's folder and pool (read over vim25);
    // a datastore cluster for the datastore privileges.
    let mut cfg = pod(&server);
    cfg.vm_folder = None;
    cfg.cluster_name = None;
    cfg.resource_pool = None;
    server.revoke_privilege(POD.1, "Datastore.Browse");
    let c = privileges(&super::provider_cfg(&cfg, PASSWORD).preflight().await);
    assert!(
        !c.ok
            && c.detail
                .contains("missing on datastore cluster `pod-ssd` (group-p61): Datastore.Browse (Browse datastore)"),
        "{c:?}"
    );
    let calls = server.soap_calls("HasPrivilegeOnEntities");
    let last = calls.last().unwrap();
    assert!(last.contains(">group-v4</entity>") && last.contains(">resgroup-21</entity>"), "{last}");
    assert!(PRIVILEGES.iter().any(|p| p.on == On::Clones));
    assert!(server.soap_violations().is_empty(), "{:?}", server.soap_violations());
}

#[test]
fn the_clients_fault_lists_and_soap_action_are_the_subsets() {
    let s = subset();
    assert_eq!(s["version"]["soap_action"], vim25::SOAP_ACTION);
    assert_eq!(s["version"]["id"], vim25::API_VERSION);
    assert_eq!(s["wsdl_namespace"], vim25::NAMESPACE);
    let names = |k: &str| -> Vec<String> {
        s["faults"][k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let mut capacity = names("InsufficientResourcesFault");
    capacity.extend(names("NoDiskSpace"));
    let mut ours: Vec<String> = vim25::CAPACITY_FAULTS.iter().map(|s| s.to_string()).collect();
    capacity.sort();
    ours.sort();
    assert_eq!(ours, capacity);
    let mut login = names("InvalidLogin");
    let mut ours: Vec<String> = vim25::LOGIN_FAULTS.iter().map(|s| s.to_string()).collect();
    login.sort();
    ours.sort();
    assert_eq!(ours, login);
    assert!(
        s["enums"]["VirtualMachineRelocateDiskMoveOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == vim25::LINKED_DISK_MOVE)
    );
    // The privilege check's call: what it needs itself (the README says so), its answer's shape.
    let m = &s["methods"]["HasPrivilegeOnEntities"];
    assert_eq!(m["privilege"], "System.View");
    assert_eq!(m["params"][0]["privilege"], "System.Read");
    assert_eq!(m["result"], "EntityPrivilege[]");
    assert_eq!(s["properties"]["SessionManager.currentSession"]["type"], "UserSession");
    // NotAuthenticated is a NoPermission: the client tells them apart by testing it first.
    assert!(names("NoPermission").contains(&"NotAuthenticated".to_string()));
}

#[tokio::test]
async fn the_test_vcenter_refuses_requests_the_subset_does_not_allow() {
    let server = VsphereTestServer::start().await;
    shared::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let send = |action: &'static str, body: String| {
        let http = http.clone();
        let url = format!("{}/sdk", server.url);
        async move {
            let r = http
                .post(url)
                .header("content-type", "text/xml; charset=UTF-8")
                .header("SOAPAction", action)
                .body(body)
                .send()
                .await
                .expect("an answer");
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let clone = |spec: &str| {
        vim25::envelope(
            "CloneVM_Task",
            &vim25::MoRef::new("VirtualMachine", TEMPLATE.1),
            &format!(
                "{}{}{spec}",
                vim25::moref("folder", &vim25::MoRef::new("Folder", FOLDERS[1].1)),
                vim25::text("name", "x")
            ),
        )
    };
    let pool = vim25::moref("pool", &vim25::MoRef::new("ResourcePool", POOL.1));
    let am = vim25::MoRef::new("AuthorizationManager", "AuthorizationManager");
    let vm = vim25::MoRef::new("VirtualMachine", TEMPLATE.1);
    for (action, body, says) in [
        ("\"urn:vim25/6.5\"", clone(""), "SOAPAction"),
        (vim25::SOAP_ACTION, clone(""), "required `spec`"),
        // Fields out of the WSDL order.
        (
            vim25::SOAP_ACTION,
            clone(&format!(
                "<spec><template>false</template><location>{pool}</location><powerOn>false</powerOn></spec>"
            )),
            "out of order",
        ),
        (
            vim25::SOAP_ACTION,
            clone(&format!(
                "<spec><location><diskMoveType>linked</diskMoveType>{pool}</location><template>false</template><powerOn>false</powerOn></spec>"
            )),
            "VirtualMachineRelocateDiskMoveOptions",
        ),
        (
            vim25::SOAP_ACTION,
            clone(
                "<spec><location><pool type=\"Datastore\">x</pool></location><template>false</template><powerOn>false</powerOn></spec>",
            ),
            "a Datastore reference",
        ),
        (
            vim25::SOAP_ACTION,
            vim25::envelope("PowerOnVM_Task", &vim25::MoRef::new("VirtualMachine", TEMPLATE.1), ""),
            "not a method of the subset",
        ),
        // HasPrivilegeOnEntities: privId before sessionId; an entity that is no ManagedEntity.
        (
            vim25::SOAP_ACTION,
            vim25::envelope(
                "HasPrivilegeOnEntities",
                &am,
                &format!("{}<privId>System.View</privId><sessionId>s</sessionId>", vim25::moref("entity", &vm)),
            ),
            "required `sessionId`",
        ),
        (
            vim25::SOAP_ACTION,
            vim25::envelope(
                "HasPrivilegeOnEntities",
                &am,
                &format!("{}<sessionId>s</sessionId>", vim25::moref("entity", &vim25::MoRef::new("Task", "task-1"))),
            ),
            "a Task reference where a ManagedEntity is expected",
        ),
    ] {
        let (status, text) = send(action, body).await;
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("xsi:type=\"InvalidRequest\""), "{text}");
        assert!(
            server.soap_violations().last().is_some_and(|v| v.contains(says)),
            "{says}: {:?}",
            server.soap_violations()
        );
    }
    assert_eq!(server.soap_violations().len(), 8);
}
