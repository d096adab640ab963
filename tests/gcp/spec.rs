//! Every request the provider and Cloud DNS send, checked against the discovery documents
//! (`compute.v1.json`, `dns.v1.json`): method and path of a known method, its query parameters, and
//! the body's field names at every level against the request schema (`schemas.Instance` and the
//! schemas it refers to, `schemas.Change` / `ResourceRecordSet`). The tables are copied by hand from
//! the documents (the project does not vendor them).

use integration_tests::gcp_server::{DOMAIN, GcpTestServer, MANAGED_ZONE, PROJECT, key_file};
use serde_json::Value;
use shared::config::GcpDnsConfig;
use shared::dns::{ARecord, DnsOwner, DnsProvider as _};
use shared::model::OwnerLabels;
use shared::providers::VmProvider as _;
use shared::providers::gcp::dns::GcpDns;

use super::{provider, secrets, spec};

/// `(route, query parameters the method declares)`.
const METHODS: &[(&str, &[&str])] = &[
    ("POST /token", &[]),
    ("GET /compute/v1/projects/{project}/zones/{zone}/instances/{instance}", &[]),
    (
        "GET /compute/v1/projects/{project}/zones/{zone}/instances",
        &["filter", "maxResults", "orderBy", "pageToken", "returnPartialSuccess"],
    ),
    (
        "POST /compute/v1/projects/{project}/zones/{zone}/instances",
        &["requestId", "sourceInstanceTemplate", "sourceMachineImage"],
    ),
    ("DELETE /compute/v1/projects/{project}/zones/{zone}/instances/{instance}", &["noGracefulShutdown", "requestId"]),
    ("GET /compute/v1/projects/{project}/zones/{zone}/operations/{operation}", &[]),
    ("GET /compute/v1/projects/{project}", &[]),
    ("GET /compute/v1/projects/{project}/zones/{zone}", &[]),
    ("GET /compute/v1/projects/{project}/regions/{region}", &[]),
    ("GET /compute/v1/projects/{project}/zones/{zone}/machineTypes/{machineType}", &[]),
    ("GET /compute/v1/projects/{project}/global/images/{image}", &[]),
    ("GET /compute/v1/projects/{project}/regions/{region}/subnetworks/{subnetwork}", &["views"]),
    ("POST /compute/v1/projects/{project}/regions/{region}/subnetworks/{subnetwork}/testIamPermissions", &[]),
    // Cloud Resource Manager v1 `projects.testIamPermissions` (not in the specs folder: Google's REST
    // reference, https://cloud.google.com/resource-manager/reference/rest/v1/projects/testIamPermissions).
    ("POST /v1/projects/{resource}", &[]),
    ("GET /dns/v1/projects/{project}/managedZones/{managedZone}", &["clientOperationId"]),
    (
        "GET /dns/v1/projects/{project}/managedZones/{managedZone}/rrsets",
        &["filter", "maxResults", "name", "pageToken", "type"],
    ),
    ("POST /dns/v1/projects/{project}/managedZones/{managedZone}/changes", &["clientOperationId"]),
];

