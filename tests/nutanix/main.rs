//! The Nutanix provider against the Prism Central test server over HTTP
//! (`integration_tests::nutanix_server`, v3 and v4): the shared conformance suite with faults on both
//! ([`conformance`]), the v3 clone flow and its request bodies against the v3 structures, resumption
//! by the claim's name, power-on, delete and what it leaves, capacity, preflight ([`flow`]), the same
//! for v4 with its ETags, request ids and labelling ([`flow_v4`]), the credentials ([`auth`]), and the
//! whole daemon loop through the real `kasm-autoscale run` binary with the Kasm stand-in ([`daemon`])
//! and the Lambda functions ([`lambda`]) on both versions.

mod auth;
mod conformance;
mod daemon;
mod flow;
mod flow_v4;
mod lambda;

use integration_tests::nutanix_server::{NutanixTestServer, PASSWORD, USERNAME};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

use shared::config::SecretRef;
use shared::config::providers::{NutanixApiVersion, NutanixConfig};
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::nutanix::NutanixProvider;
use shared::providers::{BuildEnv, Timings, VmSpec};
use shared::secrets::StaticSecrets;

/// A startup script holding a secret (the manager token).
pub const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

/// A config pointing at `server` (v4 when the server serves v4).
pub fn config(server: &NutanixTestServer) -> NutanixConfig {
    NutanixConfig {
        name: "ntnx-pool".into(),
        max_instances: 10,
        host: "prism.example.com".into(),
        port: 9440,
        username: USERNAME.into(),
        password: SecretRef::Env("NTNX_PASSWORD".into()),
        verify_ssl: true,
        api_version: if server.is_v4() { NutanixApiVersion::V4 } else { NutanixApiVersion::V3 },
        vm_candidate_name: integration_tests::nutanix_server::CANDIDATE.into(),
        vm_cores: 4,
        vm_memory: 4,
        startup_script: SCRIPT.into(),
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    }
}

/// Short waits.
pub fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
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

/// A build environment whose password secret holds `password`.
pub fn env(password: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    let secrets = StaticSecrets([("env:NTNX_PASSWORD".to_string(), password.to_string())].into());
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

/// The provider for `cfg` with `password`.
pub fn provider_cfg(cfg: &NutanixConfig, password: &str) -> NutanixProvider {
    NutanixProvider::from_config(cfg, &env(password, fast_retry(), Duration::from_secs(10))).expect("build")
}

/// The provider for `server` with the right password.
pub fn provider(server: &NutanixTestServer) -> NutanixProvider {
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

/// `METHOD route` of each request.
pub fn calls(reqs: &[integration_tests::nutanix_server::Request]) -> Vec<String> {
    reqs.iter().map(|r| format!("{} {}", r.method, r.route)).collect()
}
