//! Create, list and delete against the Azure test server: the request bodies against the REST specs,
//! resumption by name, the async operations, what delete leaves (nothing), errors.

use integration_tests::azure_server::{
    AzureTestServer, OPERATION_POLLS, RESOURCE_GROUP, SUBSCRIPTION, nsg_id, quota_answer, route_of, subnet_id, vm_route,
};
use integration_tests::fake_api::{Fault, Reply};
use serde_json::{Value, json};
use shared::model::{OsFamily, OwnerLabels};
use shared::providers::azure::{WINDOWS_COMMAND, WINDOWS_EXTENSION, disk_name, ip_name, nic_name};
use shared::providers::{ErrorClass, ProviderError, VmProvider, VmState};
use std::time::{Duration, Instant};

use super::{OS_PASSWORD, SCRIPT, calls, config, provider, provider_cfg, spec};
use integration_tests::azure_server::CLIENT_SECRET;

fn body(r: &integration_tests::azure_server::Request) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

#[tokio::test]
async fn create_puts_ip_nic_and_vm_by_name_with_our_tags_and_resumes() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "Desktop Pool", OsFamily::Linux);
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.id, s.name);
    assert_eq!(vm.state, VmState::Running);
    assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.starts_with("10.0.0.")), "{vm:?}");
    assert!(vm.public_ip.as_deref().is_some_and(|ip| ip.starts_with("20.42.")), "{vm:?}");
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);

    let reqs = server.requests();
    let order = calls(&reqs);
    let put = |tail: &str| {
        order.iter().position(|c| *c == route_of("PUT", tail)).unwrap_or_else(|| panic!("no PUT {tail}: {order:?}"))
    };
    let (ip_at, nic_at, vm_at) = (
        put("Microsoft.Network/publicIPAddresses/{ip}"),
        put("Microsoft.Network/networkInterfaces/{nic}"),
        put("Microsoft.Compute/virtualMachines/{vm}"),
    );
    assert!(ip_at < nic_at && nic_at < vm_at, "{order:?}");
    assert_eq!(order[1], vm_route("GET"), "looked up by name first: {order:?}");
    // Pinned api-versions, paths by deterministic names.
    assert_eq!(reqs[ip_at].param("api-version"), Some("2024-05-01"));
    assert_eq!(reqs[vm_at].param("api-version"), Some("2024-07-01"));
    assert!(reqs[vm_at].path.ends_with(&format!("/virtualMachines/{}", s.name)));
    assert!(reqs[nic_at].path.ends_with(&format!("/networkInterfaces/{}", nic_name(&s.name))));
    // The async operations were polled.
    assert!(order.iter().any(|c| c.ends_with("/operations/{op}")), "{order:?}");

    let mut tags = json!({"team": "vdi"});
    for (k, v) in s.labels.to_map() {
        tags[k] = json!(v);
    }
    let ip = body(&reqs[ip_at]);
    assert_eq!(
        ip,
        json!({"location": "eastus", "tags": tags, "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}})
    );
    let nic = body(&reqs[nic_at]);
    let ip_id = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Network/publicIPAddresses/{}",
        ip_name(&s.name)
    );
    assert_eq!(
        nic,
        json!({"location": "eastus", "tags": tags, "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id()}, "privateIPAllocationMethod": "Dynamic",
                "publicIPAddress": {"id": ip_id, "properties": {"deleteOption": "Delete"}}}}],
            "networkSecurityGroup": {"id": nsg_id()}}})
    );
    let v = body(&reqs[vm_at]);
    let nic_id = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Network/networkInterfaces/{}",
        nic_name(&s.name)
    );
    use base64::Engine as _;
    let custom = base64::engine::general_purpose::STANDARD.encode(SCRIPT);
    assert_eq!(
        v,
        json!({"location": "eastus", "tags": tags, "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {
                "imageReference": {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                "osDisk": {"name": disk_name(&s.name), "createOption": "FromImage", "diskSizeGB": 64,
                    "managedDisk": {"storageAccountType": "Premium_LRS"}, "deleteOption": "Delete"}},
            "osProfile": {"computerName": s.name, "adminUsername": "kasm", "customData": custom,
                "linuxConfiguration": {"disablePasswordAuthentication": true, "ssh": {"publicKeys": [
                    {"path": "/home/kasm/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKasmTestKey kasm@example"}]}}},
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true, "deleteOption": "Delete"}}]},
            "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}}}})
    );
    assert!(!reqs[vm_at].headers.contains_key("authorization"), "credentials are never recorded");

    // The OS disk the VM PUT made is tagged after it (Disks – Update, DiskRP 2023-10-02).
    let patch = order
        .iter()
        .position(|c| *c == route_of("PATCH", "Microsoft.Compute/disks/{disk}"))
        .unwrap_or_else(|| panic!("no disk PATCH: {order:?}"));
    assert!(vm_at < patch, "{order:?}");
    assert_eq!(reqs[patch].param("api-version"), Some("2023-10-02"));
    assert!(reqs[patch].path.ends_with(&format!("/Microsoft.Compute/disks/{}", disk_name(&s.name))));
    assert_eq!(body(&reqs[patch]), json!({"tags": tags}));
    let disks = server.disks();
    assert_eq!(disks.len(), 1);
    assert_eq!(serde_json::to_value(&disks[0].tags).unwrap(), tags);

    // Again for the claim: found by name, nothing put or patched, the same VM.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("resume");
    assert_eq!(again.id, vm.id);
    assert!(
        !calls(&server.requests()).iter().any(|c| c.starts_with("PUT") || c.starts_with("PATCH")),
        "{:?}",
        calls(&server.requests())
    );
    assert_eq!(server.vms().len(), 1);
}

