//! The Prism Central v4 calls we make (Kasm's "preview" API version) and their DTOs, with the wire
//! names of Nutanix's own SDKs (`ntnx-vmm-py-client` 4.3.2 and `ntnx-prism-py-client` 4.4.2, as
//! extracted in the design material's `specs/nutanix/v4`):
//!
//! - VMs below `/api/vmm/v4.3/ahv/config`: `GET /vms` (`$page` from 0, `$limit` 1–100, `$filter` in
//!   OData, e.g. `name eq 'x'`), `GET|PUT|DELETE /vms/{extId}`, `POST /vms/{extId}/$actions/clone`
//!   (`CloneOverrideParams`), `POST /vms/{extId}/$actions/power-on`;
//! - tasks below `/api/prism/v4.4/config`: `GET /tasks/{extId}` (`prism.v4.config.Task`).
//!
//! Every answer is an envelope `{data, metadata, $objectType}`; `data` is the VM, the list of VMs,
//! a `prism.v4.config.TaskReference` (`{extId}`) for a change, or an `ErrorResponse` (`{error}`:
//! a list of `AppMessage` `{code, message, ...}` or one `SchemaValidationError`). A GET names the
//! object's version in the `ETag` header (the SDK falls back to `X-Ntnx-Etag`), which a change sends
//! back as `If-Match`; every change carries an `NTNX-Request-Id` (the SDK's "requestID for idempotence
//! functionality"), derived here from the claim or the object's version so that a repeated request is
//! the same request (see [`request_id`]).
//!
//! Retries and status mapping come from [`crate::http`]; this file only knows paths and shapes.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::Error;
use super::credential::{Auth, Credential};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig};

/// The VMM API's path below the server root (the SDK's `/api/vmm/v4.3/ahv/config`).
pub(crate) const VMM_PATH: [&str; 5] = ["api", "vmm", "v4.3", "ahv", "config"];
/// The Prism tasks API's path below the server root (the SDK's `/api/prism/v4.4/config`).
pub(crate) const PRISM_PATH: [&str; 4] = ["api", "prism", "v4.4", "config"];
/// The most VMs one page holds (`$limit`: "a positive integer between 1 and 100").
pub(crate) const PAGE_MAX: usize = 100;
/// The idempotency header.
pub(crate) const REQUEST_ID: &str = "NTNX-Request-Id";

/// `common.v1.config.IPv4Address` (the field we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Ipv4Address {
    #[serde(default)]
    pub value: Option<String>,
}

/// `vmm.v4.ahv.config.Ipv4Config` (the field we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ipv4Config {
    #[serde(default)]
    pub ip_address: Option<Ipv4Address>,
}

/// `vmm.v4.ahv.config.Ipv4Info` (the field we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ipv4Info {
    #[serde(default)]
    pub learned_ip_addresses: Vec<Ipv4Address>,
}

/// `NicNetworkInfo` / `VirtualEthernetNicNetworkInfo` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NicNetwork {
    #[serde(default)]
    pub ipv4_config: Option<Ipv4Config>,
    #[serde(default)]
    pub ipv4_info: Option<Ipv4Info>,
}

/// `vmm.v4.ahv.config.Nic` (the fields we read: `networkInfo`, and `nicNetworkInfo` of 4.3).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Nic {
    #[serde(default)]
    pub network_info: Option<NicNetwork>,
    #[serde(default)]
    pub nic_network_info: Option<NicNetwork>,
}

/// `vmm.v4.ahv.config.VmSourceReference`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SourceRef {
    /// `VM` or `VM_RECOVERY_POINT`.
    #[serde(default)]
    pub entity_type: Option<String>,
    #[serde(default)]
    pub ext_id: Option<String>,
}

/// `vmm.v4.ahv.config.ClusterReference`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterRef {
    #[serde(default)]
    pub ext_id: Option<String>,
}

