//! The Google Cloud (Compute Engine) provider: one instance per claim in the config's project and
//! zone, from the config's image, machine type and boot disk, with the packaged startup script in the
//! instance metadata and our ownership labels on the instance and its boot disk. Cloud DNS is [`dns`].
//!
//! # How `create_vm` works, and why
//! Compute Engine's `instances.insert` takes a `requestId` (a UUID; "if you must retry your request,
//! the server will know to ignore the request if it has already been completed"), and instance names
//! are unique in a zone. So:
//!
//! 1. **Find**: `instances.get` of the claim's deterministic name (`VmSpec::name`). Found with our
//!    claim label → resume (return it). Found without it → the name is taken: Invalid, nothing touched.
//! 2. **Create**: `instances.insert?requestId=<`[`request_id`]`(claim)>` with the body of
//!    `GcpProvider::instance_body`. The same claim always sends the same `requestId`, so the HTTP layer may
//!    retry the POST (a timeout, a 5xx, a 429) without making a second instance, and a crash between
//!    GCP's accept and our record is found by step 1 next time. A `409 alreadyExists` (the request id
//!    has expired but the instance exists) reads the instance and resumes as in step 1.
//! 3. **Wait**: the answered zone operation (`zoneOperations.get`) until `DONE`, polling from
//!    [`Timings::poll`] doubling to [`MAX_POLL`], for at most [`Timings::operation_timeout`]; an
//!    operation `error` fails the attempt (mapped as below); then `instances.get` for the addresses.
//!
//! # The instance body (`schemas.Instance`)
//! `name`; `machineType` (`zones/<zone>/machineTypes/<type>` unless a path is given); `labels` (the
//! config's `gcp_custom_labels` + ours, see [`labels`]); one boot disk (`boot`, `autoDelete: true`,
//! `initializeParams.sourceImage`/`diskSizeGb`/`diskType`/`labels`, `diskEncryptionKey.kmsKeyName` when
//! `gcp_cmek` is set); one network interface (`network`, `subnetwork`, and an access config
//! `ONE_TO_ONE_NAT` when `gcp_public_ip`); `tags.items`; `metadata.items` (the config's items plus the
//! script under the key of `gcp_startup_script_type`, ours wins); `serviceAccounts`;
//! `guestAccelerators` with `scheduling.onHostMaintenance = TERMINATE` (GCP refuses GPUs with live
//! migration). `gcp_config_override` is then deep-merged (objects merged key by key, anything else
//! replaced); `name` and `labels` cannot be overridden (refused by validation, and set again after the
//! merge). After the merge every boot disk must still have `autoDelete: true`, or the create is
//! refused naming `gcp_config_override.disks`: a boot disk that outlives its instance would leak.
//!
//! # Delete
//! `instances.get` (404: already gone, success), refuse an instance without our deployment label,
//! `instances.delete?requestId=` (404 is success), then the operation is waited for. The boot disk
//! goes with the instance (`autoDelete`); we create no other disk, address or NIC that outlives it
//! (the public IP of a `ONE_TO_ONE_NAT` access config is ephemeral).
//!
//! # Errors
//! One map (`Error::into_provider`): statuses through [`crate::http`] (401 Auth, 403 Permission,
//! 404 NotFound, 409 Conflict, 429 RateLimited with `Retry-After`, 5xx Transient); a 403 whose reason
//! is `rateLimitExceeded`/`userRateLimitExceeded` is RateLimited, `quotaExceeded` OutOfCapacity, and
//! `accessNotConfigured`/`SERVICE_DISABLED` says the Compute Engine API is not enabled in the project.
//! Operation error codes `QUOTA_EXCEEDED` and `*RESOURCE_POOL_EXHAUSTED*` (e.g.
//! `ZONE_RESOURCE_POOL_EXHAUSTED`) are OutOfCapacity (the config backs off); other operation errors
//! follow the operation's `httpErrorStatusCode` (5xx Transient, 403 Permission, else Invalid).
//!
//! # Windows
//! A Windows image runs the script from the `windows-startup-script-ps1`/`-cmd`/`-bat` key of the
//! config's `gcp_startup_script_type` (or `sysprep-specialize-script-*` when the script's first line
//! holds `sysprep-specialize`); Windows passwords are not fetched (`windows_password` is NotSupported).

