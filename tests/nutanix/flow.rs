//! The clone flow against the test server: the request bodies in the v3 structures' names, resumption
//! by the claim's name, power-on and its 409, capacity, delete and what it leaves, listing, preflight.

use base64::Engine as _;
use integration_tests::fake_api::Fault;
use integration_tests::nutanix_server::{
    CANDIDATE, CANDIDATE_UUID, CLUSTER_NAME, NO_CAPACITY, NutanixTestServer, PASSWORD, err,
};
use serde_json::json;

use super::{SCRIPT, calls, config, provider, provider_cfg, spec};
use shared::model::OwnerLabels;
use shared::providers::nutanix::{CHECKS, MAX_UPDATE_TRIES, labels};
use shared::providers::{ErrorClass, VmProvider, VmState};

#[tokio::test]
async fn create_sends_the_v3_names_powers_on_and_resumes_by_the_claims_name() {
    let server = NutanixTestServer::start().await;
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
            "POST /vms/list",         // the claim's name
            "POST /vms/list",         // the candidate
            "POST /vms/{uuid}/clone", // once
            "GET /tasks/{uuid}",      // until SUCCEEDED
            "GET /tasks/{uuid}",
            "GET /vms/{uuid}", // out of PENDING
            "GET /vms/{uuid}", // the intent for the power-on PUT
            "PUT /vms/{uuid}",
            "GET /tasks/{uuid}",
            "GET /tasks/{uuid}",
            "GET /vms/{uuid}", // as it is now
        ],
        "{order:#?}"
    );
    let body = |i: usize| serde_json::from_str::<serde_json::Value>(&reqs[i].body).expect("JSON body");
    assert_eq!(body(0), json!({"kind": "vm", "offset": 0, "length": 250, "filter": format!("vm_name=={}", s.name)}));
    assert_eq!(body(1)["filter"], json!(format!("vm_name=={CANDIDATE}")));
    assert_eq!(reqs[2].path, format!("/vms/{CANDIDATE_UUID}/clone"));
    let user_data = base64::engine::general_purpose::STANDARD.encode(SCRIPT);
    assert_eq!(
        body(2),
        json!({"override_spec": {"name": s.name, "description": labels::description(&s.labels),
            "num_sockets": 4, "num_vcpus_per_socket": 1, "memory_size_mib": 4096,
            "guest_customization": {"cloud_init": {"user_data": user_data}}}})
    );
    let put = body(7);
    assert_eq!(put["spec"]["resources"]["power_state"], "ON");
    assert!(put.get("status").is_none(), "the status is not sent back");
    for r in &reqs {
        assert!(!r.headers.contains_key("authorization"), "credentials are never recorded");
        if r.method != "GET" {
            assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/json"));
        }
    }
    let made = server.vm(&vm.id).expect("the VM");
    assert_eq!((made.num_sockets, made.num_vcpus_per_socket, made.memory_size_mib), (4, 1, 4096));
    assert_eq!(made.user_data.as_deref(), Some(SCRIPT));
    assert_eq!(made.power_state, "ON");
    assert_eq!(made.parent.as_deref(), Some(CANDIDATE_UUID));

    // Again for the claim: found by its name, nothing cloned, nothing powered on.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("resume");
    assert_eq!(again.id, vm.id);
    let order = calls(&server.requests());
    assert!(!order.iter().any(|c| c.contains("clone") || c.starts_with("PUT")), "{order:?}");
    assert_eq!(server.vms().len(), 1);
}

#[tokio::test]
async fn a_vm_of_the_claims_name_that_is_not_ours_is_never_adopted() {
    let server = NutanixTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "pool");
    let theirs = server.add_vm(&s.name, "someone else's VM");
    let e = p.create_vm(&s).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains(&s.name), "{e}");
    assert_eq!(server.api().count("POST /vms/{uuid}/clone"), 0);
    assert!(server.vm(&theirs).is_some());
}

