//! The VMware vSphere provider (vSphere Automation REST, `/api`; vim25 SOAP, `/sdk`, for linked
//! clones, datastore clusters and `preflight`'s privilege check only): one VM per claim, a full or linked clone of the config's
//! template with the config's CPUs and memory, our labels in a data set on the VM, and the startup
//! script run inside the guest through VMware Tools guest operations.
//!
//! # How `create_vm` works, and why
//! The API has no idempotency token, so `create_vm` is a lookup before a clone, and every step after
//! the clone can be repeated:
//!
//! 1. **Find**: `GET /api/vcenter/vm?names=<name>&datacenters=<dc>`. A VM of that name whose data
//!    set carries this claim is ours: resume at step 4. One without our data set is the clone of a
//!    crashed earlier attempt (the name holds the claim's unique id): it is labelled at step 4. One
//!    whose data set names another claim or deployment is refused (never adopted or replaced).
//! 2. **Resolve** the datacenter, the template (`GET /api/vcenter/vm?names=`), and the optional
//!    folder (a `/` path walked with `parent_folders`), cluster, resource pool and datastore
//!    (`GET /api/vcenter/<kind>?names=…&datacenters=…`); each must name exactly one object, else a
//!    config error naming the field. Unset ones are left out of the placement, so vCenter uses the
//!    template's (as Kasm's documentation says).
//! 3. **Clone**: `POST /api/vcenter/vm?action=clone&vmw-task=true` with `{name, source, placement,
//!    power_on: false}`, sent once (a lost answer is retryable, and the next attempt finds the VM at
//!    step 1); the task (`GET /api/cis/tasks/{task}`) is polled until `SUCCEEDED`; its `result` is the
//!    VM's id.
//!
//!    **Or deploy from a content library**, when no VM of the datacenter has the template's name:
//!    `POST /api/content/library/item?action=find` with `{"name": <vm_template_name>}` lists the
//!    library items of that name (matched case-insensitively by vCenter, so each item's own `name` is
//!    read, `GET /api/content/library/item/{item}`, and compared exactly); `GET
//!    /api/vcenter/vm-template/library-items/{item}` tells a VM template (its info) from any other
//!    item (`null`); exactly one VM template must remain. It is deployed with `POST
//!    /api/vcenter/vm-template/library-items/{item}?action=deploy` and the `DeploySpec` `{name,
//!    placement: {folder, resource_pool, cluster}, vm_home_storage: {datastore}, disk_storage:
//!    {datastore}, powered_on: false}` (the configured objects only), sent once. The API has no task
//!    form of the deploy: it answers the VM's id when the copy is done, so this one request may take
//!    up to [`Timings::operation_timeout`]; a lost answer is found at step 1 like a clone's. Steps 4
//!    to 8 are the same. Sources: the API metadata (operations `content.library.item.find`,
//!    `content.library.item.get`, `vm_template.library_items.get`/`deploy`, struct
//!    `deploy_spec`) and VMware's reference for the `?action=deploy` form and the `null` answer
//!    (<https://developer.broadcom.com/xapis/vsphere-automation-api/latest/api/vcenter/vm-template/library-items/templateLibraryItem__action=deploy/post>,
//!    <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/api/vcenter/vm-template/library-items/templateLibraryItem/get>).
//!    **Or through vim25** ([`vim25`]), when `clone_type: linked` or `datastore_cluster_name` is set
//!    (no `/api` operation does either): the template is read by its `/api` id over vim25 and its
//!    `name` compared (the ids being the same is not documented; a mismatch fails loudly); a linked
//!    clone finds `vm_snapshot_name` in its `snapshot.rootSnapshotList` tree (exactly one) and calls
//!    `CloneVM_Task` with `VirtualMachineCloneSpec{location: {datastore?, diskMoveType:
//!    createNewChildDiskBacking, pool}, template: false, powerOn: false, snapshot}`; a datastore
//!    cluster (found with `SearchIndex.FindChild` below the datacenter's `datastoreFolder`) goes
//!    through `RecommendDatastores` (`StoragePlacementSpec{type: clone, vm, podSelectionSpec,
//!    cloneSpec, cloneName, folder}`) and `ApplyStorageDrsRecommendation_Task` with the first
//!    recommendation. The vim25 task is polled (bounded) until `success`; its result is the VM. Steps
//!    4 to 8 are the same.
//! 4. **Label**: the data set [`labels::DATA_SET`] (`POST /api/vcenter/vm/{vm}/data-sets`, host
//!    read-write, guest no access, left out of snapshots and clones) when the VM has none.
//! 5. **Size**: while the VM is off, `PATCH …/hardware/cpu {count}` and `…/hardware/memory
//!    {size_MiB}` when they differ from the config.
//! 6. **Power on**: `POST …/power?action=start` when it is not on.
//! 7. **SSH key** (with `vm_ssh_public_key`, while the data set records no script start): wait for
//!    guest operations as below, run `key_command` as the guest user and poll it to an exit code; a
//!    non-zero code fails the create (`Error::KeyFailed`). The command is idempotent, so a create that
//!    dies between the key and the script runs it again harmlessly.
//!
//!    With `startup_script_method: cloud_init` steps 7 and 8 are replaced: before step 6, while the
//!    VM is off and no progress is recorded, `PUT …/guest/customization` sets the script as raw
//!    cloud-init user data (`Client::set_cloud_init`); the power-on applies it; the data
//!    set then records `script=done` (the script's exit code is not visible; the agent checking in
//!    is). A VM found on with no progress recorded was powered on by an earlier attempt after its
//!    customization was set, so only the progress is recorded.
//! 8. **Script** (when there is one and the data set does not record it as done): wait until
//!    VMware Tools runs and guest operations are ready (bounded by [`Timings::guest_wait`]; the next
//!    attempt resumes the wait), upload it (`POST …/guest/filesystem?action=create` → `PUT` the bytes
//!    to the returned ESXi URL), start it (`POST …/guest/processes?action=create`: `/bin/bash` on
//!    Linux, PowerShell on Windows; the file removes itself after the run), record its pid in the data
//!    set, poll `POST …/guest/processes/{pid}?action=get` until it has an `exit_code`, and record
//!    `script=done` on 0. A non-zero exit code fails the create naming the code, never the script.
//!
//! # Ownership: a data set, and why
//! The API offers no tags and no annotation field; data sets are its only key/value store on a VM
//! (see [`labels`]). They need vSphere 8.0 U1 or later and VM hardware version 20 or later (VMware's
//! data-sets documentation; not in the API metadata): on older vCenters, labelling fails loudly with
//! the API's answer. `list_vms` reads every VM of the datacenter and the data sets of each (the API
//! cannot filter VMs by data set): one request per VM per listing.
//!
//! # Delete
//! `GET /api/vcenter/vm/{vm}` (404: gone, success), refuse a VM whose data set is not ours, power it
//! off hard (`…/power?action=stop`; "already in desired state" is fine), `DELETE
//! /api/vcenter/vm/{vm}` (404 is success). A full clone's disks are its own and go with it; the data
//! set is part of the VM; nothing else is created.
//!
//! # Errors
//! One map (`Error::into_provider`): 401 Unauthenticated (`UNAUTHENTICATED`: bad credentials or a
//! session vCenter no longer knows, after one new session), 403 PermissionDenied (`UNAUTHORIZED`: the
//! role lacks a privilege), 404 NotFound, `RESOURCE_BUSY`/`CONCURRENT_CHANGE` Conflict, 429
//! RateLimited, 5xx Transient, `UNABLE_TO_ALLOCATE_RESOURCE` (in an answer or a failed clone task)
//! and clone failures saying the datastore or host lacks space or resources OutOfCapacity. vim25
//! faults by type (`fault_class`): `NotAuthenticated`/`InvalidLogin` Unauthenticated,
//! `NoPermission` PermissionDenied, the `InsufficientResourcesFault` family and `NoDiskSpace`
//! OutOfCapacity.