/// The properties of the request schemas we send, by schema.
fn schema(name: &str) -> &'static [&'static str] {
    match name {
        "Instance" => &[
            "advancedMachineFeatures",
            "canIpForward",
            "confidentialInstanceConfig",
            "cpuPlatform",
            "creationTimestamp",
            "deletionProtection",
            "description",
            "disks",
            "displayDevice",
            "fingerprint",
            "guestAccelerators",
            "hostname",
            "id",
            "instanceEncryptionKey",
            "keyRevocationActionType",
            "kind",
            "labelFingerprint",
            "labels",
            "lastStartTimestamp",
            "lastStopTimestamp",
            "lastSuspendedTimestamp",
            "localSsdEncryptionMode",
            "machineType",
            "metadata",
            "minCpuPlatform",
            "name",
            "networkInterfaces",
            "networkPerformanceConfig",
            "params",
            "privateIpv6GoogleAccess",
            "reservationAffinity",
            "resourcePolicies",
            "resourceStatus",
            "satisfiesPzi",
            "satisfiesPzs",
            "scheduling",
            "selfLink",
            "serviceAccounts",
            "shieldedInstanceConfig",
            "shieldedInstanceIntegrityPolicy",
            "sourceMachineImage",
            "sourceMachineImageEncryptionKey",
            "startRestricted",
            "status",
            "statusMessage",
            "tags",
            "workloadIdentityConfig",
            "zone",
        ],
        "AttachedDisk" => &[
            "architecture",
            "autoDelete",
            "boot",
            "deviceName",
            "diskEncryptionKey",
            "diskSizeGb",
            "forceAttach",
            "guestOsFeatures",
            "index",
            "initializeParams",
            "interface",
            "kind",
            "licenses",
            "mode",
            "savedState",
            "shieldedInstanceInitialState",
            "source",
            "type",
        ],
        "AttachedDiskInitializeParams" => &[
            "architecture",
            "description",
            "diskName",
            "diskSizeGb",
            "diskType",
            "enableConfidentialCompute",
            "labels",
            "licenses",
            "onUpdateAction",
            "provisionedIops",
            "provisionedThroughput",
            "replicaZones",
            "resourceManagerTags",
            "resourcePolicies",
            "sourceImage",
            "sourceImageEncryptionKey",
            "sourceSnapshot",
            "sourceSnapshotEncryptionKey",
            "storagePool",
        ],
        "NetworkInterface" => &[
            "accessConfigs",
            "aliasIpRanges",
            "aliasIpv6Ranges",
            "enableVpcScopedDns",
            "fingerprint",
            "igmpQuery",
            "internalIpv6PrefixLength",
            "ipv6AccessConfigs",
            "ipv6AccessType",
            "ipv6Address",
            "kind",
            "name",
            "network",
            "networkAttachment",
            "networkIP",
            "nicType",
            "parentNicName",
            "queueCount",
            "serviceClassId",
            "stackType",
            "subnetwork",
            "vlan",
        ],
        "AccessConfig" => &[
            "externalIpv6",
            "externalIpv6PrefixLength",
            "ipCollection",
            "kind",
            "name",
            "natIP",
            "networkTier",
            "publicPtrDomainName",
            "securityPolicy",
            "setPublicPtr",
            "type",
        ],
        "Metadata" => &["fingerprint", "items", "kind"],
        "Metadata.items" => &["key", "value"],
        "Tags" => &["fingerprint", "items"],
        "ServiceAccount" => &["email", "scopes"],
        "AcceleratorConfig" => &["acceleratorCount", "acceleratorType"],
        "Scheduling" => &[
            "automaticRestart",
            "availabilityDomain",
            "exposeHostTopology",
            "gracefulShutdown",
            "hostErrorTimeoutSeconds",
            "instanceTerminationAction",
            "localSsdRecoveryTimeout",
            "locationHint",
            "maxRunDuration",
            "minNodeCpus",
            "nodeAffinities",
            "onHostMaintenance",
            "onInstanceStopAction",
            "preemptible",
            "preemptionNoticeDuration",
            "protectionTier",
            "provisioningModel",
            "skipGuestOsShutdown",
            "terminationTime",
        ],
        "CustomerEncryptionKey" => &["kmsKeyName", "kmsKeyServiceAccount", "rawKey", "rsaEncryptedKey", "sha256"],
        "Change" => &["additions", "deletions", "id", "isServing", "kind", "startTime", "status"],
        // compute `schemas.TestPermissionsRequest`; Resource Manager's `TestIamPermissionsRequest` has the
        // same one field.
        "TestPermissionsRequest" => &["permissions"],
        "ResourceRecordSet" => &["kind", "name", "routingPolicy", "rrdatas", "signatureRrdatas", "ttl", "type"],
        other => panic!("no schema table for {other}"),
    }
}

/// The schema of field `key` of an object of schema `parent` (where it is an object or array of objects).
fn child(parent: &str, key: &str) -> Option<&'static str> {
    Some(match (parent, key) {
        ("Instance", "disks") => "AttachedDisk",
        ("Instance", "networkInterfaces") => "NetworkInterface",
        ("Instance", "metadata") => "Metadata",
        ("Instance", "tags") => "Tags",
        ("Instance", "serviceAccounts") => "ServiceAccount",
        ("Instance", "guestAccelerators") => "AcceleratorConfig",
        ("Instance", "scheduling") => "Scheduling",
        ("AttachedDisk", "initializeParams") => "AttachedDiskInitializeParams",
        ("AttachedDisk", "diskEncryptionKey") | ("AttachedDiskInitializeParams", "diskEncryptionKey") => {
            "CustomerEncryptionKey"
        }
        ("NetworkInterface", "accessConfigs") => "AccessConfig",
        ("Metadata", "items") => "Metadata.items",
        ("Change", "additions") | ("Change", "deletions") => "ResourceRecordSet",
        _ => return None,
    })
}

