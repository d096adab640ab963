//! The Nutanix provider (Prism Central; the v3 API, or v4 as Kasm's "preview"): one VM per claim,
//! cloned from the config's VM candidate with the config's cores and memory, the packaged startup
//! script as cloud-init user data, and our ownership labels in its description. The sections below
//! describe v3; "# v4" says what differs with `api_version: v4`.
//!
//! # How `create_vm` works, and why
//! The v3 API has no idempotency token, so `create_vm` is a lookup before a clone, and every step
//! after the clone can be repeated:
//!
//! 1. **Find**: the VMs named as the claim's VM (`POST /api/nutanix/v3/vms/list` with the FIQL
//!    filter `vm_name==<name>`, every page, then the exact name compared here). One whose description
//!    carries the claim is ours: resume at step 4. A VM of that name that is not ours is an error
//!    (we never adopt or replace an operator's VM).
//! 2. **Candidate**: the VM named `vm_candidate_name`, looked up the same way; none, or more than one,
//!    is a config error naming the field.
//! 3. **Clone**: `POST /api/nutanix/v3/vms/{candidate}/clone` with `override_spec` `{name,
//!    description, num_sockets: vm_cores, num_vcpus_per_socket: 1, memory_size_mib: vm_memory × 1024,
//!    guest_customization: {cloud_init: {user_data: base64(script)}}}`. Sent once: a retried POST
//!    could make a second VM. A lost answer is a retryable error and the engine's next attempt finds
//!    the VM at step 1. Then the task (`GET /api/nutanix/v3/tasks/{uuid}`) is polled until
//!    `SUCCEEDED`; its `entity_reference_list` names the new VM.
//! 4. **Wait**: the VM is read until its `status.state` leaves `PENDING` (`ERROR` fails the attempt).
//! 5. **Power on**: when `status.resources.power_state` is not `ON`, the intent is read, its
//!    `spec.resources.power_state` set to `ON` and sent back (`PUT /api/nutanix/v3/vms/{uuid}`, with
//!    the `metadata.spec_version` just read); a 409 (the VM changed in between) is read again and
//!    sent again, at most [`MAX_UPDATE_TRIES`] times. Its task is polled like the clone's.
//!
//! Every poll waits [`Timings::poll`], doubling up to [`MAX_POLL`], for at most
//! [`Timings::operation_timeout`] per wait.
//!
//! # The listing may lag a clone
//! The v3 client documents that "entities that have not been created successfully are not
//! listed": a VM whose clone task is still running is not found by step 1. The engine records the
//! claim before it calls `create_vm` and calls again only on a retryable error, after its retry delay
//! (30 s and more), so the window is a lost clone answer followed by a clone still running 30 s
//! later. Known limit: a second VM made in that window carries the same claim in its description,
//! so `list_vms` for the claim shows both and nothing of it is hidden.
//!
//! # Ownership: the description
//! A v3 clone takes the new VM's `name` and `description` but not its `metadata` (categories), so
//! the labels are in the description ([`labels`]: `kasm-autoscale: deployment=… config=… claim=…`).
//! We chose it over categories because it is set by the clone itself (no second call that a crash
//! could skip) and needs no category keys or values created and cleaned up in Prism Central. A VM
//! is ours only when its description carries our deployment; any other VM is never deleted. v3 has
//! no server-side filter on the description, so listing reads every VM (every page) and filters here.
//!
//! # Delete
//! `GET /vms/{uuid}` (404: already gone, success), refuse a VM without our deployment in its
//! description, `DELETE /vms/{uuid}` (404 is success), then its task is polled until it succeeds.
//! The VM's disks are the clone's own vdisks, which AHV deletes with the VM; we attach no volume
//! groups and create no other entity.
//!
//! # Errors
//! Statuses map through [`crate::http`]: 401 Unauthenticated (bad username or password), 403
//! PermissionDenied (the user's role lacks the operation), 404 NotFound, 409 Conflict, 429
//! RateLimited (with `Retry-After` when sent), 5xx Transient. The error body's `message_list`
//! (`reason` and `message`) is quoted; the password never is. A failed clone task whose
//! `error_detail` says the cluster lacks memory or CPU is OutOfCapacity (the config backs off; see
//! [`says_no_capacity`]); other failed tasks are Transient.
//!
//! # v4
//! With `api_version: v4` every call goes to the VMM v4.3 API (`/api/vmm/v4.3/ahv/config`) and the
//! Prism v4.4 tasks API (`/api/prism/v4.4/config/tasks`), the namespaces of Nutanix's SDKs our
//! design material extracts (`client_v4.rs` has the shapes). `create_vm`:
//!
//! 1. **Find**: the VMs named as the claim's VM (`GET …/vms?$filter=name eq '<name>'`, `$page` from 0
//!    with `$limit`, every page, exact name compared here). One whose description carries the claim
//!    is ours: resume at step 4. One without labels of ours whose `source` is the candidate is our
//!    clone whose labelling was cut short (the claim's name is unique to the claim): resume at step 4.
//!    Any other VM of that name is an error (never adopted).
//! 2. **Candidate**: the one VM named `vm_candidate_name`, read by `GET …/vms/{extId}` for its ETag.
//! 3. **Clone**: `POST …/vms/{extId}/$actions/clone` with `If-Match: <ETag>`, `NTNX-Request-Id: <the
//!    claim>` (the claim is a ULID, 128 bits, written as a UUID: every attempt of one claim sends the
//!    same idempotency key) and `CloneOverrideParams` `{name, numSockets: vm_cores,
//!    numCoresPerSocket: 1, memorySizeBytes: vm_memory GiB, guestCustomization: CloudInit
//!    {datasourceType: CONFIG_DRIVE_V2, cloudInitScript: Userdata {value: base64(script)}}}`. A 409 or
//!    412 (the candidate changed since the read) reads it again and sends once more under a second id
//!    derived from the claim. The HTTP layer sends it once; the engine's next attempt looks the name
//!    up first and repeats the same request id. The task (`GET /api/prism/v4.4/config/tasks/{extId}`)
//!    is polled until `SUCCEEDED` (`FAILED`/`CANCELED` fail it); the clone is the VM of its
//!    `entitiesAffected` that is not the candidate and has the claim's name.
//! 4. **Label**: `CloneOverrideParams` has no description and no categories, so the labels are
//!    written by `PUT …/vms/{extId}` with the VM as read and its `description` replaced, `If-Match`
//!    and a request id derived from the VM's ETag; its task is polled. Categories were not chosen:
//!    associating them is a second call too, and they need category keys and values made and cleaned
//!    up through the Prism categories API, which is not among the specs we follow.
//! 5. **Power on**: when `powerState` is not `ON`, `POST …/vms/{extId}/$actions/power-on` with its own
//!    `If-Match` and request id; its task is polled.
//!
//! Every change that carries `If-Match` (label, power-on, delete) is read again and sent once more
//! after a 409 or 412; a lasting 412 is [`ProviderError::Conflict`]. Delete: `GET` (404: done),
//! refuse a VM without our deployment, `DELETE …/vms/{extId}` with `If-Match` (404: done), poll the
//! task. Listing reads every page of `GET …/vms` and filters the description here, as v3 does.
//! A v4 VM has no intent state: it is normalised from `powerState` alone. Errors: v4's envelope
//! (`data.error`: `AppMessage`s `code: message`, or a `SchemaValidationError`) is quoted in the same
//! place as v3's `message_list`, and a failed task's `errorMessages` go through
//! [`says_no_capacity`] like v3's `error_detail`.
//!
//! # Windows
//! The script goes in the same `cloud_init.user_data` (v4: `Userdata.value`); on Windows the candidate must run
//! cloudbase-init (it reads the same config drive), and PowerShell is marked `#ps1_sysnative`
//! (see the config's `script_rules`). Sysprep unattend files (v4's `Sysprep` with `Unattendxml`) are
//! not used: Kasm's Windows startup script is PowerShell, which cloudbase-init runs as it is, while
//! sysprep would need an unattend XML written around it.

