//! Building a [`VsphereProvider`] from its config: the endpoint, TLS, the credentials' source,
//! timings. No network I/O: the session is created on the first call.

use reqwest::Url;

use super::client::Client;
use super::credential::{Credential, Source};
use super::vim25::Vim;
use super::{Error, VsphereProvider};
use crate::config::providers::VsphereConfig;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl VsphereProvider {
    /// The provider for `cfg`: `https://<vsphere_vcenter_address>:<vsphere_vcenter_port>` (or
    /// `endpoint_url`), certificates verified against the built-in roots and `ca_bundle`; the REST
    /// client below `/api` and the vim25 client at `/sdk` share the HTTP client. Fails only when the
    /// config cannot make a client (a bad address or `endpoint_url`, a bad CA PEM).
    pub fn from_config(cfg: &VsphereConfig, env: &BuildEnv) -> Result<VsphereProvider, ProviderError> {
        build(cfg, env).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Waits with `timings` (tests shorten them).
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// The server root the API is called under (`…/api` is appended).
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }
}

/// The server root of `cfg`: `endpoint_url`, else `https://<address>:<port>`.
pub(crate) fn base_url(cfg: &VsphereConfig) -> Result<Url, Error> {
    let given = cfg.endpoint_url.as_deref().map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty());
    let (root, field) = match given {
        Some(u) => (u.to_string(), "endpoint_url"),
        None => (
            format!("https://{}:{}", cfg.vsphere_vcenter_address.trim(), cfg.vsphere_vcenter_port),
            "vsphere_vcenter_address",
        ),
    };
    let url =
        Url::parse(&root).map_err(|e| Error::Config { message: format!("{field}: `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(Error::Config { message: format!("{field}: `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

fn build(cfg: &VsphereConfig, env: &BuildEnv) -> Result<VsphereProvider, Error> {
    let base = base_url(cfg)?;
    let http = build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: cfg.ca_bundle.clone() },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })?;
    let source = Source {
        secrets: env.secrets.clone(),
        username: cfg.vsphere_vcenter_username.clone(),
        password: cfg.vsphere_vcenter_password.clone(),
    };
    let vim_source = Source {
        secrets: env.secrets.clone(),
        username: cfg.vsphere_vcenter_username.clone(),
        password: cfg.vsphere_vcenter_password.clone(),
    };
    Ok(VsphereProvider {
        vim: Vim::new(http.clone(), &base, vim_source, env.retry.clone()),
        client: Client::new(http, base, Credential::new(source), env.retry.clone()),
        // `use_datastore_cluster: false` leaves a named cluster unused: the provider reads one field.
        config: VsphereConfig { datastore_cluster_name: cfg.datastore_cluster().map(str::to_string), ..cfg.clone() },
        timings: env.timings,
        secrets: env.secrets.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, VmProviderConfig};
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;
    use std::sync::Arc;

    fn config() -> VsphereConfig {
        let mut c: VsphereConfig = serde_json::from_value(serde_json::json!({
            "name": "vs", "vsphere_vcenter_address": "vcenter.example.com", "vsphere_vcenter_username": "kasm@vsphere.local",
            "vsphere_vcenter_password": "env:VC_PASSWORD_FOR_TEST", "vm_template_name": "tmpl", "max_instances": 2,
            "datacenter_name": "DC1", "guest_vm_username": "kasm", "guest_vm_password": "env:GUEST_FOR_TEST",
            "number_of_guest_cpus": 2, "amount_of_guest_memory_gib": 4
        }))
        .unwrap();
        c.vsphere_vcenter_password = SecretRef::Env("VC_PASSWORD_FOR_TEST".into());
        c
    }

    fn env(secrets: StaticSecrets) -> BuildEnv {
        BuildEnv::new(Arc::new(secrets), "dep")
    }

    #[tokio::test]
    async fn the_registry_builds_it_and_a_missing_password_fails_the_first_call_as_auth() {
        let secrets = StaticSecrets([("env:VC_PASSWORD_FOR_TEST".to_string(), "vc-s3cr3t".to_string())].into());
        let p = crate::providers::registry::build(&VmProviderConfig::Vsphere(config()), &env(secrets)).expect("built");
        assert_eq!(p.name(), "vsphere");
        assert!(!format!("{p:?}").contains("vc-s3cr3t"), "{p:?}");
        let p = crate::providers::registry::build(&VmProviderConfig::Vsphere(config()), &env(StaticSecrets::default()))
            .expect("built without its secret");
        let err = p.get_vm("vm-42").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("vsphere_vcenter_password"), "{err}");
    }

    #[test]
    fn the_endpoint_is_address_and_port_or_the_override_and_datastore_clusters_build() {
        let e = env(StaticSecrets::default());
        assert_eq!(VsphereProvider::from_config(&config(), &e).unwrap().base_url(), "https://vcenter.example.com/");
        let mut c = config();
        c.vsphere_vcenter_port = 8443;
        assert_eq!(VsphereProvider::from_config(&c, &e).unwrap().base_url(), "https://vcenter.example.com:8443/");
        let mut over = config();
        over.endpoint_url = Some("http://127.0.0.1:9000/".into());
        assert_eq!(VsphereProvider::from_config(&over, &e).unwrap().base_url(), "http://127.0.0.1:9000/");
        over.endpoint_url = Some("not a url".into());
        assert_eq!(VsphereProvider::from_config(&over, &e).unwrap_err().class(), ErrorClass::Invalid);
        let mut bad_ca = config();
        bad_ca.ca_bundle = Some("not a pem".into());
        assert_eq!(VsphereProvider::from_config(&bad_ca, &e).unwrap_err().class(), ErrorClass::Invalid);
        let mut pod = config();
        pod.datastore_cluster_name = Some("ssd-cluster".into());
        assert!(VsphereProvider::from_config(&pod, &e).is_ok(), "datastore clusters are built through vim25");
    }
}
