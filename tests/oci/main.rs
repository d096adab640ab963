//! The OCI provider against the OCI test server over HTTP (every request's signature checked): the
//! shared conformance suite with faults, the launch request against the SDK models, idempotency by
//! `opc-retry-token`, the next availability domain on "Out of host capacity", delete and what it
//! leaves, refused keys, preflight. `daemon`: the whole loop through the real `kasm-autoscale run`;
//! `lambda`: the whole loop through the real Lambda functions.

mod daemon;
mod dns;
mod lambda;

use integration_tests::oci_server::{
    ADS, COMPARTMENT, FINGERPRINT, IMAGE, NSG, OciHarness, OciTestServer, SUBNET, TENANCY, TEST_KEY, TestLimit, USER,
    check_limits_request,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use shared::config::providers::OciConfig;
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::oci::OciProvider;
use shared::providers::{BuildEnv, ErrorClass, Timings, VmProvider, VmSpec, VmState};
use shared::secrets::StaticSecrets;

const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

fn config(server: &OciTestServer) -> OciConfig {
    let cfg: OciConfig = serde_yaml_ng::from_str(&format!(
        r##"
name: oci-pool
oci_user_ocid: {USER}
oci_public_key_fingerprint: "{FINGERPRINT}"
oci_private_key: env:OCI_KEY
oci_region: us-phoenix-1
oci_tenancy_ocid: {TENANCY}
oci_compartment_ocid: {COMPARTMENT}
oci_nsg_ocids: ["{NSG}"]
max_instances: 10
oci_availability_domains: ["{}", "{}"]
oci_image_ocid: {IMAGE}
oci_shape: VM.Standard.E4.Flex
oci_flex_cpus: 2
oci_baseline_ocpu_utilization: 50
oci_flex_memory_gb: 16
oci_boot_volume_gb: 60
oci_boot_volume_vpus_per_gb: 20
oci_custom_tags: {{team: vdi}}
oci_subnet_ocid: {SUBNET}
oci_ssh_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest ops@example
oci_config_override:
  launch_instance_details:
    instance_options:
      OCI_MODEL_NAME: InstanceOptions
      are_legacy_imds_endpoints_disabled: true
    agent_config:
      OCI_MODEL_NAME: LaunchInstanceAgentConfigDetails
      are_all_plugins_disabled: false
      plugins_config:
        - OCI_MODEL_NAME: InstanceAgentPluginConfigDetails
          name: Vulnerability Scanning
          desired_state: ENABLED
startup_script: "#!/bin/bash"
service_limits: {{standard-e4-core-count: 2, standard-e4-memory-count: 16}}
endpoint_url: {}
"##,
        ADS[0], ADS[1], server.url
    ))
    .expect("config");
    cfg
}

fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

fn env(key: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    let secrets = StaticSecrets([("env:OCI_KEY".to_string(), key.to_string())].into());
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

fn provider(server: &OciTestServer) -> OciProvider {
    OciProvider::from_config(&config(server), &env(TEST_KEY, fast_retry(), Duration::from_secs(10))).expect("build")
}

fn spec(deployment: &str, config: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some(config.into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some(SecretString::from(SCRIPT.to_string())),
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = OciTestServer::start().await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = OciProvider::from_config(&config(&server), &env(TEST_KEY, retry, Duration::from_secs(1)))
        .expect("build")
        .with_page_size(2);
    let harness = OciHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "t").await;
    // Nothing of ours is left running, and no boot volume outlived its instance.
    let live: Vec<String> = server
        .instances()
        .into_iter()
        .filter(|i| !matches!(i.state.as_str(), "TERMINATING" | "TERMINATED"))
        .map(|i| i.id)
        .collect();
    assert!(live.is_empty(), "{live:?}");
    assert!(server.boot_volumes().is_empty(), "{:?}", server.boot_volumes());
}

#[tokio::test]
async fn the_launch_request_carries_the_config_in_the_sdk_wire_names() {
    let server = OciTestServer::start().await;
    let p = provider(&server);
    let s = spec("t", "oci-agents");
    let vm = p.create_vm(&s).await.expect("created");
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(server.last_retry_token().as_deref(), Some(s.claim.0.as_str()));
    let inst = server.instances().into_iter().find(|i| i.id == vm.id).expect("held");
    let mut body = inst.launch.clone();
    let user_data = body["metadata"]["user_data"].take();
    let decoded =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, user_data.as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), SCRIPT);
    let tags = json!({
        "kasm-autoscale-claim": s.claim.0,
        "kasm-autoscale-config": "oci-agents",
        "kasm-autoscale-deployment": "t",
        "team": "vdi"
    });
    assert_eq!(
        body,
        json!({
            "availabilityDomain": ADS[0],
            "compartmentId": COMPARTMENT,
            "displayName": s.name,
            "shape": "VM.Standard.E4.Flex",
            "shapeConfig": {"ocpus": 2.0, "memoryInGBs": 16.0, "baselineOcpuUtilization": "BASELINE_1_2"},
            "sourceDetails": {"sourceType": "image", "imageId": IMAGE, "bootVolumeSizeInGBs": 60, "bootVolumeVpusPerGB": 20},
            "createVnicDetails": {"subnetId": SUBNET, "nsgIds": [NSG], "assignPublicIp": true, "freeformTags": tags},
            "metadata": {"ssh_authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest ops@example", "user_data": Value::Null},
            "freeformTags": tags,
            "instanceOptions": {"areLegacyImdsEndpointsDisabled": true},
            "agentConfig": {"areAllPluginsDisabled": false, "pluginsConfig": [{"name": "Vulnerability Scanning", "desiredState": "ENABLED"}]}
        })
    );
    p.delete_vm(&vm.id).await.expect("deleted");
}