mod builder;
pub(crate) mod client;
pub(crate) mod client_v4;
mod credential;
pub mod labels;
mod preflight;
mod v4;

pub use preflight::CHECKS;

use async_trait::async_trait;
use base64::Engine as _;
use secrecy::ExposeSecret;
use std::time::Duration;
use tokio::time::Instant;

use self::client::{Client, CloudInit, GuestCustomization, OverrideSpec, Task};
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::NutanixConfig;
use crate::http::HttpError;
use crate::model::OwnerLabels;

/// The provider's short name.
pub const NAME: &str = "nutanix";

/// The longest wait between two polls of a task or VM.
pub const MAX_POLL: Duration = Duration::from_secs(10);

/// How often a power-on `PUT` is read and sent again after a 409 (the VM changed in between).
pub const MAX_UPDATE_TRIES: usize = 3;

/// A Nutanix [`VmProvider`] bound to one VM-provider config. Build it with
/// [`NutanixProvider::from_config`].
#[derive(Debug)]
pub struct NutanixProvider {
    client: Client,
    /// The v4 client when the config says `api_version: v4` (then every call goes through it).
    v4: Option<client_v4::Client>,
    config: NutanixConfig,
    timings: Timings,
}

/// What went wrong inside the provider; converted to [`ProviderError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("failed to {what}: {source}")]
    Http {
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("failed to {what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
    #[error("{message}")]
    Config { message: String },
    #[error("{message}")]
    Credential { message: String },
    #[error("the task {task} to {what} ended {status}: {detail}")]
    TaskFailed { what: String, task: String, status: String, detail: String },
    #[error("the task {task} to {what} is still running after {secs} s")]
    Timeout { what: String, task: String, secs: u64 },
    #[error("VM {id} is in state ERROR: {detail}")]
    VmFailed { id: String, detail: String },
    #[error("VM {id} was not made by kasm-autoscale (its description carries no deployment of ours); not deleting it")]
    NotOurs { id: String },
    #[error("a VM named `{name}` exists and was not made for this claim; not cloning another of that name")]
    NameTaken { name: String },
}

/// Whether a failed task's detail says the cluster has no room for the VM. UNSOURCED: neither the
/// v3 structures nor Kasm's docs list the messages of a failed clone; these are the phrases AHV is
/// reported to use when no host has the memory or CPU (`NoHostResources`, "not enough memory",
/// "insufficient ..."). An unmatched failure stays Transient, which fails loudly with the message
/// after the engine's attempts.
pub fn says_no_capacity(detail: &str) -> bool {
    let m = detail.to_ascii_lowercase();
    [
        "nohostresources",
        "no host has enough",
        "not enough memory",
        "not enough cpu",
        "not enough resources",
        "insufficient memory",
        "insufficient cpu",
        "insufficient resources",
        "insufficientresources",
        "out of memory",
    ]
    .iter()
    .any(|p| m.contains(p))
}

impl Error {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let text = match client_v4::error_message(&body) {
                    // v4: `data.error` (`AppMessage`s or a `SchemaValidationError`).
                    Some(said) => format!("failed to {what}: {said}"),
                    // v3: `message_list`, else the body's text.
                    None => match client::error_message(&body) {
                        (reason, said) if reason.is_empty() => format!("failed to {what}: {said}"),
                        (reason, said) => format!("failed to {what}: {reason}: {said}"),
                    },
                };
                if status.as_u16() == 412 {
                    // v4's `If-Match` refused: the object changed since it was read. The flow reads it
                    // again once; a lasting one is a conflict the engine retries later.
                    return ProviderError::Conflict {
                        provider: NAME,
                        message: format!("HTTP {status}: {text} (the object changed since it was read)"),
                    };
                }
                ProviderError::from_status(NAME, status, &text, retry_after)
            }
            Error::Http { source, what } => match ProviderError::from_http(source, NAME) {
                ProviderError::Transient { message, .. } => {
                    ProviderError::Transient { provider: NAME, message: format!("failed to {what}: {message}") }
                }
                ProviderError::Invalid { message, .. } => {
                    ProviderError::Invalid { provider: NAME, message: format!("failed to {what}: {message}") }
                }
                other => other,
            },
            Error::Credential { .. } => ProviderError::Unauthenticated { provider: NAME, message },
            Error::TaskFailed { ref detail, .. } if says_no_capacity(detail) => {
                ProviderError::OutOfCapacity { provider: NAME, message }
            }
            Error::Decode { .. } | Error::Timeout { .. } | Error::TaskFailed { .. } | Error::VmFailed { .. } => {
                ProviderError::Transient { provider: NAME, message }
            }
            Error::Config { .. } | Error::NotOurs { .. } | Error::NameTaken { .. } => {
                ProviderError::Invalid { provider: NAME, message }
            }
        }
    }
}

