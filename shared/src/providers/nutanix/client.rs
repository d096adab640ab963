//! The Prism Central v3 calls we make and their DTOs, with the wire names of Nutanix's own v3 Go
//! client (`terraform-provider-nutanix`, `nutanix/sdks/v3/prism/prism_structs.go` and
//! `prism_service.go`): requests are JSON below `/api/nutanix/v3` with HTTP Basic credentials; lists
//! are `POST /<kind>/list` with `DSMetadata` (`kind`, `offset`, `length`, `filter`) and answer
//! `{api_version, entities, metadata: ListMetadataOutput{total_matches, offset, length}}`; changes
//! answer 202 and name a task (`GET /tasks/{uuid}`, `TasksResponse`); errors are
//! `{api_version, code, kind, message_list: [MessageResource{message, reason}], state: "ERROR"}`.
//!
//! The clone call is not in that client: `POST /vms/{uuid}/clone` with `{"override_spec": {...}}`
//! (the VM spec with its `resources` flattened into it) answering `{"task_uuid": ...}` is the shape
//! Nutanix's Ansible collection sends (`plugins/module_utils/v3/prism/vms.py`, `get_clone_spec`).
//!
//! Retries and status mapping come from [`crate::http`]; this file only knows paths and shapes.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use super::Error;
use super::credential::{Auth, Credential};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig, answer_message, message_field};

/// The v3 API's path below the server root.
pub(crate) const API_PATH: [&str; 3] = ["api", "nutanix", "v3"];

/// The page size we ask for (Nutanix's Ansible collection pages the VM list by at most 500).
pub(crate) const PAGE: usize = 250;

/// `Reference` (`{kind, uuid, name}`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub(crate) struct Reference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `Metadata` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Metadata {
    pub uuid: String,
    #[serde(default)]
    pub creation_time: Option<String>,
}

/// `VM` (the spec; the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct VmSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cluster_reference: Option<Reference>,
}

/// `IPAddress`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct IpAddress {
    #[serde(default)]
    pub ip: Option<String>,
}

/// `VMNicOutputStatus` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Nic {
    #[serde(default)]
    pub ip_endpoint_list: Vec<IpAddress>,
}

/// `VMResourcesDefStatus` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct StatusResources {
    /// `ON`, `OFF`, ...
    #[serde(default)]
    pub power_state: Option<String>,
    #[serde(default)]
    pub nic_list: Vec<Nic>,
}

/// `VMDefStatus` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct VmStatus {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `PENDING`, `COMPLETE`, `ERROR` (the intent's state).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub resources: Option<StatusResources>,
    #[serde(default)]
    pub cluster_reference: Option<Reference>,
    /// Why the VM is in state `ERROR`.
    #[serde(default)]
    pub message_list: Vec<Message>,
}

/// `VMIntentResource` / `VMIntentResponse` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Vm {
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Option<VmSpec>,
    #[serde(default)]
    pub status: Option<VmStatus>,
}

impl Vm {
    /// The VM's name (status, else spec).
    pub(crate) fn name(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .or(self.spec.as_ref().and_then(|s| s.name.as_deref()))
            .unwrap_or_default()
    }

    /// The VM's description (status, else spec).
    pub(crate) fn description(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.description.as_deref())
            .or(self.spec.as_ref().and_then(|s| s.description.as_deref()))
            .unwrap_or_default()
    }

    /// `status.state`.
    pub(crate) fn state(&self) -> &str {
        self.status.as_ref().and_then(|s| s.state.as_deref()).unwrap_or_default()
    }

    /// `status.resources.power_state`.
    pub(crate) fn power_state(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.power_state.as_deref())
            .unwrap_or_default()
    }

    /// The VM's cluster (status, else spec).
    pub(crate) fn cluster(&self) -> Option<&Reference> {
        self.status
            .as_ref()
            .and_then(|s| s.cluster_reference.as_ref())
            .or(self.spec.as_ref().and_then(|s| s.cluster_reference.as_ref()))
    }

    /// The first IP of its NICs.
    pub(crate) fn first_ip(&self) -> Option<String> {
        let r = self.status.as_ref()?.resources.as_ref()?;
        r.nic_list.iter().flat_map(|n| n.ip_endpoint_list.iter()).find_map(|i| i.ip.clone())
    }
}

