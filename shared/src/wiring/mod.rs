//! Builds a [`Ctx`] from configs for the local tools (`plan`, `run`, `status`) and the Lambda
//! functions, by concern: `store` (store URLs and the secrets that go with them), `lambda` (a
//! function's context, built on first use and reloaded when `apply` changes the configs), `event` (the
//! payloads a function is invoked with, in `aws_lambda_events`' types), logging, `emf` (the
//! functions' metrics as CloudWatch embedded metric format); and
//! here the Kasm client, the providers (a [`ProviderSet`], one per VM-provider config, built on first
//! use), one DNS backend per DNS-provider config, and webhook keys.

pub mod emf;
#[cfg(feature = "dynamodb")]
pub mod event;
mod lambda;
mod logging;
mod store;

pub use lambda::{CONFIG_RECHECK_ENV, DEFAULT_CONFIG_RECHECK, DEPLOYMENT_ENV, LambdaContext, STORE_ENV, from_env};
pub use logging::{LAMBDA_LOG_LEVEL_ENV, init_function_logging, log_filter};
pub use store::{open_store, open_store_async, secrets_for};

use std::sync::Arc;

use crate::app::{Ctx, Tuning};
use crate::clock::SystemClock;
use crate::config::ConfigSet;
use crate::kasm::KasmApi;
use crate::kasm::client::KasmClient;
use crate::ports::{Secrets, Store};
use crate::providers::{BuildEnv, ProviderSet};

/// Why the local tools could not be wired up. Names the setting; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A setting is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A secret could not be resolved.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The Kasm client could not be built.
    #[error(transparent)]
    Kasm(#[from] crate::kasm::KasmError),
    /// A provider could not be built.
    #[error("VM-provider config {config}: {source}")]
    Provider {
        /// The provider config.
        config: String,
        /// Why.
        #[source]
        source: crate::providers::ProviderError,
    },
}

/// The Kasm client for the deployment's `settings.kasm`.
pub async fn kasm(configs: &ConfigSet, secrets: &dyn Secrets) -> Result<Arc<dyn KasmApi>, WireError> {
    let k = configs.settings.kasm.as_ref().ok_or_else(|| {
        WireError::Config(
            "settings.kasm: missing: the Kasm manager's url, api_key and api_key_secret are needed".into(),
        )
    })?;
    let secret = secrets.resolve(&k.api_key_secret).await?;
    Ok(Arc::new(KasmClient::new(k, secret)?))
}

/// One provider per VM-provider config, each built on first use (no I/O here): a config that cannot be
/// built, or whose secret does not resolve, fails alone.
pub fn providers(configs: &ConfigSet, secrets: Arc<dyn Secrets>) -> ProviderSet {
    ProviderSet::new(&configs.vm_provider_configs, BuildEnv::new(secrets, configs.settings.deployment_id.clone()))
}

/// A full context for the local tools.
pub async fn local_ctx(
    configs: ConfigSet,
    store: Arc<dyn Store>,
    kasm: Arc<dyn KasmApi>,
    providers: ProviderSet,
    secrets: Arc<dyn Secrets>,
) -> Ctx {
    // One DNS backend per DNS-provider config; one that cannot be built fails alone (logged).
    let dns = crate::dns::registry::build_all(&configs, &secrets);
    Ctx {
        store,
        kasm,
        secrets,
        clock: Arc::new(SystemClock),
        providers,
        dns,
        configs: Arc::new(configs),
        holder: format!("local-{}-{}", std::process::id(), ulid::Ulid::new()),
        tuning: Tuning::default(),
    }
}

/// The webhook secrets the configs name (absent = that way in is closed).
pub async fn webhook_keys(configs: &ConfigSet, secrets: &dyn Secrets) -> Result<crate::webhook::Keys, WireError> {
    let mut keys = crate::webhook::Keys::default();
    if let Some(w) = &configs.settings.webhook {
        if let Some(r) = &w.hmac_secret {
            keys.hmac_secret = Some(secrets.resolve(r).await?);
        }
        if let Some(r) = &w.splunk_hec_token {
            keys.hec_token = Some(secrets.resolve(r).await?);
        }
        keys.max_body_bytes = w.max_body_bytes;
        if let Some(r) = &w.metrics_token {
            keys.metrics_token = Some(secrets.resolve(r).await?);
        }
    }
    Ok(keys)
}
