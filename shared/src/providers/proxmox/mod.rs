//! The Proxmox VE provider: clone a template into a VMID of the config's range, size and tag it,
//! start it, then hand the startup script to the QEMU guest agent.
//!
//! # How `create_vm` works, and why
//! `create_vm` is a resumable sequence; each step leaves a mark on the VM itself, so any later call
//! for the same claim (the engine's retry, the reaper's recovery, another Lambda) continues at the
//! first unfinished step and never makes a second VM:
//!
//! 1. **Find**: a VM of the claim is one tagged `ka-k-<claim>`, or one in our VMID range named
//!    `spec.name` (a clone whose tagging was interrupted; `list_vms` for that one claim lists it
//!    too, so the reaper can clean it up). Found → resume at step 4.
//! 2. **Allocate**: the lowest VMID of `vmid_range_lower..=vmid_range_upper` that
//!    `/cluster/resources` does not list (offline nodes' VMs included) and that this process has not
//!    just handed out. Allocation and the clone request run under one in-process mutex; another
//!    process taking the same id makes Proxmox answer "already exists", and we try the next id.
//!    An exhausted range is [`ProviderError::OutOfCapacity`].
//! 3. **Clone** `template_name` (the VM with `template: 1` of that name, on the node
//!    `/cluster/resources` reports) with `newid`, `name`, `full`, `pool`, `storage` (full clones
//!    only), `target`, and wait for the task; a failed task's exit status is the error.
//! 4. **Configure**: `cores`, `memory` (MiB), tags and description in one `PUT .../config`.
//! 5. **Start** and wait for the task (skipped when running).
//! 6. **Startup script**, when there is one and the VM is not tagged `ka-script-ran`: wait for the
//!    guest agent (`agent/ping`, up to [`Timings::guest_wait`]), `agent/file-write` the script to
//!    `<startup_script_path>/kasm-autoscale-startup.sh` (`.ps1` on Windows), `agent/exec` it
//!    (bash / PowerShell, output to `kasm-autoscale-startup.log` beside it), then tag the VM
//!    `ka-script-ran`.
//!
//! # Slow guests are never deleted here
//! If the agent does not answer within `guest_wait`, `create_vm` returns a retryable
//! [`ProviderError::Transient`] and **keeps the VM running**; the engine calls `create_vm` again
//! after its retry delay (30 s, doubling, up to `max_create_attempts`), which resumes at step 6. A
//! Windows template (sysprep, first-boot updates) often needs 5–10 minutes before its agent runs:
//! with the defaults the provider waits 2 min per attempt across 5 attempts (≈ 17 min in all, with
//! the engine's delays) before the claim fails, and nothing in this provider ever deletes a VM on
//! its own. A template whose Guest Agent option is off ("No QEMU guest agent configured") fails at
//! once as [`ProviderError::Invalid`]: waiting could never help (`preflight` checks it too). Once the
//! script runs, the engine's `provision_timeout` counts until the Kasm agent checks in; for Windows
//! set `provision_timeout` to at least 1200 s (the agent install itself can take 10 minutes).
//!
//! # The script runs once per VM
//! Tracked in two places: the `ka-script-ran` tag on the VM (set after `agent/exec` returns a PID;
//! seen by every process through `/cluster/resources`) and, for the window between the exec and the
//! tag, a guard in the guest: the command first creates the directory
//! `<startup_script_path>/kasm-autoscale-startup.ran` (atomic; fails when it exists) and only runs the
//! script if that succeeded. A retried exec therefore finds the guard and does nothing.
//!
//! # Tags
//! Labels map to tags as [`tags`] describes (`ka-d-`, `ka-c-`, `ka-k-` + a reversible encoding);
//! the full labels are also in the VM's description.
//!
//! # Errors
//! Statuses map through [`crate::http`] (401 Unauthenticated, 403 PermissionDenied, 5xx Transient,
//! ...). Proxmox answers many client errors with a 500 and the reason in the body's `message`; the
//! ones we act on are classified explicitly: "already exists" → Conflict (the next VMID is tried),
//! "does not exist" / "unable to find configuration file" → NotFound (a delete of a missing VM
//! succeeds), "already running" / "not running" → nothing to do, out of space or memory →
//! OutOfCapacity. Failed tasks carry their exit status; a lock timeout is Transient.
//!
//! # Offline nodes
//! Listing, lookups and VMID allocation use `/cluster/resources` only, which the cluster file system
//! answers from any node; a VM on an offline node is listed with state [`VmState::Unknown`] and its
//! VMID stays taken. Only calls that act on a VM go to its node.