/// `ListMetadataOutput` (the fields we read).
#[derive(Debug, Default, Deserialize)]
struct ListMetadata {
    #[serde(default)]
    total_matches: Option<u64>,
}

/// `VMListIntentResponse` / `ClusterListIntentResponse`.
#[derive(Debug, Deserialize)]
struct ListResponse<T> {
    #[serde(default = "Vec::new")]
    entities: Vec<T>,
    #[serde(default)]
    metadata: Option<ListMetadata>,
}

/// `TasksResponse` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Task {
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED`, `ABORTED`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub progress_message: Option<String>,
    #[serde(default)]
    pub error_detail: Option<String>,
    #[serde(default)]
    pub entity_reference_list: Vec<Reference>,
}

/// `ClusterIntentResponse` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Cluster {
    pub metadata: Metadata,
    #[serde(default)]
    pub status: Option<ClusterStatus>,
}

/// `ClusterDefStatus` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct ClusterStatus {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

/// `GuestCustomizationCloudInit` (`user_data` base64).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CloudInit {
    pub user_data: String,
}

/// `GuestCustomization`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct GuestCustomization {
    pub cloud_init: CloudInit,
}

/// The clone's `override_spec`: `VM` with `VMResources` flattened into it (the fields we set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct OverrideSpec {
    pub name: String,
    pub description: String,
    pub num_sockets: u32,
    pub num_vcpus_per_socket: u32,
    pub memory_size_mib: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_customization: Option<GuestCustomization>,
}

/// `MessageResource`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The v3 error body (`VMStatus` and its kin).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message_list: Vec<Message>,
}

/// The `reason` and `message` of an error body's first message, else the text.
pub(crate) fn error_message(body: &str) -> (String, String) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) if !e.message_list.is_empty() => {
            let reasons: Vec<String> = e.message_list.iter().filter_map(|m| m.reason.clone()).collect();
            let messages: Vec<String> = e.message_list.iter().filter_map(|m| m.message.clone()).collect();
            (message_field(&reasons.join(", ")), message_field(&messages.join("; ")))
        }
        _ => (String::new(), answer_message(body)),
    }
}

/// The task uuid of an `ExecutionContext` (`task_uuid` is untyped in the Go client: a string, or a
/// list of them).
fn task_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(task_of),
        _ => None,
    }
}

/// A Prism Central v3 client bound to one server and user.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    credential: Arc<Credential>,
    retry: RetryConfig,
    page: usize,
}

/// One request.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    body: Option<Value>,
    what: &'a str,
    /// Sent once: a POST that creates something.
    once: bool,
    /// A secret besides the credentials the request carries (the user data), kept out of error text.
    secret: Option<&'a SecretString>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a [&'a str], what: &'a str) -> Self {
        Call { method, path, body: None, what, once: false, secret: None }
    }
}

impl Client {
    /// A client for `base` (`https://<host>:<port>` or the config's `endpoint_url`).
    pub(crate) fn new(http: reqwest::Client, base: Url, credential: Arc<Credential>, retry: RetryConfig) -> Self {
        Client { http, base, credential, retry, page: PAGE }
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same client listing `n` entities per page.
    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.page = n.clamp(1, 500);
        self
    }

    /// The server root.
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            p.extend(API_PATH);
            p.extend(path);
        }
        url
    }

    /// One call; returns the body text. A 401 re-reads the password from its secret once: when it
    /// changed (rotated), the request is sent again with the new one.
    async fn call(&self, c: Call<'_>) -> Result<String, Error> {
        let mut auth = self.credential.get().await?;
        let mut refreshed = false;
        loop {
            match self.send(&c, &auth).await {
                Err(e) if e.status() == Some(401) && !refreshed => match self.credential.refresh(&auth).await? {
                    Some(fresh) => {
                        tracing::info!(
                            "Prism Central refused the credentials; sending again with the rotated password"
                        );
                        auth = fresh;
                        refreshed = true;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    async fn send(&self, c: &Call<'_>, auth: &Auth) -> Result<String, Error> {
        let redactor = match c.secret {
            Some(s) => auth.redactor.clone().with_secret(s),
            None => auth.redactor.clone(),
        };
        let redactor = &redactor;
        let retry = if c.once { RetryConfig::none() } else { self.retry.clone() };
        let mut req = self
            .http
            .request(c.method.clone(), self.url(c.path))
            .header(AUTHORIZATION, auth.header.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        // The list calls are reads sent as POST; the clone is the one POST that creates.
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

    /// Every entity of `POST /<kind>s/list`, page by page (`offset`/`length`) until
    /// `metadata.total_matches` are read or a page comes back short.
    async fn list_all<T: DeserializeOwned>(
        &self,
        path: &[&str],
        kind: &str,
        filter: Option<&str>,
        what: &str,
    ) -> Result<Vec<T>, Error> {
        let mut out: Vec<T> = Vec::new();
        loop {
            let mut body = json!({"kind": kind, "offset": out.len(), "length": self.page});
            if let Some(f) = filter {
                body["filter"] = json!(f);
            }
            let page: ListResponse<T> =
                self.call_json(Call { body: Some(body), ..Call::new(Method::POST, path, what) }).await?;
            let n = page.entities.len();
            out.extend(page.entities);
            let total = page.metadata.and_then(|m| m.total_matches);
            let done = match total {
                Some(t) => out.len() as u64 >= t || n == 0,
                None => n < self.page,
            };
            if done {
                return Ok(out);
            }
        }
    }

    /// `POST /vms/list` across every page, with a FIQL `filter` when given.
    pub(crate) async fn vms(&self, filter: Option<&str>) -> Result<Vec<Vm>, Error> {
        self.list_all(&["vms", "list"], "vm", filter, "list VMs").await
    }

    /// `POST /vms/list` with `length` 1: one request that proves the credentials and the v3 API.
    pub(crate) async fn probe(&self) -> Result<u64, Error> {
        let body = json!({"kind": "vm", "offset": 0, "length": 1});
        let page: ListResponse<Value> =
            self.call_json(Call { body: Some(body), ..Call::new(Method::POST, &["vms", "list"], "list VMs") }).await?;
        Ok(page.metadata.and_then(|m| m.total_matches).unwrap_or(page.entities.len() as u64))
    }

    /// `GET /vms/{uuid}`.
    pub(crate) async fn vm(&self, uuid: &str) -> Result<Vm, Error> {
        self.call_json(Call::new(Method::GET, &["vms", uuid], "read the VM")).await
    }

    /// `GET /vms/{uuid}` as it came: the intent a `PUT` sends back changed.
    pub(crate) async fn vm_intent(&self, uuid: &str) -> Result<Value, Error> {
        self.call_json(Call::new(Method::GET, &["vms", uuid], "read the VM")).await
    }

    /// `POST /vms/{uuid}/clone` `{override_spec}`, sent once (v3 has no idempotency token: a
    /// retry could make a second VM; the engine's next attempt looks the claim's name up first).
    /// Answers the task's uuid.
    pub(crate) async fn clone_vm(&self, candidate: &str, spec: &OverrideSpec) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct Accepted {
            #[serde(default)]
            task_uuid: Value,
        }
        let user_data = spec.guest_customization.as_ref().map(|g| SecretString::from(g.cloud_init.user_data.clone()));
        let body = json!({ "override_spec": spec });
        let a: Accepted = self
            .call_json(Call {
                body: Some(body),
                once: true,
                secret: user_data.as_ref(),
                ..Call::new(Method::POST, &["vms", candidate, "clone"], "clone the VM candidate")
            })
            .await?;
        task_of(&a.task_uuid).ok_or_else(|| Error::Decode {
            what: "clone the VM candidate".into(),
            message: "the answer has no task_uuid".into(),
        })
    }

    /// `PUT /vms/{uuid}` with the intent `{api_version, metadata, spec}` as read and changed; answers
    /// the task's uuid (`status.execution_context.task_uuid`).
    pub(crate) async fn update_vm(&self, uuid: &str, intent: Value, what: &str) -> Result<String, Error> {
        let v: Value =
            self.call_json(Call { body: Some(intent), ..Call::new(Method::PUT, &["vms", uuid], what) }).await?;
        task_of(&v["status"]["execution_context"]["task_uuid"]).ok_or_else(|| Error::Decode {
            what: what.into(),
            message: "the answer has no status.execution_context.task_uuid".into(),
        })
    }

    /// `DELETE /vms/{uuid}` (202, `DeleteResponse`); answers the task's uuid when it names one.
    pub(crate) async fn delete_vm(&self, uuid: &str) -> Result<Option<String>, Error> {
        let text = self.call(Call::new(Method::DELETE, &["vms", uuid], "delete the VM")).await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(task_of(&v["status"]["execution_context"]["task_uuid"]))
    }

    /// `GET /tasks/{uuid}`, once (the caller polls).
    pub(crate) async fn task(&self, uuid: &str) -> Result<Task, Error> {
        self.call_json(Call::new(Method::GET, &["tasks", uuid], "read the task")).await
    }

    /// `POST /clusters/list` across every page.
    pub(crate) async fn clusters(&self) -> Result<Vec<Cluster>, Error> {
        self.list_all(&["clusters", "list"], "cluster", None, "list clusters").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_shaped_bodies_parse() {
        let vm: Vm = serde_json::from_value(json!({
            "api_version": "3.1",
            "metadata": {"kind": "vm", "uuid": "4b5e0c4a-0d0e-4a3b-9f6e-1a2b3c4d5e6f", "spec_version": 3,
                "creation_time": "2024-05-01T10:00:00Z", "categories": {}},
            "spec": {"name": "kasm-1", "description": "d", "cluster_reference": {"kind": "cluster", "uuid": "c1"},
                "resources": {"num_sockets": 2}},
            "status": {"name": "kasm-1", "description": "d", "state": "COMPLETE",
                "cluster_reference": {"kind": "cluster", "uuid": "c1", "name": "PHX"},
                "resources": {"power_state": "ON", "nic_list": [{"ip_endpoint_list": [{"ip": "10.1.2.3", "type": "ASSIGNED"}]}]},
                "execution_context": {"task_uuid": ["t1"]}}
        }))
        .unwrap();
        assert_eq!((vm.name(), vm.description(), vm.state(), vm.power_state()), ("kasm-1", "d", "COMPLETE", "ON"));
        assert_eq!(vm.first_ip().as_deref(), Some("10.1.2.3"));
        assert_eq!(vm.cluster().map(|c| c.uuid.as_str()), Some("c1"));

        let task: Task = serde_json::from_value(json!({"status": "FAILED", "uuid": "t1", "percentage_complete": 100,
            "progress_message": "clone", "error_detail": "No host has enough available resources",
            "entity_reference_list": [{"kind": "vm", "uuid": "u"}], "completion_timev": null}))
        .unwrap();
        assert_eq!(task.status, "FAILED");
        assert_eq!(task.entity_reference_list[0].uuid, "u");

        assert_eq!(
            error_message(
                r#"{"api_version":"3.1","code":404,"kind":"vm","message_list":[{"message":"VM x not found","reason":"ENTITY_NOT_FOUND"}],"state":"ERROR"}"#
            ),
            ("ENTITY_NOT_FOUND".into(), "VM x not found".into())
        );
        assert_eq!(error_message("oops").1, "oops");
        assert_eq!(task_of(&json!("a")), Some("a".into()));
        assert_eq!(task_of(&json!(["b"])), Some("b".into()));
        assert_eq!(task_of(&json!(null)), None);
    }

    #[test]
    fn the_override_spec_has_the_v3_names() {
        let s = OverrideSpec {
            name: "kasm-x".into(),
            description: "kasm-autoscale: deployment=p".into(),
            num_sockets: 4,
            num_vcpus_per_socket: 1,
            memory_size_mib: 8192,
            guest_customization: Some(GuestCustomization {
                cloud_init: CloudInit { user_data: "IyEvYmluL3No".into() },
            }),
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"name": "kasm-x", "description": "kasm-autoscale: deployment=p", "num_sockets": 4,
                "num_vcpus_per_socket": 1, "memory_size_mib": 8192,
                "guest_customization": {"cloud_init": {"user_data": "IyEvYmluL3No"}}})
        );
    }
}
