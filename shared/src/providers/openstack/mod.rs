//! The OpenStack provider: one Nova server per claim, from the config's image and flavor (by name),
//! on the config's network with its security groups, key pair and availability zone, its startup
//! script as base64 `user_data`, our ownership labels in its `metadata`; with `create_volume`, booted
//! from a Cinder volume we create (and label) from the image. Authentication is Keystone v3
//! (`credential.rs`: application credential or password, token cached until its `expires_at` minus
//! a margin, authenticated again once after a 401).
//!
//! # How `create_vm` works, and why
//! Nova has no idempotency token, so `create_vm` is a lookup before a create, and every step after
//! the create can be repeated:
//!
//! 1. **Find**: the server of the claim is the one named `spec.name` whose metadata carries the
//!    claim (`GET /servers/detail?name=^<name>$`, every page). Metadata is set by the create request
//!    itself, so a server of ours is never unlabelled. Found → resume at step 4.
//! 2. **Boot volume** (`create_volume` only): the claim's volume is looked up by its metadata (`GET
//!    /v3/{project_id}/volumes/detail`, every page) or created (`POST /v3/{project_id}/volumes` with
//!    `size`, `imageRef`, `volume_type`, `availability_zone`, `name` and our labels as `metadata`),
//!    then waited for until `available` (`error` deletes it and fails the attempt). A volume whose
//!    server Nova then refuses (4xx) is deleted; after a 5xx, a timeout or a lost answer it stays
//!    for the next attempt, which finds it (and the server, if one was made). One left by a crash
//!    between the two, or whose claim is given up, is a leftover (see below).
//! 3. **Create**: the flavor name is resolved to its id (`GET /flavors/detail`, every page), then
//!    `POST /servers` with `X-OpenStack-Nova-API-Version: <openstack_nova_version>`: `name`,
//!    `flavorRef`, `imageRef` (or `block_device_mapping_v2` booting from the volume with
//!    `delete_on_termination: true`), `networks: [{uuid}]`, `security_groups: [{name}]`,
//!    `key_name`, `availability_zone`, `metadata` (the config's + our labels; each key and value at
//!    most 255 characters) and `user_data` (base64, at most 65535 bytes encoded); then the config
//!    override's attributes (its `metadata` merged under ours; scheduler hints beside `server`). The
//!    request is sent once; a lost answer is a retryable error and the next attempt finds the server
//!    at step 1.
//! 4. **Wait**: `GET /servers/{id}` every [`Timings::poll`] for at most
//!    [`Timings::operation_timeout`] until `ACTIVE`. `ERROR`: the server's `fault` is read and
//!    classified ("No valid host was found" is out of capacity), the server deleted, the attempt
//!    failed.
//!
//! # Labels
//! Our labels are metadata keys `kasm-autoscale-deployment`, `kasm-autoscale-config`,
//! `kasm-autoscale-claim` (legal Nova and Cinder metadata keys) on the server and its boot volume. A
//! server is ours when it carries the deployment key; any other is never deleted.
//!
//! # List
//! `GET /servers/detail` with `limit`/`marker` across every page, filtered here on the metadata
//! (Nova offers no metadata filter to project users), `DELETED` servers left out.
//!
//! # Leftover boot volumes
//! The boot volume is made before its server (step 2), so a provisioner that dies between the two,
//! or a claim given up after an attempt that stopped there, leaves a labelled volume no server
//! boots from. With `create_volume`, `list_vms` therefore also lists (`GET /volumes/detail`, every
//! page) each volume carrying our deployment key and a claim that is not attached to anything, is
//! `available` or `error` (Cinder's deletable states that no request of ours is waiting on), and
//! whose claim no listed server carries, as one [`VmState::Deleted`] entry: id = the volume's id,
//! name = its name, labels = ours from its metadata. Whose leftover it is, and whether its claim is
//! still alive, only the reaper knows, so the reaper decides, as for any entry:
//! - a claim given up (`deleting`) without a server id lists its VMs by claim and deletes them,
//!   this entry included;
//! - the orphan sweep deletes an entry whose claim is not alive only when it sees it again after
//!   the orphan grace period (two-phase), so a volume whose claim is being created is never
//!   touched;
//! - a claim stuck in `creating` is handed back to `requested` (a [`VmState::Deleted`] entry is not
//!   a VM to record), and its next attempt finds the volume and boots from it.
//!
//! `delete_vm` of such an id (no server has it) reads the volume and deletes it when it is ours and
//! still unattached and `available`/`error`; one that got attached meanwhile is a
//! [`ProviderError::Conflict`] (the next pass finds its server instead), a missing one success.
//!
//! # Delete
//! `GET /servers/{id}` (404: already gone, success; or a leftover volume's id, above), refuse a
//! server without our deployment key, `DELETE /servers/{id}`, wait until it is gone, then delete
//! every volume it had attached or that carries its claim and survived (`delete_on_termination` not
//! honoured): none of ours is left.
//!
//! # Errors
//! One map (`Error::into_provider`): 401 Unauthenticated (Keystone refusing the credential too),
//! 403 PermissionDenied, 404 NotFound, 409 Conflict, 429 RateLimited with `Retry-After`, 5xx
//! Transient; "Quota exceeded" (Nova 403/413, Cinder 413) and a fault "No valid host was found" are
//! OutOfCapacity; other 4xx Invalid. Messages quote the service's `message`, never a secret.
//!
//! # Windows
//! Nova passes `user_data` to the guest as is; a Windows image runs it with cloudbase-init (a
//! `#ps1_sysnative` first line selects PowerShell). The script is sent unchanged.