#[tokio::test]
async fn out_of_host_capacity_tries_the_next_domain_then_backs_off() {
    let server = OciTestServer::start().await;
    let p = provider(&server);
    server.fill_ad(ADS[0]);
    let s = spec("t", "cap");
    let vm = p.create_vm(&s).await.expect("created in the second domain");
    let inst = server.instances().into_iter().find(|i| i.id == vm.id).expect("held");
    assert_eq!(inst.ad, ADS[1]);
    assert_eq!(server.last_retry_token(), Some(format!("{}-1", s.claim)));
    // Created again for the same claim: found, not launched again.
    assert_eq!(p.create_vm(&s).await.expect("found").id, vm.id);
    assert_eq!(server.instances().len(), 1);

    server.fill_ad(ADS[1]);
    let e = p.create_vm(&spec("t", "cap")).await.expect_err("no capacity anywhere");
    assert_eq!(e.class(), ErrorClass::OutOfCapacity, "{e}");
    let text = e.to_string();
    assert!(text.contains(ADS[0]) && text.contains(ADS[1]) && text.contains("Out of host capacity"), "{text}");
}

#[tokio::test]
async fn delete_terminates_with_the_boot_volume_and_refuses_foreign_instances() {
    let server = OciTestServer::start().await;
    let p = provider(&server);
    let vm = p.create_vm(&spec("t", "del")).await.expect("created");
    assert_eq!(server.boot_volumes().len(), 1);
    p.delete_vm(&vm.id).await.expect("deleted");
    let del = server.api().requests().into_iter().find(|r| r.method == "DELETE").expect("a DELETE");
    assert_eq!(del.query, "preserveBootVolume=false");
    assert!(server.boot_volumes().is_empty());
    assert!(p.list_vms(&OwnerLabels::deployment("t")).await.unwrap().is_empty());

    let foreign = server.add_instance("ops-bastion", &[("team", "ops")]);
    let e = p.delete_vm(&foreign).await.expect_err("not ours");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(server.instances().iter().any(|i| i.id == foreign && i.state == "RUNNING"));
}