#[tokio::test]
async fn a_power_on_conflict_is_read_again_and_a_lasting_one_is_conflict() {
    let server = NutanixTestServer::start().await;
    let p = provider(&server);
    let conflict = || Fault::Answer(err(409, "CONCURRENT_REQUESTS_NOT_ALLOWED", "spec_version mismatch"));
    server.api().inject("PUT /vms/{uuid}", conflict(), 0, 1);
    let vm = p.create_vm(&spec("prod", "pool")).await.expect("create after one 409");
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(server.api().count("PUT /vms/{uuid}"), 2);

    server.api().clear_requests();
    server.api().inject("PUT /vms/{uuid}", conflict(), 0, 50);
    let e = p.create_vm(&spec("prod", "pool")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Conflict, "{e}");
    assert_eq!(server.api().count("PUT /vms/{uuid}"), MAX_UPDATE_TRIES);
    server.api().clear_faults();
}

#[tokio::test]
async fn a_stale_spec_version_is_refused_by_the_server_and_read_again() {
    // The server's own 409: a VM changed between our read and our PUT.
    let server = NutanixTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "pool");
    // First attempt clones, then its PUT is answered 409 by a fault while someone else updates the VM.
    server.api().inject("PUT /vms/{uuid}", Fault::Answer(err(409, "CONCURRENT_REQUESTS_NOT_ALLOWED", "busy")), 0, 50);
    let e = p.create_vm(&s).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Conflict);
    server.api().clear_faults();
    let id = server.vms()[0].uuid.clone();
    server.touch(&id);
    // The retry of the claim finds the VM, reads its current spec_version and powers it on.
    let vm = p.create_vm(&s).await.expect("resume");
    assert_eq!((vm.id.as_str(), vm.state), (id.as_str(), VmState::Running));
    assert_eq!(server.api().count("POST /vms/{uuid}/clone"), 1);
}

#[tokio::test]
async fn a_clone_the_cluster_has_no_room_for_is_out_of_capacity() {
    let server = NutanixTestServer::start().await;
    server.set_memory_mib(2048);
    let e = provider(&server).create_vm(&spec("prod", "pool")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    assert!(e.to_string().contains(NO_CAPACITY), "{e}");
    assert!(server.vms().is_empty());
}

#[tokio::test]
async fn delete_refuses_foreign_vms_and_leaves_nothing_of_ours() {
    let server = NutanixTestServer::start().await;
    let p = provider(&server);
    let foreign = server.add_vm("ops-database", "");
    let e = p.delete_vm(&foreign).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(server.vm(&foreign).is_some());
    // The candidate is never ours either.
    assert_eq!(p.delete_vm(CANDIDATE_UUID).await.unwrap_err().class(), ErrorClass::Invalid);

    let vm = p.create_vm(&spec("prod", "pool")).await.unwrap();
    assert!(server.disks().iter().any(|(v, _)| *v == vm.id));
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.vm(&vm.id).is_none());
    assert!(server.disks().iter().all(|(v, _)| *v != vm.id), "no vdisk of the VM is left");
    assert_eq!(server.api().count("DELETE /vms/{uuid}"), 1);
    p.delete_vm(&vm.id).await.expect("deleting a missing VM succeeds");
    assert_eq!(p.get_vm(&vm.id).await.unwrap_err().class(), ErrorClass::NotFound);
}

#[tokio::test]
async fn listing_reads_every_page_and_keeps_only_our_labels() {
    let server = NutanixTestServer::start().await;
    let p = provider(&server).with_page_size(1);
    let mut ours = Vec::new();
    for _ in 0..3 {
        ours.push(p.create_vm(&spec("prod", "a")).await.unwrap().id);
    }
    let other = p.create_vm(&spec("prod", "b")).await.unwrap().id;
    server.add_vm("ops-web", "kasm-autoscale: config=a");
    server.api().clear_requests();
    let want = OwnerLabels { deployment: "prod".into(), autoscale_config: Some("a".into()), claim: None };
    let mut got: Vec<String> = p.list_vms(&want).await.unwrap().into_iter().map(|v| v.id).collect();
    got.sort();
    ours.sort();
    assert_eq!(got, ours);
    // Candidate + 4 of ours + the operator's VM, one per page.
    assert_eq!(server.api().count("POST /vms/list"), 6);
    let all = p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().any(|v| v.id == other));
    assert!(p.list_vms(&OwnerLabels::deployment("staging")).await.unwrap().is_empty());
}