/// The normalised state of a v3 VM: its intent `status.state`, then its power state.
fn state(intent: &str, power: &str) -> VmState {
    match intent {
        "ERROR" => VmState::Failed,
        "PENDING" => VmState::Creating,
        "DELETE_PENDING" | "DELETE_IN_PROGRESS" => VmState::Deleting,
        "COMPLETE" => match power {
            "ON" => VmState::Running,
            "OFF" | "PAUSED" | "SUSPENDED" => VmState::Stopped,
            _ => VmState::Unknown,
        },
        _ => VmState::Unknown,
    }
}

fn to_vm(v: &client::Vm) -> Vm {
    Vm {
        id: v.metadata.uuid.clone(),
        name: v.name().to_string(),
        state: state(v.state(), v.power_state()),
        labels: labels::labels(v.description()),
        private_ip: v.first_ip(),
        public_ip: None,
        created_at: v
            .metadata
            .creation_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

/// Whether `name` can go in a FIQL `vm_name==` filter as it is (FIQL reserves `;`, `,`, `(`, `)`,
/// `=`, `!`, `~`, `<`, `>`, quotes and spaces). Other names are matched here over the full listing.
fn fiql_safe(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl NutanixProvider {
    /// The VMs named exactly `name`.
    async fn by_name(&self, name: &str) -> Result<Vec<client::Vm>, Error> {
        let filter = fiql_safe(name).then(|| format!("vm_name=={name}"));
        Ok(self.client.vms(filter.as_deref()).await?.into_iter().filter(|v| v.name() == name).collect())
    }

    /// The one VM named `vm_candidate_name`.
    async fn candidate(&self) -> Result<client::Vm, Error> {
        let name = &self.config.vm_candidate_name;
        let mut found = self.by_name(name).await?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::Config {
                message: format!("vm_candidate_name: no VM named `{name}` in Prism Central {}", self.config.host),
            }),
            n => Err(Error::Config {
                message: format!(
                    "vm_candidate_name: {n} VMs are named `{name}` in Prism Central {}; the candidate must be unique",
                    self.config.host
                ),
            }),
        }
    }

    /// Polls task `task` until it succeeds (bounded); a failed or aborted task is an error.
    async fn wait_task(&self, task: &str, what: &str) -> Result<Task, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let cap = MAX_POLL.max(self.timings.poll);
        let mut wait = self.timings.poll;
        loop {
            let t = self.client.task(task).await?;
            match t.status.as_str() {
                "SUCCEEDED" => return Ok(t),
                "FAILED" | "ABORTED" => {
                    let detail = t
                        .error_detail
                        .clone()
                        .filter(|d| !d.trim().is_empty())
                        .or(t.progress_message.clone())
                        .unwrap_or_else(|| "no detail given".into());
                    return Err(Error::TaskFailed {
                        what: what.into(),
                        task: task.into(),
                        status: t.status.clone(),
                        detail,
                    });
                }
                _ => {}
            }
            if Instant::now() + wait > deadline {
                return Err(Error::Timeout {
                    what: what.into(),
                    task: task.into(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cap);
        }
    }

    /// Reads VM `uuid` until its intent leaves `PENDING` (bounded).
    async fn wait_vm(&self, uuid: &str) -> Result<client::Vm, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let cap = MAX_POLL.max(self.timings.poll);
        let mut wait = self.timings.poll;
        loop {
            let v = self.client.vm(uuid).await?;
            match v.state() {
                "PENDING" => {}
                "ERROR" => {
                    let said: Vec<String> = v
                        .status
                        .iter()
                        .flat_map(|s| s.message_list.iter())
                        .map(|m| {
                            format!(
                                "{}: {}",
                                m.reason.as_deref().unwrap_or("ERROR"),
                                m.message.as_deref().unwrap_or("")
                            )
                        })
                        .collect();
                    let detail = if said.is_empty() { "no message given".into() } else { said.join("; ") };
                    return Err(Error::VmFailed { id: uuid.into(), detail });
                }
                _ => return Ok(v),
            }
            if Instant::now() + wait > deadline {
                return Err(Error::Timeout {
                    what: "finish the VM".into(),
                    task: uuid.into(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cap);
        }
    }

    /// Sets VM `uuid`'s power state to `ON`: read the intent, change it, send it back; a 409 (the
    /// VM changed since the read) reads again.
    async fn power_on(&self, uuid: &str) -> Result<(), Error> {
        let what = "power on the VM";
        let mut tries = 0;
        loop {
            tries += 1;
            let mut intent = self.client.vm_intent(uuid).await?;
            let Some(obj) = intent.as_object_mut() else {
                return Err(Error::Decode { what: what.into(), message: "the VM is not a JSON object".into() });
            };
            obj.remove("status");
            if !obj.get("spec").is_some_and(|s| s.is_object()) || !obj.get("metadata").is_some_and(|m| m.is_object()) {
                return Err(Error::Decode { what: what.into(), message: "the VM has no spec or metadata".into() });
            }
            let spec = obj.get_mut("spec").expect("checked");
            if !spec.get("resources").is_some_and(|r| r.is_object()) {
                spec["resources"] = serde_json::json!({});
            }
            spec["resources"]["power_state"] = serde_json::json!("ON");
            match self.client.update_vm(uuid, intent, what).await {
                Ok(task) => {
                    self.wait_task(&task, what).await?;
                    tracing::info!(vm = uuid, "VM powered on");
                    return Ok(());
                }
                Err(e) if e.status() == Some(409) && tries < MAX_UPDATE_TRIES => {
                    tracing::info!(vm = uuid, "the VM changed while powering it on; reading it again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn override_spec(&self, spec: &VmSpec) -> OverrideSpec {
        let user_data = spec
            .startup_script
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        OverrideSpec {
            name: spec.name.clone(),
            description: labels::description(&spec.labels),
            num_sockets: self.config.vm_cores,
            num_vcpus_per_socket: 1,
            memory_size_mib: u64::from(self.config.vm_memory) * 1024,
            guest_customization: user_data.map(|u| GuestCustomization { cloud_init: CloudInit { user_data: u } }),
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        let claim = spec.claim.as_str();
        let named = self.by_name(&spec.name).await?;
        let ours = named
            .iter()
            .find(|v| labels::labels(v.description()).get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim));
        let uuid = match ours {
            Some(v) => {
                tracing::info!(vm = %v.metadata.uuid, claim, "VM of this claim exists; resuming");
                v.metadata.uuid.clone()
            }
            None if !named.is_empty() => return Err(Error::NameTaken { name: spec.name.clone() }),
            None => {
                let candidate = self.candidate().await?;
                let task = self.client.clone_vm(&candidate.metadata.uuid, &self.override_spec(spec)).await?;
                tracing::info!(task = %task, claim, "clone accepted");
                let done = self.wait_task(&task, "clone the VM candidate").await?;
                match done
                    .entity_reference_list
                    .iter()
                    .find(|r| r.kind == "vm" && !r.uuid.is_empty() && r.uuid != candidate.metadata.uuid)
                {
                    Some(r) => r.uuid.clone(),
                    None => self
                        .by_name(&spec.name)
                        .await?
                        .into_iter()
                        .find(|v| {
                            labels::labels(v.description()).get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim)
                        })
                        .map(|v| v.metadata.uuid)
                        .ok_or_else(|| Error::Decode {
                            what: "clone the VM candidate".into(),
                            message: format!(
                                "task {task} succeeded, but names no VM and none is named `{}`",
                                spec.name
                            ),
                        })?,
                }
            }
        };
        let v = self.wait_vm(&uuid).await?;
        if v.power_state() != "ON" {
            self.power_on(&uuid).await?;
        }
        Ok(to_vm(&self.client.vm(&uuid).await?))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let v = match self.client.vm(id).await {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !labels::is_ours(v.description()) {
            return Err(Error::NotOurs { id: id.to_string() });
        }
        match self.client.delete_vm(id).await {
            Ok(Some(task)) => {
                self.wait_task(&task, "delete the VM").await?;
                tracing::info!(vm = id, "VM deleted");
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, want: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        Ok(self
            .client
            .vms(None)
            .await?
            .iter()
            .filter(|v| labels::is_ours(v.description()))
            .map(to_vm)
            .filter(|vm| vm.state != VmState::Deleted && want.matches(&vm.labels))
            .collect())
    }
}

#[async_trait]
impl VmProvider for NutanixProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        NutanixProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // v3: no request token (a lookup by the claim's name), no filter on the description. v4: the
        // clone carries the claim as its `NTNX-Request-Id` (and the lookup by name stays); listing
        // still reads every VM and filters the description here.
        Capabilities { idempotency_token: self.v4.is_some(), windows_password: false, server_side_label_filter: false }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        match self.v4 {
            Some(_) => self.create_v4(spec).await,
            None => self.create(spec).await,
        }
        .map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let got = match self.v4 {
            Some(_) => self.get_v4(id).await,
            None => self.client.vm(id).await.map(|v| to_vm(&v)),
        };
        match got {
            Ok(v) => Ok(v),
            Err(e) if e.status() == Some(404) => Err(ProviderError::NotFound { provider: NAME, id: id.to_string() }),
            Err(e) => Err(e.into_provider()),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        match self.v4 {
            Some(_) => self.delete_v4(id).await,
            None => self.delete(id).await,
        }
        .map_err(Error::into_provider)
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        match self.v4 {
            Some(_) => self.list_v4(labels).await,
            None => self.list(labels).await,
        }
        .map_err(Error::into_provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use reqwest::StatusCode;

    fn status_err(code: u16, body: &str) -> Error {
        Error::Http {
            what: "clone the VM candidate".into(),
            source: HttpError::Status {
                status: StatusCode::from_u16(code).unwrap(),
                body: body.into(),
                retry_after: None,
            },
        }
    }

    fn task_failed(detail: &str) -> Error {
        Error::TaskFailed { what: "clone".into(), task: "t".into(), status: "FAILED".into(), detail: detail.into() }
    }

    #[test]
    fn statuses_and_task_failures_map_to_the_classes_the_engine_acts_on() {
        let body = |reason: &str, msg: &str| {
            format!(
                r#"{{"api_version":"3.1","code":0,"kind":"vm","message_list":[{{"message":"{msg}","reason":"{reason}"}}],"state":"ERROR"}}"#
            )
        };
        let c = |code, b: String| status_err(code, &b).into_provider().class();
        assert_eq!(c(401, body("AUTHENTICATION_REQUIRED", "Authentication required.")), ErrorClass::Auth);
        assert_eq!(c(403, body("ACCESS_DENIED", "User does not have permission")), ErrorClass::Permission);
        assert_eq!(c(404, body("ENTITY_NOT_FOUND", "VM not found")), ErrorClass::NotFound);
        assert_eq!(c(409, body("CONCURRENT_REQUESTS_NOT_ALLOWED", "spec_version mismatch")), ErrorClass::Conflict);
        assert_eq!(c(429, body("TOO_MANY_REQUESTS", "slow down")), ErrorClass::RateLimited);
        assert_eq!(c(500, body("INTERNAL_ERROR", "oops")), ErrorClass::Transient);
        assert_eq!(c(422, body("INVALID_REQUEST", "bad spec")), ErrorClass::Invalid);
        let msg =
            status_err(422, &body("INVALID_REQUEST", "memory_size_mib must be positive")).into_provider().to_string();
        assert!(msg.contains("clone the VM candidate") && msg.contains("INVALID_REQUEST: memory_size_mib"), "{msg}");

        assert_eq!(
            task_failed("NoHostResources: No host has enough available resources for VM").into_provider().class(),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            task_failed("Insufficient memory on the cluster").into_provider().class(),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(task_failed("disk image not found").into_provider().class(), ErrorClass::Transient);
        // v4's error envelope: `data.error` quoted; a refused `If-Match` (412) is a conflict.
        let v4 = |code: &str, msg: &str| {
            format!(
                r#"{{"data":{{"$objectType":"vmm.v4.error.ErrorResponse","error":[{{"$objectType":"vmm.v4.error.AppMessage","code":"{code}","message":"{msg}","severity":"ERROR"}}]}},"$objectType":"vmm.v4.ahv.config.CloneVmApiResponse"}}"#
            )
        };
        assert_eq!(c(412, v4("VMM-10412", "ETag mismatch")), ErrorClass::Conflict);
        assert_eq!(c(409, v4("VMM-10409", "busy")), ErrorClass::Conflict);
        assert_eq!(c(401, v4("VMM-10401", "Authentication required")), ErrorClass::Auth);
        assert_eq!(c(403, v4("VMM-10403", "Access denied")), ErrorClass::Permission);
        assert_eq!(c(404, v4("VMM-20005", "VM not found")), ErrorClass::NotFound);
        assert_eq!(c(400, v4("VMM-10400", "bad")), ErrorClass::Invalid);
        assert_eq!(c(503, v4("VMM-10503", "busy")), ErrorClass::Transient);
        let msg = status_err(400, &v4("VMM-10400", "numSockets must be >= 1")).into_provider().to_string();
        assert!(msg.contains("clone the VM candidate: VMM-10400: numSockets must be >= 1"), "{msg}");
        assert_eq!(Error::NotOurs { id: "u".into() }.into_provider().class(), ErrorClass::Invalid);
        assert_eq!(Error::NameTaken { name: "n".into() }.into_provider().class(), ErrorClass::Invalid);
        assert_eq!(Error::Credential { message: "password: x".into() }.into_provider().class(), ErrorClass::Auth);
    }

    #[test]
    fn states_normalise() {
        assert_eq!(state("COMPLETE", "ON"), VmState::Running);
        assert_eq!(state("COMPLETE", "OFF"), VmState::Stopped);
        assert_eq!(state("PENDING", ""), VmState::Creating);
        assert_eq!(state("ERROR", "ON"), VmState::Failed);
        assert_eq!(state("DELETE_PENDING", "ON"), VmState::Deleting);
        assert_eq!(state("", ""), VmState::Unknown);
        assert!(fiql_safe("kasm-01JABC.x_y") && !fiql_safe("a;b") && !fiql_safe("a b") && !fiql_safe(""));
    }
}
