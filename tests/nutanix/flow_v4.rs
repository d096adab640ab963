//! The v4 flow against the v4 test server: the request names and headers against the SDK models
//! (request ids, `If-Match`), labelling after the clone and its resumption, the ETag retries,
//! capacity, delete and what it leaves, listing, preflight, and the server holding requests to the
//! spec.

use base64::Engine as _;
use integration_tests::fake_api::Fault;
use integration_tests::nutanix_server::{
    CANDIDATE, CANDIDATE_UUID, NO_CAPACITY, NutanixTestServer, PASSWORD, USERNAME,
};
use serde_json::{Value, json};

use super::{SCRIPT, calls, config, provider, provider_cfg, spec};
use shared::model::OwnerLabels;
use shared::providers::nutanix::{CHECKS, labels};
use shared::providers::{ErrorClass, VmProvider, VmState};

const VMS: &str = "/vmm/v4.3/ahv/config/vms";
const GET_VMS: &str = "GET /vmm/v4.3/ahv/config/vms";
const GET_VM: &str = "GET /vmm/v4.3/ahv/config/vms/{extId}";
const PUT_VM: &str = "PUT /vmm/v4.3/ahv/config/vms/{extId}";
const DELETE_VM: &str = "DELETE /vmm/v4.3/ahv/config/vms/{extId}";
const CLONE: &str = "POST /vmm/v4.3/ahv/config/vms/{extId}/$actions/clone";
const POWER_ON: &str = "POST /vmm/v4.3/ahv/config/vms/{extId}/$actions/power-on";
const TASK: &str = "GET /prism/v4.4/config/tasks/{extId}";

fn v4_err(status: u16, code: &str, message: &str) -> Fault {
    Fault::Answer(integration_tests::nutanix_server::err_v4(status, code, message))
}

/// The claim as a UUID (a ULID is 128 bits).
fn claim_uuid(claim: &str) -> String {
    uuid::Uuid::from_u128(ulid::Ulid::from_string(claim).unwrap().0).hyphenated().to_string()
}

#[tokio::test]
async fn create_clones_with_the_claim_as_request_id_labels_powers_on_and_resumes() {
    let server = NutanixTestServer::start_v4().await;
    let p = provider(&server);
    let s = spec("prod", "Desktop Pool");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.starts_with("10.42.0.")), "{vm:?}");
    assert_eq!(vm.name, s.name);
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);

    let reqs = server.requests();
    let order = calls(&reqs);
    assert_eq!(
        order,
        [
            GET_VMS,  // the claim's name
            GET_VMS,  // the candidate
            GET_VM,   // its ETag
            CLONE,    // once
            TASK,     // until SUCCEEDED
            TASK,     //
            GET_VM,   // the clone named in the task's entities
            GET_VM,   // its labels
            GET_VM,   // the VM as read, for the PUT
            PUT_VM,   // the description
            TASK,     //
            TASK,     //
            GET_VM,   // its power state
            GET_VM,   // its ETag for the power-on
            POWER_ON, //
            TASK,     //
            TASK,     //
            GET_VM,   // as it is now
        ],
        "{order:#?}"
    );
    let filter = format!("name eq '{}'", s.name);
    assert_eq!(reqs[0].param("$filter"), Some(filter.as_str()));
    assert_eq!((reqs[0].param("$page"), reqs[0].param("$limit")), (Some("0"), Some("100")));
    assert_eq!(reqs[1].param("$filter"), Some(format!("name eq '{CANDIDATE}'").as_str()));
    assert_eq!(reqs[3].path, format!("{VMS}/{CANDIDATE_UUID}/$actions/clone"));
    let h = |i: usize, k: &str| reqs[i].headers.get(k).cloned().unwrap_or_default();
    assert_eq!(h(3, "ntnx-request-id"), claim_uuid(s.claim.as_str()), "the clone's request id is the claim");
    assert_eq!(h(3, "if-match"), "\"3f2504e0-7\"", "the candidate's ETag");
    let user_data = base64::engine::general_purpose::STANDARD.encode(SCRIPT);
    assert_eq!(
        serde_json::from_str::<Value>(&reqs[3].body).unwrap(),
        json!({"$objectType": "vmm.v4.ahv.config.CloneOverrideParams", "name": s.name, "numSockets": 4,
            "numCoresPerSocket": 1, "memorySizeBytes": 4u64 << 30,
            "guestCustomization": {"$objectType": "vmm.v4.ahv.config.GuestCustomizationParams",
                "config": {"$objectType": "vmm.v4.ahv.config.CloudInit", "datasourceType": "CONFIG_DRIVE_V2",
                    "cloudInitScript": {"$objectType": "vmm.v4.ahv.config.Userdata", "value": user_data}}}})
    );
    let put: Value = serde_json::from_str(&reqs[9].body).unwrap();
    assert_eq!(put["description"], json!(labels::description(&s.labels)));
    assert_eq!((put["extId"].as_str(), put["name"].as_str()), (Some(vm.id.as_str()), Some(s.name.as_str())));
    for i in [9, 14] {
        assert!(uuid::Uuid::parse_str(&h(i, "ntnx-request-id")).is_ok(), "{:?}", reqs[i]);
        assert!(!h(i, "if-match").is_empty(), "{:?}", reqs[i]);
    }
    assert_ne!(h(9, "ntnx-request-id"), h(14, "ntnx-request-id"), "each change has its own request id");
    for r in &reqs {
        assert!(!r.headers.contains_key("authorization"), "credentials are never recorded");
    }
    let made = server.vm(&vm.id).expect("the VM");
    assert_eq!((made.num_sockets, made.num_vcpus_per_socket, made.memory_size_mib), (4, 1, 4096));
    assert_eq!(made.user_data.as_deref(), Some(SCRIPT));
    assert_eq!((made.power_state.as_str(), made.parent.as_deref()), ("ON", Some(CANDIDATE_UUID)));

    // Again for the claim: found by its name, nothing cloned, labelled or powered on.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("resume");
    assert_eq!(again.id, vm.id);
    let order = calls(&server.requests());
    assert!(!order.iter().any(|c| c.starts_with("POST") || c.starts_with("PUT")), "{order:?}");
    assert_eq!(server.vms().len(), 1);
}

