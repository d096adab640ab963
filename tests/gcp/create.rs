//! The create, list and delete flows on the test server: the body sent, idempotency by requestId,
//! resumption, operation waits, what delete leaves, capacity.

use integration_tests::fake_api::{Fault, Reply};
use integration_tests::gcp_server::{GcpTestServer, OP_POLLS, PROJECT, ZONE, err};
use serde_json::json;
use shared::model::OwnerLabels;
use shared::providers::gcp::{labels, request_id};
use shared::providers::{BuildEnv, ErrorClass, Timings, VmProvider, VmState};

use super::{SCRIPT, calls, config, fast_retry, fast_timings, provider, provider_cfg, spec};

const INSTANCES: &str = "/compute/v1/projects/{project}/zones/{zone}/instances";

#[tokio::test]
async fn create_sends_the_spec_body_with_request_id_and_resumes() {
    let server = GcpTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "Desktop Pool");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.id, s.name);
    assert_eq!(vm.state, VmState::Running);
    assert!(vm.public_ip.as_deref().is_some_and(|ip| ip.starts_with("34.86.0.")), "{vm:?}");
    assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.starts_with("10.150.0.")), "{vm:?}");
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);

    let order = calls(&server);
    assert_eq!(order[0], "POST /token");
    assert_eq!(order[1], format!("GET {INSTANCES}/{{instance}}"), "looked up by name first: {order:?}");
    assert_eq!(order[2], format!("POST {INSTANCES}"));
    let polls = order.iter().filter(|c| c.ends_with("/operations/{operation}")).count();
    assert_eq!(polls, OP_POLLS as usize, "{order:?}");
    let insert = server.api().last(&format!("POST {INSTANCES}")).unwrap();
    assert_eq!(insert.param("requestId"), Some(request_id(s.claim.as_str()).as_str()));
    assert_eq!(insert.path, format!("/compute/v1/projects/pensive-voice-547511/zones/{ZONE}/instances"));
    let body: serde_json::Value = serde_json::from_str(&insert.body).unwrap();
    assert_eq!(body["name"], s.name.as_str());
    assert_eq!(body["labels"]["team"], "vdi");
    assert_eq!(body["labels"][labels::CLAIM], labels::encode(s.claim.as_str()).as_str());
    assert_eq!(body["labels"]["kasm_autoscale_config"], "_44esktop_20_50ool");
    assert_eq!(body["disks"][0]["autoDelete"], true);
    assert_eq!(body["disks"][0]["initializeParams"]["labels"], body["labels"]);
    assert_eq!(body["disks"][0]["initializeParams"]["diskSizeGb"], "100");
    assert_eq!(body["networkInterfaces"][0]["accessConfigs"][0]["type"], "ONE_TO_ONE_NAT");
    assert_eq!(body["scheduling"]["onHostMaintenance"], "TERMINATE");
    assert_eq!(
        body["metadata"]["items"],
        json!([{"key": "ssh-keys", "value": "kasm:ssh-rsa AAAA kasm"}, {"key": "startup-script", "value": SCRIPT}])
    );
    let inst = server.instance(&s.name).unwrap();
    assert_eq!(inst.metadata("startup-script").as_deref(), Some(SCRIPT));
    // The boot disk carries our labels too.
    let disk = server.disks().into_iter().find(|d| d.name == s.name).expect("the boot disk");
    assert_eq!(disk.labels.get(labels::CLAIM), Some(&labels::encode(s.claim.as_str())));

    // Again for the claim: found by name, nothing inserted.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("resume");
    assert_eq!(again.id, vm.id);
    assert!(!calls(&server).contains(&format!("POST {INSTANCES}")), "{:?}", calls(&server));
    assert_eq!(server.instances().len(), 1);
}

