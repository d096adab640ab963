//! Unit tests of the provider: the instance body, the error map, states, request ids.

use super::*;
use crate::config::SecretRef;
use crate::model::ClaimId;
use crate::providers::{BuildEnv, ErrorClass};
use crate::secrets::StaticSecrets;
use reqwest::StatusCode;
use std::sync::Arc;

pub(crate) fn config() -> GcpConfig {
    serde_yaml_ng::from_str(
        r#"
name: gcp-pool
gcp_credentials: env:GCP_CREDS
max_instances: 2
gcp_project: pensive-voice-547511
gcp_region: us-east4
gcp_zone: us-east4-b
gcp_machine_type: n1-standard-8
gcp_image: projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319
gcp_boot_volume_gb: 100
gcp_disk_type: pd-ssd
gcp_cmek: projects/pensive-voice-547511/locations/global/keyRings/kasm/cryptoKeys/disks
gcp_network: projects/pensive-voice-547511/global/networks/default
gcp_subnetwork: projects/pensive-voice-547511/regions/us-east4/subnetworks/default
gcp_public_ip: true
gcp_network_tags: ["https-server"]
gcp_custom_labels: '{"team": "vdi"}'
gcp_metadata: [{key: ssh-keys, value: "kasm:ssh-rsa AAAA kasm"}, {key: startup-script, value: "overridden"}]
gcp_service_account: {email: sa@pensive-voice-547511.iam.gserviceaccount.com, scopes: ["https://www.googleapis.com/auth/cloud-platform"]}
gcp_guest_accelerators: [{acceleratorType: nvidia-tesla-t4, acceleratorCount: 1}]
gcp_config_override: {shieldedInstanceConfig: {enableSecureBoot: true}, scheduling: {automaticRestart: false}}
"#,
    )
    .expect("config")
}

fn provider(cfg: &GcpConfig) -> GcpProvider {
    GcpProvider::from_config(cfg, &BuildEnv::new(Arc::new(StaticSecrets::default()), "dep")).expect("built")
}

fn spec() -> VmSpec {
    let claim = ClaimId("01jabcdefghjkmnpqrstvwxyz0".into());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: "prod".into(),
            autoscale_config: Some("GPU pool".into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some("#!/bin/bash\necho hi".to_string().into()),
    }
}

#[test]
fn the_instance_body_has_every_field_by_its_spec_name() {
    let p = provider(&config());
    let s = spec();
    let b = p.instance_body(&s, Some("#!/bin/bash\necho hi")).unwrap();
    let labels = json!({"team": "vdi", "kasm_autoscale_deployment": "prod",
        "kasm_autoscale_config": "_47_50_55_20pool", "kasm_autoscale_claim": "01jabcdefghjkmnpqrstvwxyz0"});
    let kms = json!({"kmsKeyName": "projects/pensive-voice-547511/locations/global/keyRings/kasm/cryptoKeys/disks"});
    assert_eq!(
        b,
        json!({
            "name": s.name,
            "machineType": "zones/us-east4-b/machineTypes/n1-standard-8",
            "labels": labels,
            "disks": [{"boot": true, "autoDelete": true, "type": "PERSISTENT", "mode": "READ_WRITE",
                "diskEncryptionKey": kms,
                "initializeParams": {"sourceImage": "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319",
                    "diskSizeGb": "100", "diskType": "zones/us-east4-b/diskTypes/pd-ssd", "labels": labels,
                    "diskEncryptionKey": kms}}],
            "networkInterfaces": [{"network": "projects/pensive-voice-547511/global/networks/default",
                "subnetwork": "projects/pensive-voice-547511/regions/us-east4/subnetworks/default",
                "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]}],
            "tags": {"items": ["https-server"]},
            "metadata": {"items": [{"key": "ssh-keys", "value": "kasm:ssh-rsa AAAA kasm"},
                {"key": "startup-script", "value": "#!/bin/bash\necho hi"}]},
            "serviceAccounts": [{"email": "sa@pensive-voice-547511.iam.gserviceaccount.com",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
            "guestAccelerators": [{"acceleratorType": "projects/pensive-voice-547511/zones/us-east4-b/acceleratorTypes/nvidia-tesla-t4",
                "acceleratorCount": 1}],
            "scheduling": {"onHostMaintenance": "TERMINATE", "automaticRestart": false},
            "shieldedInstanceConfig": {"enableSecureBoot": true},
        })
    );
}

#[test]
fn an_override_may_not_keep_the_boot_disk_after_the_instance() {
    let mut cfg = config();
    cfg.gcp_config_override = Some(crate::config::json_text::JsonText(
        json!({"disks": [{"boot": true, "autoDelete": false, "initializeParams": {"sourceImage": "x"}}]})
            .as_object()
            .unwrap()
            .clone(),
    ));
    let e = provider(&cfg).instance_body(&spec(), None).unwrap_err();
    assert!(e.to_string().contains("gcp_config_override.disks"), "{e}");
    assert_eq!(e.into_provider().class(), ErrorClass::Invalid);
}

#[test]
fn request_ids_are_uuids_fixed_per_claim() {
    let a = request_id("01jabc");
    assert_eq!(a, request_id("01jabc"));
    assert_ne!(a, request_id("01jabd"));
    let u = uuid::Uuid::parse_str(&a).unwrap();
    assert_eq!(u.get_version_num(), 8);
    assert!(!u.is_nil());
    assert_ne!(delete_request_id("kasm-a", "t1"), delete_request_id("kasm-a", "t2"));
    assert!(is_instance_name("kasm-01jabc") && !is_instance_name("Kasm") && !is_instance_name("a-"));
}

fn status_err(code: u16, body: &str) -> Error {
    Error::Http {
        what: "create the instance".into(),
        source: HttpError::Status { status: StatusCode::from_u16(code).unwrap(), body: body.into(), retry_after: None },
    }
}

fn google(code: u16, reason: &str, status: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}], "status": status}}).to_string()
}