mod builder;
mod client;
mod credential;
mod preflight;
pub mod tags;

pub use preflight::CHECKS;

use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::time::Duration;
use tokio::time::Instant;

use self::client::{Client, Resource};
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::ProxmoxConfig;
use crate::http::{HttpError, answer_message, message_field};
use crate::model::{OsFamily, OwnerLabels};

/// The provider's short name.
pub const NAME: &str = "proxmox";

/// The most characters `agent/file-write` accepts as `content` (the API schema's `maxLength`).
pub const FILE_WRITE_MAX: usize = 61_440;

/// How long a VMID handed out by this process stays reserved even when `/cluster/resources` does
/// not list it yet (the cluster file system can lag a clone by a moment).
const RESERVATION: Duration = Duration::from_secs(600);

/// How many VMIDs one create tries when other processes keep taking them first.
const MAX_VMID_TRIES: usize = 8;

/// The file name (without extension) of the uploaded script, its log and its run-once guard.
const SCRIPT_STEM: &str = "kasm-autoscale-startup";

/// A Proxmox VE [`VmProvider`] bound to one VM-provider config. Build it with [`ProxmoxProvider::from_config`].
#[derive(Debug)]
pub struct ProxmoxProvider {
    client: Client,
    config: ProxmoxConfig,
    timings: Timings,
    /// VMIDs this process handed out (or found taken) recently, with when. Locked across the
    /// allocation and the clone request so two creates in one process never pick the same id.
    reserved: tokio::sync::Mutex<BTreeMap<u32, Instant>>,
}

/// What went wrong inside the provider; converted to [`ProviderError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
enum Error {
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
    #[error("task {upid} to {what} failed: {message}")]
    TaskFailed { what: String, upid: String, message: String },
    #[error("task {upid} to {what} still running after {secs} s")]
    TaskTimeout { what: String, upid: String, secs: u64 },
    #[error("no free VMID in {lo}..={hi}: all {count} are in use")]
    NoFreeVmid { lo: u32, hi: u32, count: u64 },
    #[error("template `{name}` not found (no VM with template=1 of that name in /cluster/resources)")]
    TemplateNotFound { name: String },
    #[error(
        "VM {vmid} is running but its QEMU guest agent did not answer within {secs} s ({last}); the VM is kept and \
         the next attempt continues with the startup script"
    )]
    AgentNotReady { vmid: u32, secs: u64, last: String },
    #[error(
        "VM {vmid} has no QEMU guest agent configured: enable the Guest Agent option (agent: 1) on template \
         `{template}` and install qemu-guest-agent in it"
    )]
    AgentDisabled { vmid: u32, template: String },
    #[error("VM {vmid} is locked ({lock}); a clone or another change is still running")]
    Locked { vmid: u32, lock: String },
    #[error("another client took each of the VMIDs {tried:?} first; try again")]
    VmidRace { tried: Vec<u32> },
    #[error("the startup script is {bytes} bytes; the guest agent's file-write accepts at most {FILE_WRITE_MAX}")]
    ScriptTooLarge { bytes: usize },
    #[error(
        "VM {vmid} was not made by kasm-autoscale (a template, outside the VMID range or without our tags); not deleting it"
    )]
    NotOurs { vmid: u32 },
    #[error("the startup script of VM {vmid} could not be started: {source}")]
    Script {
        vmid: u32,
        #[source]
        source: Box<Error>,
    },
}

/// What a Proxmox error message says, for the messages we act on. Proxmox answers many client
/// errors with HTTP 500 and the reason in the body's `message` (or, before 8.x, only in the
/// status line, which we cannot read: those stay plain 500s, i.e. transient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    /// "VM 123 already exists", "config file already exists".
    Exists,
    /// "Configuration file 'nodes/pve1/qemu-server/123.conf' does not exist", "unable to find
    /// configuration file for VM 123".
    Missing,
    /// "VM 123 already running" (start), "VM 123 not running" (stop).
    AlreadyThere,
    /// Storage or memory exhausted.
    NoCapacity,
    /// "No QEMU guest agent configured": the VM's Guest Agent option is off.
    NoAgent,
}

