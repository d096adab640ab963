//! The Azure provider and Azure DNS against the Azure test server (`support/azure_server.rs`) over
//! HTTP: the shared conformance suites (VM provider with faults, DNS), the create flow and its request
//! bodies against the REST specs, what delete leaves (nothing), the client-credentials token, the
//! async-operation contract, errors, preflight and the whole daemon loop.

mod auth;
mod conformance;
mod daemon;
mod dns;
mod lambda;
mod lifecycle;
mod preflight;

use integration_tests::azure_server::{
    self, AzureTestServer, CLIENT_ID, CLIENT_SECRET, RESOURCE_GROUP, SUBSCRIPTION, TENANT, nsg_id, subnet_id,
};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

use shared::config::providers::AzureConfig;
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::azure::AzureProvider;
use shared::providers::{BuildEnv, Timings, VmSpec};
use shared::secrets::StaticSecrets;

/// A startup script holding a secret (the manager token).
pub const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";
/// The Windows admin password.
pub const OS_PASSWORD: &str = "W1ndows-Adm1n-Pa55!";

/// A Linux config against `server`: public IP, NSG, tags, Trusted Launch, an override.
pub fn config(server: &AzureTestServer) -> AzureConfig {
    let mut c: AzureConfig = serde_yaml_ng::from_str(&format!(
        r#"
name: az-pool
azure_subscription_id: {SUBSCRIPTION}
azure_resource_group: {RESOURCE_GROUP}
azure_tenant_id: {TENANT}
azure_client_id: {CLIENT_ID}
azure_client_secret: env:AZ_CLIENT_SECRET
azure_region: eastus
max_instances: 10
azure_vm_size: Standard_D2s_v5
azure_os_disk_type: Premium_LRS
azure_os_disk_size_gb: 64
azure_image_reference: '{{"publisher":"canonical","offer":"ubuntu-24_04-lts","sku":"server","version":"latest"}}'
azure_network_sg: {nsg}
azure_subnet: {subnet}
azure_public_ip: true
azure_tags: '{{"team":"vdi"}}'
azure_os_username: kasm
azure_ssh_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKasmTestKey kasm@example
security_type: TrustedLaunch
secure_boot_enabled: true
tpm_enabled: true
azure_config_override: '{{"diagnostics_profile.boot_diagnostics.enabled": true}}'
startup_script: ""
"#,
        nsg = nsg_id(),
        subnet = subnet_id(),
    ))
    .expect("config");
    c.endpoint_url = Some(server.url.clone());
    c.authority_url = Some(server.url.clone());
    c
}

/// Polls every 5 ms, operations within 5 s.
pub fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

/// Retries fast.
pub fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

/// A build env whose secrets hold the client secret `secret` and the OS password.
pub fn env(secret: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    let secrets = StaticSecrets(
        [
            ("env:AZ_CLIENT_SECRET".to_string(), secret.to_string()),
            ("env:AZ_OS_PASSWORD".to_string(), OS_PASSWORD.to_string()),
        ]
        .into(),
    );
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

/// The provider for `cfg` with client secret `secret`.
pub fn provider_cfg(cfg: &AzureConfig, secret: &str) -> AzureProvider {
    AzureProvider::from_config(cfg, &env(secret, fast_retry(), Duration::from_secs(10))).expect("build")
}

/// The provider for [`config`] with the right secret.
pub fn provider(server: &AzureTestServer) -> AzureProvider {
    provider_cfg(&config(server), CLIENT_SECRET)
}

/// A spec for a fresh claim.
pub fn spec(deployment: &str, config: &str, os: OsFamily) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some(config.into()),
            claim: Some(claim.clone()),
        },
        claim,
        os,
        startup_script: Some(SecretString::from(SCRIPT.to_string())),
    }
}

/// `METHOD route` of every request.
pub fn calls(reqs: &[azure_server::Request]) -> Vec<String> {
    reqs.iter().map(|r| format!("{} {}", r.method, r.route)).collect()
}
