//! The vSphere provider against the vCenter test server over HTTP
//! (`integration_tests::vsphere_server`): the shared conformance suite with faults
//! ([`conformance`]), the clone flow with its placement, sizing, labels and the startup script run
//! through guest operations, resumption, capacity, delete and what it leaves, preflight ([`flow`]),
//! and the vCenter session ([`auth`]).

mod auth;
mod conformance;
mod daemon;
mod flow;
mod lambda;
mod library;
mod vim25;

use integration_tests::vsphere_server::{DATACENTER, GUEST_USER, PASSWORD, TEMPLATE, USERNAME, VsphereTestServer};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

use shared::config::SecretRef;
use shared::config::providers::VsphereConfig;
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::vsphere::VsphereProvider;
use shared::providers::{BuildEnv, Timings, VmSpec};
use shared::secrets::StaticSecrets;

/// A startup script holding a secret (the manager token).
pub const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

/// A config pointing at `server`, placing clones in `Kasm/Autoscale`, `Cluster1`, `Kasm`, `ssd-01`.
pub fn config(server: &VsphereTestServer) -> VsphereConfig {
    let mut c: VsphereConfig = serde_json::from_value(serde_json::json!({
        "name": "vsphere-dc1", "vsphere_vcenter_address": "vcenter.example.com",
        "vsphere_vcenter_username": USERNAME, "vsphere_vcenter_password": "env:VC_PASSWORD",
        "vm_template_name": TEMPLATE.0, "max_instances": 10, "datacenter_name": DATACENTER.0,
        "vm_folder": "Kasm/Autoscale", "datastore_name": "ssd-01", "cluster_name": "Cluster1", "resource_pool": "Kasm",
        "guest_vm_username": GUEST_USER, "guest_vm_password": "env:GUEST_PASSWORD",
        "number_of_guest_cpus": 4, "amount_of_guest_memory_gib": 8, "os_family": "linux"
    }))
    .expect("config");
    c.vsphere_vcenter_password = SecretRef::Env("VC_PASSWORD".into());
    c.startup_script = SCRIPT.into();
    c.endpoint_url = Some(server.url.clone());
    c
}

/// Short waits.
pub fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_secs(2),
    }
}

/// Quick retries.
pub fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

/// A build environment whose vCenter password secret holds `password`.
pub fn env(password: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    let secrets = StaticSecrets(
        [
            ("env:VC_PASSWORD".to_string(), password.to_string()),
            ("env:GUEST_PASSWORD".to_string(), integration_tests::vsphere_server::GUEST_PASSWORD.to_string()),
        ]
        .into(),
    );
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

/// The provider for `cfg` with `password`.
pub fn provider_cfg(cfg: &VsphereConfig, password: &str) -> VsphereProvider {
    VsphereProvider::from_config(cfg, &env(password, fast_retry(), Duration::from_secs(10))).expect("build")
}

/// The provider for `server` with the right password.
pub fn provider(server: &VsphereTestServer) -> VsphereProvider {
    provider_cfg(&config(server), PASSWORD)
}

/// A spec for a fresh claim.
pub fn spec(deployment: &str, config: &str) -> VmSpec {
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