#[tokio::test]
async fn the_os_disk_tag_update_keeps_the_disks_own_tags_is_retried_and_resumed() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "p", OsFamily::Linux);
    let disk_patch = route_of("PATCH", "Microsoft.Compute/disks/{disk}");
    // The first tag update is lost to a 503: the PATCH (a whole tag map: idempotent) is sent again.
    server.api().inject(
        &disk_patch,
        Fault::Answer(integration_tests::azure_server::err(503, "ServiceUnavailable", "try again")),
        0,
        1,
    );
    p.create_vm(&s).await.expect("create");
    assert_eq!(server.api().count(&disk_patch), 2);
    assert_eq!(server.disk_patches(), 1);
    let disks = server.disks();
    let disk = &disks[0];
    assert!(s.labels.to_map().iter().all(|(k, v)| disk.tags.get(k) == Some(v)), "{:?}", disk.tags);
    assert_eq!(disk.tags.get("team").map(String::as_str), Some("vdi"));

    // The tags went missing (a crash between the VM PUT and the tagging, or a policy rewrote them):
    // a resumed create tags the disk again and keeps the tag it found there.
    let name = disk.name.clone();
    server.clear_disk_tags(&name);
    server.tag_disk(&name, "cost-center", "42");
    p.create_vm(&s).await.expect("resume");
    let disks = server.disks();
    let disk = &disks[0];
    assert_eq!(disk.tags.get("cost-center").map(String::as_str), Some("42"), "{:?}", disk.tags);
    assert!(s.labels.to_map().iter().all(|(k, v)| disk.tags.get(k) == Some(v)), "{:?}", disk.tags);
    assert_eq!(server.disk_patches(), 2);

    // Tagging refused (no Microsoft.Compute/disks/write): the create fails as a permission error naming
    // the action; the VM stays for the orphan sweep or the next attempt.
    server.api().inject(
        &disk_patch,
        Fault::Answer(integration_tests::azure_server::err(
            403,
            "AuthorizationFailed",
            "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Compute/disks/write' over scope '/subscriptions/s/resourceGroups/kasm-rg/providers/Microsoft.Compute/disks/d' or the scope is invalid.",
        )),
        0,
        1,
    );
    let err = p.create_vm(&spec("prod", "p", OsFamily::Linux)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permission, "{err}");
    assert!(err.to_string().contains("tag the VM's OS disk") && err.to_string().contains("disks/write"), "{err}");
}

