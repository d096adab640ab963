//! Building a [`ProxmoxProvider`] from its config: the token secret, the endpoint, TLS, timings.

use reqwest::Url;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;

use super::client::Client;
use super::{Error, NAME, ProxmoxProvider};
use crate::config::providers::ProxmoxConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::ProviderError;
use crate::secrets::Secrets;

/// How long the provider waits for Proxmox tasks and the guest agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Between two task-status polls.
    pub task_poll: Duration,
    /// Longest wait for one task (a full clone of a large disk is the slow one).
    pub task_timeout: Duration,
    /// Between two guest-agent pings.
    pub agent_poll: Duration,
    /// Longest wait for the guest agent in one `create_vm` call; the next call resumes the wait
    /// (see the module docs: slow guests are never deleted by the provider).
    pub agent_wait: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            task_poll: Duration::from_secs(2),
            task_timeout: Duration::from_secs(600),
            agent_poll: Duration::from_secs(5),
            agent_wait: Duration::from_secs(120),
        }
    }
}

/// Builds a [`ProxmoxProvider`].
///
/// ```no_run
/// # async fn f(cfg: &shared::config::providers::ProxmoxConfig, secrets: &dyn shared::secrets::Secrets)
/// # -> Result<(), shared::providers::ProviderError> {
/// use shared::providers::proxmox::ProxmoxBuilder;
/// let provider = ProxmoxBuilder::new(cfg.clone()).resolve_token(secrets).await?.build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProxmoxBuilder {
    config: ProxmoxConfig,
    token: Option<SecretString>,
    endpoint: Option<String>,
    timings: Timings,
    retry: RetryConfig,
    request_timeout: Duration,
}

impl ProxmoxBuilder {
    /// A builder for `config` (the token still has to be given or resolved).
    pub fn new(config: ProxmoxConfig) -> Self {
        ProxmoxBuilder {
            config,
            token: None,
            endpoint: None,
            timings: Timings::default(),
            retry: RetryConfig {
                base: Duration::from_millis(250),
                cap: Duration::from_secs(5),
                max_retries: 4,
                budget: Duration::from_secs(30),
            },
            request_timeout: Duration::from_secs(60),
        }
    }

    /// Uses `token` as the API token's secret.
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// Resolves the config's `token_value` through `secrets`.
    pub async fn resolve_token(self, secrets: &dyn Secrets) -> Result<Self, ProviderError> {
        let token = secrets
            .resolve(&self.config.token_value)
            .await
            .map_err(|e| ProviderError::Invalid { provider: NAME, message: format!("token_value: {e}") })?;
        Ok(self.token(token))
    }

    /// Talks to `base` (scheme, host and port, e.g. `http://127.0.0.1:41234`) instead of
    /// `https://{host}`: test servers and TLS-terminating proxies. `/api2/json` is appended.
    pub fn endpoint(mut self, base: &str) -> Self {
        self.endpoint = Some(base.trim_end_matches('/').to_string());
        self
    }

    /// Task and guest-agent waits.
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// HTTP retries (default: 4 retries within 30 s).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Time allowed for one HTTP request (default 60 s: task-starting calls answer only once the
    /// task is queued).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The provider. Fails when the token is missing or the host does not parse.
    pub fn build(self) -> Result<ProxmoxProvider, ProviderError> {
        self.build_inner().map_err(Error::into_provider)
    }

    fn build_inner(self) -> Result<ProxmoxProvider, Error> {
        let token = self.token.ok_or_else(|| Error::Config { message: "token_value: not resolved".into() })?;
        let root =
            self.endpoint.clone().unwrap_or_else(|| format!("https://{}", self.config.host.trim_end_matches('/')));
        let base = Url::parse(&format!("{root}/api2/json")).map_err(|e| Error::Config {
            message: format!("host `{}` is not a host name or IP with a port: {e}", self.config.host),
        })?;
        let http = build_client(&ClientOptions {
            // Off only when the config says so (a self-signed lab certificate); build_client warns.
            tls: TlsOptions { verify: self.config.verify_ssl, ca_pem: None },
            request_timeout: self.request_timeout,
            ..ClientOptions::default()
        })
        .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })?;
        let client =
            Client::new(http, base, &self.config.username, &self.config.token_name, &token, self.retry.clone())?;
        Ok(ProxmoxProvider {
            client,
            config: self.config,
            timings: self.timings,
            reserved: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, Settings, VmProviderConfig};
    use crate::model::OsFamily;
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;

    fn config() -> ProxmoxConfig {
        ProxmoxConfig {
            name: "lab".into(),
            max_instances: 2,
            host: "192.168.1.20:8006".into(),
            username: "kasm@pve".into(),
            token_name: "autoscale".into(),
            token_value: SecretRef::Env("PVE_TOKEN_FOR_TEST".into()),
            verify_ssl: true,
            vmid_range_lower: 9000,
            vmid_range_upper: 9099,
            full_clone: false,
            template_name: "t".into(),
            cluster_node_name: "pve1".into(),
            resource_pool_name: None,
            storage_pool_name: None,
            target_node_name: None,
            vm_cores: 2,
            vm_memory: 4,
            installed_os_type: OsFamily::Linux,
            startup_script_path: "/tmp".into(),
            startup_script: String::new(),
            endpoint_url: None,
        }
    }

    #[tokio::test]
    async fn the_registry_builds_proxmox_with_its_resolved_token() {
        let secrets = StaticSecrets([("env:PVE_TOKEN_FOR_TEST".to_string(), "s3cr3t-token-value".to_string())].into());
        let p = crate::providers::registry::build(&VmProviderConfig::Proxmox(config()), &secrets, &Settings::default())
            .await
            .expect("built");
        assert_eq!(p.name(), "proxmox");
        assert!(!format!("{p:?}").contains("s3cr3t-token-value"), "{p:?}");

        let err = crate::providers::registry::build(
            &VmProviderConfig::Proxmox(config()),
            &StaticSecrets::default(),
            &Settings::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Invalid);
        assert!(err.to_string().contains("token_value"), "{err}");
    }

    #[test]
    fn the_endpoint_is_https_on_the_configured_host() {
        let p = ProxmoxBuilder::new(config()).token(SecretString::from("x".to_string())).build().unwrap();
        assert_eq!(p.client.base_url(), "https://192.168.1.20:8006/api2/json");
        let mut bad = config();
        bad.host = "pve one:8006".into();
        let err = ProxmoxBuilder::new(bad).token(SecretString::from("x".to_string())).build().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
        let err = ProxmoxBuilder::new(config()).build().unwrap_err();
        assert!(err.to_string().contains("token_value"), "{err}");
    }
}