#[tokio::test]
async fn a_clone_whose_labelling_was_cut_short_is_labelled_by_the_next_attempt() {
    let server = NutanixTestServer::start_v4().await;
    let p = provider(&server);
    let s = spec("prod", "pool");
    server.api().inject(PUT_VM, v4_err(500, "VMM-10500", "Internal Server Error."), 0, 50);
    let e = p.create_vm(&s).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    server.api().clear_faults();
    let left = server.vms();
    assert_eq!(left.len(), 1);
    assert!(!labels::is_ours(&left[0].description), "the clone keeps the candidate's description: {left:?}");
    assert!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().is_empty(), "not ours until labelled");

    let vm = p.create_vm(&s).await.expect("the next attempt");
    assert_eq!(vm.id, left[0].uuid);
    assert_eq!(server.api().count(CLONE), 1, "no second clone");
    assert!(s.labels.matches(&vm.labels));
    assert_eq!(vm.state, VmState::Running);

    // A VM of the claim's name that is not a clone of the candidate is never adopted.
    let s = spec("prod", "pool");
    let theirs = server.add_vm(&s.name, "someone else's VM");
    let e = p.create_vm(&s).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains(&s.name), "{e}");
    assert_eq!(server.vm(&theirs).unwrap().description, "someone else's VM");
}

#[tokio::test]
async fn a_stale_etag_is_read_again_once_and_a_lasting_one_is_conflict() {
    let server = NutanixTestServer::start_v4().await;
    let p = provider(&server);
    let stale = || v4_err(412, "VMM-10412", "ETag mismatch");

    // The clone: read again, sent once more under a second id derived from the claim.
    server.api().inject(CLONE, stale(), 0, 1);
    let s = spec("prod", "pool");
    let vm = p.create_vm(&s).await.expect("create after one 412");
    let clones: Vec<_> = server.requests().into_iter().filter(|r| r.key() == CLONE).collect();
    assert_eq!(clones.len(), 2);
    let ids: Vec<&String> = clones.iter().map(|r| &r.headers["ntnx-request-id"]).collect();
    assert_eq!(ids[0], &claim_uuid(s.claim.as_str()));
    assert_ne!(ids[0], ids[1]);
    assert_eq!(server.vms().len(), 1);

    // The power-on: the VM changed behind our back, its ETag is refused by the server itself.
    server.api().inject(POWER_ON, stale(), 0, 1);
    server.api().clear_requests();
    let vm2 = p.create_vm(&spec("prod", "pool")).await.expect("create after a 412 on power-on");
    assert_eq!(vm2.state, VmState::Running);
    assert_eq!(server.api().count(POWER_ON), 2);

    // Lasting: Conflict, after two tries.
    server.api().clear_requests();
    server.api().inject(DELETE_VM, stale(), 0, 50);
    let e = p.delete_vm(&vm.id).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Conflict, "{e}");
    assert!(e.to_string().contains("VMM-10412"), "{e}");
    assert_eq!(server.api().count(DELETE_VM), 2);
    server.api().clear_faults();

    // The server's own 412: the VM changes between our read and our delete.
    server.touch(&vm.id);
    p.delete_vm(&vm.id).await.expect("delete reads the current ETag");
    assert!(server.vm(&vm.id).is_none());
}

