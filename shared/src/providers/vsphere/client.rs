//! The vSphere Automation REST calls we make (`/api`, vSphere 7.0 U2 or later) and their DTOs, with
//! the wire names of VMware's API metadata (the official Python bindings' `OperationRestMetadata`
//! and struct bindings: `com.vmware.vcenter.VM`, `vm.power`, `vm.tools`, `vm.data_sets`,
//! `vm.hardware.cpu`/`memory`, `vm.guest.operations`, `vm.guest.filesystem.transfers`,
//! `vm.guest.processes`, `datacenter`, `folder`, `cluster`, `resource_pool`, `datastore`,
//! `com.vmware.cis.tasks`, `com.vmware.cis.session`).
//!
//! Where that metadata is silent, VMware's API reference is followed and the gap named here:
//! - the fixed `action` queries: `POST /vcenter/vm?action=clone&vmw-task=true` (clone as a task),
//!   `POST /vcenter/vm/{vm}/power?action=start|stop` (the metadata shows `/power/start`, the legacy
//!   `/rest` form; `/api` puts the verb in `action` like every other `/api` action);
//! - `PATCH /vcenter/vm/{vm}/hardware/cpu` and `.../memory`: their `update_spec` structs
//!   (`count`; `size_MiB`) are in the metadata, their operations are not;
//! - the error body `{"error_type": "NOT_FOUND", "messages": [{"id", "default_message", "args"}]}`
//!   (the vAPI standard errors serialised by `/api`).
//!
//! Bodies: an operation whose only non-path input is one struct sends that struct as the body
//! (clone, data set, CPU, memory); one with several sends an object keyed by input name (guest
//! operations: `credentials` and `spec`). List filters are query parameters, arrays repeating the key.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use super::Error;
use super::credential::{Credential, SESSION_HEADER, Session};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig, answer_message, message_field};

/// `https://<vcenter>[:port]/api/<path...>`.
pub(crate) fn api_url(base: &Url, path: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty();
        p.push("api");
        p.extend(path);
    }
    url
}

/// `VM.summary` (an item of `GET /vcenter/vm`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct VmSummary {
    pub vm: String,
    pub name: String,
    /// `POWERED_ON`, `POWERED_OFF`, `SUSPENDED`.
    pub power_state: String,
    #[serde(default)]
    pub cpu_count: Option<u64>,
    #[serde(default, rename = "memory_size_MiB")]
    pub memory_size_mib: Option<u64>,
}

/// `vm.hardware.cpu.info` (the field we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct CpuInfo {
    pub count: u64,
}

/// `vm.hardware.memory.info` (the field we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct MemoryInfo {
    #[serde(rename = "size_MiB")]
    pub size_mib: u64,
}

/// `VM.info` (`GET /vcenter/vm/{vm}`; the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct VmInfo {
    pub name: String,
    pub power_state: String,
    #[serde(default)]
    pub cpu: Option<CpuInfo>,
    #[serde(default)]
    pub memory: Option<MemoryInfo>,
}

/// `vm.tools.info` (the field we read): `run_state` `NOT_RUNNING`, `RUNNING`, `EXECUTING_SCRIPTS`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ToolsInfo {
    pub run_state: String,
    #[serde(default)]
    pub version: Option<String>,
    /// `NOT_INSTALLED`, `CURRENT`, `UNMANAGED`, ...
    #[serde(default)]
    pub version_status: Option<String>,
}

/// `vm.guest.operations.info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct GuestOpsInfo {
    pub guest_operations_ready: bool,
}

/// `vm.data_sets.summary`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct DataSetSummary {
    pub data_set: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `vm.data_sets.create_spec`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DataSetCreate {
    pub name: String,
    pub description: String,
    /// Access from vCenter and ESXi (`NONE`, `READ_ONLY`, `READ_WRITE`).
    pub host: String,
    /// Access from the guest through VMware Tools.
    pub guest: String,
    pub omit_from_snapshot_and_clone: bool,
}

/// `VM.clone_placement_spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ClonePlacement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
}

/// `VM.clone_spec` (the fields we set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CloneSpec {
    pub name: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<ClonePlacement>,
    pub power_on: bool,
}

/// `vm_template.library_items.deploy_placement_spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct DeployPlacement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// `vm_template.library_items.deploy_spec_vm_home_storage` / `deploy_spec_disk_storage` (the
/// datastore only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DeployStorage {
    pub datastore: String,
}