/// `vmm.v4.ahv.config.Vm` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Vm {
    #[serde(default)]
    pub ext_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `ON`, `OFF`, `PAUSED`, `UNDETERMINED`.
    #[serde(default)]
    pub power_state: Option<String>,
    #[serde(default)]
    pub source: Option<SourceRef>,
    #[serde(default)]
    pub cluster: Option<ClusterRef>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub nics: Vec<Nic>,
}

impl Vm {
    /// The VM's name.
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The VM's description.
    pub(crate) fn description(&self) -> &str {
        self.description.as_deref().unwrap_or_default()
    }

    /// `powerState`.
    pub(crate) fn power_state(&self) -> &str {
        self.power_state.as_deref().unwrap_or_default()
    }

    /// The VM it was cloned from (`source` of entity type `VM`).
    pub(crate) fn source_vm(&self) -> Option<&str> {
        let s = self.source.as_ref()?;
        (s.entity_type.as_deref().is_none_or(|t| t == "VM")).then_some(s.ext_id.as_deref()).flatten()
    }

    /// Its cluster's extId.
    pub(crate) fn cluster(&self) -> Option<&str> {
        self.cluster.as_ref()?.ext_id.as_deref()
    }

    /// The first IPv4 address of its NICs: one learned from the guest, else one assigned.
    pub(crate) fn first_ip(&self) -> Option<String> {
        let nets = || self.nics.iter().flat_map(|n| [n.network_info.as_ref(), n.nic_network_info.as_ref()]).flatten();
        nets()
            .filter_map(|n| n.ipv4_info.as_ref())
            .flat_map(|i| i.learned_ip_addresses.iter())
            .chain(nets().filter_map(|n| n.ipv4_config.as_ref()).filter_map(|c| c.ip_address.as_ref()))
            .find_map(|a| a.value.clone().filter(|v| !v.is_empty()))
    }
}

/// `prism.v4.config.EntityReference`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntityRef {
    #[serde(default)]
    pub ext_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub rel: Option<String>,
}

/// `AppMessage` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppMessage {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl AppMessage {
    fn text(&self) -> Option<String> {
        match (self.code.as_deref().filter(|c| !c.is_empty()), self.message.as_deref().filter(|m| !m.is_empty())) {
            (Some(c), Some(m)) => Some(format!("{c}: {m}")),
            (None, Some(m)) => Some(m.to_string()),
            (Some(c), None) => Some(c.to_string()),
            (None, None) => None,
        }
    }
}

/// `prism.v4.config.Task` (the fields we read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Task {
    #[serde(default)]
    pub ext_id: Option<String>,
    /// `QUEUED`, `RUNNING`, `CANCELING`, `SUCCEEDED`, `FAILED`, `CANCELED`, `SUSPENDED`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub entities_affected: Vec<EntityRef>,
    #[serde(default)]
    pub error_messages: Vec<AppMessage>,
    #[serde(default)]
    pub legacy_error_message: Option<String>,
}

impl Task {
    /// What a failed task says: its `errorMessages`, else `legacyErrorMessage`.
    pub(crate) fn detail(&self) -> String {
        let said: Vec<String> = self.error_messages.iter().filter_map(AppMessage::text).collect();
        if !said.is_empty() {
            return said.join("; ");
        }
        self.legacy_error_message.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| "no detail given".into())
    }
}

/// `prism.v4.config.TaskReference`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskRef {
    #[serde(default)]
    ext_id: Option<String>,
}

/// `common.v1.response.ApiResponseMetadata` (the field we read).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseMetadata {
    #[serde(default)]
    total_available_results: Option<u64>,
}

/// Every `*ApiResponse`: `{data, metadata}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    metadata: Option<ResponseMetadata>,
}

/// `vmm.v4.ahv.config.Userdata`, tagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Userdata {
    #[serde(rename = "$objectType")]
    pub object_type: &'static str,
    /// The script, base64-encoded ("The value must be base64 encoded").
    pub value: String,
}

