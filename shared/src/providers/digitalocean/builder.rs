//! Building a [`DigitalOceanProvider`] from its config: the endpoint, TLS, the token source, timings.
//! No network I/O: the token is resolved on the first call.

use reqwest::Url;

use super::client::{Client, DEFAULT_BASE};
use super::credential::{Credential, Source};
use super::{DigitalOceanProvider, Error};
use crate::config::providers::DigitalOceanConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl DigitalOceanProvider {
    /// The provider for `cfg`: `https://api.digitalocean.com` (or `endpoint_url`), `ca_bundle`
    /// trusted, the token from `digital_ocean_token` on the first call. Fails only when the config
    /// cannot make a client (a bad `endpoint_url`, a bad CA PEM).
    pub fn from_config(cfg: &DigitalOceanConfig, env: &BuildEnv) -> Result<DigitalOceanProvider, ProviderError> {
        let source =
            Source::Secret { secrets: env.secrets.clone(), reference: cfg.token.clone(), field: "digital_ocean_token" };
        build(cfg, env, source).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Lists with `n` items per page (1–200; tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.client = self.client.with_page_size(n);
        self
    }

    /// Waits with `timings` (tests shorten them).
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }
}

/// The API base URL of `endpoint_url` (or DigitalOcean's own), checked.
pub(crate) fn base_url(endpoint_url: Option<&str>) -> Result<Url, Error> {
    let root = endpoint_url.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()).unwrap_or(DEFAULT_BASE);
    let url =
        Url::parse(root).map_err(|e| Error::Config { message: format!("endpoint_url `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config { message: format!("endpoint_url `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

/// The HTTP client for one DigitalOcean endpoint.
pub(crate) fn http_client(ca_bundle: Option<&str>, env_timeout: std::time::Duration) -> Result<reqwest::Client, Error> {
    build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: ca_bundle.map(str::to_string) },
        request_timeout: env_timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })
}

fn build(cfg: &DigitalOceanConfig, env: &BuildEnv, source: Source) -> Result<DigitalOceanProvider, Error> {
    let base = base_url(cfg.endpoint_url.as_deref())?;
    let http = http_client(cfg.ca_bundle.as_deref(), env.request_timeout)?;
    Ok(DigitalOceanProvider {
        client: Client::new(http, base, Credential::new(source), env.retry.clone()),
        config: cfg.clone(),
        timings: env.timings,
        known_tags: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, VmProviderConfig};
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;
    use std::sync::Arc;

    fn config() -> DigitalOceanConfig {
        DigitalOceanConfig {
            name: "do".into(),
            token: SecretRef::Env("DO_TOKEN_FOR_TEST".into()),
            max_instances: 2,
            region: "nyc3".into(),
            image: "docker-20-04".into(),
            droplet_size: "s-2vcpu-4gb".into(),
            tags: "kasm".into(),
            ssh_key_name: None,
            firewall_name: None,
            startup_script: String::new(),
            endpoint_url: None,
            ca_bundle: None,
        }
    }

    fn env(secrets: StaticSecrets) -> BuildEnv {
        BuildEnv::new(Arc::new(secrets), "dep")
    }

    #[tokio::test]
    async fn the_registry_builds_it_and_resolves_the_token_on_first_use() {
        let secrets = StaticSecrets([("env:DO_TOKEN_FOR_TEST".to_string(), "dop_v1_s3cr3tvalue".to_string())].into());
        let p =
            crate::providers::registry::build(&VmProviderConfig::DigitalOcean(config()), &env(secrets)).expect("built");
        assert_eq!(p.name(), "digital_ocean");
        assert!(!format!("{p:?}").contains("dop_v1_s3cr3tvalue"), "{p:?}");

        let p = crate::providers::registry::build(
            &VmProviderConfig::DigitalOcean(config()),
            &env(StaticSecrets::default()),
        )
        .expect("built without its secret");
        let err = p.get_vm("1").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("digital_ocean_token"), "{err}");
    }

    #[test]
    fn the_endpoint_is_digitalocean_or_the_override() {
        let e = env(StaticSecrets::default());
        let p = DigitalOceanProvider::from_config(&config(), &e).unwrap();
        assert_eq!(p.client.base_url(), "https://api.digitalocean.com/");
        let mut over = config();
        over.endpoint_url = Some("http://127.0.0.1:9000/".into());
        assert_eq!(DigitalOceanProvider::from_config(&over, &e).unwrap().client.base_url(), "http://127.0.0.1:9000/");
        over.endpoint_url = Some("not a url".into());
        assert_eq!(DigitalOceanProvider::from_config(&over, &e).unwrap_err().class(), ErrorClass::Invalid);
        let mut bad_ca = config();
        bad_ca.ca_bundle = Some("not a pem".into());
        assert_eq!(DigitalOceanProvider::from_config(&bad_ca, &e).unwrap_err().class(), ErrorClass::Invalid);
    }
}
