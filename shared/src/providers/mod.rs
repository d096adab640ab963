//! VM providers: one small trait, one folder per provider with the same files
//! (`mod.rs`: provider + trait impl + private error; `builder.rs`; `client.rs`: REST DTOs and calls;
//! `credential.rs` where auth needs it), a registry from config variant to provider, and one shared
//! conformance suite every provider passes.

pub mod aws;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;
pub mod proxmox;
pub mod registry;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::{ClaimId, OsFamily, OwnerLabels};

/// Normalised VM state, whatever the provider calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Being created / starting.
    Creating,
    /// Running.
    Running,
    /// Stopped or suspended.
    Stopped,
    /// Being deleted.
    Deleting,
    /// Gone (some APIs list terminated VMs for a while).
    Deleted,
    /// The provider says it failed.
    Failed,
    /// Anything else.
    Unknown,
}

/// What to create: everything provider-specific comes from the provider's config, bound at build time.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The claim: the idempotency token and the name suffix.
    pub claim: ClaimId,
    /// The VM's name (deterministic from the claim).
    pub name: String,
    /// Ownership labels/tags to put on the VM and everything created with it.
    pub labels: OwnerLabels,
    /// OS family.
    pub os: OsFamily,
    /// The rendered, packaged startup script (holds secrets such as the manager token).
    pub startup_script: Option<SecretString>,
}

/// A VM as the provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// The provider's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Normalised state.
    pub state: VmState,
    /// Its labels/tags.
    pub labels: BTreeMap<String, String>,
    /// Private IP, when known.
    pub private_ip: Option<String>,
    /// Public IP, when known.
    pub public_ip: Option<String>,
    /// When the provider created it, when known.
    pub created_at: Option<DateTime<Utc>>,
}

impl Vm {
    /// The claim id from the VM's labels.
    pub fn claim(&self) -> Option<ClaimId> {
        self.labels.get(OwnerLabels::CLAIM).map(|c| ClaimId(c.clone()))
    }
}

/// What a provider can do beyond the required methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// `create_vm` is idempotent through an API token (else: lookup by name before create).
    pub idempotency_token: bool,
    /// `windows_password` is supported.
    pub windows_password: bool,
    /// Labels can be listed server-side (else: the provider filters client-side).
    pub server_side_label_filter: bool,
}

/// Whether an error class is worth retrying and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Not found.
    NotFound,
    /// Credentials refused.
    Auth,
    /// Not allowed.
    Permission,
    /// Conflict (exists / being changed).
    Conflict,
    /// Throttled: retry after a while.
    RateLimited,
    /// No capacity for this shape/region: back off the config.
    OutOfCapacity,
    /// Invalid request or config: retrying cannot help.
    Invalid,
    /// Temporary (5xx, timeout): retry.
    Transient,
    /// The provider cannot do that.
    NotSupported,
}

/// The one public provider error. Messages never carry secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No such VM.
    #[error("{provider}: VM {id} not found")]
    NotFound {
        /// Provider short name.
        provider: &'static str,
        /// The VM id.
        id: String,
    },
    /// Credentials were refused (401).
    #[error("{provider}: authentication failed: {message}")]
    Unauthenticated {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// Not allowed (403).
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// Conflict (409).
    #[error("{provider}: conflict: {message}")]
    Conflict {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// Throttled (429, RequestLimitExceeded).
    #[error("{provider}: rate limited: {message}")]
    RateLimited {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No capacity for this shape / region / host.
    #[error("{provider}: out of capacity: {message}")]
    OutOfCapacity {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// The request or config is invalid.
    #[error("{provider}: invalid request: {message}")]
    Invalid {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// A temporary failure (5xx, timeout, connection reset).
    #[error("{provider}: temporary failure: {message}")]
    Transient {
        /// Provider short name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
    /// The provider cannot do that.
    #[error("{provider}: not supported: {what}")]
    NotSupported {
        /// Provider short name.
        provider: &'static str,
        /// The operation.
        what: String,
    },
}

impl ProviderError {
    /// The error's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::NotFound { .. } => ErrorClass::NotFound,
            ProviderError::Unauthenticated { .. } => ErrorClass::Auth,
            ProviderError::PermissionDenied { .. } => ErrorClass::Permission,
            ProviderError::Conflict { .. } => ErrorClass::Conflict,
            ProviderError::RateLimited { .. } => ErrorClass::RateLimited,
            ProviderError::OutOfCapacity { .. } => ErrorClass::OutOfCapacity,
            ProviderError::Invalid { .. } => ErrorClass::Invalid,
            ProviderError::Transient { .. } => ErrorClass::Transient,
            ProviderError::NotSupported { .. } => ErrorClass::NotSupported,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.class(), ErrorClass::RateLimited | ErrorClass::Transient | ErrorClass::Conflict)
    }
}

/// A VM provider. Used as `Arc<dyn VmProvider>`; provider config and credentials are bound when
/// it is built (see [`registry`]).
#[async_trait]
pub trait VmProvider: Send + Sync + std::fmt::Debug {
    /// The provider's short name (`aws`, `proxmox`, ...).
    fn name(&self) -> &'static str;

    /// What it supports beyond the required methods.
    fn capabilities(&self) -> Capabilities;

    /// Creates the VM for `spec`.
    ///
    /// # Behavior
    /// - Idempotent on `spec.claim`: calling it again for the same claim returns the VM the first
    ///   call made (same id) and never makes a second one.
    /// - The VM (and its disks, NICs, IPs) carries `spec.labels`.
    /// - Out of capacity is [`ProviderError::OutOfCapacity`], throttling [`ProviderError::RateLimited`].
    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError>;

    /// The VM with provider id `id`.
    ///
    /// # Behavior
    /// - A missing VM is [`ProviderError::NotFound`].
    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError>;

    /// Deletes the VM with provider id `id`, and what was created with it.
    ///
    /// # Behavior
    /// - Deleting a missing VM succeeds.
    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError>;

    /// The VMs carrying every label of `labels` (at least the deployment label).
    ///
    /// # Behavior
    /// - Only matching VMs, across every page; VMs already gone are not listed.
    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError>;

    /// The Windows administrator password of a VM, when the provider generates one.
    ///
    /// # Behavior
    /// - `Ok(None)` while it is not available yet; [`ProviderError::NotSupported`] where
    ///   `capabilities().windows_password` is false.
    async fn windows_password(&self, id: &str) -> Result<Option<SecretString>, ProviderError> {
        let _ = id;
        Err(ProviderError::NotSupported { provider: self.name(), what: "windows_password".into() })
    }
}