mod builder;
mod client;
mod credential;
pub mod labels;
mod preflight;
pub mod vim25;

pub use credential::SESSION_HEADER;
pub use preflight::{CHECKS, NOT_CHECKED, On, PRIVILEGES, Privilege, source_url};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::time::Instant;

use self::client::{
    Client, ClonePlacement, CloneSpec, DataSetCreate, DeployPlacement, DeploySpec, DeployStorage, GuestCredentials,
};
use self::labels::Script;
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::SecretRef;
use crate::config::providers::{VsphereCloneType, VsphereConfig};
use crate::http::HttpError;
use crate::model::{OsFamily, OwnerLabels};
use crate::secrets::Secrets;

/// The provider's short name.
pub const NAME: &str = "vsphere";

/// The longest wait between two polls of a task, of VMware Tools or of the script's process.
pub const MAX_POLL: Duration = Duration::from_secs(10);

/// The longest [`VmProvider::shutdown`] waits for vCenter to end the session.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// PowerShell on Windows guests (the system's Windows PowerShell 5.1).
pub const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";

/// A vSphere [`VmProvider`] bound to one VM-provider config. Build it with
/// [`VsphereProvider::from_config`].
pub struct VsphereProvider {
    client: Client,
    vim: vim25::Vim,
    config: VsphereConfig,
    timings: Timings,
    secrets: std::sync::Arc<dyn Secrets>,
}

impl std::fmt::Debug for VsphereProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsphereProvider")
            .field("config", &self.config.name)
            .field("base", &self.client.base_url())
            .finish()
    }
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
    #[error("the task {task} to {what} ended {status}: {error_type}: {detail}")]
    TaskFailed { what: String, task: String, status: String, error_type: String, detail: String },
    #[error("{what}: still not done after {secs} s ({detail})")]
    Timeout { what: String, secs: u64, detail: String },
    #[error("VM {id} was not made by kasm-autoscale (it has no data set `kasm-autoscale` of ours); not deleting it")]
    NotOurs { id: String },
    #[error("a VM named `{name}` exists and was not made for this claim; not cloning another of that name")]
    NameTaken { name: String },
    #[error("the startup script on VM {id} exited with code {code} (run as guest user `{user}`)")]
    ScriptFailed { id: String, code: i64, user: String },
    #[error(
        "installing vm_ssh_public_key for guest user `{user}` on VM {id} exited with code {code}{}",
        if *code == 3 { " (the user has no home directory)" } else { "" }
    )]
    KeyFailed { id: String, code: i64, user: String },
    /// A vim25 (SOAP) fault, answered to a call or ending a task.
    #[error("failed to {what}: {kind}: {message}")]
    Fault { what: String, kind: String, message: String },
}

/// The class of a vim25 fault type: `NotAuthenticated` (a subtype of `NoPermission`, so tested
/// first) and `InvalidLogin` are authentication, `NoPermission` a missing privilege, the capacity
/// family ([`vim25::CAPACITY_FAULTS`]) OutOfCapacity, `ManagedObjectNotFound` Invalid (a
/// reference that names nothing: a config, or an `/api` id that is no vim25 reference), the request faults (`InvalidArgument`, `InvalidRequest`, `InvalidType`, `MethodNotFound`,
/// `NotSupported`) Invalid, anything else Transient.
pub(crate) fn fault_class(kind: &str, message: String) -> ProviderError {
    match kind {
        "NotAuthenticated" => ProviderError::Unauthenticated { provider: NAME, message },
        k if vim25::LOGIN_FAULTS.contains(&k) => ProviderError::Unauthenticated { provider: NAME, message },
        "NoPermission" => ProviderError::PermissionDenied { provider: NAME, message },
        k if vim25::CAPACITY_FAULTS.contains(&k) => ProviderError::OutOfCapacity { provider: NAME, message },
        "ManagedObjectNotFound" => ProviderError::Invalid { provider: NAME, message },
        "InvalidArgument" | "InvalidRequest" | "InvalidType" | "MethodNotFound" | "NotSupported" => {
            ProviderError::Invalid { provider: NAME, message }
        }
        _ => ProviderError::Transient { provider: NAME, message },
    }
}

/// Whether a failed clone says the datastore or the hosts lack room. The API metadata lists the
/// clone's `unable_to_allocate_resource` error (matched by type); the phrases are vCenter's task
/// messages for a full datastore and for admission control ("Insufficient disk space on datastore",
/// "Insufficient resources to satisfy configured failover level", "not enough ... resources"),
/// as VMware's knowledge base quotes them, not from the metadata. Unmatched failures stay Transient.
pub fn says_no_capacity(error_type: &str, detail: &str) -> bool {
    if error_type == "UNABLE_TO_ALLOCATE_RESOURCE" {
        return true;
    }
    let m = detail.to_ascii_lowercase();
    [
        "insufficient disk space",
        "insufficient resources",
        "insufficient memory",
        "not enough",
        "no space left",
        "out of space",
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

    /// The vAPI `error_type` of an API error.
    pub(crate) fn error_type(&self) -> Option<String> {
        match self {
            Error::Http { source: HttpError::Status { body, .. }, .. } => {
                Some(client::error_of_body(body).error_type).filter(|t| !t.is_empty())
            }
            _ => None,
        }
    }

    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let e = client::error_of_body(&body);
                let text = if e.error_type.is_empty() {
                    format!("failed to {what}: {}", e.message)
                } else {
                    format!("failed to {what}: {}: {}", e.error_type, e.message)
                };
                match e.error_type.as_str() {
                    "UNABLE_TO_ALLOCATE_RESOURCE" => ProviderError::OutOfCapacity { provider: NAME, message: text },
                    "RESOURCE_BUSY" | "CONCURRENT_CHANGE" if status.as_u16() != 401 && status.as_u16() != 403 => {
                        ProviderError::Conflict { provider: NAME, message: text }
                    }
                    _ => ProviderError::from_status(NAME, status, &text, retry_after),
                }
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
            Error::TaskFailed { ref error_type, ref detail, .. } if says_no_capacity(error_type, detail) => {
                ProviderError::OutOfCapacity { provider: NAME, message }
            }
            Error::Decode { .. } | Error::Timeout { .. } | Error::TaskFailed { .. } => {
                ProviderError::Transient { provider: NAME, message }
            }
            Error::Config { .. }
            | Error::NotOurs { .. }
            | Error::NameTaken { .. }
            | Error::ScriptFailed { .. }
            | Error::KeyFailed { .. } => ProviderError::Invalid { provider: NAME, message },
            Error::Fault { ref kind, .. } => fault_class(kind, message),
        }
    }
}