fn said(message: &str) -> Option<Said> {
    let m = message.to_ascii_lowercase();
    if m.contains("no qemu guest agent configured") {
        Some(Said::NoAgent)
    } else if m.contains("already exists") {
        Some(Said::Exists)
    } else if m.contains("does not exist")
        || m.contains("unable to find configuration file")
        || m.contains("no such vm")
    {
        Some(Said::Missing)
    } else if m.contains("already running") || (m.contains(" not running") && !m.contains("agent")) {
        Some(Said::AlreadyThere)
    } else if ["not enough", "no space left", "out of space", "insufficient", "cannot allocate memory", "out of memory"]
        .iter()
        .any(|p| m.contains(p))
    {
        Some(Said::NoCapacity)
    } else {
        None
    }
}

/// Proxmox's message from an error body: `message`, else the per-parameter `errors`, else the text.
fn pve_message(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => {
            if let Some(m) = v.get("message").and_then(|m| m.as_str()).filter(|m| !m.trim().is_empty()) {
                return message_field(m);
            }
            if let Some(errs) = v.get("errors").and_then(|e| e.as_object()).filter(|e| !e.is_empty()) {
                return message_field(
                    &errs
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().map(str::trim).unwrap_or("invalid")))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            String::new()
        }
        Err(_) => answer_message(body),
    }
}

impl Error {
    /// The Proxmox message of an HTTP error, classified.
    fn said(&self) -> Option<Said> {
        match self {
            Error::Http { source: HttpError::Status { body, .. }, .. } => said(&pve_message(body)),
            Error::TaskFailed { message, .. } => said(message),
            _ => None,
        }
    }

    fn is_auth(&self) -> bool {
        matches!(self, Error::Http { source: HttpError::Status { status, .. }, .. } if matches!(status.as_u16(), 401 | 403))
    }

    fn into_provider(self) -> ProviderError {
        let said = self.said();
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let text = format!("failed to {what}: {}", pve_message(&body));
                match (status.as_u16(), said) {
                    (401 | 403, _) => ProviderError::from_status(NAME, status, &text, retry_after),
                    (_, Some(Said::Exists)) => ProviderError::Conflict { provider: NAME, message: text },
                    (_, Some(Said::Missing)) => ProviderError::NotFound { provider: NAME, id: text },
                    (_, Some(Said::NoCapacity)) => ProviderError::OutOfCapacity { provider: NAME, message: text },
                    _ => ProviderError::from_status(NAME, status, &text, retry_after),
                }
            }
            Error::Credential { .. } => ProviderError::Unauthenticated { provider: NAME, message },
            Error::Http { source: HttpError::Config { .. }, .. } | Error::Config { .. } => {
                ProviderError::Invalid { provider: NAME, message }
            }
            Error::Http { .. } | Error::Decode { .. } | Error::TaskTimeout { .. } | Error::AgentNotReady { .. } => {
                ProviderError::Transient { provider: NAME, message }
            }
            Error::TaskFailed { .. } => match said {
                Some(Said::Exists) => ProviderError::Conflict { provider: NAME, message },
                Some(Said::NoCapacity) => ProviderError::OutOfCapacity { provider: NAME, message },
                // Lock timeouts and the like: worth another attempt, which the engine bounds.
                _ => ProviderError::Transient { provider: NAME, message },
            },
            Error::NoFreeVmid { .. } => ProviderError::OutOfCapacity { provider: NAME, message },
            Error::Locked { .. } | Error::VmidRace { .. } => ProviderError::Conflict { provider: NAME, message },
            Error::TemplateNotFound { .. }
            | Error::ScriptTooLarge { .. }
            | Error::NotOurs { .. }
            | Error::AgentDisabled { .. } => ProviderError::Invalid { provider: NAME, message },
            Error::Script { vmid, source } => match source.into_provider() {
                e @ (ProviderError::Unauthenticated { .. } | ProviderError::PermissionDenied { .. }) => e,
                e if e.is_retryable() => ProviderError::Transient {
                    provider: NAME,
                    message: format!("the startup script of VM {vmid} could not be started yet: {e}"),
                },
                e => ProviderError::Invalid {
                    provider: NAME,
                    message: format!("the startup script of VM {vmid} could not be started: {e}"),
                },
            },
        }
    }
}