mod builder;
mod client;
mod credential;
pub mod dns;
pub mod labels;
mod preflight;

pub use credential::{GRANT_TYPE, REFRESH_MARGIN, SCOPE};
pub use preflight::{CHECKS, needed_permissions};

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::time::Duration;
use tokio::time::Instant;

use self::client::{Client, Instance, Operation};
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::GcpConfig;
const METADATA_VALUE_MAX: usize = GcpConfig::METADATA_VALUE_MAX;
use crate::http::HttpError;
use crate::model::{OsFamily, OwnerLabels};

/// The provider's short name.
pub const NAME: &str = "gcp";

/// The longest wait between two polls of an operation.
pub const MAX_POLL: Duration = Duration::from_secs(10);

/// The `requestId` of the claim's `instances.insert`: a UUID (version 8, RFC 9562) made from the
/// SHA-256 of the claim, so the same claim always sends the same one (and never the zero UUID the
/// API refuses).
pub fn request_id(claim: &str) -> String {
    uuid_of(&format!("kasm-autoscale/gcp/insert/{claim}"))
}

/// The `requestId` of the delete of instance `name` created at `created` (its `creationTimestamp`,
/// so a later instance of the same name gets another).
pub fn delete_request_id(name: &str, created: &str) -> String {
    uuid_of(&format!("kasm-autoscale/gcp/delete/{name}/{created}"))
}