/// The cloud-init metadata of VM `name` (`startup_script_method: cloud_init`): the standard meta-data
/// keys `instance-id` and `local-hostname`, as JSON (the API takes JSON or YAML). No `network`: cloud-init
/// then applies its fallback networking (DHCP on the first NIC).
pub fn cloud_init_metadata(name: &str) -> String {
    serde_json::json!({"instance-id": name, "local-hostname": name}).to_string()
}

/// The normalised state of a VM's `power_state`.
fn state(power: &str) -> VmState {
    match power {
        "POWERED_ON" => VmState::Running,
        "POWERED_OFF" | "SUSPENDED" => VmState::Stopped,
        _ => VmState::Unknown,
    }
}

/// A guest file name made of `name` (`A-Z a-z 0-9 . _ -` kept, others `_`).
fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// Where the script goes in the guest and how it is run: `(path, program, arguments)`. The run
/// removes the file (it holds the manager token) and exits with the script's own code.
pub(crate) fn script_command(os: OsFamily, name: &str) -> (String, String, String) {
    let stem = file_stem(name);
    match os {
        OsFamily::Windows => {
            let path = format!(r"C:\Windows\Temp\kasm-autoscale-{stem}.ps1");
            let args = format!(
                "-NoProfile -NonInteractive -ExecutionPolicy Bypass -Command \"& '{path}'; $rc = $LASTEXITCODE; \
                 Remove-Item -Force '{path}'; exit $rc\""
            );
            (path, POWERSHELL.to_string(), args)
        }
        _ => {
            let path = format!("/tmp/kasm-autoscale-{stem}.sh");
            let args = format!("-c '/bin/bash {path}; rc=$?; rm -f {path}; exit $rc'");
            (path, "/bin/bash".to_string(), args)
        }
    }
}

/// How the guest user's SSH key is installed on a Linux guest: `(program, arguments)`. The key is the
/// script's `$1` (one single-quoted word: `is_openssh_public_key` allows no `'`); the home directory
/// comes from the passwd database (`getent`), not from `$HOME`, which guest operations need not set;
/// `~/.ssh` is made 0700 and `authorized_keys` 0600 when created (umask 077), and the line is appended
/// only when absent, so a repeated run changes nothing. Exit code 3: the user has no home directory.
pub(crate) fn key_command(key: &str) -> (String, String) {
    let script = r#"k="$1"; h=$(getent passwd "$(id -un)" | cut -d: -f6); [ -n "$h" ] || exit 3; umask 077; mkdir -p "$h/.ssh" && { grep -qxF "$k" "$h/.ssh/authorized_keys" 2>/dev/null || printf '%s\n' "$k" >> "$h/.ssh/authorized_keys"; }"#;
    ("/bin/bash".to_string(), format!("-c '{}' kasm-autoscale '{key}'", script.replace('\'', r"'\''")))
}

/// Our data set of a VM: `(id, description)`, `None` when it has none.
type OurSet = Option<(String, String)>;

/// What the VMs are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    /// A VM or template of the inventory (its id): full clone.
    Vm(String),
    /// A content-library item holding a VM template (the item's id): deploy.
    Library(String),
}

