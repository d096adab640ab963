//! Building a [`GcpProvider`] from its config: the endpoint, TLS, the key-file source, timings.
//! No network I/O: the key file is read and a token fetched on the first call.

use reqwest::Url;
use std::sync::Arc;

use super::client::{Client, DEFAULT_ROOT, RESOURCE_MANAGER_ROOT};
use super::credential::{Credential, Source};
use super::{Error, GcpProvider};
use crate::config::providers::GcpConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl GcpProvider {
    /// The provider for `cfg`: `https://compute.googleapis.com/compute/v1/` (or `endpoint_url` +
    /// `compute/v1/`), `ca_bundle` trusted, the service-account key from `gcp_credentials` on the
    /// first call (its `token_uri` is where tokens come from). Fails only when the config cannot make a
    /// client (a bad `endpoint_url`, a bad CA PEM).
    pub fn from_config(cfg: &GcpConfig, env: &BuildEnv) -> Result<GcpProvider, ProviderError> {
        build(cfg, env).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Lists with `n` items per page (1–500; tests use small pages).
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

/// `<root>/<service path>` of `endpoint_url` (or `default_root`), checked; `service` is e.g.
/// `["compute", "v1"]`.
pub(crate) fn base_url(endpoint_url: Option<&str>, default_root: &str, service: &[&str]) -> Result<Url, Error> {
    let root = endpoint_url.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()).unwrap_or(default_root);
    let mut url =
        Url::parse(root).map_err(|e| Error::Config { message: format!("endpoint_url `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config { message: format!("endpoint_url `{root}` is not an http(s) base URL") });
    }
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty();
        p.extend(service);
    }
    Ok(url)
}

/// The HTTP client for one endpoint.
pub(crate) fn http_client(ca_bundle: Option<&str>, timeout: std::time::Duration) -> Result<reqwest::Client, Error> {
    build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: ca_bundle.map(str::to_string) },
        request_timeout: timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })
}

fn build(cfg: &GcpConfig, env: &BuildEnv) -> Result<GcpProvider, Error> {
    let base = base_url(cfg.endpoint_url.as_deref(), DEFAULT_ROOT, &["compute", "v1"])?;
    let http = http_client(cfg.ca_bundle.as_deref(), env.request_timeout)?;
    let source = Source::Secret {
        secrets: env.secrets.clone(),
        reference: cfg.gcp_credentials.clone(),
        field: "gcp_credentials",
    };
    let resource_manager = base_url(cfg.resource_manager_url.as_deref(), RESOURCE_MANAGER_ROOT, &["v1"])
        .map_err(|e| Error::Config { message: e.to_string().replace("endpoint_url", "resource_manager_url") })?;
    let credential = Arc::new(Credential::new(source, http.clone(), env.retry.clone()));
    Ok(GcpProvider {
        client: Client::new(http, base, cfg.gcp_project.clone(), cfg.gcp_zone.clone(), credential, env.retry.clone())
            .with_resource_manager(resource_manager),
        config: cfg.clone(),
        timings: env.timings,
    })
}
