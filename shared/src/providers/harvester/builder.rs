//! Building a [`HarvesterProvider`] from its config on [`crate::providers::kube`]'s client (the API
//! address `host`, e.g. Rancher's `https://harvester.example.com/k8s/clusters/local`, or
//! `endpoint_url`; the cluster CA plus `ca_bundle`; the token source). No network I/O: the token is
//! resolved on the first call.

use super::{DEPENDENTS, HarvesterProvider};
use crate::config::providers::HarvesterConfig;
use crate::http::RetryConfig;
use crate::providers::kube::Error;
use crate::providers::kube::build::{Connection, client};
use crate::providers::kube::vm::Engine;
use crate::providers::{BuildEnv, ProviderError, Timings};

impl HarvesterProvider {
    /// The provider for `cfg`. Fails only when the config cannot make a client (a bad address, a CA
    /// that does not decode or parse).
    pub fn from_config(cfg: &HarvesterConfig, env: &BuildEnv) -> Result<HarvesterProvider, ProviderError> {
        build(cfg, env).map_err(|e| e.into_provider(super::NAME))
    }

    /// Uses `retry` for HTTP calls.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.engine.client = self.engine.client.with_retry(retry);
        self
    }

    /// Lists with `n` objects per page (tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.engine.client = self.engine.client.with_page_size(n);
        self
    }

    /// Waits with `timings` (tests shorten them).
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.engine.timings = timings;
        self
    }
}

fn build(cfg: &HarvesterConfig, env: &BuildEnv) -> Result<HarvesterProvider, Error> {
    let conn = Connection {
        host: &cfg.host,
        ssl_certificate: &cfg.ssl_certificate,
        api_token: &cfg.api_token,
        endpoint_url: cfg.endpoint_url.as_deref(),
        ca_bundle: cfg.ca_bundle.as_deref(),
    };
    Ok(HarvesterProvider {
        engine: Engine {
            client: client(&conn, env)?,
            ns: cfg.vm_namespace.trim().to_string(),
            timings: env.timings,
            dependents: DEPENDENTS,
        },
        config: cfg.clone(),
    })
}