mod builder;
pub(crate) mod client;
mod credential;
mod preflight;

pub use preflight::CHECKS;

use async_trait::async_trait;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

use self::client::{Client, Server, Volume, VolumeCreate};
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::OpenstackConfig;
use crate::config::providers::{
    OPENSTACK_METADATA_MAX as METADATA_MAX, OPENSTACK_OWNERSHIP_PREFIX as OWNERSHIP_PREFIX,
};
use crate::http::HttpError;
use crate::model::OwnerLabels;

/// The provider's short name.
pub const NAME: &str = "openstack";

/// Nova's limit on `user_data` (base64-encoded, `servers.create*` schema `maxLength`).
pub const USER_DATA_MAX: usize = 65_535;

/// An OpenStack [`VmProvider`] bound to one VM-provider config. Build it with
/// [`OpenstackProvider::from_config`].
#[derive(Debug)]
pub struct OpenstackProvider {
    client: Client,
    config: OpenstackConfig,
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
    #[error("server {id} went to ERROR: {fault}")]
    ServerFault { id: String, fault: String },
    #[error("boot volume {id} went to {status}")]
    VolumeFailed { id: String, status: String },
    #[error("{what} {id} is not done after {secs} s")]
    Timeout { what: &'static str, id: String, secs: u64 },
    #[error("the startup script is {bytes} bytes in base64; Nova's user_data takes at most {USER_DATA_MAX}")]
    ScriptTooLarge { bytes: usize },
    #[error("server {id} was not made by kasm-autoscale (no {} metadata); not deleting it", OwnerLabels::DEPLOYMENT)]
    NotOurs { id: String },
    #[error("leftover boot volume {id} is {state}; not deleting it now")]
    VolumeBusy { id: String, state: String },
}

/// Whether a service's error text says a quota is spent (Nova: "Quota exceeded for instances: ...",
/// 403; Cinder: "VolumeLimitExceeded" / "VolumeSizeExceedsAvailableQuota", 413).
fn says_quota(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["quota exceeded", "exceeds available quota", "volumelimitexceeded", "volumesizeexceedsavailablequota"]
        .iter()
        .any(|p| m.contains(p))
}

/// Whether a server fault says the scheduler found no room ("No valid host was found. ...").
fn says_no_host(message: &str) -> bool {
    message.to_ascii_lowercase().contains("no valid host was found")
}

impl Error {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    /// What the service said (the `message` of its error body), or this error's text.
    pub(crate) fn said(&self) -> String {
        match self {
            Error::Http { source: HttpError::Status { body, .. }, .. } => client::error_message(body),
            other => other.to_string(),
        }
    }