#[tokio::test]
async fn a_lost_insert_answer_is_retried_with_the_same_request_id_and_makes_one_instance() {
    let server = GcpTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "p");
    // The first insert times out before the API acts; the HTTP layer sends it again (same requestId).
    server.api().inject(
        &format!("POST {INSTANCES}"),
        Fault::Stall { hold: std::time::Duration::from_millis(1500), then: err(503, "backendError", "late") },
        0,
        1,
    );
    let env = super::env(
        &integration_tests::gcp_server::key_file(&server.url),
        fast_retry(),
        std::time::Duration::from_millis(500),
    );
    let slow = shared::providers::gcp::GcpProvider::from_config(&config(&server), &env).unwrap();
    let vm = slow.create_vm(&s).await.expect("create after a stalled insert");
    let inserts: Vec<_> = server.requests().into_iter().filter(|r| r.key() == format!("POST {INSTANCES}")).collect();
    assert_eq!(inserts.len(), 2);
    assert_eq!(inserts[0].param("requestId"), inserts[1].param("requestId"));
    assert_eq!(server.instances().len(), 1);

    // The API deduplicates by requestId: the same insert again answers the first operation.
    server.api().inject(&format!("GET {INSTANCES}/{{instance}}"), Fault::Answer(err(404, "notFound", "gone")), 0, 1);
    let again = p.create_vm(&s).await.expect("resume by requestId");
    assert_eq!(again.id, vm.id);
    assert_eq!(server.instances().len(), 1);
}

#[tokio::test]
async fn an_operation_that_never_finishes_is_bounded_and_the_instance_kept() {
    let server = GcpTestServer::start().await;
    server.api().inject(
        "GET /compute/v1/projects/{project}/zones/{zone}/operations/{operation}",
        Fault::Answer(Reply::json(200, &json!({"name": "operation-1", "status": "RUNNING"}))),
        0,
        10_000,
    );
    let env = BuildEnv {
        timings: Timings { operation_timeout: std::time::Duration::from_millis(200), ..fast_timings() },
        ..super::env(
            &integration_tests::gcp_server::key_file(&server.url),
            fast_retry(),
            std::time::Duration::from_secs(5),
        )
    };
    let p = shared::providers::gcp::GcpProvider::from_config(&config(&server), &env).unwrap();
    let s = spec("prod", "p");
    let e = p.create_vm(&s).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(e.to_string().contains("not done after"), "{e}");
    let polls = calls(&server).iter().filter(|c| c.ends_with("/operations/{operation}")).count();
    assert!(polls <= 7, "the polls back off: {polls}");
    server.api().clear_faults();
    assert_eq!(p.list_vms(&s.labels).await.unwrap().len(), 1, "kept for the next attempt");
}

#[tokio::test]
async fn delete_takes_the_boot_disk_and_refuses_foreign_instances() {
    let server = GcpTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "p");
    let vm = p.create_vm(&s).await.unwrap();
    assert_eq!(server.disks().len(), 1);
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.instances().is_empty());
    assert!(server.disks().is_empty(), "the boot disk goes with it: {:?}", server.disks());
    let del = server.api().last(&format!("DELETE {INSTANCES}/{{instance}}")).unwrap();
    assert!(del.param("requestId").is_some_and(|r| r.len() == 36));
    p.delete_vm(&vm.id).await.expect("deleting a missing instance succeeds");
    p.delete_vm("Not An Instance").await.expect("an id no instance can have");

    let foreign = server.add_instance("ops-bastion", &[("env", "prod")]);
    let e = p.delete_vm(&foreign).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("not made by kasm-autoscale"), "{e}");
    assert!(server.instance(&foreign).is_some());
    assert!(server.requests().iter().all(|r| !(r.method == "DELETE" && r.path.ends_with("/ops-bastion"))));

    // A name taken by another claim is not resumed.
    let mut other = spec("prod", "p");
    other.name = foreign.clone();
    let e = p.create_vm(&other).await.unwrap_err();
    assert!(e.to_string().contains("taken by an instance of another claim"), "{e}");
}