#[tokio::test]
async fn windows_gets_a_password_a_short_computer_name_and_the_script_extension() {
    let server = AzureTestServer::start().await;
    let mut cfg = config(&server);
    cfg.azure_image_is_windows = true;
    cfg.azure_os_password = Some(shared::config::SecretRef::Env("AZ_OS_PASSWORD".into()));
    cfg.azure_ssh_public_key = None;
    cfg.azure_public_ip = false;
    cfg.security_type = None;
    cfg.secure_boot_enabled = false;
    cfg.tpm_enabled = false;
    let p = provider_cfg(&cfg, CLIENT_SECRET);
    let s = spec("prod", "win", OsFamily::Windows);
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.public_ip, None);
    let reqs = server.requests();
    let put = reqs.iter().find(|r| r.method == "PUT" && r.route.ends_with("virtualMachines/{vm}")).unwrap();
    let v = body(put);
    let os = &v["properties"]["osProfile"];
    assert_eq!(os["adminPassword"], OS_PASSWORD);
    assert!(os["computerName"].as_str().unwrap().len() <= 15, "{os}");
    assert_eq!(os["windowsConfiguration"], json!({"provisionVMAgent": true}));
    assert!(os.get("linuxConfiguration").is_none());
    assert!(v["properties"].get("securityProfile").is_none());
    assert!(!reqs.iter().any(|r| r.route.contains("publicIPAddresses") && r.method == "PUT"));
    let ext = reqs.iter().find(|r| r.method == "PUT" && r.route.ends_with("extensions/{ext}")).expect("the extension");
    assert!(ext.path.ends_with(&format!("/virtualMachines/{}/extensions/{WINDOWS_EXTENSION}", s.name)));
    let e = body(ext);
    assert_eq!(e["properties"]["publisher"], "Microsoft.Compute");
    assert_eq!(e["properties"]["type"], "CustomScriptExtension");
    assert_eq!(e["properties"]["protectedSettings"]["commandToExecute"], WINDOWS_COMMAND);
    assert!(s.labels.to_map().iter().all(|(k, v)| e["tags"][k] == json!(v)));
    assert_eq!(server.extensions().len(), 1);
    // The password never shows in what the server answers (write-only).
    let got = p.get_vm(&vm.id).await.unwrap();
    assert_eq!(got.state, VmState::Running);
}

#[tokio::test]
async fn delete_leaves_nothing_and_refuses_foreign_vms() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "p", OsFamily::Linux);
    let vm = p.create_vm(&s).await.expect("create");
    let mut made = server.resources();
    made.sort();
    assert_eq!(
        made,
        vec![
            format!("disks/{}", disk_name(&s.name)),
            format!("networkInterfaces/{}", nic_name(&s.name)),
            format!("publicIPAddresses/{}", ip_name(&s.name)),
            format!("virtualMachines/{}", s.name),
        ]
    );
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.resources().is_empty(), "left: {:?}", server.resources());
    p.delete_vm(&vm.id).await.expect("deleting a missing VM succeeds");

    let foreign = server.add_foreign_vm("ops-bastion", &[("team", "ops")]);
    let err = p.delete_vm(&foreign).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("not made by kasm-autoscale"), "{err}");
    assert!(server.vm(&foreign).is_some());
    assert!(!server.requests().iter().any(|r| r.method == "DELETE" && r.path.ends_with("/ops-bastion")));
}

#[tokio::test]
async fn a_vm_delete_whose_delete_options_did_not_apply_still_leaves_nothing() {
    let server = AzureTestServer::start().await;
    let mut cfg = config(&server);
    // The operator's override keeps the NIC when the VM goes (deleteOption: Detach).
    cfg.azure_config_override = Some(shared::config::JsonText(
        json!({"network_profile.network_interfaces.0.delete_option": "Detach", "storage_profile.os_disk.delete_option": "Detach"})
            .as_object()
            .unwrap()
            .clone(),
    ));
    let p = provider_cfg(&cfg, CLIENT_SECRET);
    let s = spec("prod", "p", OsFamily::Linux);
    let vm = p.create_vm(&s).await.expect("create");
    p.delete_vm(&vm.id).await.expect("delete");
    // The NIC and IP are deleted by us; the OS disk kept by the override is the operator's choice
    // (delete makes no disk API call: see the module docs).
    let left = server.resources();
    assert_eq!(left, vec![format!("disks/{}", disk_name(&s.name))], "{left:?}");
}

#[tokio::test]
async fn a_failed_create_removes_what_it_made_and_capacity_backs_off() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    server.set_quota(0);
    let err = p.create_vm(&spec("prod", "p", OsFamily::Linux)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("OperationNotAllowed") && err.to_string().contains("quota"), "{err}");
    assert!(server.resources().is_empty(), "a refused VM leaves its NIC and IP: {:?}", server.resources());
    server.set_quota(25);
    let _ = quota_answer();

    // Allocation fails in the operation: OutOfCapacity; the failed VM is put again on the next try.
    server.fail_next_vm_operation(
        "AllocationFailed",
        "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.",
    );
    let s = spec("prod", "p", OsFamily::Linux);
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("AllocationFailed"), "{err}");
    let listed = p.list_vms(&s.labels).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, VmState::Failed);
    p.delete_vm(&listed[0].id).await.unwrap();
    assert!(server.resources().is_empty(), "{:?}", server.resources());
}

