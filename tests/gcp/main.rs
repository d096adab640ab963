//! The GCP provider and Cloud DNS against the GCP test server (`support/gcp_server.rs`) over HTTP:
//! the shared conformance suites with faults, the create flow and its body against the discovery
//! document, the service-account token flow, errors, preflight, and the whole daemon loop.

mod auth;
mod conformance;
mod create;
mod daemon;
mod dns;
mod lambda;
mod spec;

use integration_tests::gcp_server::{GcpTestServer, key_file};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

use shared::config::providers::GcpConfig;
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::gcp::GcpProvider;
use shared::providers::{BuildEnv, Timings, VmSpec};
use shared::secrets::StaticSecrets;

pub const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

pub fn config(server: &GcpTestServer) -> GcpConfig {
    let mut c: GcpConfig = serde_yaml_ng::from_str(
        r#"
name: gcp-pool
gcp_credentials: env:GCP_CREDS
max_instances: 10
gcp_project: pensive-voice-547511
gcp_region: us-east4
gcp_zone: us-east4-b
gcp_machine_type: n1-standard-8
gcp_image: projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319
gcp_boot_volume_gb: 100
gcp_disk_type: pd-ssd
gcp_network: projects/pensive-voice-547511/global/networks/default
gcp_subnetwork: projects/pensive-voice-547511/regions/us-east4/subnetworks/default
gcp_public_ip: true
gcp_network_tags: ["https-server"]
gcp_custom_labels: '{"team": "vdi"}'
gcp_metadata: [{key: ssh-keys, value: "kasm:ssh-rsa AAAA kasm"}]
gcp_guest_accelerators: [{acceleratorType: nvidia-tesla-t4, acceleratorCount: 1}]
gcp_quota_metrics: {NVIDIA_T4_GPUS: 1, INSTANCES: 1}
"#,
    )
    .expect("config");
    c.startup_script = SCRIPT.into();
    c.endpoint_url = Some(server.url.clone());
    c.resource_manager_url = Some(server.url.clone());
    c
}

pub fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

pub fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

pub fn secrets(key: &str) -> Arc<StaticSecrets> {
    Arc::new(StaticSecrets([("env:GCP_CREDS".to_string(), key.to_string())].into()))
}

pub fn env(key: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(secrets(key), "t") }
}

pub fn provider_cfg(server: &GcpTestServer, cfg: &GcpConfig) -> GcpProvider {
    GcpProvider::from_config(cfg, &env(&key_file(&server.url), fast_retry(), Duration::from_secs(10))).expect("build")
}

pub fn provider(server: &GcpTestServer) -> GcpProvider {
    provider_cfg(server, &config(server))
}

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

pub fn calls(server: &GcpTestServer) -> Vec<String> {
    server.requests().iter().map(|r| r.key()).collect()
}