#[tokio::test]
async fn listing_filters_by_labels_across_pages() {
    let server = GcpTestServer::start().await;
    let p = provider(&server).with_page_size(2);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(p.create_vm(&spec("prod", "a")).await.unwrap().id);
    }
    p.create_vm(&spec("staging", "a")).await.unwrap();
    server.add_instance("foreign", &[]);
    server.api().clear_requests();
    let mut got: Vec<String> =
        p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().into_iter().map(|v| v.id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let pages = server.requests();
    assert_eq!(pages.len(), 3, "{:?}", calls(&server));
    assert_eq!(pages[0].param("filter"), Some("(labels.kasm_autoscale_deployment = \"prod\")"));
    assert_eq!(pages[0].param("maxResults"), Some("2"));
    assert!(pages[0].param("pageToken").is_none() && pages[1].param("pageToken").is_some());
}

#[tokio::test]
async fn zone_exhaustion_is_out_of_capacity_and_api_errors_are_named() {
    let server = GcpTestServer::start().await;
    let p = provider(&server);
    server.set_capacity(1);
    p.create_vm(&spec("prod", "p")).await.expect("the first fits");
    let e = p.create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    assert!(e.to_string().contains("ZONE_RESOURCE_POOL_EXHAUSTED"), "{e}");
    server.set_capacity(100);

    server.api().inject(
        &format!("POST {INSTANCES}"),
        Fault::Answer(err(
            403,
            "accessNotConfigured",
            "Compute Engine API has not been used in project 1 before or it is disabled.",
        )),
        0,
        1,
    );
    let e = p.create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permission, "{e}");
    assert!(e.to_string().contains("Compute Engine API is not enabled"), "{e}");
    server.api().inject(
        &format!("POST {INSTANCES}"),
        Fault::Answer(err(403, "quotaExceeded", "Quota 'CPUS' exceeded.")),
        0,
        1,
    );
    assert_eq!(p.create_vm(&spec("prod", "p")).await.unwrap_err().class(), ErrorClass::OutOfCapacity);

    // A Windows VM with a Bash script type is refused before any call.
    let mut s = spec("prod", "p");
    s.os = shared::model::OsFamily::Windows;
    server.api().clear_requests();
    let e = p.create_vm(&s).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid);
    assert!(server.requests().is_empty());
    // A Windows config puts the script under its script type's key.
    let mut cfg = config(&server);
    cfg.gcp_vm_installed_os_type = shared::model::OsFamily::Windows;
    cfg.gcp_startup_script_type = shared::config::providers::GcpStartupScriptType::Powershell;
    let w = provider_cfg(&server, &cfg).create_vm(&s).await.expect("windows create");
    assert_eq!(server.instance(&w.id).unwrap().metadata("windows-startup-script-ps1").as_deref(), Some(SCRIPT));
}

