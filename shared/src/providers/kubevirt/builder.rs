//! Building a [`KubevirtProvider`] from its config: the API address (`host`, or `endpoint_url`), the
//! cluster CA (`ssl_certificate`, base64 PEM) plus `ca_bundle` trusted, the token source, timings.
//! No network I/O: the token is resolved on the first call.

use reqwest::Url;

use super::KubevirtProvider;
use crate::config::providers::KubevirtConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::kube::Error;
use crate::providers::kube::client::Client;
use crate::providers::kube::credential::{Credential, Source};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl KubevirtProvider {
    /// The provider for `cfg`. Fails only when the config cannot make a client (a bad address, a CA
    /// that does not decode or parse).
    pub fn from_config(cfg: &KubevirtConfig, env: &BuildEnv) -> Result<KubevirtProvider, ProviderError> {
        build(cfg, env).map_err(|e| e.into_provider(super::NAME))
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Lists with `n` objects per page (tests use small pages).
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

/// The API base URL: `endpoint_url` when set, else `host`, checked.
pub(crate) fn base_url(host: &str, endpoint_url: Option<&str>) -> Result<Url, Error> {
    let (field, root) = match endpoint_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => ("endpoint_url", u),
        None => ("host", host.trim()),
    };
    let url = Url::parse(root).map_err(|e| Error::Config { message: format!("{field} `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config { message: format!("{field} `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

/// The PEM trusted for the API: the config's base64 `ssl_certificate` and `ca_bundle`.
pub(crate) fn ca_pem(ssl_certificate: &str, ca_bundle: Option<&str>) -> Result<Option<String>, Error> {
    use base64::Engine as _;
    let mut pem = String::new();
    let cert = ssl_certificate.trim();
    if !cert.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(cert).map_err(|_| Error::Config {
            message: "ssl_certificate is not base64 (give the kubeconfig's certificate-authority-data)".into(),
        })?;
        pem.push_str(
            &String::from_utf8(bytes)
                .map_err(|_| Error::Config { message: "ssl_certificate does not decode to PEM text".into() })?,
        );
        pem.push('\n');
    }
    if let Some(b) = ca_bundle.filter(|b| !b.trim().is_empty()) {
        pem.push_str(b);
    }
    Ok((!pem.trim().is_empty()).then_some(pem))
}

fn build(cfg: &KubevirtConfig, env: &BuildEnv) -> Result<KubevirtProvider, Error> {
    let base = base_url(&cfg.host, cfg.endpoint_url.as_deref())?;
    let http = build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: ca_pem(&cfg.ssl_certificate, cfg.ca_bundle.as_deref())? },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|e| Error::Config { message: format!("ssl_certificate / ca_bundle: {e}") })?;
    let source = Source { secrets: env.secrets.clone(), reference: cfg.api_token.clone(), field: "api_token" };
    Ok(KubevirtProvider {
        client: Client::new(http, base, Credential::new(source), env.retry.clone()),
        config: cfg.clone(),
        timings: env.timings,
    })
}
