//! The Oracle Cloud Infrastructure (OCI) provider: one compute instance per claim, launched from the
//! config's image and shape into its subnet, with the packaged startup script as `user_data`, tagged
//! with our ownership labels as freeform tags. Requests are signed with the config's API key
//! ([`signer`], verified against Oracle's published test vector).
//!
//! # How `create_vm` works, and why
//! 1. **Find**: the instance of the claim is the one whose freeform tags carry the claim
//!    (`ListInstances` in the compartment, every page, `TERMINATING`/`TERMINATED` skipped). Found →
//!    step 3.
//! 2. **Launch**, one availability domain after the other in `oci_availability_domains`' order:
//!    `POST /20160918/instances` with `LaunchInstanceDetails` (compartment, AD, deterministic
//!    `displayName`, shape + `shapeConfig` for Flex shapes, image source with boot volume size and
//!    VPUs/GB, VNIC with subnet, NSGs and a public IP, `metadata` with `ssh_authorized_keys` and the
//!    base64 `user_data`, freeform tags = custom tags + ours on the instance and its VNIC), the config
//!    override merged over it in wire names, and `opc-retry-token` = the claim (`<claim>-<AD index>` in the next domains): OCI
//!    answers a repeated token with the instance the first request made, so a lost answer retried
//!    (now, or by the engine's next attempt) never makes a second instance. "Out of host capacity"
//!    (500 `InternalError`), `LimitExceeded` and `QuotaExceeded` move on to the next domain; when every
//!    domain refused, the error is [`ProviderError::OutOfCapacity`] naming the domains tried, and the
//!    config backs off.
//! 3. **Wait**: `GetInstance` every [`Timings::poll`] while the instance is `PROVISIONING`, for at most
//!    [`Timings::operation_timeout`]; an instance still provisioning then is returned as
//!    [`VmState::Creating`] (it exists and is ours; the engine's boot deadline covers it).
//! 4. **Tag the boot volume**: the launch request has no tags for it, so `ListBootVolumeAttachments`
//!    (the instance's availability domain) finds it, `GetBootVolume` reads its freeform tags, and
//!    `UpdateBootVolume` sends them with the instance's (custom + ours) when one is missing. A failure
//!    fails this create; the engine's next attempt finds the instance (step 1) and tags again. A boot
//!    volume not attached yet is tagged by a later `get_vm` of the running instance.
//! 5. **Addresses**: a running instance's primary VNIC (`ListVnicAttachments`, `GetVnic`) gives the
//!    [`Vm`]'s private and public IP (DNS registration uses them); `get_vm` reads them too.
//!
//! # Delete
//! `GetInstance` (404 or `TERMINATED`: gone, success), refuse an instance without a deployment tag,
//! then `DELETE /20160918/instances/{id}?preserveBootVolume=false`, which deletes the boot volume
//! with the instance; the VNIC and its ephemeral public IP go with the instance.
//!
//! # Errors
//! One map in `Error::into_provider`: 401 `NotAuthenticated` is Unauthenticated with a hint at the
//! key, fingerprint, OCIDs and the clock (OCI refuses signatures dated more than 5 minutes off);
//! 404 `NotAuthorizedOrNotFound` is NotFound on reads and deletes, and otherwise explained as "a missing
//! IAM policy or a wrong OCID" (OCI does not tell the two apart); 429 `TooManyRequests` is RateLimited
//! with `Retry-After`; capacity and limits are OutOfCapacity; other 4xx Invalid, 5xx Transient.
//!
//! # DNS
//! [`dns`]: the OCI DNS backend of the DNS port, signed with its own config's key the same way.
//!
//! # Windows
//! OCI's Windows images run `user_data` through cloudbase-init: the script is packaged with
//! `#ps1_sysnative` as its first line (the config's script rules).

mod builder;
pub(crate) mod client;
mod credential;
pub mod dns;
mod preflight;
pub mod signer;

pub use preflight::CHECKS;

use async_trait::async_trait;
use base64::Engine as _;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::providers::OciConfig;
use crate::http::HttpError;
use crate::model::OwnerLabels;
use crate::providers::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use client::{Client, CreateVnicDetails, Instance, LaunchInstanceDetails, ShapeConfig, SourceDetails};

const NAME: &str = "oci";

/// The OCI provider for one config.
#[derive(Debug)]
pub struct OciProvider {
    client: Client,
    config: OciConfig,
    launch_override: Map<String, Value>,
    timings: Timings,
    /// Instances whose boot volume carries our tags (so `get_vm` does not check again).
    boot_tagged: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// What went wrong inside the provider; converted to [`ProviderError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{message}")]
    Config { message: String },
    #[error("{message}")]
    Credential { message: String },
    #[error("failed to {what}: {source}")]
    Http { what: String, source: HttpError },
    #[error("failed to {what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
    #[error("instance {id} does not carry our deployment tag; it is not deleted")]
    NotOurs { id: String },
    #[error("out of capacity in every availability domain tried: {tried}")]
    NoCapacity { tried: String },
}