#[tokio::test]
async fn preflight_passes_and_names_what_is_missing() {
    let server = GcpTestServer::start().await;
    let checks = provider(&server).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::gcp::CHECKS.to_vec());
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    // Read-only: GETs, the token and the two permission tests (POSTs that change nothing).
    assert!(
        server.requests().iter().all(|r| r.method == "GET"
            || r.route == "/token"
            || r.route.ends_with("testIamPermissions")
            || r.route == "/v1/projects/{resource}"),
        "preflight is read-only"
    );

    let mut cfg = config(&server);
    cfg.gcp_machine_type = "n9-huge-1".into();
    cfg.gcp_image = "projects/ubuntu-os-cloud/global/images/no-such-image".into();
    cfg.gcp_subnetwork = "projects/pensive-voice-547511/regions/us-east4/subnetworks/missing".into();
    server.set_quota_usage("NVIDIA_T4_GPUS", 4.0);
    let checks = provider_cfg(&server, &cfg).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    // The unknown machine type leaves CPUS unchecked (a failed line); the named GPU metric is full.
    assert_eq!(failed, ["machine_type", "image", "subnetwork", "cpu_quota", "quota_metrics"], "{checks:#?}");
    let quota = checks.iter().find(|c| c.name == "quota_metrics").unwrap();
    assert!(quota.detail.contains("NVIDIA_T4_GPUS has room for 0, one instance needs 1"), "{quota:?}");

    server.set_quota_usage("NVIDIA_T4_GPUS", 0.0);
    server.set_quota_usage("CPUS", 90.0);
    let checks = provider(&server).preflight().await;
    let cpu = checks.iter().find(|c| c.name == "cpu_quota").unwrap();
    assert!(!cpu.ok && cpu.detail.contains("CPUS has room for 6, one `n1-standard-8` instance needs 8"), "{cpu:?}");
    let quota = checks.iter().find(|c| c.name == "quota_metrics").unwrap();
    assert!(quota.ok && quota.detail.contains("NVIDIA_T4_GPUS 4, INSTANCES 99"), "{quota:?}");

    // A metric the region does not report fails naming it; none named is said to be unchecked.
    let mut cfg = config(&server);
    cfg.gcp_quota_metrics.insert("N2D_CPUS".into(), 8.0);
    let checks = provider_cfg(&server, &cfg).preflight().await;
    let quota = checks.iter().find(|c| c.name == "quota_metrics").unwrap();
    assert!(!quota.ok && quota.detail.contains("region `us-east4` reports no N2D_CPUS quota"), "{quota:?}");
    cfg.gcp_quota_metrics.clear();
    let checks = provider_cfg(&server, &cfg).preflight().await;
    let quota = checks.iter().find(|c| c.name == "quota_metrics").unwrap();
    assert!(quota.ok && quota.detail.starts_with("not checked") && quota.detail.contains("its GPUs"), "{quota:?}");
}

#[tokio::test]
async fn preflight_names_every_missing_permission() {
    let server = GcpTestServer::start().await;
    let checks = provider(&server).preflight().await;
    let perm = checks.iter().find(|c| c.name == "permissions").unwrap();
    assert!(perm.ok && perm.detail.contains("compute.instances.create"), "{perm:?}");
    // Cloud Resource Manager, our project, the derived list; Compute on the subnetwork.
    let reqs = server.requests();
    let crm = reqs.iter().find(|r| r.route == "/v1/projects/{resource}").expect("projects.testIamPermissions");
    assert_eq!(crm.method, "POST");
    assert_eq!(crm.path, format!("/v1/projects/{PROJECT}:testIamPermissions"));
    let asked: serde_json::Value = serde_json::from_str(&crm.body).unwrap();
    let (on_project, on_subnetwork) = shared::providers::gcp::needed_permissions(&config(&server));
    assert_eq!(asked, serde_json::json!({"permissions": on_project}));
    let sub = reqs.iter().find(|r| r.route.ends_with("/subnetworks/{subnetwork}/testIamPermissions")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&sub.body).unwrap(),
        serde_json::json!({"permissions": on_subnetwork})
    );

    server.deny_permission("compute.instances.delete");
    server.deny_permission("compute.disks.create");
    server.deny_permission("compute.subnetworks.use");
    let checks = provider(&server).preflight().await;
    let perm = checks.iter().find(|c| c.name == "permissions").unwrap();
    assert!(!perm.ok, "{perm:?}");
    assert_eq!(
        perm.detail,
        format!(
            "missing on project `{PROJECT}`: compute.instances.delete, compute.disks.create; on subnetwork `{}`: compute.subnetworks.use",
            config(&server).gcp_subnetwork
        )
    );
    // Only this check failed: the others do not depend on it.
    assert_eq!(checks.iter().filter(|c| !c.ok).count(), 1, "{checks:#?}");

    // A project Resource Manager will not show: the check fails with its answer.
    let mut cfg = config(&server);
    cfg.gcp_project = "someone-elses-project".into();
    let checks = provider_cfg(&server, &cfg).preflight().await;
    let perm = checks.iter().find(|c| c.name == "permissions").unwrap();
    assert!(!perm.ok && perm.detail.contains("test the project's IAM permissions"), "{perm:?}");
}
