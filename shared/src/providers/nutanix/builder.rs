//! Building a [`NutanixProvider`] from its config: the endpoint, TLS, the credentials' source,
//! timings. No network I/O: the password is resolved on the first call.

use reqwest::Url;

use std::sync::Arc;

use super::client::Client;
use super::client_v4;
use super::credential::{Credential, Source};
use super::{Error, NutanixProvider};
use crate::config::providers::{NutanixApiVersion, NutanixConfig};
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl NutanixProvider {
    /// The provider for `cfg`: `https://<host>:<port>` (or `endpoint_url`), certificates verified
    /// unless `verify_ssl` is false, `ca_bundle` trusted, the password from `password` on the first
    /// call; `api_version` v4 drives the VMM v4.3 and Prism v4.4 APIs instead of v3. Fails only when
    /// the config cannot make a client (a bad host or `endpoint_url`, a bad CA PEM).
    pub fn from_config(cfg: &NutanixConfig, env: &BuildEnv) -> Result<NutanixProvider, ProviderError> {
        build(cfg, env).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry.clone());
        self.v4 = self.v4.map(|c| c.with_retry(retry));
        self
    }

    /// Lists with `n` entities per page (v3: 1–500, v4: 1–100; tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.client = self.client.with_page_size(n);
        self.v4 = self.v4.map(|c| c.with_page_size(n));
        self
    }

    /// Waits with `timings` (tests shorten them).
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// The server root the API is called under (`…/api/nutanix/v3`, or v4's `…/api/vmm/v4.3/…` and
    /// `…/api/prism/v4.4/…`, is appended).
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }
}

/// The server root of `cfg`: `endpoint_url`, else `https://<host>:<port>`.
pub(crate) fn base_url(cfg: &NutanixConfig) -> Result<Url, Error> {
    let given = cfg.endpoint_url.as_deref().map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty());
    let (root, field) = match given {
        Some(u) => (u.to_string(), "endpoint_url"),
        None => (format!("https://{}:{}", cfg.host.trim(), cfg.port), "host"),
    };
    let url =
        Url::parse(&root).map_err(|e| Error::Config { message: format!("{field}: `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(Error::Config { message: format!("{field}: `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

fn build(cfg: &NutanixConfig, env: &BuildEnv) -> Result<NutanixProvider, Error> {
    let base = base_url(cfg)?;
    let http = build_client(&ClientOptions {
        tls: TlsOptions { verify: cfg.verify_ssl, ca_pem: cfg.ca_bundle.clone() },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })?;
    let source =
        Source { secrets: env.secrets.clone(), reference: cfg.password.clone(), username: cfg.username.clone() };
    let credential = Arc::new(Credential::new(source));
    let v4 = (cfg.api_version == NutanixApiVersion::V4)
        .then(|| client_v4::Client::new(http.clone(), base.clone(), credential.clone(), env.retry.clone()));
    Ok(NutanixProvider {
        client: Client::new(http, base, credential, env.retry.clone()),
        v4,
        config: cfg.clone(),
        timings: env.timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, VmProviderConfig};
    use crate::providers::{ErrorClass, VmProvider};
    use crate::secrets::StaticSecrets;
    use std::sync::Arc;

    fn config() -> NutanixConfig {
        NutanixConfig {
            name: "ntnx".into(),
            max_instances: 2,
            host: "prism.example.com".into(),
            port: 9440,
            username: "kasm".into(),
            password: SecretRef::Env("NTNX_PASSWORD_FOR_TEST".into()),
            verify_ssl: true,
            api_version: NutanixApiVersion::V3,
            vm_candidate_name: "tmpl".into(),
            vm_cores: 2,
            vm_memory: 4,
            startup_script: String::new(),
            endpoint_url: None,
            ca_bundle: None,
        }
    }

    fn env(secrets: StaticSecrets) -> BuildEnv {
        BuildEnv::new(Arc::new(secrets), "dep")
    }

    #[tokio::test]
    async fn the_registry_builds_it_and_resolves_the_password_on_first_use() {
        let secrets = StaticSecrets([("env:NTNX_PASSWORD_FOR_TEST".to_string(), "pr1sm-s3cr3t".to_string())].into());
        let p = crate::providers::registry::build(&VmProviderConfig::Nutanix(config()), &env(secrets)).expect("built");
        assert_eq!(p.name(), "nutanix");
        assert!(!format!("{p:?}").contains("pr1sm-s3cr3t"), "{p:?}");

        let p = crate::providers::registry::build(&VmProviderConfig::Nutanix(config()), &env(StaticSecrets::default()))
            .expect("built without its secret");
        let err = p.get_vm("4b5e0c4a-0d0e-4a3b-9f6e-1a2b3c4d5e6f").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn the_endpoint_is_host_and_port_or_the_override_and_v4_is_built() {
        let e = env(StaticSecrets::default());
        assert_eq!(NutanixProvider::from_config(&config(), &e).unwrap().base_url(), "https://prism.example.com:9440/");
        let mut c = config();
        c.host = "[fd00::5]".into();
        c.port = 443;
        assert_eq!(NutanixProvider::from_config(&c, &e).unwrap().base_url(), "https://[fd00::5]/");
        let mut over = config();
        over.endpoint_url = Some("http://127.0.0.1:9000/".into());
        assert_eq!(NutanixProvider::from_config(&over, &e).unwrap().base_url(), "http://127.0.0.1:9000/");
        over.endpoint_url = Some("not a url".into());
        assert_eq!(NutanixProvider::from_config(&over, &e).unwrap_err().class(), ErrorClass::Invalid);
        let mut bad_ca = config();
        bad_ca.ca_bundle = Some("not a pem".into());
        assert_eq!(NutanixProvider::from_config(&bad_ca, &e).unwrap_err().class(), ErrorClass::Invalid);
        let mut v4 = config();
        v4.api_version = NutanixApiVersion::V4;
        let p = NutanixProvider::from_config(&v4, &e).expect("v4 is built");
        assert!(p.capabilities().idempotency_token, "v4 clones carry the claim as their request id");
        assert!(!NutanixProvider::from_config(&config(), &e).unwrap().capabilities().idempotency_token);
        let mut insecure = config();
        insecure.verify_ssl = false;
        assert!(NutanixProvider::from_config(&insecure, &e).is_ok());
    }
}
