//! Building an [`OpenstackProvider`] from its config: the four endpoints, TLS (the config's
//! `ca_bundle` trusted besides the built-in roots; verification is never turned off), the Keystone
//! credential, timings. No network I/O: the token is fetched on the first call.

use reqwest::Url;
use std::sync::Arc;
use std::time::Duration;

use super::client::Client;
use super::credential::{Credential, DEFAULT_MARGIN, Method3};
use super::{Error, OpenstackProvider};
use crate::config::providers::OpenstackConfig;
use crate::config::providers::nova_microversion;
use crate::http::{ClientOptions, RetryConfig, TlsOptions, build_client};
use crate::providers::{BuildEnv, ProviderError, Timings};

impl OpenstackProvider {
    /// The provider for `cfg`. Fails only when the config cannot make a client (an endpoint that is
    /// not an http(s) URL, a bad Nova microversion, a bad CA PEM, a missing credential field).
    pub fn from_config(cfg: &OpenstackConfig, env: &BuildEnv) -> Result<OpenstackProvider, ProviderError> {
        build(cfg, env).map_err(Error::into_provider)
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
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

    /// Replaces a Keystone token once it expires within `margin` (default 120 s; tests lengthen it
    /// to see a refresh without waiting an hour).
    pub fn with_token_margin(mut self, margin: Duration) -> Self {
        match self.client.credential_mut() {
            Some(c) => c.set_margin(margin),
            None => tracing::warn!("the credential is already shared; the token margin is unchanged"),
        }
        self
    }
}

/// `url` checked as an http(s) base URL, named by `field`.
fn endpoint(field: &str, url: &str) -> Result<Url, Error> {
    let u = Url::parse(url.trim())
        .map_err(|e| Error::Config { message: format!("{field} `{}` is not a URL: {e}", url.trim()) })?;
    if !matches!(u.scheme(), "http" | "https") || u.cannot_be_a_base() {
        return Err(Error::Config { message: format!("{field} `{}` is not an http(s) base URL", url.trim()) });
    }
    Ok(u)
}

/// The root `path` hangs below: `url` unless its path already ends with `suffix`.
fn below(u: Url, suffix: &str) -> Url {
    if u.path().trim_end_matches('/').ends_with(suffix) {
        let mut u = u;
        let p = u.path().trim_end_matches(suffix).trim_end_matches(&format!("{suffix}/")).to_string();
        u.set_path(&p);
        u
    } else {
        u
    }
}

/// The Keystone `POST /v3/auth/tokens` URL of the identity endpoint (with or without `/v3`).
pub(crate) fn tokens_url(identity: &str) -> Result<Url, Error> {
    let u = endpoint("openstack_identity_endpoint", identity)?;
    let mut u = below(u, "/v3");
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty();
        p.extend(["v3", "auth", "tokens"]);
    }
    Ok(u)
}

fn build(cfg: &OpenstackConfig, env: &BuildEnv) -> Result<OpenstackProvider, Error> {
    let minor = nova_microversion(&cfg.openstack_nova_version).ok_or_else(|| Error::Config {
        message: format!(
            "openstack_nova_version `{}` is not a Nova microversion of the form 2.N",
            cfg.openstack_nova_version
        ),
    })?;
    let compute = endpoint("openstack_nova_endpoint", &cfg.openstack_nova_endpoint)?;
    let volume = endpoint("openstack_cinder_endpoint", &cfg.openstack_cinder_endpoint)?;
    // Glance's paths carry the version (`/v2/images`): its root is the endpoint without one.
    let image = below(endpoint("openstack_glance_endpoint", &cfg.openstack_glance_endpoint)?, "/v2");
    let http = build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: cfg.ca_bundle.clone() },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|source| Error::Http { what: "build the HTTP client".into(), source })?;
    let credential = Credential::new(
        http.clone(),
        tokens_url(&cfg.openstack_identity_endpoint)?,
        Method3::of(cfg)?,
        env.secrets.clone(),
        env.retry.clone(),
        DEFAULT_MARGIN,
    );
    Ok(OpenstackProvider {
        client: Client::new(
            http,
            (compute, volume, image),
            format!("2.{minor}"),
            Arc::new(credential),
            env.retry.clone(),
        ),
        config: cfg.clone(),
        timings: env.timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, VmProviderConfig};
    use crate::providers::ErrorClass;
    use crate::secrets::StaticSecrets;

    fn config() -> OpenstackConfig {
        serde_json::from_value(serde_json::json!({
            "name": "os", "max_instances": 2,
            "openstack_identity_endpoint": "https://keystone.example.com:5000/v3/",
            "openstack_nova_endpoint": "https://nova.example.com:8774/v2.1",
            "openstack_nova_version": "2.90",
            "openstack_glance_endpoint": "https://glance.example.com:9292",
            "openstack_glance_version": "2",
            "openstack_cinder_endpoint": "https://cinder.example.com:8776/v3/383a0dad105e460ab5a863ea0a45932b",
            "openstack_cinder_version": "3",
            "project_name": "kasm",
            "application_credential_id": "4f5e6d7c8b9a",
            "application_credential_secret": "env:OS_APP_SECRET_FOR_TEST",
            "image_id": "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
            "flavor": "gen.medium",
            "network_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
        }))
        .unwrap()
    }

    fn env() -> BuildEnv {
        BuildEnv::new(Arc::new(StaticSecrets::default()), "dep")
    }

    #[test]
    fn endpoints_are_taken_with_or_without_their_version() {
        assert_eq!(
            tokens_url("https://k.example.com:5000").unwrap().as_str(),
            "https://k.example.com:5000/v3/auth/tokens"
        );
        assert_eq!(
            tokens_url("https://k.example.com:5000/v3/").unwrap().as_str(),
            "https://k.example.com:5000/v3/auth/tokens"
        );
        assert_eq!(
            tokens_url("https://k.example.com/identity/v3").unwrap().as_str(),
            "https://k.example.com/identity/v3/auth/tokens"
        );
        let p = OpenstackProvider::from_config(&config(), &env()).unwrap();
        assert_eq!(
            p.client.roots(),
            (
                "https://nova.example.com:8774/v2.1",
                "https://cinder.example.com:8776/v3/383a0dad105e460ab5a863ea0a45932b",
                "https://glance.example.com:9292/"
            )
        );
        let mut c = config();
        c.openstack_glance_endpoint = "https://glance.example.com:9292/v2/".into();
        assert_eq!(
            OpenstackProvider::from_config(&c, &env()).unwrap().client.roots().2,
            "https://glance.example.com:9292/"
        );
    }

    #[tokio::test]
    async fn bad_configs_fail_to_build_and_a_missing_secret_fails_the_first_call_naming_it() {
        let mut c = config();
        c.openstack_nova_endpoint = "not a url".into();
        let e = OpenstackProvider::from_config(&c, &env()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Invalid);
        assert!(e.to_string().contains("openstack_nova_endpoint"), "{e}");
        let mut c = config();
        c.ca_bundle = Some("not a pem".into());
        assert_eq!(OpenstackProvider::from_config(&c, &env()).unwrap_err().class(), ErrorClass::Invalid);
        let mut c = config();
        c.openstack_nova_version = "latest".into();
        assert!(OpenstackProvider::from_config(&c, &env()).unwrap_err().to_string().contains("openstack_nova_version"));

        let p = crate::providers::registry::build(&VmProviderConfig::Openstack(config()), &env()).expect("built");
        assert_eq!(p.name(), "openstack");
        let err = p.get_vm("x").await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("application_credential_secret"), "{err}");
        let _ = SecretRef::Env(String::new());
    }
}