#[test]
fn errors_map_in_one_place() {
    let c = |code, reason, status| status_err(code, &google(code, reason, status, "m")).into_provider().class();
    assert_eq!(c(401, "authError", "UNAUTHENTICATED"), ErrorClass::Auth);
    assert_eq!(c(403, "forbidden", "PERMISSION_DENIED"), ErrorClass::Permission);
    assert_eq!(c(404, "notFound", "NOT_FOUND"), ErrorClass::NotFound);
    assert_eq!(c(409, "resourceInUseByAnotherResource", "ABORTED"), ErrorClass::Conflict);
    assert_eq!(c(429, "rateLimitExceeded", "RESOURCE_EXHAUSTED"), ErrorClass::RateLimited);
    assert_eq!(c(403, "rateLimitExceeded", "PERMISSION_DENIED"), ErrorClass::RateLimited);
    assert_eq!(c(403, "quotaExceeded", "PERMISSION_DENIED"), ErrorClass::OutOfCapacity);
    assert_eq!(c(503, "backendError", "UNAVAILABLE"), ErrorClass::Transient);
    assert_eq!(c(400, "invalid", "INVALID_ARGUMENT"), ErrorClass::Invalid);
    let e = status_err(
        403,
        &google(403, "accessNotConfigured", "PERMISSION_DENIED", "Compute Engine API has not been used in project 1"),
    )
    .into_provider();
    assert_eq!(e.class(), ErrorClass::Permission);
    assert!(e.to_string().contains("Compute Engine API is not enabled"), "{e}");
    assert!(e.to_string().contains("create the instance"), "{e}");

    let op = |codes: &[&str], http| {
        Error::OperationFailed {
            what: "create the instance".into(),
            operation: "operation-1".into(),
            codes: codes.iter().map(|c| c.to_string()).collect(),
            message: "m".into(),
            http,
        }
        .into_provider()
        .class()
    };
    assert_eq!(op(&["ZONE_RESOURCE_POOL_EXHAUSTED"], Some(503)), ErrorClass::OutOfCapacity);
    assert_eq!(op(&["ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"], None), ErrorClass::OutOfCapacity);
    assert_eq!(op(&["QUOTA_EXCEEDED"], Some(403)), ErrorClass::OutOfCapacity);
    assert_eq!(op(&["RESOURCE_NOT_FOUND"], Some(404)), ErrorClass::Invalid);
    assert_eq!(op(&["INTERNAL_ERROR"], Some(500)), ErrorClass::Transient);
    assert_eq!(Error::NotOurs { name: "x".into() }.into_provider().class(), ErrorClass::Invalid);
    assert_eq!(
        Error::Timeout { what: "w".into(), operation: "o".into(), secs: 1 }.into_provider().class(),
        ErrorClass::Transient
    );
}

#[test]
fn instances_normalise() {
    assert_eq!(state("PROVISIONING"), VmState::Creating);
    assert_eq!(state("RUNNING"), VmState::Running);
    assert_eq!(state("TERMINATED"), VmState::Stopped);
    assert_eq!(state("REPAIRING"), VmState::Unknown);
    let i: Instance = serde_json::from_value(json!({"name": "kasm-a", "status": "RUNNING",
        "creationTimestamp": "2026-01-02T03:04:05.000-07:00",
        "labels": {"kasm_autoscale_deployment": "prod", "team": "vdi"},
        "networkInterfaces": [{"networkIP": "10.0.0.2", "accessConfigs": [{"natIP": "34.1.2.3"}]}]}))
    .unwrap();
    let vm = to_vm(&i);
    assert_eq!(
        (vm.id.as_str(), vm.private_ip.as_deref(), vm.public_ip.as_deref()),
        ("kasm-a", Some("10.0.0.2"), Some("34.1.2.3"))
    );
    assert_eq!(vm.labels, [(OwnerLabels::DEPLOYMENT.to_string(), "prod".to_string())].into());
    assert!(vm.created_at.is_some());
}

#[tokio::test]
async fn the_registry_builds_it_and_reads_the_key_on_first_use() {
    let env = BuildEnv::new(Arc::new(StaticSecrets::default()), "dep");
    let p = crate::providers::registry::build(&crate::config::VmProviderConfig::Gcp(config()), &env).expect("built");
    assert_eq!(p.name(), "gcp");
    let err = p.get_vm("kasm-a").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("gcp_credentials"), "{err}");
    let mut c = config();
    c.gcp_credentials = SecretRef::Env("X".into());
    c.endpoint_url = Some("http://127.0.0.1:9/".into());
    assert_eq!(provider(&c).client.base_url(), "http://127.0.0.1:9/compute/v1");
    assert_eq!(provider(&config()).client.base_url(), "https://compute.googleapis.com/compute/v1");
    c.endpoint_url = Some("not a url".into());
    assert_eq!(GcpProvider::from_config(&c, &env).unwrap_err().class(), ErrorClass::Invalid);
}