#[tokio::test]
async fn a_clone_the_cluster_has_no_room_for_is_out_of_capacity() {
    let server = NutanixTestServer::start_v4().await;
    server.set_memory_mib(2048);
    let e = provider(&server).create_vm(&spec("prod", "pool")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    assert!(e.to_string().contains(NO_CAPACITY), "{e}");
    assert!(server.vms().is_empty());
}

#[tokio::test]
async fn delete_refuses_foreign_vms_and_leaves_nothing_of_ours() {
    let server = NutanixTestServer::start_v4().await;
    let p = provider(&server);
    let foreign = server.add_vm("ops-database", "");
    assert_eq!(p.delete_vm(&foreign).await.unwrap_err().class(), ErrorClass::Invalid);
    assert!(server.vm(&foreign).is_some());
    assert_eq!(p.delete_vm(CANDIDATE_UUID).await.unwrap_err().class(), ErrorClass::Invalid);
    assert_eq!(server.api().count(DELETE_VM), 0);

    let vm = p.create_vm(&spec("prod", "pool")).await.unwrap();
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.vm(&vm.id).is_none());
    assert!(server.disks().iter().all(|(v, _)| *v != vm.id), "no vdisk of the VM is left");
    let del = server.api().last(DELETE_VM).unwrap();
    assert!(del.headers.contains_key("if-match") && del.headers.contains_key("ntnx-request-id"), "{del:?}");
    p.delete_vm(&vm.id).await.expect("deleting a missing VM succeeds");
    assert_eq!(p.get_vm(&vm.id).await.unwrap_err().class(), ErrorClass::NotFound);
}

#[tokio::test]
async fn listing_reads_every_page_and_keeps_only_our_labels() {
    let server = NutanixTestServer::start_v4().await;
    let p = provider(&server).with_page_size(1);
    let mut ours = Vec::new();
    for _ in 0..3 {
        ours.push(p.create_vm(&spec("prod", "a")).await.unwrap().id);
    }
    p.create_vm(&spec("prod", "b")).await.unwrap();
    server.add_vm("ops-web", "kasm-autoscale: config=a");
    server.api().clear_requests();
    let want = OwnerLabels { deployment: "prod".into(), autoscale_config: Some("a".into()), claim: None };
    let mut got: Vec<String> = p.list_vms(&want).await.unwrap().into_iter().map(|v| v.id).collect();
    got.sort();
    ours.sort();
    assert_eq!(got, ours);
    // Candidate + 4 of ours + the operator's VM, one per page.
    let pages: Vec<_> = server.requests().into_iter().filter(|r| r.key() == GET_VMS).collect();
    assert_eq!(pages.len(), 6);
    assert_eq!(pages[5].param("$page"), Some("5"));
    assert!(pages.iter().all(|r| r.param("$limit") == Some("1") && r.param("$filter").is_none()));
    assert_eq!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().len(), 4);
    assert!(p.list_vms(&OwnerLabels::deployment("staging")).await.unwrap().is_empty());
}