/// `vm_template.library_items.deploy_spec` (the fields we set): the body of a deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DeploySpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<DeployPlacement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_home_storage: Option<DeployStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_storage: Option<DeployStorage>,
    pub powered_on: bool,
}

/// `content.library.item_model` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct LibraryItem {
    #[serde(default)]
    pub name: Option<String>,
}

/// `cis.task.info` (the fields we read): `status` `PENDING`, `RUNNING`, `BLOCKED`, `SUCCEEDED`,
/// `FAILED`; `error` a vAPI error; `result` the operation's output (the clone's VM id).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct TaskInfo {
    pub status: String,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub result: Option<Value>,
}

/// `vm.guest.processes.info` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ProcessInfo {
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub finished: Option<String>,
}

/// `vm.guest.credentials` for a user name and password.
#[derive(Debug, Clone)]
pub(crate) struct GuestCredentials {
    pub user_name: String,
    pub password: SecretString,
}

impl GuestCredentials {
    fn to_json(&self) -> Value {
        json!({"interactive_session": false, "type": "USERNAME_PASSWORD", "user_name": self.user_name,
            "password": self.password.expose_secret()})
    }
}

/// A vAPI error: `error_type` and the `default_message`s.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub error_type: String,
    pub message: String,
}

/// The `error_type` and messages of a vAPI error value (an error body or a task's `error`).
pub(crate) fn api_error(v: &Value) -> ApiError {
    let error_type = v["error_type"].as_str().or(v["type"].as_str()).unwrap_or_default().to_string();
    let message = v["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["default_message"].as_str()).collect::<Vec<_>>().join("; "))
        .unwrap_or_default();
    ApiError { error_type: message_field(&error_type), message: message_field(&message) }
}

/// The vAPI error of an error body, else its text.
pub(crate) fn error_of_body(body: &str) -> ApiError {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.is_object() => api_error(&v),
        _ => ApiError { error_type: String::new(), message: answer_message(body) },
    }
}

/// A vSphere Automation client bound to one vCenter and user.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    credential: Arc<Credential>,
    retry: RetryConfig,
}

/// One request.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'a str, String)>,
    body: Option<Value>,
    what: &'a str,
    /// Sent once: a call that creates or starts something.
    once: bool,
    /// Secrets the body carries besides the session (guest password), kept out of error text.
    secrets: Vec<SecretString>,
    /// This request's own time limit (an operation that answers only when done), else the client's.
    timeout: Option<std::time::Duration>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a [&'a str], what: &'a str) -> Self {
        Call { method, path, query: Vec::new(), body: None, what, once: false, secrets: Vec::new(), timeout: None }
    }
}