#[tokio::test]
async fn windows_vms_get_the_script_as_cloud_init_user_data() {
    let server = NutanixTestServer::start().await;
    let mut s = spec("prod", "win");
    s.os = shared::model::OsFamily::Windows;
    let ps = "#ps1_sysnative\nWrite-Host installing the Kasm Desktop Service\n";
    s.startup_script = Some(ps.to_string().into());
    let vm = provider(&server).create_vm(&s).await.expect("create");
    assert_eq!(server.vm(&vm.id).unwrap().user_data.as_deref(), Some(ps));
}

#[tokio::test]
async fn preflight_passes_and_names_what_is_missing() {
    let server = NutanixTestServer::start().await;
    let checks = provider(&server).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, CHECKS.to_vec());
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert!(checks[2].detail.contains(CLUSTER_NAME), "{checks:#?}");
    let routes: Vec<String> = calls(&server.requests());
    assert!(
        routes.iter().all(|r| r == "POST /vms/list" || r == "POST /clusters/list"),
        "preflight only reads: {routes:?}"
    );

    let mut cfg = config(&server);
    cfg.vm_candidate_name = "no-such-template".into();
    let checks = provider_cfg(&cfg, PASSWORD).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, ["vm_candidate", "cluster"], "{checks:#?}");
    assert!(checks[1].detail.contains("vm_candidate_name"), "{checks:#?}");

    server.add_vm(CANDIDATE, "a second VM of the candidate's name");
    let checks = provider(&server).preflight().await;
    assert!(!checks[1].ok && checks[1].detail.contains("unique"), "{checks:#?}");

    let checks = provider_cfg(&config(&server), "wrong").preflight().await;
    assert!(!checks[0].ok && checks[0].detail.contains("401"), "{checks:#?}");
    assert!(checks[1..3].iter().all(|c| !c.ok && c.detail.contains("not checked")));
    assert!(checks[3].ok, "the script is checked without the API");
    assert!(checks.iter().all(|c| !c.detail.contains("wrong")));
}

/// The test server holds requests to the v3 structures: bodies with names the structures do not
/// have are refused, so the flow tests above would fail on a request shaped wrongly.
#[tokio::test]
async fn the_test_server_refuses_bodies_outside_the_v3_structures() {
    let server = NutanixTestServer::start().await;
    shared::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{PASSWORD}", integration_tests::nutanix_server::USERNAME))
    );
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}/api/nutanix/v3{path}", server.url))
            .header("authorization", auth.clone())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let clone = format!("/vms/{CANDIDATE_UUID}/clone");
    for (path, body) in [
        ("/vms/list", json!({"kind": "vm", "length": 10, "page": 2})),
        ("/vms/list", json!({"kind": "vms"})),
        ("/vms/list", json!({"kind": "vm", "filter": "name==x"})),
        (clone.as_str(), json!({"spec": {"name": "x"}})),
        (clone.as_str(), json!({"override_spec": {"name": "x", "resources": {"num_sockets": 2}}})),
        (clone.as_str(), json!({"override_spec": {"name": "x", "num_sockets": 0}})),
        (
            clone.as_str(),
            json!({"override_spec": {"name": "x", "guest_customization": {"cloud_init": {"user_data": "#!/bin/sh"}}}}),
        ),
    ] {
        let r = post(path, body.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), 422, "{path} {body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["state"], "ERROR");
    }
    let ok = post(&clone, json!({"override_spec": {"name": "x", "num_sockets": 1}})).await.unwrap();
    assert_eq!(ok.status().as_u16(), 202);
    let wrong = http.post(format!("{}/api/nutanix/v3/vms/list", server.url)).body("{}").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401, "no credentials");
}