/// Whether an OCI error means no capacity or no quota (the config should back off, or the next
/// availability domain may have room).
fn says_no_capacity(status: u16, code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (status == 500 && m.contains("out of host capacity"))
        || matches!(code, "LimitExceeded" | "QuotaExceeded" | "OutOfHostCapacity")
        || m.contains("out of host capacity")
}

impl Error {
    /// `(status, code, message)` of an API refusal.
    fn api(&self) -> Option<(u16, String, String)> {
        match self {
            Error::Http { source: HttpError::Status { status, body, .. }, .. } => {
                let (code, message) = client::error_message(body);
                Some((status.as_u16(), code, message))
            }
            _ => None,
        }
    }

    /// The HTTP status of an API refusal.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    fn is_capacity(&self) -> bool {
        self.api().is_some_and(|(s, c, m)| says_no_capacity(s, &c, &m))
    }

    fn is_not_found(&self) -> bool {
        self.api().is_some_and(|(s, _, _)| s == 404)
    }

    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let (code, said) = client::error_message(&body);
                let mut text = if code.is_empty() {
                    format!("failed to {what}: {said}")
                } else {
                    format!("failed to {what}: {code}: {said}")
                };
                match status.as_u16() {
                    401 => {
                        text.push_str(
                            " (the request signature was refused: check oci_private_key, oci_public_key_fingerprint, \
                             oci_user_ocid, oci_tenancy_ocid, and this machine's clock: OCI refuses signatures dated \
                             more than 5 minutes off)",
                        );
                        return ProviderError::Unauthenticated { provider: NAME, message: text };
                    }
                    404 if code == "NotAuthorizedOrNotFound" => {
                        text.push_str(" (a missing IAM policy for this user's group, or a wrong OCID)");
                    }
                    s if says_no_capacity(s, &code, &said) => {
                        return ProviderError::OutOfCapacity { provider: NAME, message: text };
                    }
                    _ => {}
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
            Error::Decode { .. } => ProviderError::Transient { provider: NAME, message },
            Error::NoCapacity { .. } => ProviderError::OutOfCapacity { provider: NAME, message },
            Error::Config { .. } | Error::NotOurs { .. } => ProviderError::Invalid { provider: NAME, message },
        }
    }
}

/// The normalised state of an instance's `lifecycleState`.
fn state(lifecycle: &str) -> VmState {
    match lifecycle {
        "PROVISIONING" | "STARTING" | "MOVING" => VmState::Creating,
        "RUNNING" | "CREATING_IMAGE" => VmState::Running,
        "STOPPING" | "STOPPED" => VmState::Stopped,
        "TERMINATING" => VmState::Deleting,
        "TERMINATED" => VmState::Deleted,
        _ => VmState::Unknown,
    }
}

fn to_vm(i: Instance) -> Vm {
    Vm {
        state: state(&i.lifecycle_state),
        name: i.display_name.unwrap_or_default(),
        id: i.id,
        labels: i.freeform_tags,
        private_ip: None,
        public_ip: None,
        created_at: i.time_created,
    }
}

/// OCI's `baselineOcpuUtilization` name of a percentage (validated to be one of the three).
fn baseline(pct: f64) -> Option<String> {
    [(12.5, "BASELINE_1_8"), (50.0, "BASELINE_1_2"), (100.0, "BASELINE_1_1")]
        .iter()
        .find(|(p, _)| *p == pct)
        .map(|(_, name)| (*name).to_string())
}

impl OciProvider {
    /// The freeform tags of everything we create: the config's custom tags, then ours (ours win).
    fn tags(&self, labels: &OwnerLabels) -> BTreeMap<String, String> {
        let mut t: BTreeMap<String, String> =
            self.config.oci_custom_tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        t.extend(labels.to_map());
        t
    }