#[tokio::test]
async fn a_wrong_key_is_auth_naming_what_to_check_and_a_missing_key_names_the_field() {
    let server = OciTestServer::start().await;
    // Another valid RSA key: the signature does not verify.
    let other = other_test_key();
    let p = OciProvider::from_config(&config(&server), &env(&other, fast_retry(), Duration::from_secs(10))).unwrap();
    let e = p.list_vms(&OwnerLabels::deployment("t")).await.expect_err("refused");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(e.to_string().contains("clock"), "{e}");
    // One request, and one more only if the key had changed: it did not.
    assert_eq!(server.api().requests().len(), 1);

    let p =
        OciProvider::from_config(&config(&server), &env("not a key", fast_retry(), Duration::from_secs(10))).unwrap();
    let e = p.get_vm("ocid1.instance.oc1.phx.x").await.expect_err("no key");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(e.to_string().contains("oci_private_key") && !e.to_string().contains("not a key"), "{e}");
}

/// A second key (PKCS#8), made once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024`.
fn other_test_key() -> String {
    include_str!("other-key.pem").to_string()
}

#[tokio::test]
async fn preflight_passes_every_check_and_names_what_is_wrong() {
    let server = OciTestServer::start().await;
    let checks = provider(&server).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::oci::CHECKS);
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");

    let mut cfg = config(&server);
    cfg.oci_shape = "VM.Standard.A1.Flex".into();
    cfg.oci_availability_domains = shared::config::JsonText(vec![ADS[0].into(), "Uocm:PHX-AD-9".into()]);
    cfg.oci_subnet_ocid = "ocid1.subnet.oc1.phx.other".into();
    let p = OciProvider::from_config(&cfg, &env(TEST_KEY, fast_retry(), Duration::from_secs(10))).unwrap();
    let failed: Vec<(&str, String)> =
        p.preflight().await.into_iter().filter(|c| !c.ok).map(|c| (c.name, c.detail)).collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| *n).collect();
    // The AD-scoped limits are read in every configured domain: OCI refuses the unknown one.
    assert_eq!(names, ["availability_domains", "shape", "subnet", "service_limits"], "{failed:#?}");
    assert!(failed[2].1.contains("missing IAM policy"), "{failed:#?}");
    assert!(
        failed[3].1.contains("GetResourceAvailability") && failed[3].1.contains("availabilityDomain"),
        "{failed:#?}"
    );

    let other = other_test_key();
    let p = OciProvider::from_config(&config(&server), &env(&other, fast_retry(), Duration::from_secs(10))).unwrap();
    let checks = p.preflight().await;
    assert!(!checks[0].ok && checks[0].detail.contains("signature"), "{checks:#?}");
    assert!(checks[1..7].iter().all(|c| !c.ok && c.detail.starts_with("not checked")), "{checks:#?}");
}

/// The `service_limits` check of a preflight with `limits` named.
async fn limits_check(server: &OciTestServer, limits: &[(&str, f64)]) -> shared::providers::Check {
    let mut cfg = config(server);
    cfg.service_limits = limits.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    let p = OciProvider::from_config(&cfg, &env(TEST_KEY, fast_retry(), Duration::from_secs(10))).unwrap();
    let checks = p.preflight().await;
    let c = checks.into_iter().find(|c| c.name == "service_limits").expect("a service_limits check");
    assert!(c.ok || !c.detail.starts_with("not checked"), "{c:#?}");
    c
}