/// `vmm.v4.ahv.config.CloudInit`, tagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CloudInit {
    #[serde(rename = "$objectType")]
    pub object_type: &'static str,
    /// `CONFIG_DRIVE_V2`.
    pub datasource_type: &'static str,
    pub cloud_init_script: Userdata,
}

/// `vmm.v4.ahv.config.GuestCustomizationParams`, tagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct GuestCustomization {
    #[serde(rename = "$objectType")]
    pub object_type: &'static str,
    pub config: CloudInit,
}

impl GuestCustomization {
    /// Cloud-init on a ConfigDriveV2 with `user_data_b64` as its user data.
    pub(crate) fn cloud_init(user_data_b64: String) -> Self {
        GuestCustomization {
            object_type: "vmm.v4.ahv.config.GuestCustomizationParams",
            config: CloudInit {
                object_type: "vmm.v4.ahv.config.CloudInit",
                datasource_type: "CONFIG_DRIVE_V2",
                cloud_init_script: Userdata { object_type: "vmm.v4.ahv.config.Userdata", value: user_data_b64 },
            },
        }
    }
}

/// `vmm.v4.ahv.config.CloneOverrideParams` (the fields we set).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CloneOverride {
    #[serde(rename = "$objectType")]
    pub object_type: &'static str,
    pub name: String,
    pub num_sockets: u32,
    pub num_cores_per_socket: u32,
    pub memory_size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_customization: Option<GuestCustomization>,
}

/// The `$objectType` of [`CloneOverride`].
pub(crate) const CLONE_OVERRIDE: &str = "vmm.v4.ahv.config.CloneOverrideParams";

/// The `code: message` texts of a v4 error body (`data.error`: a list of `AppMessage`, or one
/// `SchemaValidationError` with its `validationErrorMessages`); `None` when the body is not one.
pub(crate) fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let err = v.get("data")?.get("error")?;
    let said: Vec<String> = match err {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| serde_json::from_value::<AppMessage>(i.clone()).ok())
            .filter_map(|m| m.text())
            .collect(),
        Value::Object(o) => {
            let mut out: Vec<String> = o
                .get("validationErrorMessages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|m| {
                    let path = m.get("attributePath").and_then(Value::as_str).unwrap_or_default();
                    let msg = m.get("message").and_then(Value::as_str).unwrap_or_default();
                    if path.is_empty() { msg.to_string() } else { format!("{path}: {msg}") }
                })
                .filter(|s| !s.is_empty())
                .collect();
            if out.is_empty()
                && let Some(e) = o.get("error").and_then(Value::as_str)
            {
                out.push(e.to_string());
            }
            out
        }
        _ => Vec::new(),
    };
    (!said.is_empty()).then(|| crate::http::message_field(&said.join("; ")))
}

/// A deterministic `NTNX-Request-Id` for `parts` (an operation and what identifies one attempt of
/// it): the first 16 bytes of SHA-256 over the parts, as an RFC 9562 version-8 UUID. The same
/// operation on the same object version sends the same id, so a repeat is recognised as one.
pub(crate) fn request_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"kasm-autoscale/nutanix/v4");
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid().hyphenated().to_string()
}

/// The clone's `NTNX-Request-Id`: the claim itself (a ULID is 128 bits, written here as a UUID), so
/// every attempt for one claim sends the same id; a claim that is not a ULID gets a derived one.
/// `retry` > 0 (a clone refused for a stale ETag, sent again) derives another id from the claim.
pub(crate) fn clone_request_id(claim: &str, retry: u32) -> String {
    match ulid::Ulid::from_string(claim) {
        Ok(u) if retry == 0 => uuid::Uuid::from_u128(u.0).hyphenated().to_string(),
        _ => request_id(&["clone", claim, &retry.to_string()]),
    }
}

