//! VM providers: one small trait, one folder per provider with the same files, a registry from config
//! variant to provider, and one shared conformance suite every provider passes. How to add a provider:
//! `shared/src/providers/README.md`.
//!
//! Every provider folder has the same shape:
//! - `mod.rs`: the provider struct, its [`VmProvider`] impl, and a private error converted to
//!   [`ProviderError`] at the trait boundary;
//! - `builder.rs`: `from_config(&XConfig, &BuildEnv) -> Result<XProvider, ProviderError>`, the one way
//!   to build it (no network I/O: credentials are resolved on first use);
//! - `client.rs`: the API's DTOs and calls only;
//! - `credential.rs`: how it authenticates, resolved lazily (through [`crate::http::TokenCache`] where
//!   tokens expire);
//! - `preflight.rs`: read-only checks for `kasm-autoscale preflight`;
//! - `dns.rs` where the cloud has DNS.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(feature = "digitalocean")]
pub mod digitalocean;
mod error;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "harvester")]
pub mod harvester;
#[cfg(any(feature = "kubevirt", feature = "harvester"))]
pub mod kube;
#[cfg(feature = "kubevirt")]
pub mod kubevirt;
pub mod memory;
#[cfg(feature = "nutanix")]
pub mod nutanix;
#[cfg(feature = "oci")]
pub mod oci;
#[cfg(feature = "openstack")]
pub mod openstack;
#[cfg(feature = "proxmox")]
pub mod proxmox;
pub mod registry;
mod set;
#[cfg(any(
    feature = "proxmox",
    feature = "digitalocean",
    feature = "nutanix",
    feature = "gcp",
    feature = "vsphere",
    feature = "kubevirt",
    feature = "harvester"
))]
mod tag_escape;
#[cfg(feature = "vsphere")]
pub mod vsphere;

pub use error::{ErrorClass, ProviderError};
pub use set::ProviderSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::http::RetryConfig;
use crate::model::{ClaimId, OsFamily, OwnerLabels};
use crate::secrets::Secrets;

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

/// What every provider's `from_config` gets besides its config: where secrets come from, whose VMs
/// these are, and the HTTP and wait knobs all providers share (tests shorten them).
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// Resolves the config's secret references, on first use (never while building).
    pub secrets: Arc<dyn Secrets>,
    /// The deployment id (our ownership label; also names conventional secrets).
    pub deployment_id: String,
    /// HTTP retries of one call (default: 4 retries within 30 s).
    pub retry: RetryConfig,
    /// Time allowed for one HTTP request (default 60 s: some APIs answer only once a task is queued).
    pub request_timeout: Duration,
    /// How long to wait for the provider's asynchronous operations and guests.
    pub timings: Timings,
}

impl BuildEnv {
    /// The defaults, with `secrets` and `deployment_id`.
    pub fn new(secrets: Arc<dyn Secrets>, deployment_id: impl Into<String>) -> Self {
        BuildEnv {
            secrets,
            deployment_id: deployment_id.into(),
            retry: RetryConfig {
                base: Duration::from_millis(250),
                cap: Duration::from_secs(5),
                max_retries: 4,
                budget: Duration::from_secs(30),
            },
            request_timeout: Duration::from_secs(60),
            timings: Timings::default(),
        }
    }
}

/// How long a provider waits for asynchronous work: operations/tasks the API runs (clones, creates)
/// and the guest (an agent inside the VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Between two polls of an operation.
    pub poll: Duration,
    /// Longest wait for one operation (a full clone of a large disk is the slow one).
    pub operation_timeout: Duration,
    /// Between two pings of the guest.
    pub guest_poll: Duration,
    /// Longest wait for the guest in one `create_vm` call; the next call resumes the wait.
    pub guest_wait: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            poll: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(600),
            guest_poll: Duration::from_secs(5),
            guest_wait: Duration::from_secs(120),
        }
    }
}

/// The result of one preflight check (`kasm-autoscale preflight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name, e.g. `credentials`, `template`, `startup_script`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what is wrong and how to fix it. Never holds a secret.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, ok: true, detail: detail.into() }
    }
    /// A failed check.
    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, ok: false, detail: detail.into() }
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
    /// - Leftovers of a VM that is gone or was never made (dependents carrying our labels, e.g. a
    ///   boot volume made before its VM) may be listed as [`VmState::Deleted`] entries, whose
    ///   `delete_vm` removes them; such an entry is never a claim's VM.
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

    /// Read-only checks against the real endpoint (credentials, privileges, images/templates,
    /// networks, quota headroom, script size), one [`Check`] each (`kasm-autoscale preflight`).
    ///
    /// # Behavior
    /// - Changes nothing; a provider without checks answers one failed check saying so.
    async fn preflight(&self) -> Vec<Check> {
        vec![Check::fail("preflight", format!("{} has no preflight checks yet", self.name()))]
    }

    /// Releases what the provider holds on the far side (a login session) when the process
    /// stops. Called at most once, after the last call; later calls may fail.
    ///
    /// # Behavior
    /// - Best effort: never fails, never blocks longer than one request.
    async fn shutdown(&self) {}
}