#[tokio::test]
async fn preflight_passes_on_v4_and_names_what_is_missing() {
    let server = NutanixTestServer::start_v4().await;
    let checks = provider(&server).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, CHECKS.to_vec());
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert!(checks[0].detail.contains("v4.3"), "{checks:#?}");
    assert!(checks[3].detail.contains("128000"), "{checks:#?}");
    assert!(calls(&server.requests()).iter().all(|r| r.starts_with("GET")), "preflight only reads");

    let mut cfg = config(&server);
    cfg.vm_candidate_name = "no-such-template".into();
    let checks = provider_cfg(&cfg, PASSWORD).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, ["vm_candidate", "cluster"], "{checks:#?}");

    let checks = provider_cfg(&config(&server), "wrong").preflight().await;
    assert!(!checks[0].ok && checks[0].detail.contains("401"), "{checks:#?}");
    assert!(checks.iter().all(|c| !c.detail.contains("wrong")));

    // A Prism Central without the v4 APIs (here: the v3 server) is named as such.
    let v3 = NutanixTestServer::start().await;
    let mut cfg = config(&v3);
    cfg.api_version = shared::config::providers::NutanixApiVersion::V4;
    let checks = provider_cfg(&cfg, PASSWORD).preflight().await;
    assert!(!checks[0].ok && checks[0].detail.contains("v4.3"), "{checks:#?}");
}

/// The v4 server holds requests to the SDK models and headers, so the flow tests above would fail
/// on a request shaped wrongly; a repeated request id starts nothing new.
#[tokio::test]
async fn the_v4_test_server_holds_requests_to_the_spec() {
    let server = NutanixTestServer::start_v4().await;
    shared::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}")));
    let clone_url = format!("{}/api{VMS}/{CANDIDATE_UUID}/$actions/clone", server.url);
    let ok_body = json!({"$objectType": "vmm.v4.ahv.config.CloneOverrideParams", "name": "x", "numSockets": 1});
    let send = |body: Value, request_id: Option<&str>, if_match: Option<&str>| {
        let mut r = http
            .post(&clone_url)
            .header("authorization", auth.clone())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(id) = request_id {
            r = r.header("NTNX-Request-Id", id);
        }
        if let Some(m) = if_match {
            r = r.header("If-Match", m);
        }
        r.send()
    };
    let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    let tag = "\"3f2504e0-7\"";
    for (body, rid, im, status) in [
        (ok_body.clone(), None, Some(tag), 400),
        (ok_body.clone(), Some("not-a-uuid"), Some(tag), 400),
        (ok_body.clone(), Some(id), None, 400),
        (ok_body.clone(), Some(id), Some("\"3f2504e0-6\""), 412),
        (json!({"name": "x"}), Some(id), Some(tag), 400),
        (
            json!({"$objectType": "vmm.v4.ahv.config.CloneOverrideParams", "name": "x", "description": "d"}),
            Some(id),
            Some(tag),
            400,
        ),
        (
            json!({"$objectType": "vmm.v4.ahv.config.CloneOverrideParams", "name": "x", "numSockets": 0}),
            Some(id),
            Some(tag),
            400,
        ),
        (
            json!({"$objectType": "vmm.v4.ahv.config.CloneOverrideParams", "name": "x", "guestCustomization":
                {"$objectType": "vmm.v4.ahv.config.GuestCustomizationParams", "config": {"$objectType":
                "vmm.v4.ahv.config.CloudInit", "cloudInitScript": {"$objectType": "vmm.v4.ahv.config.Userdata",
                "value": "#!/bin/sh"}}}}),
            Some(id),
            Some(tag),
            400,
        ),
    ] {
        let r = send(body.clone(), rid, im).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body} {rid:?} {im:?}");
        let e: Value = r.json().await.unwrap();
        assert!(e["data"]["error"].is_array() || e["data"]["error"].is_object(), "{e}");
    }
    let first: Value = send(ok_body.clone(), Some(id), Some(tag)).await.unwrap().json().await.unwrap();
    let again: Value = send(ok_body.clone(), Some(id), Some(tag)).await.unwrap().json().await.unwrap();
    assert_eq!(first["data"]["extId"], again["data"]["extId"], "the same request id, the same task");
    assert_eq!(server.api().count(CLONE), 10);
    let bad_page = http
        .get(format!("{}/api{VMS}?$limit=101", server.url))
        .header("authorization", auth.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_page.status().as_u16(), 400);
    let no_auth = http.get(format!("{}/api{VMS}", server.url)).send().await.unwrap();
    assert_eq!(no_auth.status().as_u16(), 401);
}