/// The object's version in an answer's headers: `ETag`, else `X-Ntnx-Etag` (as the SDK reads it).
fn etag_of(h: &HeaderMap) -> Option<String> {
    ["etag", "x-ntnx-etag"]
        .iter()
        .find_map(|k| h.get(*k).and_then(|v| v.to_str().ok()).map(str::to_string))
        .filter(|e| !e.is_empty())
}

/// The OData string literal of `s` (`'` doubled).
pub(crate) fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A Prism Central v4 client bound to one server and user.
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
    /// The API's path (`VMM_PATH` or `PRISM_PATH`) and the segments below it.
    root: &'a [&'a str],
    path: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    what: &'a str,
    /// Sent once by the HTTP layer (the clone: the engine's next attempt repeats it, by name first).
    once: bool,
    request_id: Option<String>,
    if_match: Option<String>,
    /// A secret besides the credentials the request carries (the user data), kept out of error text.
    secret: Option<&'a SecretString>,
}

impl<'a> Call<'a> {
    fn new(method: Method, root: &'a [&'a str], path: &'a [&'a str], what: &'a str) -> Self {
        Call {
            method,
            root,
            path,
            query: Vec::new(),
            body: None,
            what,
            once: false,
            request_id: None,
            if_match: None,
            secret: None,
        }
    }
}

/// An answer: its body and the object's version.
struct Answer {
    body: String,
    etag: Option<String>,
}

impl Client {
    /// A client for `base` (`https://<host>:<port>` or the config's `endpoint_url`).
    pub(crate) fn new(http: reqwest::Client, base: Url, credential: Arc<Credential>, retry: RetryConfig) -> Self {
        Client { http, base, credential, retry, page: PAGE_MAX }
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same client listing `n` VMs per page (1–100).
    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.page = n.clamp(1, PAGE_MAX);
        self
    }

