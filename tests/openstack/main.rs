//! The OpenStack provider against a real Keystone (PyPI `keystone` on loopback, see
//! `integration_tests::openstack_server::keystone`) and in-process Nova, Cinder, Glance and Neutron
//! registered in its catalogue: the shared conformance suite with faults, both authentication
//! methods with token caching, refresh and re-authentication, the create flow and its bodies
//! against Nova's and Cinder's schemas, boot volumes and what a delete leaves, errors, preflight,
//! and the whole daemon loop.

mod auth;
mod conformance;
mod daemon;
mod lambda;
mod leftovers;
mod lifecycle;
mod preflight;

use integration_tests::openstack_server::keystone::{Keystone, Tenant};
use integration_tests::openstack_server::{IMAGE_ID, KEY_NAME, NETWORK_ID, OpenstackTestServer};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

use shared::config::SecretRef;
use shared::config::providers::{OpenstackAuthMethod, OpenstackConfig};
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::openstack::OpenstackProvider;
use shared::providers::{BuildEnv, Timings, VmSpec};
use shared::secrets::StaticSecrets;

/// The startup script the tests create with (it holds a secret-like token).
pub const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

/// A Keystone, a tenant in it, and the services registered for the tenant's project.
#[derive(Debug)]
pub struct World {
    pub keystone: Keystone,
    pub tenant: Tenant,
    pub server: OpenstackTestServer,
}

impl World {
    /// A world whose application credential has `access_rules` (None: unrestricted).
    pub async fn with_rules(name: &str, access_rules: Option<serde_json::Value>) -> World {
        let keystone = tokio::task::spawn_blocking(Keystone::start).await.expect("keystone");
        let unique = format!("{name}-{}", ClaimId::generate(chrono::Utc::now()).as_str().to_ascii_lowercase());
        let tenant = keystone.tenant(&unique, access_rules).await;
        let server = OpenstackTestServer::start(keystone.api(), &tenant.project_id).await;
        World { keystone, tenant, server }
    }

    /// A world with an unrestricted application credential.
    pub async fn new(name: &str) -> World {
        World::with_rules(name, None).await
    }

    /// The config for this world with `method`.
    pub fn config(&self, method: OpenstackAuthMethod) -> OpenstackConfig {
        let s = &self.server;
        let mut c: OpenstackConfig = serde_json::from_value(serde_json::json!({
            "name": "os-pool", "max_instances": 10,
            "openstack_identity_endpoint": self.keystone.url,
            "openstack_nova_endpoint": s.nova(),
            "openstack_nova_version": "2.90",
            "openstack_glance_endpoint": s.glance(),
            "openstack_glance_version": "2",
            "openstack_cinder_endpoint": s.cinder(),
            "openstack_cinder_version": "3",
            "project_name": self.tenant.project,
            "image_id": IMAGE_ID,
            "flavor": "gen.medium",
            "network_id": NETWORK_ID,
            "security_groups": ["kasm-agents", "default"],
            "key_name": KEY_NAME,
            "availability_zone": "nova",
            "metadata": {"team": "vdi"},
            "startup_script": SCRIPT,
        }))
        .expect("config");
        c.authentication_method = method;
        match method {
            OpenstackAuthMethod::ApplicationCredential => {
                c.application_credential_id = Some(self.tenant.app_cred_id.clone());
                c.application_credential_secret = Some(SecretRef::Env("OS_APP_SECRET".into()));
            }
            OpenstackAuthMethod::Password => {
                c.username = Some(self.tenant.user.clone());
                c.password = Some(SecretRef::Env("OS_PASSWORD".into()));
                c.user_domain_name = Some("Default".into());
                c.project_domain_name = Some("Default".into());
            }
        }
        c
    }

    /// The secrets of this world's tenant.
    pub fn secrets(&self) -> StaticSecrets {
        StaticSecrets(
            [
                ("env:OS_APP_SECRET".to_string(), self.tenant.app_cred_secret.clone()),
                ("env:OS_PASSWORD".to_string(), self.tenant.password.clone()),
            ]
            .into(),
        )
    }

    /// A provider for `cfg` with fast timings and retries.
    pub fn provider_cfg(&self, cfg: &OpenstackConfig) -> OpenstackProvider {
        OpenstackProvider::from_config(cfg, &env(self.secrets(), fast_retry(), Duration::from_secs(10))).expect("build")
    }

    /// The `server` object of the create request that made server `id`.
    pub fn servers_request(&self, id: &str) -> serde_json::Value {
        self.server.servers().into_iter().find(|s| s.id == id).map(|s| s.request).expect("the server")
    }

    /// A provider with the application credential.
    pub fn provider(&self) -> OpenstackProvider {
        self.provider_cfg(&self.config(OpenstackAuthMethod::ApplicationCredential))
    }
}

pub fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(10),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

pub fn env(secrets: StaticSecrets, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

pub fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
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