/// The normalised state of a VM resource.
fn state_of(r: &Resource) -> VmState {
    match (r.lock.as_deref(), r.status.as_deref()) {
        (Some("clone" | "create"), _) => VmState::Creating,
        (Some("destroyed"), _) => VmState::Deleting,
        (_, Some("running")) => VmState::Running,
        (_, Some("stopped" | "paused" | "suspended" | "prelaunch")) => VmState::Stopped,
        _ => VmState::Unknown,
    }
}

fn to_vm(r: &Resource, private_ip: Option<String>) -> Vm {
    Vm {
        id: r.vmid.to_string(),
        name: r.name.clone().unwrap_or_default(),
        state: state_of(r),
        labels: tags::labels(&tags::split(r.tags.as_deref())),
        private_ip,
        public_ip: None,
        created_at: None,
    }
}

/// `s` in single quotes for bash.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` in single quotes for PowerShell.
fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl ProxmoxProvider {
    fn range(&self) -> RangeInclusive<u32> {
        self.config.vmid_range_lower..=self.config.vmid_range_upper
    }

    fn is_vm(r: &Resource) -> bool {
        r.kind == "qemu" && !r.template
    }

    /// The VM of `spec`'s claim among `vms`: tagged with the claim, or named for it inside our range.
    fn find_claim<'a>(&self, vms: &'a [Resource], spec: &VmSpec) -> Option<&'a Resource> {
        let claim_tag = format!("{}{}", tags::CLAIM, tags::encode(spec.claim.as_str()));
        vms.iter().filter(|r| Self::is_vm(r)).find(|r| {
            tags::split(r.tags.as_deref()).contains(&claim_tag)
                || (self.range().contains(&r.vmid) && r.name.as_deref() == Some(spec.name.as_str()))
        })
    }

    /// Whether `r` is a clone of ours whose tagging never happened: inside our range and named
    /// `kasm-<claim>` (the engine's deterministic name; a ULID makes it unique). Returns the claim.
    fn untagged_claim_vm(&self, r: &Resource) -> Option<String> {
        let claim = r.name.as_deref()?.strip_prefix("kasm-")?;
        let ulid_like = claim.len() == 26 && claim.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        (ulid_like && self.range().contains(&r.vmid) && !tags::is_ours(&tags::split(r.tags.as_deref())))
            .then(|| claim.to_string())
    }

    fn template<'a>(&self, vms: &'a [Resource]) -> Result<&'a Resource, Error> {
        let name = &self.config.template_name;
        let mut found: Vec<&Resource> =
            vms.iter().filter(|r| r.kind == "qemu" && r.template && r.name.as_deref() == Some(name)).collect();
        // Several templates of one name (one per node): prefer the configured node's.
        found.sort_by_key(|r| r.node != self.config.cluster_node_name);
        found.first().copied().ok_or_else(|| Error::TemplateNotFound { name: name.clone() })
    }

    /// The node new VMs are created on.
    fn target_node<'a>(&'a self, template: &'a Resource) -> &'a str {
        self.config.target_node_name.as_deref().filter(|t| !t.is_empty()).unwrap_or(&template.node)
    }

    fn clone_form(&self, newid: u32, spec: &VmSpec, template: &Resource) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("newid", newid.to_string()),
            ("name", spec.name.clone()),
            ("full", if self.config.full_clone { "1" } else { "0" }.to_string()),
            ("description", tags::description(&spec.labels)),
        ];
        if let Some(pool) = self.config.resource_pool_name.as_deref().filter(|p| !p.is_empty()) {
            form.push(("pool", pool.to_string()));
        }
        // Linked clones stay on the template's storage; Proxmox rejects `storage` for them.
        if self.config.full_clone
            && let Some(storage) = self.config.storage_pool_name.as_deref().filter(|s| !s.is_empty())
        {
            form.push(("storage", storage.to_string()));
        }
        let target = self.target_node(template);
        if target != template.node {
            form.push(("target", target.to_string()));
        }
        form
    }

    /// Allocates a VMID and sends the clone request; returns the VMID and the task, or the VMID of
    /// the claim's VM when a concurrent call for the same claim made it first.
    async fn allocate_and_clone(&self, spec: &VmSpec, template: &Resource) -> Result<(u32, Option<String>), Error> {
        let mut reserved = self.reserved.lock().await;
        reserved.retain(|_, at| at.elapsed() < RESERVATION);
        let mut tried = Vec::new();
        for _ in 0..MAX_VMID_TRIES {
            // A fresh view for every attempt: other processes clone too.
            let vms = self.client.vms().await?;
            if let Some(r) = self.find_claim(&vms, spec) {
                return Ok((r.vmid, None));
            }
            let used: BTreeSet<u32> = vms.iter().map(|r| r.vmid).collect();
            let Some(vmid) = self.range().find(|id| !used.contains(id) && !reserved.contains_key(id)) else {
                let count = u64::from(self.config.vmid_range_upper - self.config.vmid_range_lower) + 1;
                return Err(Error::NoFreeVmid {
                    lo: self.config.vmid_range_lower,
                    hi: self.config.vmid_range_upper,
                    count,
                });
            };
            reserved.insert(vmid, Instant::now());
            tried.push(vmid);
            match self.client.clone_vm(&template.node, template.vmid, &self.clone_form(vmid, spec, template)).await {
                Ok(upid) => {
                    tracing::info!(vmid, template = template.vmid, node = %template.node, upid = %upid, "cloning");
                    return Ok((vmid, Some(upid)));
                }
                Err(e) if e.said() == Some(Said::Exists) => {
                    tracing::info!(vmid, "VMID taken by another client; trying the next one");
                    reserved.insert(vmid, Instant::now());
                }
                Err(e) if e.is_auth() => {
                    reserved.remove(&vmid);
                    return Err(e);
                }
                Err(e) => {
                    // Before 8.x Proxmox says "already exists" only in the status line: look.
                    let taken = self.client.vms().await.map(|v| v.iter().any(|r| r.vmid == vmid)).unwrap_or(false);
                    if !taken {
                        reserved.remove(&vmid);
                        return Err(e);
                    }
                    reserved.insert(vmid, Instant::now());
                }
            }
        }
        Err(Error::VmidRace { tried })
    }

    /// Waits for a task to stop; its exit status `OK` (or `WARNINGS: n`) is success.
    async fn wait_task(&self, upid: &str, fallback_node: &str, what: &str) -> Result<(), Error> {
        let node = client::upid_node(upid).unwrap_or(fallback_node);
        let deadline = Instant::now() + self.timings.operation_timeout;
        loop {
            let st = self.client.task_status(node, upid).await?;
            if st.status == "stopped" {
                return match st.exitstatus.as_deref().map(str::trim) {
                    Some("OK") => Ok(()),
                    Some(w) if w.starts_with("WARNINGS") => {
                        tracing::warn!(upid, status = w, "task to {what} finished with warnings");
                        Ok(())
                    }
                    other => Err(Error::TaskFailed {
                        what: what.to_string(),
                        upid: upid.to_string(),
                        message: self.client.redactor().redact(other.unwrap_or("stopped without an exit status")),
                    }),
                };
            }
            if Instant::now() + self.timings.poll > deadline {
                return Err(Error::TaskTimeout {
                    what: what.to_string(),
                    upid: upid.to_string(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.timings.poll).await;
        }
    }

    async fn resource(&self, vmid: u32) -> Result<Option<Resource>, Error> {
        Ok(self.client.vms().await?.into_iter().find(|r| r.vmid == vmid && Self::is_vm(r)))
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        if let Some(s) = &spec.startup_script {
            let bytes = secrecy::ExposeSecret::expose_secret(s).len();
            if bytes > FILE_WRITE_MAX {
                return Err(Error::ScriptTooLarge { bytes });
            }
        }
        let vms = self.client.vms().await?;
        let res = match self.find_claim(&vms, spec) {
            Some(r) => {
                tracing::info!(vmid = r.vmid, claim = %spec.claim, "VM of this claim exists; resuming");
                r.clone()
            }
            None => {
                let template = self.template(&vms)?.clone();
                let (vmid, upid) = self.allocate_and_clone(spec, &template).await?;
                if let Some(upid) = upid
                    && let Err(e) = self.wait_task(&upid, &template.node, "clone the template").await
                {
                    // A failed clone is removed by Proxmox: its VMID is free again (a small range
                    // must not look exhausted). A clone still running keeps its reservation.
                    if matches!(e, Error::TaskFailed { .. }) {
                        self.reserved.lock().await.remove(&vmid);
                    }
                    return Err(e);
                }
                self.resource(vmid).await?.ok_or_else(|| Error::Decode {
                    what: "find the clone".into(),
                    message: format!("VM {vmid} is not listed by /cluster/resources after its clone finished"),
                })?
            }
        };
        self.finish(spec, res).await
    }

    /// Steps 4–6 of `create_vm` on a VM that exists.
    async fn finish(&self, spec: &VmSpec, res: Resource) -> Result<Vm, Error> {
        let (node, vmid) = (res.node.clone(), res.vmid);
        if let Some(lock @ ("clone" | "create")) = res.lock.as_deref() {
            return Err(Error::Locked { vmid, lock: lock.to_string() });
        }
        let mut current = tags::split(res.tags.as_deref());
        let ours = tags::for_labels(&spec.labels);
        if !ours.iter().all(|t| current.contains(t)) {
            // Not configured yet, so the script cannot have run: drop any of our tags the template
            // carried, keep the template's own.
            let mut next: Vec<String> = current.into_iter().filter(|t| !tags::is_kasm_autoscale_tag(t)).collect();
            next.extend(ours);
            let form = [
                ("cores", self.config.vm_cores.to_string()),
                ("memory", (u64::from(self.config.vm_memory) * 1024).to_string()),
                ("tags", next.join(";")),
                ("description", tags::description(&spec.labels)),
            ];
            self.client.set_config(&node, vmid, &form).await?;
            current = next;
        }
        if res.status.as_deref() != Some("running") {
            match self.client.power(&node, vmid, "start").await {
                Ok(upid) => self.wait_task(&upid, &node, "start the VM").await?,
                Err(e) if e.said() == Some(Said::AlreadyThere) => {}
                Err(e) => return Err(e),
            }
        }
        let mut agent_up = false;
        if let Some(script) = &spec.startup_script
            && !current.iter().any(|t| t == tags::SCRIPT_RAN)
        {
            self.run_script(&node, vmid, spec.os, script).await.map_err(|e| match e {
                e @ (Error::AgentNotReady { .. } | Error::AgentDisabled { .. }) => e,
                e => Error::Script { vmid, source: Box::new(e) },
            })?;
            current.push(tags::SCRIPT_RAN.to_string());
            self.client.set_config(&node, vmid, &[("tags", current.join(";"))]).await?;
            agent_up = true;
        }
        let ip = if agent_up { self.guest_ip(&node, vmid).await } else { None };
        let mut vm = to_vm(&Resource { tags: Some(current.join(";")), ..res }, ip);
        vm.state = VmState::Running;
        Ok(vm)
    }

    fn script_paths(&self, os: OsFamily) -> (String, String, String) {
        let windows = os == OsFamily::Windows;
        let sep = if windows { '\\' } else { '/' };
        let dir = self.config.startup_script_path.trim_end_matches(['/', '\\']);
        let ext = if windows { "ps1" } else { "sh" };
        (
            format!("{dir}{sep}{SCRIPT_STEM}.{ext}"),
            format!("{dir}{sep}{SCRIPT_STEM}.ran"),
            format!("{dir}{sep}{SCRIPT_STEM}.log"),
        )
    }

    /// The guest command: create the run-once guard, and only if that worked run the script.
    fn command(&self, os: OsFamily) -> Vec<String> {
        let (file, guard, log) = self.script_paths(os);
        match os {
            OsFamily::Linux => vec![
                "/bin/bash".into(),
                "-c".into(),
                format!(
                    "mkdir {} 2>/dev/null || exit 0; exec /bin/bash {} >{} 2>&1",
                    sh_quote(&guard),
                    sh_quote(&file),
                    sh_quote(&log)
                ),
            ],
            OsFamily::Windows => vec![
                "powershell.exe".into(),
                "-NoProfile".into(),
                "-NonInteractive".into(),
                "-ExecutionPolicy".into(),
                "Bypass".into(),
                "-Command".into(),
                format!(
                    "if (New-Item -ItemType Directory -Path {} -ErrorAction SilentlyContinue) {{ & {} *> {} }}",
                    ps_quote(&guard),
                    ps_quote(&file),
                    ps_quote(&log)
                ),
            ],
        }
    }

    async fn run_script(
        &self,
        node: &str,
        vmid: u32,
        os: OsFamily,
        script: &secrecy::SecretString,
    ) -> Result<(), Error> {
        self.wait_agent(node, vmid).await?;
        let (file, _, _) = self.script_paths(os);
        self.client.agent_file_write(node, vmid, &file, script).await?;
        let started = self.client.agent_exec(node, vmid, &self.command(os)).await?;
        tracing::info!(vmid, pid = started.pid, file = %file, "startup script started in the guest");
        Ok(())
    }

    /// Polls `agent/ping` until it answers or `agent_wait` is spent. Not answering is normal while
    /// the guest boots; credentials refused end the wait at once.
    async fn wait_agent(&self, node: &str, vmid: u32) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let last = match self.client.agent_ping(node, vmid).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_auth() => return Err(e),
                // Waiting cannot help: the option is off in the VM's (the template's) config.
                Err(e) if e.said() == Some(Said::NoAgent) => {
                    return Err(Error::AgentDisabled { vmid, template: self.config.template_name.clone() });
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + self.timings.guest_poll > self.timings.guest_wait {
                return Err(Error::AgentNotReady { vmid, secs: self.timings.guest_wait.as_secs(), last });
            }
            tokio::time::sleep(self.timings.guest_poll).await;
        }
    }

    /// The guest's first private IPv4 address (best effort: only for the Kasm record).
    async fn guest_ip(&self, node: &str, vmid: u32) -> Option<String> {
        let ifs = self.client.agent_interfaces(node, vmid).await.ok()?;
        ifs.result.iter().filter(|i| i.name != "lo" && !i.name.starts_with("Loopback")).find_map(|i| {
            i.ip_addresses
                .iter()
                .find(|a| a.kind == "ipv4" && !a.address.starts_with("127.") && !a.address.starts_with("169.254."))
                .map(|a| a.address.clone())
        })
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let Ok(vmid) = id.parse::<u32>() else { return Ok(()) };
        let Some(r) = self.client.vms().await?.into_iter().find(|r| r.vmid == vmid) else { return Ok(()) };
        let ours = tags::is_ours(&tags::split(r.tags.as_deref())) || self.untagged_claim_vm(&r).is_some();
        if r.template || r.kind != "qemu" || !self.range().contains(&vmid) || !ours {
            return Err(Error::NotOurs { vmid });
        }
        if r.status.as_deref() != Some("stopped") {
            match self.client.power(&r.node, vmid, "stop").await {
                Ok(upid) => self.wait_task(&upid, &r.node, "stop the VM").await?,
                Err(e) if matches!(e.said(), Some(Said::AlreadyThere | Said::Missing)) => {}
                Err(e) => return Err(e),
            }
        }
        match self.client.destroy(&r.node, vmid).await {
            Ok(upid) => self.wait_task(&upid, &r.node, "destroy the VM").await?,
            Err(e) if e.said() == Some(Said::Missing) => {}
            Err(e) => return Err(e),
        }
        self.reserved.lock().await.remove(&vmid);
        tracing::info!(vmid, node = %r.node, "VM destroyed");
        Ok(())
    }
}

#[async_trait]
impl VmProvider for ProxmoxProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        ProxmoxProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // Idempotency comes from a lookup by claim tag and name, not an API token; tags are
        // filtered client-side from /cluster/resources.
        Capabilities { idempotency_token: false, windows_password: false, server_side_label_filter: false }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let not_found = || ProviderError::NotFound { provider: NAME, id: id.to_string() };
        let vmid = id.parse::<u32>().map_err(|_| not_found())?;
        match self.resource(vmid).await.map_err(Error::into_provider)? {
            Some(r) => Ok(to_vm(&r, None)),
            None => Err(not_found()),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.delete(id).await.map_err(Error::into_provider)
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        let vms = self.client.vms().await.map_err(Error::into_provider)?;
        let by_claim = labels.claim.as_ref().map(|c| c.as_str());
        Ok(vms
            .iter()
            .filter(|r| Self::is_vm(r))
            .filter_map(|r| {
                let vm = to_vm(r, None);
                if labels.matches(&vm.labels) {
                    return Some(vm);
                }
                // Asked for one claim (the reaper destroying or recovering it): its clone may have
                // been interrupted before it was tagged. Listing it lets the claim be cleaned up.
                (by_claim.is_some() && self.untagged_claim_vm(r).as_deref() == by_claim).then_some(vm)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use reqwest::StatusCode;

    fn status_err(code: u16, body: &str) -> Error {
        Error::Http {
            what: "clone the template".into(),
            source: HttpError::Status {
                status: StatusCode::from_u16(code).unwrap(),
                body: body.into(),
                retry_after: None,
            },
        }
    }

    #[test]
    fn proxmox_500_messages_we_rely_on_are_classified() {
        let c = |code, body| status_err(code, body).into_provider().class();
        assert_eq!(c(500, r#"{"data":null,"message":"VM 9001 already exists\n"}"#), ErrorClass::Conflict);
        assert_eq!(
            c(
                500,
                r#"{"data":null,"message":"Configuration file 'nodes/pve1/qemu-server/9001.conf' does not exist\n"}"#
            ),
            ErrorClass::NotFound
        );
        assert_eq!(
            c(500, r#"{"data":null,"message":"unable to find configuration file for VM 9001"}"#),
            ErrorClass::NotFound
        );
        assert_eq!(c(500, r#"{"data":null,"message":"no space left on device"}"#), ErrorClass::OutOfCapacity);
        assert_eq!(c(500, r#"{"data":null}"#), ErrorClass::Transient);
        assert_eq!(c(401, r#"{"data":null,"message":"authentication failure"}"#), ErrorClass::Auth);
        assert_eq!(
            c(403, r#"{"data":null,"message":"Permission check failed (/vms/9001, VM.Allocate)"}"#),
            ErrorClass::Permission
        );
        assert_eq!(c(400, r#"{"data":null,"errors":{"newid":"invalid format"}}"#), ErrorClass::Invalid);
        let msg = status_err(400, r#"{"data":null,"errors":{"newid":"invalid format"}}"#).into_provider().to_string();
        assert!(msg.contains("newid: invalid format"), "{msg}");
        assert_eq!(said("VM 9001 already running"), Some(Said::AlreadyThere));
        assert_eq!(said("VM 9001 not running"), Some(Said::AlreadyThere));
        assert_eq!(said("QEMU guest agent is not running"), None);
    }

    #[test]
    fn other_errors_have_the_classes_the_engine_acts_on() {
        let c = |e: Error| e.into_provider().class();
        assert_eq!(c(Error::NoFreeVmid { lo: 1, hi: 2, count: 2 }), ErrorClass::OutOfCapacity);
        assert_eq!(c(Error::AgentNotReady { vmid: 1, secs: 1, last: "x".into() }), ErrorClass::Transient);
        assert_eq!(c(Error::TemplateNotFound { name: "t".into() }), ErrorClass::Invalid);
        assert_eq!(
            c(Error::TaskFailed {
                what: "w".into(),
                upid: "u".into(),
                message: "can't lock file - got timeout".into()
            }),
            ErrorClass::Transient
        );
        assert_eq!(c(Error::ScriptTooLarge { bytes: 70_000 }), ErrorClass::Invalid);
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("/tmp/it's"), r"'/tmp/it'\''s'");
        assert_eq!(ps_quote(r"C:\it's"), r"'C:\it''s'");
    }
}