fn check(v: &Value, schema_name: &str, path: &str) {
    let Some(o) = v.as_object() else { panic!("{path}: not an object") };
    let allowed = schema(schema_name);
    for (k, sub) in o {
        // `diskEncryptionKey` on initializeParams is the disk's key in the request we send; the schema
        // names it `AttachedDisk.diskEncryptionKey` (checked there) — it must be listed here too.
        assert!(
            allowed.contains(&k.as_str())
                || (schema_name == "AttachedDiskInitializeParams" && k == "diskEncryptionKey"),
            "{path}.{k} is not a field of schemas.{schema_name}"
        );
        if let Some(c) = child(schema_name, k) {
            match sub {
                Value::Array(items) => {
                    for (i, it) in items.iter().enumerate() {
                        check(it, c, &format!("{path}.{k}[{i}]"));
                    }
                }
                Value::Object(_) => check(sub, c, &format!("{path}.{k}")),
                other => panic!("{path}.{k}: {other} is neither an object nor an array"),
            }
        }
    }
}

#[tokio::test]
async fn every_request_matches_the_discovery_documents() {
    let server = GcpTestServer::start().await;
    let p = provider(&server).with_page_size(2);
    let s = spec("prod", "p");
    let vm = p.create_vm(&s).await.unwrap();
    p.create_vm(&spec("prod", "p")).await.unwrap();
    p.create_vm(&spec("prod", "p")).await.unwrap();
    p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    p.get_vm(&vm.id).await.unwrap();
    p.delete_vm(&vm.id).await.unwrap();
    let _ = p.preflight().await;
    let cfg = GcpDnsConfig {
        name: "cloud-dns".into(),
        gcp_credentials: shared::config::SecretRef::Env("GCP_CREDS".into()),
        gcp_project: PROJECT.into(),
        managed_zone: MANAGED_ZONE.into(),
        ttl: 60,
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    };
    let dns = GcpDns::from_config(&cfg, secrets(&key_file(&server.url))).unwrap();
    let owner = DnsOwner { deployment: "prod".into(), claim: s.claim.clone() };
    let name = format!("{}.{DOMAIN}", s.name);
    for last in [7, 8] {
        let r = ARecord {
            name: name.clone(),
            address: format!("10.0.0.{last}").parse().unwrap(),
            ttl: 60,
            owner: owner.clone(),
        };
        dns.upsert_a(&r).await.unwrap();
    }
    assert_eq!(dns.list_owned("prod").await.unwrap().len(), 1);
    dns.delete_a(&name, &owner).await.unwrap();

    let mut seen = std::collections::BTreeSet::new();
    for r in server.requests() {
        let key = r.key();
        let (route, query) =
            METHODS.iter().find(|(m, _)| *m == key).unwrap_or_else(|| panic!("{key} is not a method we expect"));
        seen.insert(*route);
        for k in r.params.keys() {
            if key == "POST /token" {
                assert!(["grant_type", "assertion"].contains(&k.as_str()), "token request field {k}");
                continue;
            }
            assert!(query.contains(&k.as_str()), "{key}: query parameter `{k}` is not the method's");
        }
        if let Some(m) = r.param("maxResults") {
            assert!(m.parse::<u32>().unwrap() <= 500, "{key}: maxResults {m}");
        }
        if let Some(id) = r.param("requestId") {
            let hex: String = id.chars().filter(|c| *c != '-').collect();
            assert!(
                id.len() == 36
                    && [8, 13, 18, 23].iter().all(|i| &id[*i..*i + 1] == "-")
                    && hex.len() == 32
                    && hex.chars().all(|c| c.is_ascii_hexdigit()),
                "{key}: requestId {id} is not a UUID"
            );
            assert!(hex.chars().any(|c| c != '0'), "{key}: the zero UUID is refused by the API");
        }
        match (r.method.as_str(), key.as_str()) {
            ("POST", "POST /token") => {
                assert_eq!(
                    r.headers.get("content-type").map(String::as_str),
                    Some("application/x-www-form-urlencoded")
                );
            }
            ("POST", k) => {
                let b: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{k}: {e}"));
                assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/json"), "{k}");
                let root = if k.ends_with("/changes") {
                    "Change"
                } else if k.ends_with("testIamPermissions") || k == "POST /v1/projects/{resource}" {
                    "TestPermissionsRequest"
                } else {
                    "Instance"
                };
                check(&b, root, root);
                if root == "Instance" {
                    // `annotations.required` of insert: name, and metadata item key/value.
                    assert!(b["name"].is_string());
                    assert!(b["disks"][0]["initializeParams"]["diskSizeGb"].is_string(), "int64 travels as a string");
                }
            }
            (_, k) => assert!(r.body.is_empty(), "{k} sends a body: {}", r.body),
        }
    }
    let unseen: Vec<&str> = METHODS.iter().map(|(m, _)| *m).filter(|m| !seen.contains(m)).collect();
    assert!(unseen.is_empty(), "not exercised: {unseen:?}");
}