impl VsphereProvider {
    async fn wait<T, F, Fut>(&self, what: &str, limit: Duration, poll: Duration, mut step: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, String>, Error>>,
    {
        let deadline = Instant::now() + limit;
        let cap = MAX_POLL.max(poll);
        let mut wait = poll;
        loop {
            let detail = match step().await? {
                Ok(v) => return Ok(v),
                Err(detail) => detail,
            };
            if Instant::now() + wait > deadline {
                return Err(Error::Timeout { what: what.into(), secs: limit.as_secs(), detail });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cap);
        }
    }

    /// The data set named [`labels::DATA_SET`] of `vm`. A VM whose data sets cannot be read because
    /// the feature is missing (`UNSUPPORTED`, an old VM hardware version) has none.
    async fn our_set(&self, vm: &str) -> Result<OurSet, Error> {
        match self.client.data_sets(vm).await {
            Ok(sets) => Ok(sets.into_iter().find(|s| s.name == labels::DATA_SET).map(|s| (s.data_set, s.description))),
            Err(e) if e.error_type().as_deref() == Some("UNSUPPORTED") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The one object of `kind` named `name` in the datacenter (`field` names the config field).
    async fn one(
        &self,
        kind: &str,
        id_field: &str,
        field: &str,
        name: &str,
        mut query: Vec<(&str, String)>,
    ) -> Result<String, Error> {
        query.push(("names", name.to_string()));
        let found = self.client.inventory(kind, query, &format!("look up {field} `{name}`")).await?;
        let ids: Vec<String> = found.iter().filter_map(|v| v[id_field].as_str().map(str::to_string)).collect();
        match ids.len() {
            1 => Ok(ids.into_iter().next().expect("one")),
            0 => Err(Error::Config {
                message: format!(
                    "{field}: no {kind} named `{name}` in vCenter {}",
                    self.config.vsphere_vcenter_address
                ),
            }),
            n => Err(Error::Config {
                message: format!("{field}: {n} objects of kind {kind} are named `{name}`; the name must be unique"),
            }),
        }
    }

    async fn datacenter(&self) -> Result<String, Error> {
        self.one("datacenter", "datacenter", "datacenter_name", &self.config.datacenter_name, Vec::new()).await
    }

    /// The VMs named exactly `name` in datacenter `dc`.
    async fn by_name(&self, name: &str, dc: &str) -> Result<Vec<client::VmSummary>, Error> {
        let q = vec![("names", name.to_string()), ("datacenters", dc.to_string())];
        Ok(self.client.vms(q).await?.into_iter().filter(|v| v.name == name).collect())
    }

    /// What `vm_template_name` names: a VM of the datacenter (cloned), else a content-library item
    /// holding a VM template (deployed); see the module docs.
    async fn template(&self, dc: &str) -> Result<Template, Error> {
        let name = &self.config.vm_template_name;
        let mut found = self.by_name(name, dc).await?;
        match found.len() {
            1 => return Ok(Template::Vm(found.remove(0).vm)),
            0 => {}
            n => {
                return Err(Error::Config {
                    message: format!("vm_template_name: {n} VMs are named `{name}`; the template must be unique"),
                });
            }
        }
        // Not in the inventory: a VM template in a content library. `find` matches names
        // case-insensitively, so each item's own name is compared exactly.
        let mut items = Vec::new();
        let mut not_templates = Vec::new();
        for id in self.client.find_library_items(name).await? {
            if self.client.library_item(&id).await?.name.as_deref() != Some(name.as_str()) {
                continue;
            }
            match self.client.library_vm_template(&id).await? {
                Some(_) => items.push(id),
                None => not_templates.push(id),
            }
        }
        match items.len() {
            1 => Ok(Template::Library(items.remove(0))),
            0 if !not_templates.is_empty() => Err(Error::Config {
                message: format!(
                    "vm_template_name: the content-library item `{name}` ({}) holds no VM template (an OVF \
                     package?); only VM templates can be deployed",
                    not_templates.join(", ")
                ),
            }),
            0 => Err(Error::Config {
                message: format!(
                    "vm_template_name: no VM or template named `{name}` in datacenter `{}`, and no content-library \
                     VM template of that name",
                    self.config.datacenter_name
                ),
            }),
            n => Err(Error::Config {
                message: format!(
                    "vm_template_name: {n} content-library VM templates are named `{name}` ({}); the name must be unique",
                    items.join(", ")
                ),
            }),
        }
    }

    /// Clones the VM `source` as `name` with our placement, powered off; answers the VM's id.
    async fn clone_template(&self, source: String, name: &str, dc: &str) -> Result<String, Error> {
        let placement = self.placement(dc).await?;
        let placement = (placement != ClonePlacement::default()).then_some(placement);
        let task =
            self.client.clone_vm(&CloneSpec { name: name.to_string(), source, placement, power_on: false }).await?;
        tracing::info!(task = %task, name, "clone accepted");
        let done = self.wait_task(&task, "clone the template").await?;
        match done.result.as_ref().and_then(|r| r.as_str()) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => self.by_name(name, dc).await?.into_iter().next().map(|v| v.vm).ok_or_else(|| Error::Decode {
                what: "clone the template".into(),
                message: format!("task {task} succeeded, but names no VM and none is named `{name}`"),
            }),
        }
    }

    /// Whether VMs are made through vim25: a linked clone, or a datastore cluster.
    fn uses_vim25(&self) -> bool {
        self.config.clone_type == VsphereCloneType::Linked || self.config.datastore_cluster_name.is_some()
    }

    /// The template `source` (an `/api` id) read over vim25, with `paths`. The `/api` id is used as
    /// the vim25 reference value, which VMware does not document: the template's vim25 `name` must be
    /// `vm_template_name`, else this fails naming both.
    async fn vim_template(&self, source: &str, paths: &[&str]) -> Result<Vec<(String, vim25::Node)>, Error> {
        let what = format!("read the template `{}` ({source}) over vim25", self.config.vm_template_name);
        // Invalid, not transient: another attempt reads the same ids.
        let premise = || Error::Config {
            message: format!(
                "failed to {what}: the vSphere Automation id `{source}` of vm_template_name `{}` names no vim25 VirtualMachine of that \
                 name on this vCenter; kasm-autoscale uses /api ids as vim25 references (VMware does not document \
                 that they are the same), so linked clones and datastore clusters cannot be used here",
                self.config.vm_template_name
            ),
        };
        let mut all = vec!["name"];
        all.extend_from_slice(paths);
        let props = match self.vim.properties(&vim25::MoRef::new("VirtualMachine", source), &all, &what).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(premise()),
            Err(Error::Fault { kind, .. }) if kind == "ManagedObjectNotFound" => return Err(premise()),
            Err(e) => return Err(e),
        };
        let name = props.iter().find(|(n, _)| n == "name").map(|(_, v)| v.text.trim().to_string());
        if name.as_deref() != Some(self.config.vm_template_name.as_str()) {
            return Err(premise());
        }
        Ok(props)
    }

    /// The linked clone's snapshot: `vm_snapshot_name` in the template's snapshot tree.
    async fn vim_snapshot(&self, source: &str) -> Result<vim25::MoRef, Error> {
        let name = self.config.vm_snapshot_name.as_deref().unwrap_or_default();
        let props = self.vim_template(source, &["snapshot"]).await?;
        let info = props.iter().find(|(n, _)| n == "snapshot").map(|(_, v)| v);
        vim25::find_snapshot(info, name).map_err(|message| Error::Config { message })
    }

    /// The datastore cluster (StoragePod) `datastore_cluster_name` in the datacenter: a `/` path
    /// below the datacenter's datastore folder (`Datacenter.datastoreFolder`), walked with
    /// `SearchIndex.FindChild`; the last step must be a StoragePod.
    async fn vim_pod(&self, dc: &str) -> Result<vim25::MoRef, Error> {
        let path = self.config.datastore_cluster_name.as_deref().unwrap_or_default();
        let what = format!("find datastore_cluster_name `{path}`");
        let dc_ref = vim25::MoRef::new("Datacenter", dc);
        let props = self.vim.properties(&dc_ref, &["datastoreFolder"], &what).await?.unwrap_or_default();
        let mut at =
            props.iter().find(|(n, _)| n == "datastoreFolder").and_then(|(_, v)| v.as_moref()).ok_or_else(|| {
                Error::Decode {
                    what: what.clone(),
                    message: format!(
                        "the datacenter {dc} has no datastoreFolder over vim25 (is {dc} its vim25 reference?)"
                    ),
                }
            })?;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            at = self.vim.find_child(&at, seg, &what).await?.ok_or_else(|| Error::Config {
                message: format!(
                    "datastore_cluster_name: no `{seg}` in the datastore folder of datacenter `{}`",
                    self.config.datacenter_name
                ),
            })?;
        }
        if at.kind != "StoragePod" {
            return Err(Error::Config {
                message: format!(
                    "datastore_cluster_name: `{path}` is a {} ({}), not a datastore cluster",
                    at.kind, at.value
                ),
            });
        }
        Ok(at)
    }