    /// The one map from what went wrong to the error the engine acts on.
    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let said = client::error_message(&body);
                let text = format!("failed to {what}: {said}");
                let code = status.as_u16();
                if matches!(code, 400 | 403 | 413) && says_quota(&said) {
                    return ProviderError::OutOfCapacity { provider: NAME, message: text };
                }
                if code == 413 && retry_after.is_some() {
                    // Nova's legacy rate limiting: 413 with Retry-After.
                    return ProviderError::RateLimited { provider: NAME, message: text, retry_after };
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
            Error::ServerFault { fault, .. } if says_no_host(&fault) => {
                ProviderError::OutOfCapacity { provider: NAME, message }
            }
            Error::ServerFault { .. } | Error::VolumeFailed { .. } | Error::Decode { .. } | Error::Timeout { .. } => {
                ProviderError::Transient { provider: NAME, message }
            }
            Error::Config { .. } | Error::ScriptTooLarge { .. } | Error::NotOurs { .. } => {
                ProviderError::Invalid { provider: NAME, message }
            }
            Error::VolumeBusy { .. } => ProviderError::Conflict { provider: NAME, message },
        }
    }
}

/// The normalised state of a server `status`.
fn state(status: &str) -> VmState {
    match status {
        "BUILD" | "REBUILD" => VmState::Creating,
        "ACTIVE" | "REBOOT" | "HARD_REBOOT" | "PASSWORD" | "MIGRATING" | "RESIZE" | "VERIFY_RESIZE"
        | "REVERT_RESIZE" => VmState::Running,
        "SHUTOFF" | "SUSPENDED" | "PAUSED" | "SHELVED" | "SHELVED_OFFLOADED" | "STOPPED" => VmState::Stopped,
        "DELETED" | "SOFT_DELETED" => VmState::Deleted,
        "ERROR" => VmState::Failed,
        _ => VmState::Unknown,
    }
}

