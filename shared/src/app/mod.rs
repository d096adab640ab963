//! The handlers, one function each, generic over the ports: [`evaluate`], [`provision`], [`reap`],
//! [`fetch_password`].
//! The Lambda functions and the local daemon call exactly these; so does the simulator.
//!
//! Crash safety: every step is a conditional write on the claim (see [`crate::store`]), so any step
//! can die and be run again; [`reap`] finds half-done work (claims stuck in `requested`/`creating`,
//! VMs without claims, VMs that vanished) and finishes or undoes it.

mod dns;
pub(crate) mod evaluate;
mod password;
mod provision;
mod reap;

pub use evaluate::{EvalOutcome, evaluate, evaluate_triggered, plan};
pub use password::{PasswordReport, fetch_password};
pub use provision::{ProvisionOutcome, provision, provision_pending};
pub use reap::{ReapReport, reap};

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::ConfigSet;
use crate::dns::DnsProvider;
use crate::engine::Timers;
use crate::kasm::{KasmApi, KasmError};
use crate::ports::{Clock, Secrets, Store, VmProvider};
use crate::providers::{ErrorClass, ProviderError, ProviderSet};
use crate::script::ScriptError;
use crate::secrets::SecretError;
use crate::store::StoreError;

/// Everything a handler needs: the ports, the configs, and who we are.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Claims, control records, decision log.
    pub store: Arc<dyn Store>,
    /// The Kasm manager.
    pub kasm: Arc<dyn KasmApi>,
    /// Secret resolution.
    pub secrets: Arc<dyn Secrets>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// One provider per VM-provider config, by config name, each built on first use (a bulkhead).
    pub providers: ProviderSet,
    /// One DNS backend per DNS-provider config, by config name (see [`crate::dns::registry::build_all`]).
    pub dns: HashMap<String, Arc<dyn DnsProvider>>,
    /// The configs in force.
    pub configs: Arc<ConfigSet>,
    /// Lease holder id of this process/invocation.
    pub holder: String,
    /// Tunables that are not in the config file.
    pub tuning: Tuning,
}

impl Ctx {
    /// The timers from the deployment settings.
    pub fn timers(&self) -> Timers {
        let s = &self.configs.settings;
        Timers {
            provision_timeout: s.provision_timeout,
            agent_missing_after: s.agent_missing_after,
            agent_dead_after: s.agent_dead_after,
            evaluation_interval: s.evaluation_interval,
        }
    }

    /// The provider for a provider config; the config's own error when its provider cannot be built.
    pub fn provider(&self, provider_config: &str) -> Result<&Arc<dyn VmProvider>, AppError> {
        match self.providers.get(provider_config) {
            Some(Ok(p)) => Ok(p),
            Some(Err(e)) => Err(AppError::Provider(e.clone())),
            None => Err(AppError::UnknownConfig(format!("no VM-provider config named {provider_config}"))),
        }
    }
}

/// Our retry and grace timings (decisions of ours, documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Seconds an evaluation lease lasts (an evaluation that dies frees its config after this).
    pub lease_seconds: u64,
    /// Provider create attempts before a claim fails for good.
    pub max_create_attempts: u32,
    /// First retry delay after a retryable provider error, doubled per attempt.
    pub retry_base_seconds: u64,
    /// First capacity backoff of a config after an out-of-capacity error, doubled per failure in a row.
    pub capacity_backoff_seconds: u64,
    /// Cap of the capacity backoff.
    pub capacity_backoff_max_seconds: u64,
    /// A claim in `creating` longer than this is presumed abandoned by a dead provisioner.
    pub stuck_creating_seconds: u64,
    /// A claim in `requested` longer than this (and past its `not_before`) is provisioned by the reaper.
    pub stuck_requested_seconds: u64,
    /// An unclaimed VM carrying our deployment tag is deleted only after it was seen this long ago (two-phase).
    pub orphan_grace_seconds: u64,
    /// How long after a Windows VM entered `booting` the password fetcher keeps asking for its generated
    /// password before giving up (EC2 needs ≥ 15 minutes at times).
    pub password_wait_seconds: u64,
    /// Configs one evaluation works on at the same time. Each is a few store round trips (plus Kasm
    /// calls when it acts); 100 configs one after another would take seconds on DynamoDB.
    pub evaluation_concurrency: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            lease_seconds: 120,
            max_create_attempts: 5,
            retry_base_seconds: 30,
            capacity_backoff_seconds: 300,
            capacity_backoff_max_seconds: 3600,
            stuck_creating_seconds: 900,
            stuck_requested_seconds: 120,
            orphan_grace_seconds: 900,
            password_wait_seconds: 1800,
            evaluation_concurrency: 8,
        }
    }
}

/// Why a handler step failed. Messages never carry secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kasm failed.
    #[error(transparent)]
    Kasm(#[from] KasmError),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A secret could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A DNS provider failed (registering or removing a VM's A record).
    #[error("DNS-provider config {config}: {source}")]
    Dns {
        /// The DNS-provider config.
        config: String,
        /// Why.
        #[source]
        source: crate::dns::DnsError,
    },
    /// The startup script could not be rendered.
    #[error("startup script of {config}: {source}")]
    Script {
        /// The provider config.
        config: String,
        /// Why.
        #[source]
        source: ScriptError,
    },
    /// A config referred to does not exist.
    #[error("{0}")]
    UnknownConfig(String),
    /// Another evaluation holds the config's lease; nothing was done.
    #[error("another evaluation holds the lease of {0}; nothing done")]
    LeaseHeld(String),
}

impl AppError {
    /// The class of a provider's or a DNS provider's error, for the provider-error counts; `None` for
    /// the others (ours, the store's, Kasm's).
    pub fn provider_class(&self) -> Option<ErrorClass> {
        match self {
            AppError::Provider(e) => Some(e.class()),
            AppError::Dns { source, .. } => Some(source.class()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod dns_tests;
#[cfg(test)]
mod password_tests;
#[cfg(test)]
mod tests;