#[tokio::test]
async fn preflight_checks_the_headroom_of_the_named_service_limits() {
    let server = OciTestServer::start().await;
    // Enough in both domains: pass with the numbers.
    let c = limits_check(&server, &[("standard-e4-core-count", 2.0), ("standard-e4-memory-count", 16.0)]).await;
    assert!(c.ok, "{c:#?}");
    assert!(c.detail.contains("`standard-e4-core-count`: one instance needs 2; Uocm:PHX-AD-1: 40 available, 8 used, Uocm:PHX-AD-2: 40 available, 8 used"), "{c:#?}");
    assert!(c.detail.contains("`standard-e4-memory-count`: one instance needs 16;"), "{c:#?}");
    // The calls, as the SDK shapes them: the definition in the tenancy, the availability in the
    // config's compartment, once per configured domain of an AD-scoped limit.
    let reqs = server.api().requests();
    let defs: Vec<_> = reqs.iter().filter(|r| r.route == "/limitDefinitions").collect();
    assert_eq!(defs.len(), 2);
    assert!(
        defs.iter().all(|r| r.path == "/limitDefinitions"
            && r.param("compartmentId") == Some(TENANCY)
            && r.param("serviceName") == Some("compute")),
        "{defs:#?}"
    );
    let avail: Vec<_> = reqs.iter().filter(|r| r.route.ends_with("/resourceAvailability")).collect();
    assert_eq!(avail.len(), 4, "{avail:#?}");
    assert_eq!(avail[0].path, "/services/compute/limits/standard-e4-core-count/resourceAvailability");
    assert!(avail.iter().all(|r| r.param("compartmentId") == Some(COMPARTMENT)), "{avail:#?}");
    let ads: Vec<Option<&str>> = avail.iter().map(|r| r.param("availabilityDomain")).collect();
    assert_eq!(ads, [Some(ADS[0]), Some(ADS[1]), Some(ADS[0]), Some(ADS[1])]);

    // Short in one domain: the other has room, so it passes, with the short domain's numbers shown.
    let mut core = TestLimit::per_ad(40.0, 8.0);
    core.availability.insert(ADS[0].into(), (1.0, 47.0));
    server.set_limit("standard-e4-core-count", core.clone());
    let c = limits_check(&server, &[("standard-e4-core-count", 2.0)]).await;
    assert!(c.ok && c.detail.contains("Uocm:PHX-AD-1: 1 available, 47 used"), "{c:#?}");
    // Short in every configured domain: fail naming each domain and its numbers.
    core.availability.insert(ADS[1].into(), (1.5, 46.5));
    server.set_limit("standard-e4-core-count", core);
    let c = limits_check(&server, &[("standard-e4-core-count", 2.0), ("standard-e4-memory-count", 16.0)]).await;
    assert!(!c.ok, "{c:#?}");
    assert_eq!(
        c.detail,
        "`standard-e4-core-count`: one instance needs 2, short everywhere: Uocm:PHX-AD-1: 1 available, 47 used, \
         Uocm:PHX-AD-2: 1.5 available, 46.5 used"
    );
}