/// Our labels among `metadata`.
fn labels(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata.iter().filter(|(k, _)| k.starts_with(OWNERSHIP_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn is_ours(metadata: &BTreeMap<String, String>) -> bool {
    metadata.contains_key(OwnerLabels::DEPLOYMENT)
}

/// Cinder states a leftover volume may be deleted in: deletable (`volumes-v3-volumes.inc`, "Delete
/// a volume", preconditions) and not a step any request of ours waits through.
const LEFTOVER_STATES: [&str; 2] = ["available", "error"];

/// Whether `v` is a leftover boot volume: ours, of a claim, unattached, settled, and its claim has no
/// server among `claims_with_server` (see the module docs).
fn is_leftover(v: &Volume, claims_with_server: &BTreeSet<&str>) -> bool {
    is_ours(&v.metadata)
        && v.attachments.is_empty()
        && LEFTOVER_STATES.contains(&v.status.as_str())
        && v.metadata.get(OwnerLabels::CLAIM).is_some_and(|c| !claims_with_server.contains(c.as_str()))
}

/// The [`VmState::Deleted`] entry `list_vms` gives a leftover boot volume.
fn leftover_entry(v: &Volume) -> Vm {
    Vm {
        id: v.id.clone(),
        name: v.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| v.id.clone()),
        state: VmState::Deleted,
        labels: labels(&v.metadata),
        private_ip: None,
        public_ip: None,
        // Cinder writes UTC without a zone.
        created_at: v
            .created_at
            .as_deref()
            .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
            .map(|t| t.and_utc()),
    }
}

fn to_vm(s: &Server) -> Vm {
    let ip = |floating: bool| {
        s.addresses
            .values()
            .flatten()
            .filter(|a| a.version == 4 || a.version == 0)
            .find(|a| (a.kind.as_deref() == Some("floating")) == floating)
            .map(|a| a.addr.clone())
    };
    Vm {
        id: s.id.clone(),
        name: s.name.clone(),
        state: state(&s.status),
        labels: labels(&s.metadata),
        private_ip: ip(false),
        public_ip: ip(true),
        created_at: s
            .created
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

/// `name` as a regular expression matching only itself (Nova's `name` filter is a regex).
fn exact(name: &str) -> String {
    let mut out = String::from("^");
    for c in name.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// Our labels as metadata, each value checked against Nova's limit.
fn ownership(labels: &OwnerLabels) -> Result<BTreeMap<String, String>, Error> {
    let m = labels.to_map();
    for (k, v) in &m {
        if v.chars().count() > METADATA_MAX {
            return Err(Error::Config {
                message: format!(
                    "the label {k} is {} characters; Nova metadata values take at most {METADATA_MAX}",
                    v.chars().count()
                ),
            });
        }
    }
    Ok(m)
}

impl OpenstackProvider {
    async fn find_claim(&self, spec: &VmSpec) -> Result<Option<Server>, Error> {
        let claim = spec.claim.as_str();
        Ok(self.client.servers(Some(&exact(&spec.name))).await?.into_iter().find(|s| {
            s.name == spec.name
                && s.metadata.get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim)
                && !matches!(s.status.as_str(), "DELETED" | "SOFT_DELETED")
        }))
    }

    async fn flavor_id(&self) -> Result<String, Error> {
        let name = self.config.flavor.trim();
        let flavors = self.client.flavors().await?;
        flavors.into_iter().find(|f| f.name == name).map(|f| f.id).ok_or_else(|| Error::Config {
            message: format!("flavor: no flavor named `{name}` is visible to the project"),
        })
    }

    /// The claim's volumes (by our claim metadata), not being deleted.
    async fn claim_volumes(&self, claim: &str) -> Result<Vec<Volume>, Error> {
        Ok(self
            .client
            .volumes()
            .await?
            .into_iter()
            .filter(|v| v.metadata.get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim))
            .filter(|v| !matches!(v.status.as_str(), "deleting" | "error_deleting"))
            .collect())
    }

    /// The claim's boot volume, made when missing, once `available`.
    async fn boot_volume(&self, spec: &VmSpec, metadata: &BTreeMap<String, String>) -> Result<String, Error> {
        let found = self.claim_volumes(spec.claim.as_str()).await?;
        let vol = match found.into_iter().find(|v| v.status != "error") {
            Some(v) => v,
            None => {
                let size = self
                    .config
                    .volume_size_gb
                    .ok_or_else(|| Error::Config { message: "volume_size_gb is required with create_volume".into() })?;
                let body = VolumeCreate {
                    name: spec.name.clone(),
                    size,
                    image_ref: self.config.image_id.trim().to_string(),
                    volume_type: self.config.volume_type.clone().filter(|t| !t.trim().is_empty()),
                    availability_zone: self.config.availability_zone.clone().filter(|z| !z.trim().is_empty()),
                    metadata: metadata.clone(),
                };
                let v = self.client.create_volume(&body).await?;
                tracing::info!(volume = %v.id, claim = %spec.claim, "boot volume create accepted");
                v
            }
        };
        let deadline = Instant::now() + self.timings.operation_timeout;
        let mut status = vol.status.clone();
        loop {
            match status.as_str() {
                "available" => return Ok(vol.id),
                "error" => {
                    if let Err(e) = self.client.delete_volume(&vol.id).await {
                        tracing::warn!(volume = %vol.id, error = %e, "could not delete the failed boot volume");
                    }
                    return Err(Error::VolumeFailed { id: vol.id, status });
                }
                _ => {}
            }
            if Instant::now() + self.timings.poll > deadline {
                return Err(Error::Timeout {
                    what: "boot volume",
                    id: vol.id,
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.timings.poll).await;
            status = self.client.volume(&vol.id).await?.status;
        }
    }

    /// The `POST /servers` body (see the module docs).
    fn server_body(
        &self,
        spec: &VmSpec,
        flavor: String,
        volume: Option<&str>,
        metadata: BTreeMap<String, String>,
        user_data: Option<&SecretString>,
    ) -> Value {
        let c = &self.config;
        let mut server = Map::new();
        server.insert("name".into(), json!(spec.name));
        server.insert("flavorRef".into(), json!(flavor));
        match volume {
            Some(v) => {
                server.insert(
                    "block_device_mapping_v2".into(),
                    json!([{"boot_index": 0, "uuid": v, "source_type": "volume", "destination_type": "volume",
                        "delete_on_termination": true}]),
                );
            }
            None => {
                server.insert("imageRef".into(), json!(c.image_id.trim()));
            }
        }
        server.insert("networks".into(), json!([{ "uuid": c.network_id.trim() }]));
        if !c.security_groups.0.is_empty() {
            let groups: Vec<Value> = c.security_groups.0.iter().map(|g| json!({ "name": g })).collect();
            server.insert("security_groups".into(), Value::Array(groups));
        }
        for (k, v) in [("key_name", &c.key_name), ("availability_zone", &c.availability_zone)] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                server.insert(k.into(), json!(v));
            }
        }
        if let Some(u) = user_data {
            server.insert("user_data".into(), json!(u.expose_secret()));
        }
        let mut top = Map::new();
        let mut meta: Map<String, Value> = c.metadata.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        if let Some(o) = &c.config_override {
            for (k, v) in &o.0 {
                match k.as_str() {
                    "metadata" => {
                        if let Some(m) = v.as_object() {
                            meta.extend(m.clone());
                        }
                    }
                    "os:scheduler_hints" | "OS-SCH-HNT:scheduler_hints" => {
                        top.insert(k.clone(), v.clone());
                    }
                    _ => {
                        server.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        // Ours last: the override cannot drop or change an ownership label.
        meta.extend(metadata.into_iter().map(|(k, v)| (k, Value::String(v))));
        server.insert("metadata".into(), Value::Object(meta));
        top.insert("server".into(), Value::Object(server));
        Value::Object(top)
    }

    /// Polls the server until `ACTIVE`; `ERROR` reads its fault, deletes it and fails.
    async fn wait_active(&self, id: &str) -> Result<Server, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        loop {
            let s = self.client.server(id).await?;
            match s.status.as_str() {
                "ACTIVE" => return Ok(s),
                "ERROR" => {
                    let fault = s.fault.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| "no fault given".into());
                    tracing::warn!(server = id, fault = %fault, "server went to ERROR; deleting it");
                    if let Err(e) = self.delete(id).await {
                        tracing::warn!(server = id, error = %e, "could not delete the failed server");
                    }
                    return Err(Error::ServerFault { id: id.to_string(), fault });
                }
                _ => {}
            }
            if Instant::now() + self.timings.poll > deadline {
                return Err(Error::Timeout {
                    what: "server",
                    id: id.to_string(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.timings.poll).await;
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        let user_data = match spec.startup_script.as_ref().map(|s| s.expose_secret()).filter(|s| !s.is_empty()) {
            Some(s) => {
                let b = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                if b.len() > USER_DATA_MAX {
                    return Err(Error::ScriptTooLarge { bytes: b.len() });
                }
                Some(SecretString::from(b))
            }
            None => None,
        };
        let metadata = ownership(&spec.labels)?;
        let id = match self.find_claim(spec).await? {
            Some(s) => {
                tracing::info!(server = %s.id, claim = %spec.claim, "server of this claim exists; resuming");
                s.id
            }
            None => {
                let flavor = self.flavor_id().await?;
                let volume =
                    if self.config.create_volume { Some(self.boot_volume(spec, &metadata).await?) } else { None };
                let body = self.server_body(spec, flavor, volume.as_deref(), metadata, user_data.as_ref());
                let id = match self.client.create_server(body, user_data.as_ref()).await {
                    Ok(id) => id,
                    Err(e) => {
                        // Nova answered a 4xx: no server was made, so the boot volume would wait
                        // for an attempt that may never come (the claim may be given up). After a
                        // 5xx, a timeout or a lost answer a server may exist: the volume stays for
                        // the next attempt, which finds both.
                        if let Some(v) = volume.as_deref()
                            && e.status().is_some_and(|s| (400..500).contains(&s))
                            && let Err(d) = self.client.delete_volume(v).await
                        {
                            tracing::warn!(volume = v, error = %d, "could not delete the unused boot volume");
                        }
                        return Err(e);
                    }
                };
                tracing::info!(server = %id, claim = %spec.claim, "server create accepted");
                id
            }
        };
        Ok(to_vm(&self.wait_active(&id).await?))
    }

    /// Deletes the volume `id` when it is ours, waiting (bounded) while it is still attached.
    async fn delete_volume_if_ours(&self, id: &str) -> Result<(), Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        loop {
            let v = match self.client.volume(id).await {
                Ok(v) => v,
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) => return Err(e),
            };
            if !is_ours(&v.metadata) || matches!(v.status.as_str(), "deleting") {
                return Ok(());
            }
            if matches!(v.status.as_str(), "available" | "error" | "error_restoring" | "error_extending") {
                match self.client.delete_volume(id).await {
                    Ok(()) => {
                        tracing::info!(volume = id, "boot volume deleted");
                        return Ok(());
                    }
                    Err(e) if e.status() == Some(404) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() + self.timings.poll > deadline {
                return Err(Error::Timeout {
                    what: "volume detach",
                    id: id.to_string(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.timings.poll).await;
        }
    }

    /// Deletes the leftover boot volume `id` (see the module docs): only when it is ours and still
    /// unattached and settled; missing (or not ours: no server and no volume of ours has this id) is
    /// success.
    async fn delete_leftover(&self, id: &str) -> Result<(), Error> {
        let v = match self.client.volume(id).await {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !is_ours(&v.metadata) || v.status == "deleting" {
            return Ok(());
        }
        if let Some(a) = v.attachments.first() {
            let to = a.server_id.as_deref().unwrap_or("a server");
            return Err(Error::VolumeBusy { id: id.to_string(), state: format!("attached to {to}") });
        }
        if !LEFTOVER_STATES.contains(&v.status.as_str()) {
            return Err(Error::VolumeBusy { id: id.to_string(), state: v.status });
        }
        match self.client.delete_volume(id).await {
            Ok(()) => {
                tracing::info!(volume = id, claim = ?v.metadata.get(OwnerLabels::CLAIM), "leftover boot volume deleted");
                Ok(())
            }
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let s = match self.client.server(id).await {
            Ok(s) => s,
            // No such server: gone, or the id of a leftover boot volume `list_vms` listed.
            Err(e) if e.status() == Some(404) && self.config.create_volume => return self.delete_leftover(id).await,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !is_ours(&s.metadata) {
            return Err(Error::NotOurs { id: id.to_string() });
        }
        match self.client.delete_server(id).await {
            Ok(()) => tracing::info!(server = id, "server delete accepted"),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
        let mut volumes: Vec<String> = s.volumes_attached.iter().map(|v| v.id.clone()).collect();
        if self.config.create_volume
            && let Some(claim) = s.metadata.get(OwnerLabels::CLAIM)
        {
            for v in self.claim_volumes(claim).await? {
                if !volumes.contains(&v.id) {
                    volumes.push(v.id);
                }
            }
        }
        if volumes.is_empty() {
            return Ok(());
        }
        // The volumes are freed once the server is gone.
        let deadline = Instant::now() + self.timings.operation_timeout;
        loop {
            match self.client.server(id).await {
                Err(e) if e.status() == Some(404) => break,
                Err(e) => return Err(e),
                Ok(s) if s.status == "DELETED" => break,
                Ok(_) => {}
            }
            if Instant::now() + self.timings.poll > deadline {
                return Err(Error::Timeout {
                    what: "server delete",
                    id: id.to_string(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.timings.poll).await;
        }
        for v in volumes {
            self.delete_volume_if_ours(&v).await?;
        }
        Ok(())
    }

    async fn list(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        let servers = self.client.servers(None).await?;
        let live: Vec<&Server> =
            servers.iter().filter(|s| !matches!(s.status.as_str(), "DELETED" | "SOFT_DELETED")).collect();
        let mut out: Vec<Vm> = live.iter().map(|s| to_vm(s)).filter(|vm| labels.matches(&vm.labels)).collect();
        if self.config.create_volume {
            // Read after the servers: a volume whose server Nova accepted in between is either
            // attached by now or listed here while its claim is alive, which the reaper leaves alone.
            let claims_with_server: BTreeSet<&str> =
                live.iter().filter_map(|s| s.metadata.get(OwnerLabels::CLAIM).map(String::as_str)).collect();
            out.extend(
                self.client
                    .volumes()
                    .await?
                    .iter()
                    .filter(|v| is_leftover(v, &claims_with_server))
                    .map(leftover_entry)
                    .filter(|vm| labels.matches(&vm.labels)),
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl VmProvider for OpenstackProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        OpenstackProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // No request token: a lookup by the claim's name. Nova filters servers by metadata only for
        // admins: listing filters here.
        Capabilities { idempotency_token: false, windows_password: false, server_side_label_filter: false }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        match self.client.server(id).await {
            Ok(s) if matches!(s.status.as_str(), "DELETED" | "SOFT_DELETED") => {
                Err(ProviderError::NotFound { provider: NAME, id: id.to_string() })
            }
            Ok(s) => Ok(to_vm(&s)),
            Err(e) if e.status() == Some(404) => Err(ProviderError::NotFound { provider: NAME, id: id.to_string() }),
            Err(e) => Err(e.into_provider()),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.delete(id).await.map_err(Error::into_provider)
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.list(labels).await.map_err(Error::into_provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use reqwest::StatusCode;

    fn status_err(code: u16, body: &str, retry_after: Option<std::time::Duration>) -> Error {
        Error::Http {
            what: "create the server".into(),
            source: HttpError::Status { status: StatusCode::from_u16(code).unwrap(), body: body.into(), retry_after },
        }
    }

    #[test]
    fn statuses_faults_and_messages_map_in_one_place() {
        let c = |code, body: &str| status_err(code, body, None).into_provider().class();
        assert_eq!(
            c(
                401,
                r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#
            ),
            ErrorClass::Auth
        );
        assert_eq!(
            c(
                403,
                r#"{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:create to be performed."}}"#
            ),
            ErrorClass::Permission
        );
        assert_eq!(
            c(
                403,
                r#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#
            ),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            c(
                413,
                r#"{"overLimit": {"code": 413, "message": "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'."}}"#
            ),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            c(404, r#"{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}"#),
            ErrorClass::NotFound
        );
        assert_eq!(
            c(
                409,
                r#"{"conflictingRequest": {"code": 409, "message": "Cannot 'delete' instance while it is in task_state deleting"}}"#
            ),
            ErrorClass::Conflict
        );
        assert_eq!(
            c(400, r#"{"badRequest": {"code": 400, "message": "Invalid flavorRef provided."}}"#),
            ErrorClass::Invalid
        );
        assert_eq!(c(503, "Service Unavailable"), ErrorClass::Transient);
        let wait = std::time::Duration::from_secs(7);
        match status_err(429, "{}", Some(wait)).into_provider() {
            ProviderError::RateLimited { retry_after, .. } => assert_eq!(retry_after, Some(wait)),
            other => panic!("{other:?}"),
        }
        assert_eq!(status_err(413, "{}", Some(wait)).into_provider().class(), ErrorClass::RateLimited);
        let fault = |f: &str| Error::ServerFault { id: "s".into(), fault: f.into() }.into_provider().class();
        assert_eq!(fault("No valid host was found. There are not enough hosts available."), ErrorClass::OutOfCapacity);
        assert_eq!(fault("Build of instance s aborted: image not found"), ErrorClass::Transient);
        assert_eq!(Error::NotOurs { id: "s".into() }.into_provider().class(), ErrorClass::Invalid);
        assert_eq!(Error::Credential { message: "x".into() }.into_provider().class(), ErrorClass::Auth);
        let msg = status_err(400, r#"{"badRequest": {"code": 400, "message": "Invalid key_name provided."}}"#, None)
            .into_provider()
            .to_string();
        assert!(msg.contains("create the server") && msg.contains("Invalid key_name provided."), "{msg}");
    }

    #[test]
    fn servers_normalise_and_names_are_exact_regexes() {
        let v: Value = serde_json::from_str(include_str!("fixtures/servers_detail.json")).unwrap();
        let s: Server = serde_json::from_value(v["servers"][0].clone()).unwrap();
        let vm = to_vm(&s);
        assert_eq!(vm.state, VmState::Running);
        assert_eq!(vm.private_ip.as_deref(), Some("192.168.1.30"));
        assert_eq!(vm.public_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(vm.labels.get(OwnerLabels::DEPLOYMENT).map(String::as_str), Some("prod"));
        assert!(!vm.labels.contains_key("team"));
        assert_eq!(state("BUILD"), VmState::Creating);
        assert_eq!(state("ERROR"), VmState::Failed);
        assert_eq!(state("SHUTOFF"), VmState::Stopped);
        assert_eq!(exact("kasm-a.b"), "^kasm-a\\.b$");
    }
}