    fn url(&self, c: &Call<'_>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            p.extend(c.root);
            p.extend(c.path);
        }
        if !c.query.is_empty() {
            url.query_pairs_mut().extend_pairs(c.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// One call. A 401 re-reads the password from its secret once: when it changed (rotated), the
    /// request is sent again with the new one.
    async fn call(&self, c: Call<'_>) -> Result<Answer, Error> {
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

    async fn send(&self, c: &Call<'_>, auth: &Auth) -> Result<Answer, Error> {
        let redactor = match c.secret {
            Some(s) => auth.redactor.clone().with_secret(s),
            None => auth.redactor.clone(),
        };
        let redactor = &redactor;
        let retry = if c.once { RetryConfig::none() } else { self.retry.clone() };
        let mut req = self
            .http
            .request(c.method.clone(), self.url(c))
            .header(AUTHORIZATION, auth.header.clone())
            .header(ACCEPT, "application/json");
        if let Some(id) = &c.request_id {
            req = req.header(REQUEST_ID, id.as_str());
        }
        if let Some(tag) = &c.if_match {
            req = req.header(reqwest::header::IF_MATCH, tag.as_str());
        }
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        // Reads, and changes that carry their request id and the version they change (a repeat is
        // the same request), are retried; the clone is sent once.
        let idem = if c.once { Idempotency::NotIdempotent } else { Idempotency::Idempotent };
        let resp = crate::http::send(&self.http, req, idem, &retry, redactor).await.map_err(http_err)?;
        let etag = etag_of(resp.headers());
        let body = resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        Ok(Answer { body, etag })
    }

    /// `data` of an answer, decoded.
    fn data<T: DeserializeOwned>(what: &str, body: &str) -> Result<(T, Option<u64>), Error> {
        let decode = |e: serde_json::Error| Error::Decode { what: what.into(), message: e.to_string() };
        let env: Envelope = serde_json::from_str(body).map_err(decode)?;
        let total = env.metadata.and_then(|m| m.total_available_results);
        Ok((serde_json::from_value(env.data).map_err(decode)?, total))
    }

    /// `GET /vms` across every page (`$page` from 0, `$limit`), with an OData `$filter` when given,
    /// until a page comes back short or `metadata.totalAvailableResults` are read.
    pub(crate) async fn vms(&self, filter: Option<&str>) -> Result<Vec<Vm>, Error> {
        let mut out: Vec<Vm> = Vec::new();
        for page in 0usize.. {
            let mut c = Call::new(Method::GET, &VMM_PATH, &["vms"], "list VMs");
            c.query = vec![("$page", page.to_string()), ("$limit", self.page.to_string())];
            if let Some(f) = filter {
                c.query.push(("$filter", f.to_string()));
            }
            let a = self.call(c).await?;
            let (data, total): (Value, _) = Self::data("list VMs", &a.body)?;
            // No VM: `data` is absent, null or an empty list or map (`EMPTY_LIST`, `EMPTY_MAP`).
            let items: Vec<Vm> = match data {
                Value::Array(items) => items
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::Decode { what: "list VMs".into(), message: e.to_string() })?,
                Value::Null => Vec::new(),
                Value::Object(o) if o.keys().all(|k| k.starts_with('$')) => Vec::new(),
                _ => {
                    return Err(Error::Decode {
                        what: "list VMs".into(),
                        message: "data is neither a list of VMs nor empty".into(),
                    });
                }
            };
            let n = items.len();
            out.extend(items);
            let done = n < self.page || total.is_some_and(|t| out.len() as u64 >= t);
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /vms?$limit=1`: one request that proves the credentials and the VMM v4 API; answers
    /// `totalAvailableResults` when given.
    pub(crate) async fn probe(&self) -> Result<Option<u64>, Error> {
        let mut c = Call::new(Method::GET, &VMM_PATH, &["vms"], "list VMs");
        c.query = vec![("$page", "0".into()), ("$limit", "1".into())];
        let a = self.call(c).await?;
        let (_, total): (Value, _) = Self::data("list VMs", &a.body)?;
        Ok(total)
    }

    /// `GET /vms/{extId}`: the VM and its ETag.
    pub(crate) async fn vm(&self, ext_id: &str) -> Result<(Vm, Option<String>), Error> {
        let a = self.call(Call::new(Method::GET, &VMM_PATH, &["vms", ext_id], "read the VM")).await?;
        let (vm, _) = Self::data("read the VM", &a.body)?;
        Ok((vm, a.etag))
    }

    /// `GET /vms/{extId}` as it came (`data` untouched, for a `PUT` to send back changed) and its ETag.
    pub(crate) async fn vm_raw(&self, ext_id: &str) -> Result<(Value, Option<String>), Error> {
        let a = self.call(Call::new(Method::GET, &VMM_PATH, &["vms", ext_id], "read the VM")).await?;
        let (vm, _) = Self::data("read the VM", &a.body)?;
        Ok((vm, a.etag))
    }

    fn task_of(what: &str, body: &str) -> Result<String, Error> {
        let (r, _): (TaskRef, _) = Self::data(what, body)?;
        r.ext_id.filter(|t| !t.is_empty()).ok_or_else(|| Error::Decode {
            what: what.into(),
            message: "the answer names no task (data.extId of a prism.v4.config.TaskReference)".into(),
        })
    }

    /// `POST /vms/{extId}/$actions/clone` with `If-Match` and the claim's request id, sent once by
    /// the HTTP layer; answers the task's extId.
    pub(crate) async fn clone_vm(
        &self,
        candidate: &str,
        etag: Option<String>,
        request_id: String,
        body: &CloneOverride,
    ) -> Result<String, Error> {
        let what = "clone the VM candidate";
        let user_data =
            body.guest_customization.as_ref().map(|g| SecretString::from(g.config.cloud_init_script.value.clone()));
        let path = ["vms", candidate, "$actions", "clone"];
        let mut c = Call::new(Method::POST, &VMM_PATH, &path, what);
        c.body =
            Some(serde_json::to_value(body).map_err(|e| Error::Decode { what: what.into(), message: e.to_string() })?);
        c.once = true;
        c.request_id = Some(request_id);
        c.if_match = etag;
        c.secret = user_data.as_ref();
        let a = self.call(c).await?;
        Self::task_of(what, &a.body)
    }

    /// `PUT /vms/{extId}` with the VM as read and changed, `If-Match` and a request id; answers the
    /// task's extId.
    pub(crate) async fn update_vm(
        &self,
        ext_id: &str,
        vm: Value,
        etag: Option<String>,
        what: &str,
    ) -> Result<String, Error> {
        let path = ["vms", ext_id];
        let mut c = Call::new(Method::PUT, &VMM_PATH, &path, what);
        c.request_id = Some(request_id(&["update", ext_id, etag.as_deref().unwrap_or_default(), what]));
        c.if_match = etag;
        c.body = Some(vm);
        let a = self.call(c).await?;
        Self::task_of(what, &a.body)
    }

    /// `POST /vms/{extId}/$actions/power-on` with `If-Match` and its own request id; answers the
    /// task's extId.
    pub(crate) async fn power_on(&self, ext_id: &str, etag: Option<String>) -> Result<String, Error> {
        let what = "power on the VM";
        let path = ["vms", ext_id, "$actions", "power-on"];
        let mut c = Call::new(Method::POST, &VMM_PATH, &path, what);
        c.request_id = Some(request_id(&["power-on", ext_id, etag.as_deref().unwrap_or_default()]));
        c.if_match = etag;
        let a = self.call(c).await?;
        Self::task_of(what, &a.body)
    }

    /// `DELETE /vms/{extId}` with `If-Match` and a request id; answers the task's extId.
    pub(crate) async fn delete_vm(&self, ext_id: &str, etag: Option<String>) -> Result<String, Error> {
        let what = "delete the VM";
        let path = ["vms", ext_id];
        let mut c = Call::new(Method::DELETE, &VMM_PATH, &path, what);
        c.request_id = Some(request_id(&["delete", ext_id, etag.as_deref().unwrap_or_default()]));
        c.if_match = etag;
        let a = self.call(c).await?;
        Self::task_of(what, &a.body)
    }

    /// `GET /tasks/{extId}`, once (the caller polls).
    pub(crate) async fn task(&self, ext_id: &str) -> Result<Task, Error> {
        let a = self.call(Call::new(Method::GET, &PRISM_PATH, &["tasks", ext_id], "read the task")).await?;
        Ok(Self::data("read the task", &a.body)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_shaped_bodies_parse() {
        let vm: Vm = serde_json::from_value(json!({
            "$objectType": "vmm.v4.ahv.config.Vm", "extId": "4b5e0c4a-0d0e-4a3b-9f6e-1a2b3c4d5e6f",
            "name": "kasm-1", "description": "d", "powerState": "ON", "createTime": "2026-11-30T08:15:00Z",
            "source": {"entityType": "VM", "extId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301"},
            "cluster": {"extId": "0005a7b8-c9d0-1e2f-0000-00000000c1c1"},
            "nics": [{"networkInfo": {"ipv4Config": {"ipAddress": {"value": "10.1.2.4", "prefixLength": 24}},
                "ipv4Info": {"learnedIpAddresses": [{"value": "10.1.2.3"}]}}}]
        }))
        .unwrap();
        assert_eq!((vm.name(), vm.description(), vm.power_state()), ("kasm-1", "d", "ON"));
        assert_eq!(vm.first_ip().as_deref(), Some("10.1.2.3"));
        assert_eq!(vm.source_vm(), Some("3f2504e0-4f89-41d3-9a0c-0305e82c3301"));
        assert_eq!(vm.cluster(), Some("0005a7b8-c9d0-1e2f-0000-00000000c1c1"));

        let task: Task = serde_json::from_value(json!({"$objectType": "prism.v4.config.Task",
            "extId": "ZXJnb24=:7a9c0001-1b2c-4d3e-8f40-000000100001", "status": "FAILED", "progressPercentage": 100,
            "entitiesAffected": [{"extId": "u", "rel": "vmm:ahv:config:vm"}],
            "errorMessages": [{"code": "VMM-30301", "message": "No host has enough available resources", "severity": "ERROR"}]}))
        .unwrap();
        assert_eq!(task.status, "FAILED");
        assert_eq!(task.detail(), "VMM-30301: No host has enough available resources");
        assert_eq!(task.entities_affected[0].ext_id.as_deref(), Some("u"));

        let app = r#"{"data": {"$objectType": "vmm.v4.error.ErrorResponse", "error": [{"$objectType":
            "vmm.v4.error.AppMessage", "code": "VMM-20005", "message": "VM not found", "severity": "ERROR"}]},
            "$objectType": "vmm.v4.ahv.config.GetVmApiResponse"}"#;
        assert_eq!(error_message(app).as_deref(), Some("VMM-20005: VM not found"));
        let schema = r#"{"data": {"error": {"$objectType": "vmm.v4.error.SchemaValidationError", "statusCode": 400,
            "error": "Bad Request", "validationErrorMessages": [{"attributePath": "numSockets", "message": "must be >= 1"}]}}}"#;
        assert_eq!(error_message(schema).as_deref(), Some("numSockets: must be >= 1"));
        assert_eq!(error_message("oops"), None);
        assert_eq!(error_message(r#"{"message_list": []}"#), None);
    }

    #[test]
    fn request_ids_are_deterministic_uuids_and_the_clone_carries_the_claim() {
        let claim = "01jabcdefghjkmnpqrstvwxyz0";
        let id = clone_request_id(claim, 0);
        let back = ulid::Ulid(uuid::Uuid::parse_str(&id).unwrap().as_u128()).to_string().to_ascii_lowercase();
        assert_eq!(back, claim, "the request id is the claim");
        assert_eq!(clone_request_id(claim, 0), id);
        assert_ne!(clone_request_id(claim, 1), id);
        assert_eq!(clone_request_id(claim, 1), clone_request_id(claim, 1));
        let odd = clone_request_id("not-a-ulid", 0);
        assert!(uuid::Uuid::parse_str(&odd).is_ok(), "{odd}");
        let a = request_id(&["power-on", "vm", "etag-1"]);
        assert_eq!(a, request_id(&["power-on", "vm", "etag-1"]));
        assert_ne!(a, request_id(&["power-on", "vm", "etag-2"]));
        assert_ne!(request_id(&["ab", "c"]), request_id(&["a", "bc"]));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 8);
        assert_eq!(odata_string("it's"), "'it''s'");
    }

    #[test]
    fn the_clone_body_has_the_v4_names() {
        let b = CloneOverride {
            object_type: CLONE_OVERRIDE,
            name: "kasm-x".into(),
            num_sockets: 4,
            num_cores_per_socket: 1,
            memory_size_bytes: 8 << 30,
            guest_customization: Some(GuestCustomization::cloud_init("IyEvYmluL3No".into())),
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"$objectType": "vmm.v4.ahv.config.CloneOverrideParams", "name": "kasm-x", "numSockets": 4,
                "numCoresPerSocket": 1, "memorySizeBytes": 8589934592u64,
                "guestCustomization": {"$objectType": "vmm.v4.ahv.config.GuestCustomizationParams",
                    "config": {"$objectType": "vmm.v4.ahv.config.CloudInit", "datasourceType": "CONFIG_DRIVE_V2",
                        "cloudInitScript": {"$objectType": "vmm.v4.ahv.config.Userdata", "value": "IyEvYmluL3No"}}}})
        );
    }
}