#[tokio::test]
async fn preflight_names_an_unknown_limit_and_says_what_it_did_not_check() {
    let server = OciTestServer::start().await;
    let c = limits_check(&server, &[("standard-e9-core-count", 2.0), ("standard-e4-core-count", 2.0)]).await;
    assert!(!c.ok, "{c:#?}");
    assert_eq!(c.detail, "no compute limit named `standard-e9-core-count` (ListLimitDefinitions)");

    // Not configured: a clear "not checked", not a silent pass.
    server.api().clear_requests();
    let c = limits_check(&server, &[]).await;
    assert!(c.ok, "{c:#?}");
    assert!(c.detail.starts_with("not checked: name the limits that count this shape in service_limits"), "{c:#?}");
    assert!(server.api().requests().iter().all(|r| r.route != "/limitDefinitions"));

    // A limit OCI reports no availability for, by its definition or by an empty answer.
    let c = limits_check(&server, &[("dedicated-vm-host-count", 1.0)]).await;
    assert!(
        c.ok && c.detail
            == "`dedicated-vm-host-count`: not checked: OCI reports no availability for dedicated-vm-host-count",
        "{c:#?}"
    );
    server.api().inject(
        "GET /services/{serviceName}/limits/{limitName}/resourceAvailability",
        integration_tests::fake_api::Fault::Answer(integration_tests::fake_api::Reply::json(200, &json!({}))),
        0,
        1,
    );
    let c = limits_check(&server, &[("standard-e4-core-count", 2.0)]).await;
    assert!(c.ok && c.detail.contains("not checked: OCI reports no availability for standard-e4-core-count"), "{c:#?}");

    // A regional limit: one call, without an availability domain.
    server.api().clear_requests();
    let c = limits_check(&server, &[("custom-image-count", 1.0)]).await;
    assert!(c.ok && c.detail == "`custom-image-count`: one instance needs 1; REGION: 98 available, 2 used", "{c:#?}");
    let avail: Vec<_> =
        server.api().requests().into_iter().filter(|r| r.route.ends_with("/resourceAvailability")).collect();
    assert_eq!(avail.len(), 1);
    assert_eq!(avail[0].param("availabilityDomain"), None);

    // A refusal fails the check with OCI's answer explained.
    server.api().inject(
        "GET /limitDefinitions",
        integration_tests::fake_api::Fault::Answer(integration_tests::oci_server::err(
            404,
            "NotAuthorizedOrNotFound",
            "Authorization failed or requested resource not found.",
        )),
        0,
        1,
    );
    let c = limits_check(&server, &[("standard-e4-core-count", 2.0)]).await;
    assert!(!c.ok && c.detail.contains("ListLimitDefinitions") && c.detail.contains("missing IAM policy"), "{c:#?}");
}

/// The test server's Limits checker follows `tests/oci/limits-subset.json` (Oracle's SDK): what the
/// provider sends passes, and requests the SDK would not make are refused.
#[test]
fn the_limits_checker_refuses_requests_off_the_sdk() {
    let params = |q: &str| {
        let mut p = integration_tests::fake_api::Params::new();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            p.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        p
    };
    let avail = "/20190729/services/compute/limits/standard-e4-core-count/resourceAvailability";
    let accept = [("accept", "application/json")];
    assert_eq!(
        check_limits_request("GET", avail, &params("compartmentId=c&availabilityDomain=Uocm:PHX-AD-1"), &accept),
        Ok("LimitsClient.get_resource_availability".to_string())
    );
    assert_eq!(
        check_limits_request(
            "GET",
            "/20190729/limitDefinitions",
            &params("compartmentId=t&serviceName=compute&name=x&page=2&sortBy=name"),
            &accept
        ),
        Ok("LimitsClient.list_limit_definitions".to_string())
    );
    let refused = [
        check_limits_request("GET", avail, &params("availabilityDomain=Uocm:PHX-AD-1"), &accept),
        check_limits_request("GET", avail, &params("compartmentId=c&ad=Uocm:PHX-AD-1"), &accept),
        check_limits_request("GET", "/20190729/limitDefinitions", &params("compartmentId=t&sortBy=scope"), &accept),
        check_limits_request("GET", avail, &params("compartmentId=c"), &[("accept", "text/html")]),
        check_limits_request("POST", avail, &params("compartmentId=c"), &accept),
        check_limits_request("GET", "/20181025/limitDefinitions", &params("compartmentId=t"), &accept),
    ];
    let messages: Vec<String> = refused.into_iter().map(|r| r.expect_err("refused")).collect();
    assert_eq!(
        messages,
        [
            "LimitsClient.get_resource_availability requires the query parameter compartmentId",
            "LimitsClient.get_resource_availability takes no query parameter ad",
            "LimitsClient.list_limit_definitions: sortBy=scope is not one of [\"name\",\"description\"]",
            "LimitsClient.get_resource_availability: header accept is `text/html`, the SDK sends `application/json`",
            &format!("no Limits operation is POST {avail}"),
            "no Limits operation is GET /20181025/limitDefinitions",
        ]
    );
}

