//! Building an [`AzureProvider`] from its config: the cloud's login and ARM endpoints (or the
//! config's `authority_url` / `endpoint_url`), TLS, the client credentials, timings. No network I/O:
//! the client secret is read and the token fetched on the first call.

use reqwest::Url;
use std::sync::Arc;

use super::client::Client;
use super::credential::{Credential, Source};
use super::{AzureProvider, Error};
use crate::config::providers::{AzureAuthority, AzureConfig};
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

/// The Microsoft Entra ID (login) host and the Azure Resource Manager endpoint of each cloud, from
/// Microsoft's "National clouds" page and the Azure SDKs' cloud settings (`AzureCloud`,
/// `AzureUSGovernment`, `AzureChinaCloud`, `AzureGermanCloud`). The token's scope is the ARM endpoint
/// followed by `/.default`. Azure Germany (the Microsoft Cloud Deutschland) was closed in October 2021; its
/// endpoints are kept because Kasm still offers the authority.
pub fn cloud_endpoints(authority: AzureAuthority) -> (&'static str, &'static str) {
    match authority {
        AzureAuthority::AzurePublicCloud => ("https://login.microsoftonline.com", "https://management.azure.com"),
        AzureAuthority::AzureGovernment => ("https://login.microsoftonline.us", "https://management.usgovcloudapi.net"),
        AzureAuthority::AzureChina => ("https://login.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
        AzureAuthority::AzureGermany => ("https://login.microsoftonline.de", "https://management.microsoftazure.de"),
    }
}

/// The token scope of `authority`'s ARM: `<ARM endpoint>/.default` (the cloud's own, also when
/// `endpoint_url` points elsewhere: the token is for that cloud's ARM audience).
pub fn scope(authority: AzureAuthority) -> String {
    format!("{}/.default", cloud_endpoints(authority).1)
}

impl AzureProvider {
    /// The provider for `cfg`: the authority's login and ARM endpoints (or `authority_url` /
    /// `endpoint_url`), `ca_bundle` trusted, the client secret from `azure_client_secret` on the first
    /// call. Fails only when the config cannot make a client (a bad URL, a bad CA PEM).
    pub fn from_config(cfg: &AzureConfig, env: &BuildEnv) -> Result<AzureProvider, ProviderError> {
        build(cfg, env).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Waits with `timings` (tests shorten them).
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.client = self.client.with_timings(timings);
        self.timings = timings;
        self
    }
}

/// `raw` (or `default` when unset), checked to be an http(s) base URL; `field` names it in errors.
pub(crate) fn base_url(raw: Option<&str>, default: &str, field: &str) -> Result<Url, Error> {
    let root = raw.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()).unwrap_or(default);
    let url = Url::parse(root).map_err(|e| Error::Config { message: format!("{field} `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config { message: format!("{field} `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

/// The HTTP client for one Azure endpoint pair.
pub(crate) fn http_client(ca_bundle: Option<&str>, timeout: std::time::Duration) -> Result<reqwest::Client, Error> {
    build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: ca_bundle.map(str::to_string) },
        request_timeout: timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })
}

/// An ARM client for one authority (login + ARM endpoints, each overridable), tenant and app.
#[allow(clippy::too_many_arguments)]
pub(crate) fn arm_client(
    authority: AzureAuthority,
    authority_url: Option<&str>,
    endpoint_url: Option<&str>,
    ca_bundle: Option<&str>,
    tenant: &str,
    client_id: &str,
    source: Source,
    retry: RetryConfig,
    timeout: std::time::Duration,
    timings: Timings,
) -> Result<Client, Error> {
    let (login, arm) = cloud_endpoints(authority);
    let login = base_url(authority_url, login, "authority_url")?;
    let arm = base_url(endpoint_url, arm, "endpoint_url")?;
    let http = http_client(ca_bundle, timeout)?;
    let credential = Credential::new(http.clone(), &login, tenant, client_id, scope(authority), source, retry.clone());
    Ok(Client::new(http, arm, credential, retry, timings))
}

fn build(cfg: &AzureConfig, env: &BuildEnv) -> Result<AzureProvider, Error> {
    let source = Source::Secret {
        secrets: env.secrets.clone(),
        reference: cfg.azure_client_secret.clone(),
        field: "azure_client_secret",
    };
    let client = arm_client(
        cfg.azure_authority,
        cfg.authority_url.as_deref(),
        cfg.endpoint_url.as_deref(),
        cfg.ca_bundle.as_deref(),
        &cfg.azure_tenant_id,
        &cfg.azure_client_id,
        source,
        env.retry.clone(),
        env.request_timeout,
        env.timings,
    )?;
    Ok(AzureProvider { client, config: cfg.clone(), secrets: Arc::clone(&env.secrets), timings: env.timings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VmProviderConfig;
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;

    fn config() -> AzureConfig {
        serde_yaml_ng::from_str(
            r#"
name: az
azure_subscription_id: 00000000-0000-0000-0000-000000000000
azure_resource_group: dev
azure_tenant_id: 00000000-0000-0000-0000-000000000001
azure_client_id: 00000000-0000-0000-0000-000000000002
azure_client_secret: env:AZ_SECRET_FOR_TEST
azure_region: eastus
max_instances: 2
azure_vm_size: Standard_D2s_v5
azure_os_disk_type: Premium_LRS
azure_os_disk_size_gb: 64
azure_image_reference: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server, version: latest}
azure_subnet: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dev/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default
azure_os_username: kasm
azure_ssh_public_key: ssh-ed25519 AAAA
"#,
        )
        .unwrap()
    }

    fn env() -> BuildEnv {
        BuildEnv::new(Arc::new(StaticSecrets::default()), "dep")
    }

    #[test]
    fn each_authority_has_its_login_and_arm_endpoints_and_both_are_overridable() {
        let p = AzureProvider::from_config(&config(), &env()).unwrap();
        assert_eq!(p.client.base_url().as_str(), "https://management.azure.com/");
        assert_eq!(
            p.client.credential().token_url().as_str(),
            "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token"
        );
        let mut gov = config();
        gov.azure_authority = AzureAuthority::AzureGovernment;
        let p = AzureProvider::from_config(&gov, &env()).unwrap();
        assert_eq!(p.client.base_url().as_str(), "https://management.usgovcloudapi.net/");
        assert!(p.client.credential().token_url().as_str().starts_with("https://login.microsoftonline.us/"));
        assert_eq!(scope(AzureAuthority::AzureChina), "https://management.chinacloudapi.cn/.default");
        let mut over = config();
        over.endpoint_url = Some("http://127.0.0.1:9000/arm/".into());
        over.authority_url = Some("http://127.0.0.1:9001".into());
        let p = AzureProvider::from_config(&over, &env()).unwrap();
        assert_eq!(p.client.base_url().as_str(), "http://127.0.0.1:9000/arm");
        assert_eq!(
            p.client.credential().token_url().as_str(),
            "http://127.0.0.1:9001/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token"
        );
        over.authority_url = Some("not a url".into());
        let e = AzureProvider::from_config(&over, &env()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Invalid);
        assert!(e.to_string().contains("authority_url"), "{e}");
    }

    #[tokio::test]
    async fn the_registry_builds_it_and_a_missing_secret_fails_its_calls_as_auth() {
        let p = crate::providers::registry::build(&VmProviderConfig::Azure(config()), &env()).expect("built");
        assert_eq!(p.name(), "azure");
        let err = p.get_vm("kasm-x").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("azure_client_secret"), "{err}");
    }
}