    /// Makes the VM through vim25 (see the module docs): a linked clone from `vm_snapshot_name`
    /// and/or a Storage DRS placement in `datastore_cluster_name`; answers the new VM's id.
    async fn clone_vim25(&self, source: &str, name: &str, dc: &str) -> Result<String, Error> {
        let p = self.placement(dc).await?;
        let template = vim25::MoRef::new("VirtualMachine", source);
        let props = self.vim_template(source, &["parent", "resourcePool"]).await?;
        let prop = |n: &str| props.iter().find(|(k, _)| k == n).and_then(|(_, v)| v.as_moref());
        let folder = match &p.folder {
            Some(f) => vim25::MoRef::new("Folder", f),
            None => prop("parent").filter(|m| m.kind == "Folder").ok_or_else(|| Error::Config {
                message: "vm_folder: the template is not in a VM folder; name the clones' folder".into(),
            })?,
        };
        let pool = match (&p.resource_pool, &p.cluster) {
            (Some(rp), _) => vim25::MoRef::new("ResourcePool", rp),
            (None, Some(cl)) => {
                let what = format!(
                    "read the root resource pool of cluster_name `{}`",
                    self.config.cluster_name.as_deref().unwrap_or_default()
                );
                let c = self
                    .vim
                    .properties(&vim25::MoRef::new("ClusterComputeResource", cl), &["resourcePool"], &what)
                    .await?;
                c.unwrap_or_default()
                    .iter()
                    .find(|(k, _)| k == "resourcePool")
                    .and_then(|(_, v)| v.as_moref())
                    .ok_or_else(|| Error::Decode {
                        what,
                        message: format!("the cluster {cl} has no resourcePool over vim25"),
                    })?
            }
            (None, None) => prop("resourcePool").ok_or_else(|| Error::Config {
                message: "resource_pool: the template has no resource pool (a template, not a VM); name \
                          `resource_pool` or `cluster_name`"
                    .into(),
            })?,
        };
        let linked = self.config.clone_type == VsphereCloneType::Linked;
        let snapshot = if linked { Some(self.vim_snapshot(source).await?) } else { None };
        let pod = match self.config.datastore_cluster_name {
            Some(_) => Some(self.vim_pod(dc).await?),
            None => None,
        };
        // VirtualMachineRelocateSpec fields in WSDL order: datastore, diskMoveType, pool.
        let mut location = String::new();
        if let (Some(ds), None) = (&p.datastore, &pod) {
            location.push_str(&vim25::moref("datastore", &vim25::MoRef::new("Datastore", ds)));
        }
        if linked {
            location.push_str(&vim25::text("diskMoveType", vim25::LINKED_DISK_MOVE));
        }
        location.push_str(&vim25::moref("pool", &pool));
        // VirtualMachineCloneSpec fields in WSDL order: location, template, powerOn, snapshot.
        let clone_spec = |tag: &str| {
            let mut s = vim25::el("location", &location);
            s.push_str(&vim25::text("template", "false"));
            s.push_str(&vim25::text("powerOn", "false"));
            if let Some(snap) = &snapshot {
                s.push_str(&vim25::moref("snapshot", snap));
            }
            vim25::el(tag, &s)
        };
        let vm = match &pod {
            None => {
                let what =
                    if linked { "make the linked clone (CloneVM_Task)" } else { "clone the template (CloneVM_Task)" };
                let params =
                    format!("{}{}{}", vim25::moref("folder", &folder), vim25::text("name", name), clone_spec("spec"));
                let r = self.vim.call("CloneVM_Task", &template, &params, what, false).await?;
                let task = r
                    .child("returnval")
                    .and_then(vim25::Node::as_moref)
                    .ok_or_else(|| Error::Decode { what: what.into(), message: "the answer names no task".into() })?;
                tracing::info!(task = %task.value, name, linked, "vim25 clone accepted");
                let result = self.wait_vim_task(&task, what).await?;
                result.as_moref()
            }
            Some(pod) => {
                let what = "ask Storage DRS to place the clone (RecommendDatastores)";
                // StoragePlacementSpec fields in WSDL order: type, vm, podSelectionSpec, cloneSpec,
                // cloneName, folder.
                let spec = [
                    vim25::text("type", "clone"),
                    vim25::moref("vm", &template),
                    vim25::el("podSelectionSpec", &vim25::moref("storagePod", pod)),
                    clone_spec("cloneSpec"),
                    vim25::text("cloneName", name),
                    vim25::moref("folder", &folder),
                ]
                .concat();
                let srm = self.vim.content().await?.storage_resource_manager.clone();
                let r =
                    self.vim.call("RecommendDatastores", &srm, &vim25::el("storageSpec", &spec), what, true).await?;
                let key = r
                    .child("returnval")
                    .and_then(|rv| rv.child("recommendations"))
                    .and_then(|rec| rec.text_of("key"))
                    .map(str::to_string)
                    .ok_or_else(|| Error::Fault {
                        what: what.into(),
                        kind: "InsufficientStorageSpace".into(),
                        message: format!(
                            "Storage DRS made no recommendation for datastore_cluster_name `{}` (no datastore of it \
                             can hold the clone)",
                            self.config.datastore_cluster_name.as_deref().unwrap_or_default()
                        ),
                    })?;
                let what = "apply Storage DRS's placement (ApplyStorageDrsRecommendation_Task)";
                let r = self
                    .vim
                    .call("ApplyStorageDrsRecommendation_Task", &srm, &vim25::text("key", &key), what, false)
                    .await?;
                let task = r
                    .child("returnval")
                    .and_then(vim25::Node::as_moref)
                    .ok_or_else(|| Error::Decode { what: what.into(), message: "the answer names no task".into() })?;
                tracing::info!(task = %task.value, name, pod = %pod.value, "Storage DRS clone accepted");
                let result = self.wait_vim_task(&task, what).await?;
                result.child("vm").and_then(vim25::Node::as_moref)
            }
        };
        match vm {
            Some(m) if m.kind == "VirtualMachine" => Ok(m.value),
            _ => self.by_name(name, dc).await?.into_iter().next().map(|v| v.vm).ok_or_else(|| Error::Decode {
                what: "clone the template over vim25".into(),
                message: format!("the task succeeded, but names no VM and none is named `{name}`"),
            }),
        }
    }

    /// Polls the vim25 task's `info` (bounded by [`Timings::operation_timeout`]) until `success`
    /// (answers its `result`) or `error` (its fault).
    async fn wait_vim_task(&self, task: &vim25::MoRef, what: &str) -> Result<vim25::Node, Error> {
        let read = format!("read the task {} ({what})", task.value);
        self.wait(what, self.timings.operation_timeout, self.timings.poll, || async {
            let props = self.vim.properties(task, &["info"], &read).await?.unwrap_or_default();
            let Some(info) = props.into_iter().find(|(n, _)| n == "info").map(|(_, v)| v) else {
                return Err(Error::Decode { what: read.clone(), message: "the task has no info".into() });
            };
            match info.text_of("state").unwrap_or_default() {
                "success" => Ok(Ok(info.child("result").cloned().unwrap_or_default())),
                "error" => {
                    let f = info
                        .child("error")
                        .map(vim25::task_fault)
                        .unwrap_or(vim25::Fault { kind: "unknown fault".into(), message: "no error given".into() });
                    Err(Error::Fault { what: format!("{what}: task {}", task.value), kind: f.kind, message: f.message })
                }
                s @ ("queued" | "running") => Ok(Err(format!("task {} is {s}", task.value))),
                other => Err(Error::Decode { what: read.clone(), message: format!("unknown task state `{other}`") }),
            }
        })
        .await
    }