#[tokio::test]
async fn the_boot_volume_carries_the_instance_tags_and_the_vm_its_addresses() {
    let server = OciTestServer::start().await;
    let p = provider(&server);
    let s = spec("t", "boot");
    let vm = p.create_vm(&s).await.expect("created");
    let inst = server.instances().into_iter().find(|i| i.id == vm.id).expect("held");
    let tags = server.boot_volume_tags(&inst.boot_volume).expect("the boot volume exists");
    assert_eq!(tags, inst.tags, "the boot volume carries the instance's freeform tags (custom + ours)");
    assert_eq!(tags.get(OwnerLabels::CLAIM), Some(&s.claim.0));
    let put = server.api().requests().into_iter().find(|r| r.method == "PUT").expect("an UpdateBootVolume");
    assert_eq!(put.path, format!("/bootVolumes/{}", inst.boot_volume));
    let body: Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(body, json!({"freeformTags": inst.tags}));
    let lists = server.api().requests().into_iter().filter(|r| r.route == "/bootVolumeAttachments").collect::<Vec<_>>();
    assert!(lists.iter().all(|r| r.param("availabilityDomain") == Some(ADS[0])
        && r.param("compartmentId") == Some(COMPARTMENT)
        && r.param("instanceId") == Some(vm.id.as_str())));
    // The primary VNIC's addresses.
    assert_eq!(
        (vm.private_ip.as_deref(), vm.public_ip.as_deref()),
        (Some(inst.private_ip.as_str()), inst.public_ip.as_deref())
    );
    assert!(vm.public_ip.is_some());
    // Reading and creating again for the claim change nothing (one PUT in all).
    let again = p.get_vm(&vm.id).await.expect("read");
    assert_eq!(again.public_ip, vm.public_ip);
    assert_eq!(p.create_vm(&s).await.expect("found").id, vm.id);
    assert_eq!(server.api().requests().iter().filter(|r| r.method == "PUT").count(), 1);
    // An operator's tag on the volume stays; delete still takes the volume.
    p.delete_vm(&vm.id).await.expect("deleted");
    assert!(server.boot_volumes().is_empty(), "{:?}", server.boot_volumes());
}

#[tokio::test]
async fn a_boot_volume_that_cannot_be_tagged_fails_the_create_and_the_next_attempt_tags_it() {
    let server = OciTestServer::start().await;
    let p = provider(&server);
    let s = spec("t", "boot-retry");
    let update = "PUT /bootVolumes/{bootVolumeId}";
    server.api().inject(
        update,
        integration_tests::fake_api::Fault::Answer(integration_tests::oci_server::err(
            404,
            "NotAuthorizedOrNotFound",
            "Authorization failed or requested resource not found.",
        )),
        0,
        1,
    );
    let e = p.create_vm(&s).await.expect_err("the boot volume could not be tagged");
    let text = e.to_string();
    assert!(text.contains("UpdateBootVolume") && text.contains("missing IAM policy"), "{text}");
    assert_eq!(server.instances().len(), 1);
    // The engine's next attempt for the claim: the same instance, now tagged.
    let vm = p.create_vm(&s).await.expect("found and tagged");
    assert_eq!(server.instances().len(), 1);
    let inst = server.instances().into_iter().next().unwrap();
    assert_eq!(vm.id, inst.id);
    assert_eq!(server.boot_volume_tags(&inst.boot_volume).unwrap().get(OwnerLabels::CLAIM), Some(&s.claim.0));
    // Retried through a server error on the way.
    let s2 = spec("t", "boot-retry");
    server.api().inject(
        update,
        integration_tests::fake_api::Fault::Answer(integration_tests::oci_server::err(
            500,
            "InternalServerError",
            "Internal error",
        )),
        0,
        1,
    );
    let vm2 = p.create_vm(&s2).await.expect("retried");
    let inst2 = server.instances().into_iter().find(|i| i.id == vm2.id).unwrap();
    assert_eq!(server.boot_volume_tags(&inst2.boot_volume).unwrap(), inst2.tags);
}
