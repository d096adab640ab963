//! Building a [`KubevirtProvider`] from its config ([`crate::providers::kube`]'s client: the API
//! address, the cluster CA plus `ca_bundle`, the token source), with timings. No network I/O: the token
//! is resolved on the first call.

use super::{DEPENDENTS, KubevirtProvider};
use crate::config::providers::KubevirtConfig;
use crate::http::RetryConfig;
use crate::providers::kube::Error;
use crate::providers::kube::build::{Connection, client};
use crate::providers::kube::vm::Engine;
use crate::providers::{BuildEnv, ProviderError, Timings};

impl KubevirtProvider {
    /// The provider for `cfg`. Fails only when the config cannot make a client (a bad address, a CA
    /// that does not decode or parse).
    pub fn from_config(cfg: &KubevirtConfig, env: &BuildEnv) -> Result<KubevirtProvider, ProviderError> {
        build(cfg, env).map_err(|e| e.into_provider(super::NAME))
    }

    /// Uses `retry` for HTTP calls (preflight: an operator at a terminal wants one retry, not a minute).
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

fn build(cfg: &KubevirtConfig, env: &BuildEnv) -> Result<KubevirtProvider, Error> {
    let conn = Connection {
        host: &cfg.host,
        ssl_certificate: &cfg.ssl_certificate,
        api_token: &cfg.api_token,
        endpoint_url: cfg.endpoint_url.as_deref(),
        ca_bundle: cfg.ca_bundle.as_deref(),
    };
    Ok(KubevirtProvider {
        engine: Engine {
            client: client(&conn, env)?,
            ns: cfg.vm_namespace.trim().to_string(),
            timings: env.timings,
            dependents: DEPENDENTS,
        },
        config: cfg.clone(),
    })
}