#[tokio::test]
async fn listing_follows_next_link_and_filters_by_tag() {
    let server = AzureTestServer::start().await;
    server.set_page_size(2);
    let p = provider(&server);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(p.create_vm(&spec("prod", "a", OsFamily::Linux)).await.unwrap().id);
    }
    p.create_vm(&spec("staging", "a", OsFamily::Linux)).await.unwrap();
    server.add_foreign_vm("foreign", &[("team", "web")]);
    server.api().clear_requests();
    let mut got: Vec<String> =
        p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().into_iter().map(|v| v.id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let pages = server.requests();
    assert_eq!(pages.len(), 3, "6 VMs in pages of 2: {:?}", calls(&pages));
    assert_eq!(pages[1].param("$skiptoken"), Some("page-2"));
    assert!(pages.iter().all(|r| r.param("api-version") == Some("2024-07-01")));
}

#[tokio::test]
async fn async_operations_honour_retry_after_and_are_bounded() {
    let server = AzureTestServer::start().await;
    server.set_retry_after(Some(1));
    let p = provider(&server);
    let t = Instant::now();
    p.create_vm(&spec("prod", "p", OsFamily::Linux)).await.expect("create");
    // IP, NIC, VM (polled OPERATION_POLLS times): every wait is the server's 1 s.
    assert!(t.elapsed() >= Duration::from_secs(2 + u64::from(OPERATION_POLLS)), "{:?}", t.elapsed());
    server.set_retry_after(None);

    // An operation that never ends: bounded by operation_timeout, Transient, the VM kept for the next try.
    let forever = Reply::json(200, &json!({"id": "x", "name": "x", "status": "InProgress"}));
    server.api().inject(
        "GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{op}",
        Fault::Answer(forever),
        0,
        10_000,
    );
    let env = shared::providers::BuildEnv {
        timings: shared::providers::Timings { operation_timeout: Duration::from_millis(300), ..super::fast_timings() },
        ..super::env(CLIENT_SECRET, super::fast_retry(), Duration::from_secs(5))
    };
    let slow = shared::providers::azure::AzureProvider::from_config(&config(&server), &env).unwrap();
    let s = spec("prod", "p", OsFamily::Linux);
    let err = slow.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("still running"), "{err}");
    server.api().clear_faults();
    assert_eq!(p.list_vms(&s.labels).await.unwrap().len(), 1, "the VM is kept for the next attempt");
}

#[tokio::test]
async fn errors_name_the_operation_and_carry_the_server_wait() {
    let server = AzureTestServer::start().await;
    let p = provider(&server);
    server.api().inject(
        &vm_route("GET"),
        Fault::Answer(integration_tests::azure_server::throttled(Duration::from_secs(120))),
        0,
        1,
    );
    match p.get_vm("kasm-x").await.unwrap_err() {
        ProviderError::RateLimited { retry_after: Some(w), .. } => assert_eq!(w, Duration::from_secs(120)),
        other => panic!("{other:?}"),
    }
    server.api().inject(
        &vm_route("PUT"),
        Fault::Answer(integration_tests::azure_server::err(
            403,
            "AuthorizationFailed",
            "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write' over scope '/subscriptions/s/resourceGroups/kasm-rg/providers/Microsoft.Compute/virtualMachines/v' or the scope is invalid.",
        )),
        0,
        1,
    );
    let err = p.create_vm(&spec("prod", "p", OsFamily::Linux)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permission);
    let text = err.to_string();
    assert!(text.contains("create the VM") && text.contains("Microsoft.Compute/virtualMachines/write"), "{text}");
    assert!(!text.contains(CLIENT_SECRET) && !text.contains("mgr-token"), "{text}");
    assert!(server.resources().is_empty(), "{:?}", server.resources());

    // A resource group that does not exist is an error naming it, not an empty list.
    let mut cfg = config(&server);
    cfg.azure_resource_group = "no-such-rg".into();
    let err = provider_cfg(&cfg, CLIENT_SECRET).list_vms(&OwnerLabels::deployment("prod")).await.unwrap_err();
    assert!(err.to_string().contains("ResourceGroupNotFound"), "{err}");
    let err = provider_cfg(&cfg, CLIENT_SECRET).get_vm("kasm-x").await.unwrap_err();
    assert!(err.to_string().contains("ResourceGroupNotFound"), "{err}");
}