fn uuid_of(text: &str) -> String {
    let h = sha2::Sha256::digest(text.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// Whether `name` is a legal instance name (`[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?`, the discovery
/// document's pattern for `instances.get`'s `instance`).
pub fn is_instance_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// A Google Cloud [`VmProvider`] bound to one VM-provider config. Build it with
/// [`GcpProvider::from_config`].
#[derive(Debug)]
pub struct GcpProvider {
    client: Client,
    config: GcpConfig,
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
    #[error("failed to {what}: operation {operation} failed: {}", describe(.codes, .message))]
    OperationFailed { what: String, operation: String, codes: Vec<String>, message: String, http: Option<u16> },
    #[error("failed to {what}: operation {operation} is not done after {secs} s")]
    Timeout { what: String, operation: String, secs: u64 },
    #[error("the startup script is {bytes} bytes; a GCP metadata value holds at most {METADATA_VALUE_MAX}")]
    ScriptTooLarge { bytes: usize },
    #[error("instance {name} was not made by kasm-autoscale (no kasm_autoscale_deployment label); not deleting it")]
    NotOurs { name: String },
    #[error("instance name {name} is taken by an instance of another claim; not touching it")]
    NameTaken { name: String },
}

fn describe(codes: &[String], message: &str) -> String {
    if codes.is_empty() { message.to_string() } else { format!("{}: {message}", codes.join(", ")) }
}

/// Whether an error code or reason says there is no capacity or quota for the instance.
fn is_capacity(code: &str) -> bool {
    code == "QUOTA_EXCEEDED" || code == "quotaExceeded" || code.contains("RESOURCE_POOL_EXHAUSTED")
}

impl Error {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    /// The one map from what went wrong to a [`ProviderError`] (see the module docs).
    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let (reasons, said) = client::api_error(&body);
                let text = if reasons.is_empty() {
                    format!("failed to {what}: HTTP {status}: {said}")
                } else {
                    format!("failed to {what}: HTTP {status} {}: {said}", reasons.join("/"))
                };
                let has = |r: &str| reasons.iter().any(|x| x == r);
                if has("accessNotConfigured") || has("SERVICE_DISABLED") {
                    return ProviderError::PermissionDenied {
                        provider: NAME,
                        message: format!(
                            "the Compute Engine API is not enabled in the project (enable compute.googleapis.com): {text}"
                        ),
                    };
                }
                if has("rateLimitExceeded") || has("userRateLimitExceeded") {
                    return ProviderError::RateLimited { provider: NAME, message: text, retry_after };
                }
                if reasons.iter().any(|r| is_capacity(r)) {
                    return ProviderError::OutOfCapacity { provider: NAME, message: text };
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
            Error::OperationFailed { codes, http, .. } => {
                if codes.iter().any(|c| is_capacity(c)) {
                    ProviderError::OutOfCapacity { provider: NAME, message }
                } else {
                    match http {
                        Some(500..=599) => ProviderError::Transient { provider: NAME, message },
                        Some(401) => ProviderError::Unauthenticated { provider: NAME, message },
                        Some(403) => ProviderError::PermissionDenied { provider: NAME, message },
                        Some(429) => ProviderError::RateLimited { provider: NAME, message, retry_after: None },
                        _ => ProviderError::Invalid { provider: NAME, message },
                    }
                }
            }
            Error::Credential { .. } => ProviderError::Unauthenticated { provider: NAME, message },
            Error::Decode { .. } | Error::Timeout { .. } => ProviderError::Transient { provider: NAME, message },
            Error::Config { .. } | Error::ScriptTooLarge { .. } | Error::NotOurs { .. } | Error::NameTaken { .. } => {
                ProviderError::Invalid { provider: NAME, message }
            }
        }
    }
}

/// The normalised state of an instance `status`.
fn state(status: &str) -> VmState {
    match status {
        "PROVISIONING" | "STAGING" | "PENDING" => VmState::Creating,
        "RUNNING" => VmState::Running,
        // TERMINATED is GCP's "stopped" (the instance and its disk still exist).
        "STOPPING" | "STOPPED" | "SUSPENDING" | "SUSPENDED" | "TERMINATED" | "PENDING_STOP" => VmState::Stopped,
        "DEPROVISIONING" => VmState::Deleting,
        // REPAIRING and anything newer.
        _ => VmState::Unknown,
    }
}

fn to_vm(i: &Instance) -> Vm {
    let nic = i.network_interfaces.first();
    Vm {
        id: i.name.clone(),
        name: i.name.clone(),
        state: state(&i.status),
        labels: labels::owner_labels(&i.labels),
        private_ip: nic.and_then(|n| n.network_ip.clone()),
        public_ip: i.network_interfaces.iter().flat_map(|n| n.access_configs.iter()).find_map(|a| a.nat_ip.clone()),
        created_at: i
            .creation_timestamp
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

/// Merges `over` into `base`: objects key by key (recursively), anything else replaced.
pub(crate) fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// `value` as a zonal partial URL `zones/<zone>/<kind>/<value>` unless it already is a path.
fn zonal(zone: &str, kind: &str, value: &str) -> String {
    if value.contains('/') { value.to_string() } else { format!("zones/{zone}/{kind}/{value}") }
}

impl GcpProvider {
    /// The `schemas.Instance` body for `spec` (see the module docs), the script's metadata key and
    /// value included. Public to the crate for tests.
    pub(crate) fn instance_body(&self, spec: &VmSpec, script: Option<&str>) -> Result<Value, Error> {
        let c = &self.config;
        let zone = c.gcp_zone.as_str();
        let ours = labels::for_owner(&spec.labels).map_err(|message| Error::Config { message })?;
        let mut all_labels: Map<String, Value> =
            c.gcp_custom_labels.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        for (k, v) in &ours {
            all_labels.insert(k.clone(), Value::from(v.clone()));
        }
        let mut init = json!({
            "sourceImage": c.gcp_image,
            // `diskSizeGb` is an int64, which the discovery format sends as a string.
            "diskSizeGb": c.gcp_boot_volume_gb.to_string(),
            "diskType": zonal(zone, "diskTypes", &c.gcp_disk_type),
            "labels": all_labels,
        });
        let mut disk = json!({"boot": true, "autoDelete": true, "type": "PERSISTENT", "mode": "READ_WRITE"});
        if let Some(k) = c.gcp_cmek.as_deref().filter(|k| !k.is_empty()) {
            disk["diskEncryptionKey"] = json!({"kmsKeyName": k});
            // The disk made from the image is encrypted with the key too.
            init["diskEncryptionKey"] = json!({"kmsKeyName": k});
        }
        disk["initializeParams"] = init;
        let mut nic = json!({"network": c.gcp_network, "subnetwork": c.gcp_subnetwork});
        if c.gcp_public_ip {
            nic["accessConfigs"] = json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]);
        }
        let script_key = script.map(|s| c.gcp_startup_script_type.metadata_key_for(s));
        let mut items: Vec<Value> = c
            .gcp_metadata
            .iter()
            .filter(|m| Some(m.key.as_str()) != script_key)
            .map(|m| json!({"key": m.key, "value": m.value}))
            .collect();
        if let (Some(k), Some(s)) = (script_key, script) {
            items.push(json!({"key": k, "value": s}));
        }
        let mut body = json!({
            "name": spec.name,
            "machineType": zonal(zone, "machineTypes", &c.gcp_machine_type),
            "labels": all_labels,
            "disks": [disk],
            "networkInterfaces": [nic],
        });
        if !c.gcp_network_tags.is_empty() {
            body["tags"] = json!({"items": c.gcp_network_tags.0});
        }
        if !items.is_empty() {
            body["metadata"] = json!({"items": items});
        }
        if let Some(sa) = &c.gcp_service_account {
            body["serviceAccounts"] = json!([{"email": sa.email, "scopes": sa.scopes}]);
        }
        if !c.gcp_guest_accelerators.is_empty() {
            let accs: Vec<Value> = c
                .gcp_guest_accelerators
                .iter()
                .map(|a| {
                    let t = if a.accelerator_type.contains('/') {
                        a.accelerator_type.clone()
                    } else {
                        format!("projects/{}/zones/{zone}/acceleratorTypes/{}", c.gcp_project, a.accelerator_type)
                    };
                    json!({"acceleratorType": t, "acceleratorCount": a.accelerator_count})
                })
                .collect();
            body["guestAccelerators"] = Value::from(accs);
            body["scheduling"] = json!({"onHostMaintenance": "TERMINATE"});
        }
        if let Some(o) = &c.gcp_config_override {
            deep_merge(&mut body, &Value::Object(o.0.clone()));
            body["name"] = Value::from(spec.name.clone());
            body["labels"] = Value::Object(all_labels);
        }
        let disks = body["disks"].as_array().cloned().unwrap_or_default();
        if disks.iter().any(|d| d["boot"] == true && d["autoDelete"] != true) {
            return Err(Error::Config {
                message: "gcp_config_override.disks: the boot disk must keep `autoDelete: true` (it would outlive the instance)"
                    .into(),
            });
        }
        Ok(body)
    }

    /// Waits for `op` to be `DONE` (bounded; see the module docs); its `error` fails.
    async fn wait(&self, mut op: Operation, what: &str) -> Result<(), Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let cap = MAX_POLL.max(self.timings.poll);
        let mut wait = self.timings.poll;
        loop {
            if op.status == "DONE" {
                return match op.error.filter(|e| !e.errors.is_empty()) {
                    None => Ok(()),
                    Some(e) => Err(Error::OperationFailed {
                        what: what.to_string(),
                        operation: op.name,
                        codes: e.errors.iter().map(|x| x.code.clone()).collect(),
                        message: e
                            .errors
                            .iter()
                            .map(|x| x.message.as_str())
                            .chain(op.http_error_message.as_deref())
                            .filter(|m| !m.is_empty())
                            .collect::<Vec<_>>()
                            .join("; "),
                        http: op.http_error_status_code,
                    }),
                };
            }
            if Instant::now() + wait > deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    operation: op.name,
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cap);
            op = self.client.operation(&op.name).await?;
        }
    }

    /// The instance of `name` when it is `claim`'s; an error when the name is another's.
    fn claims(&self, i: &Instance, claim: &str) -> Result<(), Error> {
        match labels::owner_labels(&i.labels).get(OwnerLabels::CLAIM) {
            Some(c) if c == claim => Ok(()),
            _ => Err(Error::NameTaken { name: i.name.clone() }),
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        if !is_instance_name(&spec.name) {
            return Err(Error::Config {
                message: format!("`{}` is not a legal GCP instance name ([a-z][-a-z0-9]*, at most 63)", spec.name),
            });
        }
        if spec.os != self.config.gcp_startup_script_type.os() {
            return Err(Error::Config {
                message: format!(
                    "a {} VM cannot run this config's gcp_startup_script_type `{}`",
                    os_name(spec.os),
                    crate::config::check::serde_name(&self.config.gcp_startup_script_type)
                ),
            });
        }
        let script = spec.startup_script.as_ref().map(|s| s.expose_secret().to_string()).filter(|s| !s.is_empty());
        if let Some(s) = &script
            && s.len() > METADATA_VALUE_MAX
        {
            return Err(Error::ScriptTooLarge { bytes: s.len() });
        }
        let claim = spec.claim.as_str();
        match self.client.instance(&spec.name).await {
            Ok(i) => {
                self.claims(&i, claim)?;
                tracing::info!(instance = %i.name, claim, "instance of this claim exists; resuming");
                return Ok(to_vm(&i));
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
        let body = self.instance_body(spec, script.as_deref())?;
        let secret = spec.startup_script.clone();
        let op = match self.client.insert(body, &request_id(claim), secret.as_ref()).await {
            Ok(op) => op,
            Err(e) if e.status() == Some(409) => {
                let i = self.client.instance(&spec.name).await?;
                self.claims(&i, claim)?;
                tracing::info!(instance = %i.name, claim, "instance already exists for this claim; resuming");
                return Ok(to_vm(&i));
            }
            Err(e) => return Err(e),
        };
        tracing::info!(instance = %spec.name, operation = %op.name, claim, "instance insert accepted");
        self.wait(op, "create the instance").await?;
        let i = self.client.instance(&spec.name).await?;
        Ok(to_vm(&i))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        // Not an instance name: no instance of ours has it.
        if !is_instance_name(id) {
            return Ok(());
        }
        let i = match self.client.instance(id).await {
            Ok(i) => i,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !labels::is_ours(&i.labels) {
            return Err(Error::NotOurs { name: i.name });
        }
        let rid = delete_request_id(&i.name, i.creation_timestamp.as_deref().unwrap_or_default());
        let op = match self.client.delete(id, &rid).await {
            Ok(op) => op,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self.wait(op, "delete the instance").await {
            Ok(()) => {}
            Err(Error::OperationFailed { codes, .. }) if codes.iter().any(|c| c == "RESOURCE_NOT_FOUND") => {}
            Err(e) => return Err(e),
        }
        tracing::info!(instance = id, "instance deleted (its boot disk with it)");
        Ok(())
    }

    async fn list(&self, owner: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        let filter = labels::filter(owner).map_err(|message| Error::Config { message })?;
        Ok(self.client.instances(&filter).await?.iter().map(to_vm).filter(|vm| owner.matches(&vm.labels)).collect())
    }
}

#[async_trait]
impl VmProvider for GcpProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        GcpProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { idempotency_token: true, windows_password: false, server_side_label_filter: true }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let not_found = || ProviderError::NotFound { provider: NAME, id: id.to_string() };
        if !is_instance_name(id) {
            return Err(not_found());
        }
        match self.client.instance(id).await {
            Ok(i) => Ok(to_vm(&i)),
            Err(e) if e.status() == Some(404) => Err(not_found()),
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

/// The OS family's name for messages.
fn os_name(os: OsFamily) -> &'static str {
    match os {
        OsFamily::Linux => "Linux",
        OsFamily::Windows => "Windows",
    }
}

#[cfg(test)]
mod tests;