impl Client {
    /// A client for `base` (`https://<address>:<port>` or the config's `endpoint_url`).
    pub(crate) fn new(http: reqwest::Client, base: Url, credential: Credential, retry: RetryConfig) -> Self {
        Client { http, base, credential: Arc::new(credential), retry }
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The server root.
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// One call; the body text. A 401 creates a new session once and sends the request again.
    async fn call(&self, c: Call<'_>) -> Result<String, Error> {
        let mut session = self.credential.get(&self.http, &self.base, &self.retry).await?;
        let mut renewed = false;
        loop {
            match self.send(&c, &session).await {
                Err(e) if e.status() == Some(401) && !renewed => {
                    tracing::info!("vCenter refused the session; creating a new one");
                    session = self.credential.renew(&session, &self.http, &self.base, &self.retry).await?;
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    async fn send(&self, c: &Call<'_>, session: &Session) -> Result<String, Error> {
        let mut redactor = session.redactor.clone();
        for s in &c.secrets {
            redactor.add_secret(s);
        }
        let redactor = &redactor;
        let retry = if c.once { RetryConfig::none() } else { self.retry.clone() };
        let mut url = api_url(&self.base, c.path);
        if !c.query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &c.query {
                q.append_pair(k, v);
            }
        }
        let mut req = self
            .http
            .request(c.method.clone(), url)
            .header(SESSION_HEADER, session.header.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        if let Some(t) = c.timeout {
            req = req.timeout(t);
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        // The guest-operation reads (`?action=get`) are POSTs that change nothing.
        let idem = if c.once { Idempotency::NotIdempotent } else { Idempotency::Idempotent };
        let resp = crate::http::send(&self.http, req, idem, &retry, redactor).await.map_err(http_err)?;
        resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))
    }

    async fn call_json<T: DeserializeOwned>(&self, c: Call<'_>) -> Result<T, Error> {
        let what = c.what.to_string();
        let text = self.call(c).await?;
        // serde's message names the field and position, never the value.
        serde_json::from_str(&text).map_err(|e| Error::Decode { what, message: e.to_string() })
    }

    /// `GET /vcenter/vm` with `VM.filter_spec` query parameters (`names`, `datacenters`, `folders`).
    pub(crate) async fn vms(&self, query: Vec<(&str, String)>) -> Result<Vec<VmSummary>, Error> {
        self.call_json(Call { query, ..Call::new(Method::GET, &["vcenter", "vm"], "list VMs") }).await
    }

    /// `GET /vcenter/vm/{vm}`.
    pub(crate) async fn vm(&self, vm: &str) -> Result<VmInfo, Error> {
        self.call_json(Call::new(Method::GET, &["vcenter", "vm", vm], "read the VM")).await
    }

    /// `GET /vcenter/<kind>` with filter query parameters; answers the items as JSON (each kind has
    /// its own id field: `datacenter`, `folder`, `cluster`, `resource_pool`, `datastore`).
    pub(crate) async fn inventory(
        &self,
        kind: &str,
        query: Vec<(&str, String)>,
        what: &str,
    ) -> Result<Vec<Value>, Error> {
        self.call_json(Call { query, ..Call::new(Method::GET, &["vcenter", kind], what) }).await
    }

    /// `POST /vcenter/vm?action=clone&vmw-task=true` (`VM.clone_spec` as the body), sent once: the
    /// API has no idempotency token and a retry could clone twice (the engine's next attempt looks the
    /// claim's name up first). Answers the task id.
    pub(crate) async fn clone_vm(&self, spec: &CloneSpec) -> Result<String, Error> {
        self.call_json(Call {
            query: vec![("action", "clone".into()), ("vmw-task", "true".into())],
            body: Some(serde_json::to_value(spec).unwrap_or_default()),
            once: true,
            ..Call::new(Method::POST, &["vcenter", "vm"], "clone the template")
        })
        .await
    }

    /// `POST /content/library/item?action=find` (`content.library.item.find`; the body is the
    /// `find_spec`, here its `name`, which vCenter matches case-insensitively): the ids of the
    /// library items of that name the user may see.
    pub(crate) async fn find_library_items(&self, name: &str) -> Result<Vec<String>, Error> {
        self.call_json(Call {
            query: vec![("action", "find".into())],
            body: Some(json!({ "name": name })),
            ..Call::new(Method::POST, &["content", "library", "item"], "find content-library items")
        })
        .await
    }

    /// `GET /content/library/item/{item}` (`content.library.item.get`).
    pub(crate) async fn library_item(&self, item: &str) -> Result<LibraryItem, Error> {
        self.call_json(Call::new(Method::GET, &["content", "library", "item", item], "read the content-library item"))
            .await
    }

    /// `GET /vcenter/vm-template/library-items/{item}` (`vm_template.library_items.get`): the VM
    /// template's info, `None` when the item holds no VM template (VMware's reference: "If missing or
    /// null, the library item ... does not contain a virtual machine template").
    pub(crate) async fn library_vm_template(&self, item: &str) -> Result<Option<Value>, Error> {
        let text = self
            .call(Call::new(
                Method::GET,
                &["vcenter", "vm-template", "library-items", item],
                "read the content-library VM template",
            ))
            .await?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Decode {
            what: "read the content-library VM template".into(),
            message: e.to_string(),
        })?;
        Ok(Some(v).filter(|v| !v.is_null()))
    }

    /// `POST /vcenter/vm-template/library-items/{item}?action=deploy` (`vm_template.library_items.deploy`,
    /// the `deploy_spec` as the body), sent once like a clone. The API has no task form of it: it
    /// answers the new VM's id when the copy is done, so the request may take up to `timeout`.
    pub(crate) async fn deploy_library_template(
        &self,
        item: &str,
        spec: &DeploySpec,
        timeout: std::time::Duration,
    ) -> Result<String, Error> {
        self.call_json(Call {
            query: vec![("action", "deploy".into())],
            body: Some(serde_json::to_value(spec).unwrap_or_default()),
            once: true,
            timeout: Some(timeout),
            ..Call::new(
                Method::POST,
                &["vcenter", "vm-template", "library-items", item],
                "deploy the content-library template",
            )
        })
        .await
    }

    /// `GET /cis/tasks/{task}`.
    pub(crate) async fn task(&self, task: &str) -> Result<TaskInfo, Error> {
        self.call_json(Call::new(Method::GET, &["cis", "tasks", task], "read the task")).await
    }

    /// `GET /vcenter/vm/{vm}/data-sets`.
    pub(crate) async fn data_sets(&self, vm: &str) -> Result<Vec<DataSetSummary>, Error> {
        self.call_json(Call::new(Method::GET, &["vcenter", "vm", vm, "data-sets"], "list the VM's data sets")).await
    }

    /// `POST /vcenter/vm/{vm}/data-sets` (`create_spec` as the body); answers the data set's id.
    pub(crate) async fn create_data_set(&self, vm: &str, spec: &DataSetCreate) -> Result<String, Error> {
        self.call_json(Call {
            body: Some(serde_json::to_value(spec).unwrap_or_default()),
            once: true,
            ..Call::new(Method::POST, &["vcenter", "vm", vm, "data-sets"], "label the VM (create its data set)")
        })
        .await
    }

    /// `PATCH /vcenter/vm/{vm}/hardware/cpu` `{count}`.
    pub(crate) async fn set_cpus(&self, vm: &str, count: u32) -> Result<(), Error> {
        self.call(Call {
            body: Some(json!({"count": count})),
            ..Call::new(Method::PATCH, &["vcenter", "vm", vm, "hardware", "cpu"], "set the VM's CPUs")
        })
        .await
        .map(drop)
    }

    /// `PATCH /vcenter/vm/{vm}/hardware/memory` `{size_MiB}`.
    pub(crate) async fn set_memory(&self, vm: &str, mib: u64) -> Result<(), Error> {
        self.call(Call {
            body: Some(json!({"size_MiB": mib})),
            ..Call::new(Method::PATCH, &["vcenter", "vm", vm, "hardware", "memory"], "set the VM's memory")
        })
        .await
        .map(drop)
    }

    /// `PUT /vcenter/vm/{vm}/guest/customization` (`vm.guest.customization.set`) with the
    /// `Customization.SetSpec` `{spec: {configuration_spec: {cloud_config: {type: CLOUDINIT, cloudinit:
    /// {metadata, userdata}}}, global_DNS_settings: {}, interfaces: []}}`: raw cloud-init data applied
    /// at the next power-on (vSphere 7.0.3 or later). VMware's guide to raw cloud-init customization
    /// (vSphere Web Services SDK Programming Guide, "Initiate Raw Data cloud-init Customization"): the
    /// global IP settings must be present but their children are ignored, per-NIC settings are
    /// ignored, and cloud-init takes network settings from the metadata only — hence the empty
    /// `global_DNS_settings` and `interfaces`, which `customization_spec` requires. The user data (the
    /// startup script, with the manager token) is kept out of error text.
    pub(crate) async fn set_cloud_init(&self, vm: &str, metadata: &str, userdata: &SecretString) -> Result<(), Error> {
        self.call(Call {
            body: Some(json!({"spec": {
                "configuration_spec": {"cloud_config": {"type": "CLOUDINIT", "cloudinit": {
                    "metadata": metadata, "userdata": userdata.expose_secret()}}},
                "global_DNS_settings": {},
                "interfaces": []
            }})),
            secrets: vec![userdata.clone()],
            ..Call::new(
                Method::PUT,
                &["vcenter", "vm", vm, "guest", "customization"],
                "set the VM's cloud-init customization",
            )
        })
        .await
        .map(drop)
    }

    /// `POST /vcenter/vm/{vm}/power?action=start|stop` (a hard power change).
    pub(crate) async fn power(&self, vm: &str, action: &str, what: &str) -> Result<(), Error> {
        self.call(Call {
            query: vec![("action", action.into())],
            ..Call::new(Method::POST, &["vcenter", "vm", vm, "power"], what)
        })
        .await
        .map(drop)
    }

    /// `DELETE /vcenter/vm/{vm}`.
    pub(crate) async fn delete_vm(&self, vm: &str) -> Result<(), Error> {
        self.call(Call::new(Method::DELETE, &["vcenter", "vm", vm], "delete the VM")).await.map(drop)
    }

    /// `GET /vcenter/vm/{vm}/tools`.
    pub(crate) async fn tools(&self, vm: &str) -> Result<ToolsInfo, Error> {
        self.call_json(Call::new(Method::GET, &["vcenter", "vm", vm, "tools"], "read VMware Tools' state")).await
    }

    /// `GET /vcenter/vm/{vm}/guest/operations`.
    pub(crate) async fn guest_operations(&self, vm: &str) -> Result<GuestOpsInfo, Error> {
        self.call_json(Call::new(
            Method::GET,
            &["vcenter", "vm", vm, "guest", "operations"],
            "read guest operations' state",
        ))
        .await
    }

    /// `POST /vcenter/vm/{vm}/guest/filesystem?action=create` `{credentials, spec: {path, attributes:
    /// {size, overwrite}}}`; answers the URL the file's bytes are PUT to.
    pub(crate) async fn file_transfer(
        &self,
        vm: &str,
        creds: &GuestCredentials,
        path: &str,
        size: u64,
    ) -> Result<String, Error> {
        self.call_json(Call {
            query: vec![("action", "create".into())],
            body: Some(json!({"credentials": creds.to_json(),
                "spec": {"path": path, "attributes": {"size": size, "overwrite": true}}})),
            secrets: vec![creds.password.clone()],
            ..Call::new(Method::POST, &["vcenter", "vm", vm, "guest", "filesystem"], "start the script's upload")
        })
        .await
    }

    /// `PUT <transfer URL>` with the file's bytes. The URL is the ESXi host's, not vCenter's, and takes
    /// no session (it is a one-time ticket); the bytes are the rendered script, kept out of errors.
    pub(crate) async fn upload(&self, url: &str, bytes: SecretString) -> Result<(), Error> {
        let what = "upload the startup script to the guest";
        let mut redactor = Redactor::new().with_secret(&bytes);
        redactor.add_secret(&SecretString::from(url.to_string()));
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let url = Url::parse(url)
            .map_err(|e| Error::Decode { what: what.into(), message: format!("the transfer URL is not a URL: {e}") })?;
        if url.host_str() == Some("*") {
            // vCenter answers `*` for the host when it cannot name an address of the ESXi host that
            // vCenter's clients can reach; which address to use is the operator's network.
            return Err(Error::Decode {
                what: what.into(),
                message: "vCenter gave the transfer URL's host as `*` (no address of the ESXi host it could name); \
                    kasm-autoscale must reach the VM's ESXi host on port 443"
                    .into(),
            });
        }
        let req = self
            .http
            .request(Method::PUT, url)
            .body(bytes.expose_secret().as_bytes().to_vec())
            .build()
            .map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &redactor).await.map_err(http_err)?;
        Ok(())
    }

    /// `POST /vcenter/vm/{vm}/guest/processes?action=create` `{credentials, spec: {path, arguments}}`,
    /// sent once; answers the process id.
    pub(crate) async fn start_process(
        &self,
        vm: &str,
        creds: &GuestCredentials,
        path: &str,
        arguments: &str,
    ) -> Result<i64, Error> {
        self.call_json(Call {
            query: vec![("action", "create".into())],
            body: Some(json!({"credentials": creds.to_json(), "spec": {"path": path, "arguments": arguments}})),
            once: true,
            secrets: vec![creds.password.clone()],
            ..Call::new(Method::POST, &["vcenter", "vm", vm, "guest", "processes"], "run the startup script")
        })
        .await
    }

    /// `POST /vcenter/vm/{vm}/guest/processes/{pid}?action=get` `{credentials}`.
    pub(crate) async fn process(&self, vm: &str, creds: &GuestCredentials, pid: i64) -> Result<ProcessInfo, Error> {
        let pid = pid.to_string();
        self.call_json(Call {
            query: vec![("action", "get".into())],
            body: Some(json!({"credentials": creds.to_json()})),
            secrets: vec![creds.password.clone()],
            ..Call::new(
                Method::POST,
                &["vcenter", "vm", vm, "guest", "processes", &pid],
                "read the startup script's process",
            )
        })
        .await
    }

    /// `GET /vcenter/vm/{vm}/guest/identity`'s `ip_address` (VMware Tools reports it; `None` when the
    /// guest has none yet or Tools is not running).
    pub(crate) async fn guest_ip(&self, vm: &str) -> Result<Option<String>, Error> {
        let v: Value = self
            .call_json(Call::new(Method::GET, &["vcenter", "vm", vm, "guest", "identity"], "read the guest's identity"))
            .await?;
        Ok(v["ip_address"].as_str().filter(|s| !s.is_empty()).map(str::to_string))
    }

    /// `PATCH /vcenter/vm/{vm}/data-sets/{data_set}` `{description}` (`data_sets.update_spec`).
    pub(crate) async fn update_data_set(&self, vm: &str, data_set: &str, description: &str) -> Result<(), Error> {
        self.call(Call {
            body: Some(json!({"description": description})),
            ..Call::new(
                Method::PATCH,
                &["vcenter", "vm", vm, "data-sets", data_set],
                "record progress in the VM's data set",
            )
        })
        .await
        .map(drop)
    }

    /// `DELETE /session` (`session.delete`), sent once: ends the session when there is one; none
    /// opened (or already ended) sends nothing.
    pub(crate) async fn logout(&self) -> Result<(), Error> {
        let Some(session) = self.credential.take().await else { return Ok(()) };
        let call = Call { once: true, ..Call::new(Method::DELETE, &["session"], "end the vCenter session") };
        self.send(&call, &session).await.map(drop)
    }

    /// `GET /session` (`session.info`): proves the credentials; answers the user name.
    pub(crate) async fn session_user(&self) -> Result<String, Error> {
        let v: Value = self.call_json(Call::new(Method::GET, &["session"], "read the vCenter session")).await?;
        Ok(v["user"].as_str().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_shaped_bodies_parse_and_serialise() {
        let s: Vec<VmSummary> = serde_json::from_value(json!([{"vm": "vm-42", "name": "kasm-1",
            "power_state": "POWERED_ON", "cpu_count": 2, "memory_size_MiB": 4096}]))
        .unwrap();
        assert_eq!((s[0].vm.as_str(), s[0].memory_size_mib), ("vm-42", Some(4096)));
        let i: VmInfo = serde_json::from_value(json!({"name": "kasm-1", "power_state": "POWERED_OFF",
            "cpu": {"count": 4, "cores_per_socket": 1, "hot_add_enabled": false, "hot_remove_enabled": false},
            "memory": {"size_MiB": 8192, "hot_add_enabled": false}, "guest_OS": "UBUNTU_64"}))
        .unwrap();
        assert_eq!((i.cpu.unwrap().count, i.memory.unwrap().size_mib), (4, 8192));
        let t: TaskInfo = serde_json::from_value(json!({"status": "FAILED", "cancelable": false,
            "error": {"error_type": "UNABLE_TO_ALLOCATE_RESOURCE", "messages": [{"id": "x", "default_message":
            "Insufficient disk space on datastore 'ssd-01'.", "args": []}]}}))
        .unwrap();
        let e = api_error(t.error.as_ref().unwrap());
        assert_eq!(e.error_type, "UNABLE_TO_ALLOCATE_RESOURCE");
        assert!(e.message.contains("Insufficient disk space"));
        assert_eq!(error_of_body("oops").message, "oops");
        let c = CloneSpec {
            name: "kasm-1".into(),
            source: "vm-7".into(),
            placement: Some(ClonePlacement {
                folder: Some("group-v3".into()),
                datastore: Some("datastore-9".into()),
                ..Default::default()
            }),
            power_on: false,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"name": "kasm-1", "source": "vm-7", "placement": {"folder": "group-v3", "datastore": "datastore-9"}, "power_on": false})
        );
        let g = GuestCredentials { user_name: "kasm".into(), password: SecretString::from("pw".to_string()) };
        assert_eq!(
            g.to_json(),
            json!({"interactive_session": false, "type": "USERNAME_PASSWORD", "user_name": "kasm", "password": "pw"})
        );
        let base = Url::parse("https://vc.example.com:8443/").unwrap();
        assert_eq!(
            api_url(&base, &["vcenter", "vm", "vm-1"]).as_str(),
            "https://vc.example.com:8443/api/vcenter/vm/vm-1"
        );
    }
}
