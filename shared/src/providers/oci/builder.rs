//! Building an [`OciProvider`] from its config: the endpoint, TLS, the key source, timings.
//! No network I/O: the private key is read on the first call.

use reqwest::Url;

use super::client::Client;
use super::credential::{Credential, Source};
use super::{Error, OciProvider};
use crate::config::providers::OciConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl OciProvider {
    /// The provider for `cfg`: `https://iaas.<oci_region>.oraclecloud.com` (or `endpoint_url`),
    /// `ca_bundle` trusted, the key from `oci_private_key` on the first call. Fails only when the
    /// config cannot make a client (a bad `endpoint_url`, a bad CA PEM).
    pub fn from_config(cfg: &OciConfig, env: &BuildEnv) -> Result<OciProvider, ProviderError> {
        build(cfg, env).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Lists with `n` items per page (tests use small pages).
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

/// The Core API's base URL: `endpoint_url`, else the region's (`iaas.<region>.oraclecloud.com`, the
/// SDK's ComputeClient endpoint template).
pub(crate) fn base_url(endpoint_url: Option<&str>, region: &str) -> Result<Url, Error> {
    base_url_of(endpoint_url, format!("https://iaas.{}.oraclecloud.com", region.trim()))
}

/// The Identity API's base URL: `endpoint_url`, else the region's (`identity.<region>.oci.oraclecloud.com`,
/// the SDK's IdentityClient endpoint template).
pub(crate) fn identity_url(endpoint_url: Option<&str>, region: &str) -> Result<Url, Error> {
    base_url_of(endpoint_url, format!("https://identity.{}.oci.oraclecloud.com", region.trim()))
}

/// The DNS API's base URL: `endpoint_url`, else the region's (`dns.<region>.oci.oraclecloud.com`, the
/// SDK's DnsClient endpoint template; the API version `20180115` is part of every path).
pub(crate) fn dns_url(endpoint_url: Option<&str>, region: &str) -> Result<Url, Error> {
    base_url_of(endpoint_url, format!("https://dns.{}.oci.oraclecloud.com", region.trim()))
}

/// The Limits API's base URL: `endpoint_url`, else the region's (`limits.<region>.oci.oraclecloud.com`:
/// the SDK's LimitsClient endpoint template `https://limits.{region}.oci.{secondLevelDomain}`, base path
/// `/`; the API version `20190729` is part of every path).
pub(crate) fn limits_url(endpoint_url: Option<&str>, region: &str) -> Result<Url, Error> {
    base_url_of(endpoint_url, format!("https://limits.{}.oci.oraclecloud.com", region.trim()))
}

fn base_url_of(endpoint_url: Option<&str>, own: String) -> Result<Url, Error> {
    let root = endpoint_url.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()).unwrap_or(&own);
    let url =
        Url::parse(root).map_err(|e| Error::Config { message: format!("endpoint_url `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(Error::Config { message: format!("endpoint_url `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

fn build(cfg: &OciConfig, env: &BuildEnv) -> Result<OciProvider, Error> {
    let base = base_url(cfg.endpoint_url.as_deref(), &cfg.oci_region)?;
    let identity = identity_url(cfg.endpoint_url.as_deref(), &cfg.oci_region)?;
    let limits = limits_url(cfg.endpoint_url.as_deref(), &cfg.oci_region)?;
    let http = build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: cfg.ca_bundle.clone() },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })?;
    let source = Source {
        secrets: env.secrets.clone(),
        reference: cfg.oci_private_key.clone(),
        tenancy: cfg.oci_tenancy_ocid.clone(),
        user: cfg.oci_user_ocid.clone(),
        fingerprint: cfg.oci_public_key_fingerprint.clone(),
    };
    let launch_override = cfg.launch_override().map_err(|found| Error::Config {
        message: found.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "),
    })?;
    Ok(OciProvider {
        client: Client::new(http, base, identity, limits, Credential::new(source), env.retry.clone()),
        config: cfg.clone(),
        launch_override,
        timings: env.timings,
        boot_tagged: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VmProviderConfig;
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;
    use std::sync::Arc;

    fn config() -> OciConfig {
        crate::config::providers::oci_test_config()
    }

    #[tokio::test]
    async fn the_registry_builds_it_without_reading_the_key() {
        let env = BuildEnv::new(Arc::new(StaticSecrets::default()), "dep");
        let p = crate::providers::registry::build(&VmProviderConfig::Oci(config()), &env).expect("built");
        assert_eq!(p.name(), "oci");
        let err = p.get_vm("ocid1.instance.oc1.iad.x").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("oci_private_key"), "{err}");
    }

    #[test]
    fn the_endpoints_are_the_regions_or_the_override() {
        let env = BuildEnv::new(Arc::new(StaticSecrets::default()), "dep");
        let p = OciProvider::from_config(&config(), &env).unwrap();
        assert_eq!(
            p.client.base_urls(),
            (
                "https://iaas.us-ashburn-1.oraclecloud.com/",
                "https://identity.us-ashburn-1.oci.oraclecloud.com/",
                "https://limits.us-ashburn-1.oci.oraclecloud.com/"
            )
        );
        let mut over = config();
        over.endpoint_url = Some("http://127.0.0.1:9000/".into());
        let p = OciProvider::from_config(&over, &env).unwrap();
        assert_eq!(
            p.client.base_urls(),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/")
        );
        over.endpoint_url = Some("not a url".into());
        assert_eq!(OciProvider::from_config(&over, &env).unwrap_err().class(), ErrorClass::Invalid);
        let mut bad_ca = config();
        bad_ca.ca_bundle = Some("not a pem".into());
        assert_eq!(OciProvider::from_config(&bad_ca, &env).unwrap_err().class(), ErrorClass::Invalid);
    }
}