    /// Deploys the content-library VM template `item` as `name` with our placement, powered off;
    /// answers the VM's id.
    async fn deploy(&self, item: &str, name: &str, dc: &str) -> Result<String, Error> {
        let p = self.placement(dc).await?;
        let placement = DeployPlacement { folder: p.folder, resource_pool: p.resource_pool, cluster: p.cluster };
        let storage = p.datastore.map(|datastore| DeployStorage { datastore });
        let spec = DeploySpec {
            name: name.to_string(),
            placement: (placement != DeployPlacement::default()).then_some(placement),
            vm_home_storage: storage.clone(),
            disk_storage: storage,
            powered_on: false,
        };
        let vm = self.client.deploy_library_template(item, &spec, self.timings.operation_timeout).await?;
        if vm.is_empty() {
            return Err(Error::Decode {
                what: "deploy the content-library template".into(),
                message: "the answer names no VM".into(),
            });
        }
        Ok(vm)
    }

    /// The clone's placement: each configured object resolved, unset ones left to the template's.
    async fn placement(&self, dc: &str) -> Result<ClonePlacement, Error> {
        let c = &self.config;
        let mut p = ClonePlacement::default();
        if let Some(path) = c.vm_folder.as_deref() {
            let mut parent: Option<String> = None;
            for seg in path.split('/').filter(|s| !s.is_empty()) {
                let mut q = vec![("type", "VIRTUAL_MACHINE".to_string())];
                match &parent {
                    Some(f) => q.push(("parent_folders", f.clone())),
                    None => q.push(("datacenters", dc.to_string())),
                }
                parent = Some(self.one("folder", "folder", "vm_folder", seg, q).await?);
            }
            p.folder = parent;
        }
        if let Some(n) = c.cluster_name.as_deref() {
            p.cluster =
                Some(self.one("cluster", "cluster", "cluster_name", n, vec![("datacenters", dc.to_string())]).await?);
        }
        if let Some(n) = c.resource_pool.as_deref() {
            let mut q = vec![("datacenters", dc.to_string())];
            if let Some(cl) = &p.cluster {
                q.push(("clusters", cl.clone()));
            }
            p.resource_pool = Some(self.one("resource-pool", "resource_pool", "resource_pool", n, q).await?);
        }
        if let Some(n) = c.datastore_name.as_deref() {
            p.datastore = Some(
                self.one("datastore", "datastore", "datastore_name", n, vec![("datacenters", dc.to_string())]).await?,
            );
        }
        Ok(p)
    }

    async fn wait_task(&self, task: &str, what: &str) -> Result<client::TaskInfo, Error> {
        self.wait(what, self.timings.operation_timeout, self.timings.poll, || async {
            let t = self.client.task(task).await?;
            match t.status.as_str() {
                "SUCCEEDED" => Ok(Ok(t)),
                "FAILED" => {
                    let e = t.error.as_ref().map(client::api_error).unwrap_or_default();
                    Err(Error::TaskFailed {
                        what: what.into(),
                        task: task.into(),
                        status: t.status.clone(),
                        error_type: if e.error_type.is_empty() { "ERROR".into() } else { e.error_type },
                        detail: if e.message.is_empty() { "no message given".into() } else { e.message },
                    })
                }
                other => Ok(Err(format!("task {task} is {other}"))),
            }
        })
        .await
    }

    async fn guest_credentials(&self) -> Result<GuestCredentials, Error> {
        let r: &SecretRef = &self.config.guest_vm_password;
        let pw = self
            .secrets
            .resolve(r)
            .await
            .map_err(|e| Error::Credential { message: format!("guest_vm_password: {e}") })?;
        Ok(GuestCredentials { user_name: self.config.guest_vm_username.clone(), password: pw })
    }

    /// Waits (bounded) until VMware Tools runs in the guest and guest operations are ready.
    async fn guest_ready(&self, vm: &str) -> Result<(), Error> {
        self.wait(
            "wait for VMware Tools and guest operations",
            self.timings.guest_wait,
            self.timings.guest_poll,
            || async {
                let t = self.client.tools(vm).await?;
                if !matches!(t.run_state.as_str(), "RUNNING" | "EXECUTING_SCRIPTS") {
                    return Ok(Err(format!("VMware Tools is {}", t.run_state)));
                }
                let g = self.client.guest_operations(vm).await?;
                Ok(if g.guest_operations_ready { Ok(()) } else { Err("guest operations are not ready".into()) })
            },
        )
        .await
    }

    /// Polls guest process `pid` (bounded by [`Timings::guest_wait`]) until it has an exit code.
    async fn exit_code(&self, vm: &str, creds: &GuestCredentials, pid: i64, what: &str) -> Result<i64, Error> {
        self.wait(what, self.timings.guest_wait, self.timings.guest_poll, || async {
            let p = self.client.process(vm, creds, pid).await?;
            Ok(p.exit_code.ok_or_else(|| format!("guest process {pid} is still running")))
        })
        .await
    }

    /// Installs `vm_ssh_public_key` for the guest user ([`key_command`]; idempotent, so a create that
    /// died after it runs it again harmlessly); returns when it exited 0.
    async fn install_key(&self, vm: &str, key: &str) -> Result<(), Error> {
        self.guest_ready(vm).await?;
        let creds = self.guest_credentials().await?;
        let (program, args) = key_command(key);
        let pid = self.client.start_process(vm, &creds, &program, &args).await?;
        let code = self.exit_code(vm, &creds, pid, "install vm_ssh_public_key").await?;
        if code != 0 {
            return Err(Error::KeyFailed { id: vm.into(), code, user: creds.user_name });
        }
        tracing::info!(vm, "vm_ssh_public_key installed for the guest user");
        Ok(())
    }

