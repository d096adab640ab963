//! Building a [`ProxmoxProvider`] from its config: the endpoint, TLS, the token source, timings.
//! No network I/O: the token is resolved on the first call.

use reqwest::Url;
use std::collections::BTreeMap;

use super::client::Client;
use super::credential::{Credential, Source};
use super::{Error, ProxmoxProvider};
use crate::config::providers::ProxmoxConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError};

impl ProxmoxProvider {
    /// The provider for `cfg`: `https://{host}/api2/json` (or `endpoint_url` + `/api2/json`), TLS
    /// verified unless `verify_ssl` is off, `ca_bundle` trusted, the token from `token_value` on the
    /// first call. Fails only when the config cannot make a client (bad host, bad CA PEM).
    pub fn from_config(cfg: &ProxmoxConfig, env: &BuildEnv) -> Result<ProxmoxProvider, ProviderError> {
        build(cfg, env, Source::Secret { secrets: env.secrets.clone(), reference: cfg.token_value.clone() })
            .map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }
}

fn build(cfg: &ProxmoxConfig, env: &BuildEnv, source: Source) -> Result<ProxmoxProvider, Error> {
    let root = cfg
        .endpoint_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://{}", cfg.host.trim_end_matches('/')));
    let base = Url::parse(&format!("{root}/api2/json")).map_err(|e| Error::Config {
        message: format!("host `{}` is not a host name or IP with a port: {e}", cfg.host),
    })?;
    let http = build_client(&ClientOptions {
        // Off only when the config says so (a self-signed lab certificate); build_client warns.
        tls: TlsOptions { verify: cfg.verify_ssl, ca_pem: cfg.ca_bundle.clone() },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })?;
    let credential = Credential::new(&cfg.username, &cfg.token_name, source);
    Ok(ProxmoxProvider {
        client: Client::new(http, base, credential, env.retry.clone()),
        config: cfg.clone(),
        timings: env.timings,
        reserved: tokio::sync::Mutex::new(BTreeMap::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, Settings, VmProviderConfig};
    use crate::model::OsFamily;
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;
    use std::sync::Arc;

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
            ca_bundle: None,
        }
    }

    fn env(secrets: StaticSecrets) -> BuildEnv {
        BuildEnv::new(Arc::new(secrets), "dep")
    }

    #[tokio::test]
    async fn the_registry_builds_proxmox_and_resolves_its_token_on_first_use() {
        let secrets = StaticSecrets([("env:PVE_TOKEN_FOR_TEST".to_string(), "s3cr3t-token-value".to_string())].into());
        let p = crate::providers::registry::build(&VmProviderConfig::Proxmox(config()), &env(secrets)).expect("built");
        assert_eq!(p.name(), "proxmox");
        assert!(!format!("{p:?}").contains("s3cr3t-token-value"), "{p:?}");

        // A secret that does not resolve does not stop the build (the config fails alone, on use).
        let p = crate::providers::registry::build(&VmProviderConfig::Proxmox(config()), &env(StaticSecrets::default()))
            .expect("built without its secret");
        let err = p.get_vm("9000").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("token_value"), "{err}");
        let _ = Settings::default();
    }

    #[test]
    fn the_endpoint_is_https_on_the_configured_host_or_the_override() {
        let e = env(StaticSecrets::default());
        let p = ProxmoxProvider::from_config(&config(), &e).unwrap();
        assert_eq!(p.client.base_url(), "https://192.168.1.20:8006/api2/json");
        let mut over = config();
        over.endpoint_url = Some("http://127.0.0.1:8006/".into());
        assert_eq!(
            ProxmoxProvider::from_config(&over, &e).unwrap().client.base_url(),
            "http://127.0.0.1:8006/api2/json"
        );
        let mut bad = config();
        bad.host = "pve one:8006".into();
        let err = ProxmoxProvider::from_config(&bad, &e).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
        let mut bad_ca = config();
        bad_ca.ca_bundle = Some("not a pem".into());
        assert_eq!(ProxmoxProvider::from_config(&bad_ca, &e).unwrap_err().class(), ErrorClass::Invalid);
    }
}