    /// The launch request for `spec` in availability domain `ad`, override merged, as wire JSON.
    fn launch_body(&self, spec: &VmSpec, ad: &str) -> Value {
        let c = &self.config;
        let tags = self.tags(&spec.labels);
        let mut metadata = BTreeMap::new();
        if let Some(key) = c.oci_ssh_public_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            metadata.insert("ssh_authorized_keys".to_string(), key.to_string());
        }
        if let Some(script) = &spec.startup_script {
            metadata.insert(
                "user_data".to_string(),
                base64::engine::general_purpose::STANDARD.encode(script.expose_secret().as_bytes()),
            );
        }
        let shape_config = c.is_flex().then(|| ShapeConfig {
            ocpus: c.oci_flex_cpus,
            memory_in_gbs: c.oci_flex_memory_gb,
            baseline_ocpu_utilization: c.oci_baseline_ocpu_utilization.and_then(baseline),
        });
        let details = LaunchInstanceDetails {
            availability_domain: ad.to_string(),
            compartment_id: c.oci_compartment_ocid.clone(),
            display_name: spec.name.clone(),
            shape: c.oci_shape.clone(),
            shape_config,
            source_details: SourceDetails {
                source_type: "image",
                image_id: c.oci_image_ocid.clone(),
                boot_volume_size_in_gbs: c.oci_boot_volume_gb,
                boot_volume_vpus_per_gb: c.oci_boot_volume_vpus_per_gb,
            },
            create_vnic_details: CreateVnicDetails {
                subnet_id: c.oci_subnet_ocid.clone(),
                nsg_ids: c.oci_nsg_ocids.to_vec(),
                assign_public_ip: true,
                freeform_tags: tags.clone(),
            },
            metadata,
            freeform_tags: tags,
        };
        let mut body = match serde_json::to_value(details) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        client::merge(&mut body, &self.launch_override);
        Value::Object(body)
    }

    /// The addresses (private, public) of a running instance's primary VNIC (`ListVnicAttachments`,
    /// then `GetVnic` of each attached VNIC until the primary one); none before it runs.
    async fn addresses(&self, inst: &Instance) -> Result<(Option<String>, Option<String>), Error> {
        if inst.lifecycle_state != "RUNNING" {
            return Ok((None, None));
        }
        let attachments = self.client.list_vnic_attachments(&self.config.oci_compartment_ocid, &inst.id).await?;
        let mut first = None;
        for id in attachments.iter().filter(|a| a.lifecycle_state == "ATTACHED").filter_map(|a| a.vnic_id.as_deref()) {
            let vnic = match self.client.get_vnic(id).await {
                Ok(v) => v,
                // Detached since it was listed.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let ips = (vnic.private_ip.filter(|s| !s.is_empty()), vnic.public_ip.filter(|s| !s.is_empty()));
            if vnic.is_primary == Some(true) {
                return Ok(ips);
            }
            first.get_or_insert(ips);
        }
        Ok(first.unwrap_or((None, None)))
    }

    /// The instance as a [`Vm`], with its addresses.
    async fn vm(&self, inst: Instance) -> Result<Vm, Error> {
        let (private_ip, public_ip) = self.addresses(&inst).await?;
        Ok(Vm { private_ip, public_ip, ..to_vm(inst) })
    }

    /// Tags the boot volume of our instance `inst` with the instance's freeform tags (custom + ours):
    /// `ListBootVolumeAttachments` in its availability domain, `GetBootVolume`, and `UpdateBootVolume`
    /// with the volume's tags and ours (ours win) when one of ours is missing, so a second call
    /// changes nothing. `Ok(true)` once a boot volume is seen carrying them; `Ok(false)` while the
    /// instance has no boot volume attached yet.
    async fn tag_boot_volume(&self, inst: &Instance) -> Result<bool, Error> {
        if inst.freeform_tags.get(OwnerLabels::DEPLOYMENT).is_none_or(|d| d.is_empty()) {
            return Ok(false);
        }
        let Some(ad) = inst.availability_domain.as_deref().filter(|a| !a.is_empty()) else { return Ok(false) };
        if self.boot_tagged.lock().is_ok_and(|t| t.contains(&inst.id)) {
            return Ok(true);
        }
        let attachments =
            self.client.list_boot_volume_attachments(ad, &self.config.oci_compartment_ocid, &inst.id).await?;
        let mut tagged = false;
        for a in attachments.iter().filter(|a| !matches!(a.lifecycle_state.as_str(), "DETACHING" | "DETACHED")) {
            let volume = match self.client.get_boot_volume(&a.boot_volume_id).await {
                Ok(v) => v,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if inst.freeform_tags.iter().any(|(k, v)| volume.freeform_tags.get(k) != Some(v)) {
                let mut tags = volume.freeform_tags.clone();
                tags.extend(inst.freeform_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                self.client.update_boot_volume_tags(&volume.id, &tags).await?;
            }
            tagged = true;
        }
        if tagged && let Ok(mut t) = self.boot_tagged.lock() {
            t.insert(inst.id.clone());
        }
        Ok(tagged)
    }

    /// After a launch (or finding the claim's instance): wait while it provisions, tag its boot
    /// volume (an error fails this create; the next attempt finds the instance and tags again), and
    /// read its addresses.
    async fn finish(&self, inst: Instance) -> Result<Vm, Error> {
        let inst = self.wait(inst).await?;
        self.tag_boot_volume(&inst).await?;
        self.vm(inst).await
    }

    async fn find(&self, labels: &OwnerLabels) -> Result<Vec<Instance>, Error> {
        let all = self.client.list_instances(&self.config.oci_compartment_ocid).await?;
        Ok(all
            .into_iter()
            .filter(|i| !matches!(i.lifecycle_state.as_str(), "TERMINATING" | "TERMINATED"))
            .filter(|i| labels.matches(&i.freeform_tags))
            .collect())
    }

    /// Polls `GetInstance` while `PROVISIONING`, bounded by the operation timeout.
    async fn wait(&self, mut inst: Instance) -> Result<Instance, Error> {
        let started = Instant::now();
        while inst.lifecycle_state == "PROVISIONING" && started.elapsed() < self.timings.operation_timeout {
            tokio::time::sleep(self.timings.poll).await;
            inst = self.client.get_instance(&inst.id).await?;
        }
        Ok(inst)
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        let claim = OwnerLabels { claim: Some(spec.claim.clone()), ..spec.labels.clone() };
        if let Some(found) = self.find(&claim).await?.into_iter().next() {
            return self.finish(found).await;
        }
        let mut tried = Vec::new();
        for (i, ad) in self.config.oci_availability_domains.iter().enumerate() {
            // The claim itself in the first domain; `<claim>-<index>` in the next ones (a new request).
            let token = if i == 0 { spec.claim.to_string() } else { format!("{}-{i}", spec.claim) };
            match self.client.launch_instance(&self.launch_body(spec, ad), &token).await {
                Ok(inst) => {
                    if !tried.is_empty() {
                        tracing::info!(claim = %spec.claim, availability_domain = %ad, tried = ?tried, "launched after other availability domains had no capacity");
                    }
                    return self.finish(inst).await;
                }
                Err(e) if e.is_capacity() => {
                    let said = e.api().map(|(_, c, m)| format!("{c}: {m}")).unwrap_or_default();
                    tracing::warn!(claim = %spec.claim, availability_domain = %ad, error = %said, "no capacity; trying the next availability domain");
                    tried.push(format!("{ad} ({said})"));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoCapacity { tried: tried.join(", ") })
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let inst = match self.client.get_instance(id).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if inst.lifecycle_state == "TERMINATED" {
            return Ok(());
        }
        // The deployment label marks an instance kasm-autoscale made; without it, it is never ours.
        if inst.freeform_tags.get(OwnerLabels::DEPLOYMENT).is_none_or(|d| d.is_empty()) {
            return Err(Error::NotOurs { id: id.to_string() });
        }
        match self.client.terminate_instance(id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

#[async_trait]
impl VmProvider for OciProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        OciProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { idempotency_token: true, ..Capabilities::default() }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let inst = self.client.get_instance(id).await.map_err(Error::into_provider)?;
        // A boot volume left untagged by its create (still attaching then) is tagged now; a failure
        // here is logged and tried again on the next read, never fails the read.
        if inst.lifecycle_state == "RUNNING"
            && let Err(e) = self.tag_boot_volume(&inst).await
        {
            tracing::warn!(instance = %inst.id, error = %e.into_provider(), "could not tag the boot volume; trying again on the next read");
        }
        self.vm(inst).await.map_err(Error::into_provider)
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.delete(id).await.map_err(Error::into_provider)
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        let found = self.find(labels).await.map_err(Error::into_provider)?;
        Ok(found.into_iter().map(to_vm).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_states_are_normalised() {
        assert_eq!(state("PROVISIONING"), VmState::Creating);
        assert_eq!(state("RUNNING"), VmState::Running);
        assert_eq!(state("STOPPED"), VmState::Stopped);
        assert_eq!(state("TERMINATING"), VmState::Deleting);
        assert_eq!(state("TERMINATED"), VmState::Deleted);
        assert_eq!(state("SOMETHING_NEW"), VmState::Unknown);
    }

    #[test]
    fn capacity_answers_are_recognised() {
        assert!(says_no_capacity(500, "InternalError", "Out of host capacity."));
        assert!(says_no_capacity(400, "LimitExceeded", "The following service limits were exceeded"));
        assert!(says_no_capacity(400, "QuotaExceeded", "quota"));
        assert!(!says_no_capacity(500, "InternalError", "something else"));
        assert!(!says_no_capacity(400, "InvalidParameter", "bad shape"));
    }
}