    /// Runs (or resumes) the startup script; returns when it exited 0.
    async fn run_script(
        &self,
        vm: &str,
        spec: &VmSpec,
        script: &SecretString,
        set: &str,
        progress: Script,
    ) -> Result<(), Error> {
        let labels = &spec.labels;
        let creds = self.guest_credentials().await?;
        let pid = match progress {
            Script::Done => return Ok(()),
            Script::Started(pid) => pid,
            Script::NotStarted => {
                self.guest_ready(vm).await?;
                let (path, program, args) = script_command(spec.os, &spec.name);
                let bytes = script.expose_secret().len() as u64;
                let url = self.client.file_transfer(vm, &creds, &path, bytes).await?;
                self.client.upload(&url, script.clone()).await?;
                let pid = self.client.start_process(vm, &creds, &program, &args).await?;
                tracing::info!(vm, pid, "startup script started");
                self.client.update_data_set(vm, set, &labels::description(labels, Script::Started(pid))).await?;
                pid
            }
        };
        let code = self.exit_code(vm, &creds, pid, "run the startup script").await?;
        if code != 0 {
            return Err(Error::ScriptFailed { id: vm.into(), code, user: creds.user_name });
        }
        self.client.update_data_set(vm, set, &labels::description(labels, Script::Done)).await?;
        tracing::info!(vm, "startup script finished");
        Ok(())
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        let claim = spec.claim.as_str();
        let dc = self.datacenter().await?;
        let named = self.by_name(&spec.name, &dc).await?;
        let mut found = None;
        for v in &named {
            let set = self.our_set(&v.vm).await?;
            match &set {
                Some((_, d))
                    if labels::labels(d).get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim)
                        && labels::labels(d).get(OwnerLabels::DEPLOYMENT) == Some(&spec.labels.deployment) =>
                {
                    found = Some((v.vm.clone(), set));
                    break;
                }
                Some(_) => {}
                // Our own clone from an attempt that crashed before labelling it: the name holds the
                // claim's unique id.
                None => {
                    found = Some((v.vm.clone(), None));
                    break;
                }
            }
        }
        let (vm, set) = match found {
            Some((vm, set)) => {
                tracing::info!(vm = %vm, claim, "VM of this claim exists; resuming");
                (vm, set)
            }
            None if !named.is_empty() => return Err(Error::NameTaken { name: spec.name.clone() }),
            None => {
                let vm = match self.template(&dc).await? {
                    Template::Library(item) if self.uses_vim25() => {
                        return Err(Error::Config {
                            message: format!(
                                "vm_template_name: `{}` is a content-library item ({item}); linked clones \
                                 (clone_type: linked) and datastore clusters (datastore_cluster_name) need a VM or \
                                 template of the inventory: a library item has no snapshots and its deploy takes \
                                 one datastore",
                                self.config.vm_template_name
                            ),
                        });
                    }
                    Template::Library(item) => {
                        let vm = self.deploy(&item, &spec.name, &dc).await?;
                        tracing::info!(vm = %vm, item = %item, claim, "content-library template deployed");
                        vm
                    }
                    Template::Vm(source) if self.uses_vim25() => self.clone_vim25(&source, &spec.name, &dc).await?,
                    Template::Vm(source) => self.clone_template(source, &spec.name, &dc).await?,
                };
                (vm, None)
            }
        };
        let (set, progress) = match set {
            Some((id, d)) => (id, labels::script(&d)),
            None => {
                let id = self
                    .client
                    .create_data_set(
                        &vm,
                        &DataSetCreate {
                            name: labels::DATA_SET.into(),
                            description: labels::description(&spec.labels, Script::NotStarted),
                            host: "READ_WRITE".into(),
                            guest: "NONE".into(),
                            omit_from_snapshot_and_clone: true,
                        },
                    )
                    .await?;
                (id, Script::NotStarted)
            }
        };
        let info = self.client.vm(&vm).await?;
        if info.power_state == "POWERED_OFF" {
            let cpus = u64::from(self.config.number_of_guest_cpus);
            if info.cpu.as_ref().map(|c| c.count) != Some(cpus) {
                self.client.set_cpus(&vm, self.config.number_of_guest_cpus).await?;
            }
            let mib = u64::from(self.config.amount_of_guest_memory_gib) * 1024;
            if info.memory.as_ref().map(|m| m.size_mib) != Some(mib) {
                self.client.set_memory(&vm, mib).await?;
            }
        }
        let script = spec.startup_script.as_ref().filter(|s| !s.expose_secret().is_empty());
        let cloud_init = self.config.cloud_init();
        if cloud_init
            && progress == Script::NotStarted
            && info.power_state == "POWERED_OFF"
            && let Some(script) = script
        {
            // Applied at the next power-on, which follows only once this succeeded: a VM found on
            // with no progress recorded was powered on by an earlier attempt after it.
            self.client.set_cloud_init(&vm, &cloud_init_metadata(&spec.name), script).await?;
            tracing::info!(vm = %vm, "cloud-init customization set");
        }
        if info.power_state != "POWERED_ON" {
            match self.client.power(&vm, "start", "power on the VM").await {
                Err(e) if e.error_type().as_deref() == Some("ALREADY_IN_DESIRED_STATE") => {}
                other => other?,
            }
        }
        if cloud_init {
            // The script runs in the guest at first boot, out of our sight: the agent checking in is
            // what counts (the claim's provision timeout).
            if progress != Script::Done {
                self.client.update_data_set(&vm, &set, &labels::description(&spec.labels, Script::Done)).await?;
            }
            return self.read(&vm).await;
        }
        if progress == Script::NotStarted
            && let Some(key) = self.config.vm_ssh_public_key.as_deref()
        {
            self.install_key(&vm, key).await?;
        }
        match script {
            Some(script) => self.run_script(&vm, spec, script, &set, progress).await?,
            None if progress != Script::Done => {
                self.client.update_data_set(&vm, &set, &labels::description(&spec.labels, Script::Done)).await?
            }
            None => {}
        }
        self.read(&vm).await
    }

    async fn read(&self, vm: &str) -> Result<Vm, Error> {
        let info = self.client.vm(vm).await?;
        let set = self.our_set(vm).await?;
        let private_ip =
            if info.power_state == "POWERED_ON" { self.client.guest_ip(vm).await.unwrap_or(None) } else { None };
        Ok(Vm {
            id: vm.to_string(),
            name: info.name,
            state: state(&info.power_state),
            labels: set.map(|(_, d)| labels::labels(&d)).unwrap_or_default(),
            private_ip,
            public_ip: None,
            created_at: None,
        })
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let info = match self.client.vm(id).await {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self.our_set(id).await {
            Ok(Some((_, d))) if labels::is_ours(&d) => {}
            Ok(_) => return Err(Error::NotOurs { id: id.to_string() }),
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        }
        if info.power_state != "POWERED_OFF" {
            match self.client.power(id, "stop", "power off the VM").await {
                Ok(()) => {}
                Err(e) if e.error_type().as_deref() == Some("ALREADY_IN_DESIRED_STATE") => {}
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        match self.client.delete_vm(id).await {
            Ok(()) => {
                tracing::info!(vm = id, "VM deleted");
                Ok(())
            }
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, want: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        let dc = self.datacenter().await?;
        let mut out = Vec::new();
        for v in self.client.vms(vec![("datacenters", dc)]).await? {
            let set = match self.our_set(&v.vm).await {
                Ok(s) => s,
                // Deleted between the listing and this read.
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(e),
            };
            let Some((_, d)) = set else { continue };
            if !labels::is_ours(&d) {
                continue;
            }
            let vm = Vm {
                id: v.vm.clone(),
                name: v.name.clone(),
                state: state(&v.power_state),
                labels: labels::labels(&d),
                private_ip: None,
                public_ip: None,
                created_at: None,
            };
            if want.matches(&vm.labels) {
                out.push(vm);
            }
        }
        Ok(out)
    }

    /// Ends the vCenter session (`DELETE /api/session`), when there is one; the daemon does it
    /// through [`VmProvider::shutdown`], which does not wait longer than [`SHUTDOWN_WAIT`].
    pub async fn logout(&self) -> Result<(), ProviderError> {
        self.client.logout().await.map_err(Error::into_provider)
    }
}

#[async_trait]
impl VmProvider for VsphereProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        VsphereProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // No request token (a lookup by the claim's name), no server-side filter on data sets.
        Capabilities { idempotency_token: false, windows_password: false, server_side_label_filter: false }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        match self.read(id).await {
            Ok(v) => Ok(v),
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

    /// Ends the vCenter sessions (`DELETE /api/session`, and `SessionManager.Logout` when a vim25
    /// session was made; one request each, at most [`SHUTDOWN_WAIT`] for both); nothing is sent for a
    /// session that was not opened. A failure is logged: vCenter ends idle sessions
    /// itself.
    async fn shutdown(&self) {
        let both = async {
            let rest = self.client.logout().await;
            let vim = self.vim.logout().await;
            rest.and(vim)
        };
        match tokio::time::timeout(SHUTDOWN_WAIT, both).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(config = %self.config.name, error = %e, "could not end the vCenter session; vCenter ends it once idle")
            }
            Err(_) => tracing::warn!(
                config = %self.config.name,
                secs = SHUTDOWN_WAIT.as_secs(),
                "ending the vCenter session timed out; vCenter ends it once idle"
            ),
        }
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

    fn body(t: &str, msg: &str) -> String {
        format!(r#"{{"error_type":"{t}","messages":[{{"args":[],"default_message":"{msg}","id":"vapi.x"}}]}}"#)
    }

    #[test]
    fn answers_and_task_failures_map_to_the_classes_the_engine_acts_on() {
        let c = |code, b: String| status_err(code, &b).into_provider().class();
        assert_eq!(c(401, body("UNAUTHENTICATED", "Authentication required.")), ErrorClass::Auth);
        assert_eq!(c(403, body("UNAUTHORIZED", "Permission denied.")), ErrorClass::Permission);
        assert_eq!(c(404, body("NOT_FOUND", "VM vm-9 not found")), ErrorClass::NotFound);
        assert_eq!(c(400, body("RESOURCE_BUSY", "busy")), ErrorClass::Conflict);
        assert_eq!(c(429, body("", "slow down")), ErrorClass::RateLimited);
        assert_eq!(c(503, body("SERVICE_UNAVAILABLE", "down")), ErrorClass::Transient);
        assert_eq!(c(500, body("UNABLE_TO_ALLOCATE_RESOURCE", "no room")), ErrorClass::OutOfCapacity);
        assert_eq!(c(400, body("INVALID_ARGUMENT", "bad spec")), ErrorClass::Invalid);
        let msg = status_err(400, &body("INVALID_ARGUMENT", "name too long")).into_provider().to_string();
        assert!(msg.contains("clone the template") && msg.contains("INVALID_ARGUMENT: name too long"), "{msg}");
        let failed = |t: &str, d: &str| Error::TaskFailed {
            what: "clone".into(),
            task: "t".into(),
            status: "FAILED".into(),
            error_type: t.into(),
            detail: d.into(),
        };
        assert_eq!(
            failed("ERROR", "Insufficient disk space on datastore 'ssd-01'.").into_provider().class(),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(failed("UNABLE_TO_ALLOCATE_RESOURCE", "x").into_provider().class(), ErrorClass::OutOfCapacity);
        assert_eq!(failed("ERROR", "A general system error occurred").into_provider().class(), ErrorClass::Transient);
        let s = Error::ScriptFailed { id: "vm-1".into(), code: 3, user: "kasm".into() }.into_provider();
        assert_eq!(s.class(), ErrorClass::Invalid);
        assert!(s.to_string().contains("exited with code 3"), "{s}");
        let k = Error::KeyFailed { id: "vm-1".into(), code: 1, user: "kasm".into() }.into_provider();
        assert_eq!(k.class(), ErrorClass::Invalid);
        assert!(
            k.to_string().ends_with("installing vm_ssh_public_key for guest user `kasm` on VM vm-1 exited with code 1"),
            "{k}"
        );
        assert_eq!(Error::NotOurs { id: "u".into() }.into_provider().class(), ErrorClass::Invalid);
        assert_eq!(Error::Credential { message: "x".into() }.into_provider().class(), ErrorClass::Auth);
    }

    #[test]
    fn vim25_faults_map_to_the_classes_the_engine_acts_on() {
        let c = |kind: &str| {
            Error::Fault { what: "clone".into(), kind: kind.into(), message: "m".into() }.into_provider().class()
        };
        // NotAuthenticated is a NoPermission subtype in vim25: told apart.
        assert_eq!(c("NotAuthenticated"), ErrorClass::Auth);
        assert_eq!(c("InvalidLogin"), ErrorClass::Auth);
        assert_eq!(c("PasswordExpired"), ErrorClass::Auth);
        assert_eq!(c("NoPermission"), ErrorClass::Permission);
        for k in [
            "InsufficientResourcesFault",
            "InsufficientStorageSpace",
            "InsufficientMemoryResourcesFault",
            "NoDiskSpace",
        ] {
            assert_eq!(c(k), ErrorClass::OutOfCapacity, "{k}");
        }
        assert_eq!(c("ManagedObjectNotFound"), ErrorClass::Invalid);
        assert_eq!(c("InvalidArgument"), ErrorClass::Invalid);
        assert_eq!(c("SystemError"), ErrorClass::Transient);
        let msg = Error::Fault {
            what: "make the linked clone (CloneVM_Task)".into(),
            kind: "NoDiskSpace".into(),
            message: "full".into(),
        }
        .into_provider()
        .to_string();
        assert!(msg.contains("CloneVM_Task") && msg.contains("NoDiskSpace: full"), "{msg}");
    }

    #[test]
    fn states_and_script_commands() {
        assert_eq!(state("POWERED_ON"), VmState::Running);
        assert_eq!(state("POWERED_OFF"), VmState::Stopped);
        assert_eq!(state("SUSPENDED"), VmState::Stopped);
        assert_eq!(state("?"), VmState::Unknown);
        let (path, prog, args) = script_command(OsFamily::Linux, "kasm-01J a");
        assert_eq!(path, "/tmp/kasm-autoscale-kasm-01J_a.sh");
        assert_eq!(prog, "/bin/bash");
        assert_eq!(
            args,
            "-c '/bin/bash /tmp/kasm-autoscale-kasm-01J_a.sh; rc=$?; rm -f /tmp/kasm-autoscale-kasm-01J_a.sh; exit $rc'"
        );
        let (path, prog, args) = script_command(OsFamily::Windows, "kasm-1");
        assert_eq!(path, r"C:\Windows\Temp\kasm-autoscale-kasm-1.ps1");
        assert_eq!(prog, POWERSHELL);
        assert!(args.contains(r"& 'C:\Windows\Temp\kasm-autoscale-kasm-1.ps1'") && args.contains("exit $rc"), "{args}");
    }
}
