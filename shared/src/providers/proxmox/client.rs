//! The Proxmox VE REST calls we make and their DTOs. Every answer is a `{"data": ...}` envelope;
//! requests are form-encoded (what `pvesh` and the web UI send) and authenticated with an API token
//! (`Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`).
//!
//! Retries and status mapping come from [`crate::http`]; this file only knows paths and shapes.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::Error;
use super::credential::Credential;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig};

/// One entry of `GET /cluster/resources?type=vm` (QEMU VMs and LXC containers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Resource {
    /// `qemu` or `lxc`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The VMID.
    #[serde(default)]
    pub vmid: u32,
    /// The VM's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The node the VM lives on.
    #[serde(default)]
    pub node: String,
    /// `running`, `stopped`, `unknown` (its node is offline), ...
    #[serde(default)]
    pub status: Option<String>,
    /// Tags, separated by `;` (older releases: `,` or spaces).
    #[serde(default)]
    pub tags: Option<String>,
    /// Whether it is a template (`1`/`0`, a boolean in newer releases).
    #[serde(default, deserialize_with = "flag")]
    pub template: bool,
    /// A config lock (`clone`, `create`, `migrate`, ...), while one is held.
    #[serde(default)]
    pub lock: Option<String>,
    /// The pool it belongs to.
    #[serde(default)]
    pub pool: Option<String>,
}

/// One entry of `GET /cluster/resources?type=node`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct NodeResource {
    /// The node's name.
    #[serde(default)]
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct TaskStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// `OK` on success, else the failure (set once stopped).
    #[serde(default)]
    pub exitstatus: Option<String>,
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Version {
    /// Full pve-manager version, e.g. `9.0.3`.
    pub version: String,
    /// Point release, e.g. `9.0`.
    #[serde(default)]
    pub release: Option<String>,
}

/// `POST .../agent/exec`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ExecStarted {
    /// The guest PID.
    pub pid: u64,
}

/// `GET .../agent/network-get-interfaces` → `{"result": [...]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Interfaces {
    #[serde(default)]
    pub result: Vec<Interface>,
}

/// One guest network interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Interface {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "ip-addresses", default)]
    pub ip_addresses: Vec<IpAddress>,
}

/// One address of a guest interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct IpAddress {
    #[serde(rename = "ip-address-type", default)]
    pub kind: String,
    #[serde(rename = "ip-address", default)]
    pub address: String,
}

/// `GET /access/permissions`: path → privilege → propagate.
pub(crate) type Permissions = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// Proxmox writes booleans as `0`/`1` in some releases and `true`/`false` in others.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        Some(serde_json::Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

/// The node a task runs on, from its UPID (`UPID:<node>:<pid>:...`).
pub(crate) fn upid_node(upid: &str) -> Option<&str> {
    let mut parts = upid.split(':');
    (parts.next() == Some("UPID")).then(|| parts.next()).flatten().filter(|n| !n.is_empty())
}

/// One request.
struct Call<'a> {
    method: Method,
    segments: &'a [&'a str],
    query: &'a [(&'a str, String)],
    form: Option<&'a [(&'a str, String)]>,
    idempotency: Idempotency,
    /// "failed to <what>".
    what: &'a str,
    /// A redactor knowing more secrets than the token (the script), if any.
    redactor: Option<&'a Redactor>,
    /// Send once, no retries (polls that loop themselves, best-effort reads).
    once: bool,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &'a [&'a str], what: &'a str) -> Self {
        Call {
            method,
            segments,
            query: &[],
            form: None,
            idempotency: Idempotency::FromMethod,
            what,
            redactor: None,
            once: false,
        }
    }
}

/// A Proxmox VE API client bound to one endpoint and token.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// `https://host:port/api2/json` (no trailing slash).
    base: Url,
    /// The token, resolved on the first call.
    credential: Arc<Credential>,
    retry: RetryConfig,
}

impl Client {
    /// A client for `base` (`.../api2/json`) authenticating with `credential`.
    pub(crate) fn new(http: reqwest::Client, base: Url, credential: Credential, retry: RetryConfig) -> Self {
        Client { http, base, credential: Arc::new(credential), retry }
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// A redactor knowing the token (for messages built outside this file).
    pub(crate) fn redactor(&self) -> Redactor {
        self.credential.redactor()
    }

    /// The API base, e.g. `https://pve:8006/api2/json`.
    #[cfg(test)]
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            for s in segments {
                p.push(s);
            }
        }
        url
    }

    /// One call; returns the envelope's `data`.
    async fn call<T: DeserializeOwned>(&self, c: Call<'_>) -> Result<T, Error> {
        let auth = self.credential.get().await?;
        let redactor = c.redactor.unwrap_or(&auth.redactor);
        let retry = if c.once { RetryConfig::none() } else { self.retry.clone() };
        let mut url = self.url(c.segments);
        if !c.query.is_empty() {
            url.query_pairs_mut().extend_pairs(c.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(c.method, url).header(AUTHORIZATION, auth.header.clone());
        if let Some(form) = c.form {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        let resp = crate::http::send(&self.http, req, c.idempotency, &retry, redactor).await.map_err(http_err)?;
        let text = resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        serde_json::from_str::<Envelope<T>>(&text).map(|e| e.data).map_err(|e| Error::Decode {
            what: what.to_string(),
            // serde's message names the field and position, never the value.
            message: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        what: &str,
    ) -> Result<T, Error> {
        self.call(Call { query, ..Call::new(Method::GET, segments, what) }).await
    }

    /// `GET /version`.
    pub(crate) async fn version(&self) -> Result<Version, Error> {
        self.get(&["version"], &[], "read the API version").await
    }

    /// `GET /cluster/resources?type=vm`: every guest of the cluster, offline nodes' included (their
    /// status is `unknown`) — one call served from the cluster file system, no per-node requests.
    pub(crate) async fn vms(&self) -> Result<Vec<Resource>, Error> {
        self.get(&["cluster", "resources"], &[("type", "vm".into())], "list cluster VMs").await
    }

    /// `GET /cluster/resources?type=node`.
    pub(crate) async fn nodes(&self) -> Result<Vec<NodeResource>, Error> {
        self.get(&["cluster", "resources"], &[("type", "node".into())], "list cluster nodes").await
    }

    /// `GET /access/permissions`: the token's own effective permissions.
    pub(crate) async fn permissions(&self) -> Result<Permissions, Error> {
        self.get(&["access", "permissions"], &[], "read the token's permissions").await
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`.
    pub(crate) async fn task_status(&self, node: &str, upid: &str) -> Result<TaskStatus, Error> {
        self.get(&["nodes", node, "tasks", upid, "status"], &[], "read a task's status").await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config`.
    pub(crate) async fn vm_config(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        let id = vmid.to_string();
        self.get(&["nodes", node, "qemu", &id, "config"], &[], "read the VM's config").await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/clone` → UPID. Sent once: Proxmox answers a taken VMID with a
    /// 500 ("VM 123 already exists") that retrying cannot fix, and the caller's allocation loop
    /// already moves on to the next VMID or gives the error back for the engine's retry.
    pub(crate) async fn clone_vm(&self, node: &str, template: u32, form: &[(&str, String)]) -> Result<String, Error> {
        let vmid = template.to_string();
        let segments = ["nodes", node, "qemu", &vmid, "clone"];
        self.call(Call {
            form: Some(form),
            idempotency: Idempotency::NotIdempotent,
            once: true,
            ..Call::new(Method::POST, &segments, "clone the template")
        })
        .await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/config` (synchronous; setting the same values twice is harmless).
    pub(crate) async fn set_config(&self, node: &str, vmid: u32, form: &[(&str, String)]) -> Result<(), Error> {
        let vmid = vmid.to_string();
        let segments = ["nodes", node, "qemu", &vmid, "config"];
        let _: serde_json::Value =
            self.call(Call { form: Some(form), ..Call::new(Method::PUT, &segments, "configure the VM") }).await?;
        Ok(())
    }

    /// `POST /nodes/{node}/qemu/{vmid}/status/{start|stop}` → UPID.
    pub(crate) async fn power(&self, node: &str, vmid: u32, action: &str) -> Result<String, Error> {
        let id = vmid.to_string();
        let what = format!("{action} the VM");
        let segments = ["nodes", node, "qemu", &id, "status", action];
        self.call(Call {
            form: Some(&[]),
            // Starting or stopping twice ends in the same state (Proxmox's "already running" is handled).
            idempotency: Idempotency::Idempotent,
            ..Call::new(Method::POST, &segments, &what)
        })
        .await
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}?purge=1&destroy-unreferenced-disks=1` → UPID.
    pub(crate) async fn destroy(&self, node: &str, vmid: u32) -> Result<String, Error> {
        let id = vmid.to_string();
        let segments = ["nodes", node, "qemu", &id];
        let query = [("purge", "1".to_string()), ("destroy-unreferenced-disks", "1".to_string())];
        self.call(Call { query: &query, ..Call::new(Method::DELETE, &segments, "destroy the VM") }).await
    }

    /// `POST .../agent/ping`, once: the caller polls ("not running yet" is the normal answer while
    /// the guest boots, not a failure to retry).
    pub(crate) async fn agent_ping(&self, node: &str, vmid: u32) -> Result<(), Error> {
        let id = vmid.to_string();
        let segments = ["nodes", node, "qemu", &id, "agent", "ping"];
        let _: serde_json::Value = self
            .call(Call { form: Some(&[]), once: true, ..Call::new(Method::POST, &segments, "ping the guest agent") })
            .await?;
        Ok(())
    }

    /// `POST .../agent/file-write` (`content` is sent as is; Proxmox base64-encodes it for QEMU).
    /// Writing the same file twice is harmless, so it may be retried.
    pub(crate) async fn agent_file_write(
        &self,
        node: &str,
        vmid: u32,
        file: &str,
        content: &SecretString,
    ) -> Result<(), Error> {
        let id = vmid.to_string();
        let segments = ["nodes", node, "qemu", &id, "agent", "file-write"];
        // The script holds secrets (the manager token): keep it out of any error text.
        let redactor = self.credential.get().await?.redactor.clone().with_secret(content);
        let form = [("file", file.to_string()), ("content", content.expose_secret().to_string())];
        let _: serde_json::Value = self
            .call(Call {
                form: Some(&form),
                idempotency: Idempotency::Idempotent,
                redactor: Some(&redactor),
                ..Call::new(Method::POST, &segments, "upload the startup script")
            })
            .await?;
        Ok(())
    }

    /// `POST .../agent/exec` with `command` as program + arguments (a repeated form field).
    /// Not idempotent: a timeout is not retried (the guest-side guard makes a later retry safe).
    pub(crate) async fn agent_exec(&self, node: &str, vmid: u32, command: &[String]) -> Result<ExecStarted, Error> {
        let id = vmid.to_string();
        let segments = ["nodes", node, "qemu", &id, "agent", "exec"];
        let form: Vec<(&str, String)> = command.iter().map(|c| ("command", c.clone())).collect();
        self.call(Call {
            form: Some(&form),
            idempotency: Idempotency::NotIdempotent,
            ..Call::new(Method::POST, &segments, "run the startup script")
        })
        .await
    }

    /// `GET .../agent/network-get-interfaces`, once (best effort).
    pub(crate) async fn agent_interfaces(&self, node: &str, vmid: u32) -> Result<Interfaces, Error> {
        let id = vmid.to_string();
        let segments = ["nodes", node, "qemu", &id, "agent", "network-get-interfaces"];
        self.call(Call { once: true, ..Call::new(Method::GET, &segments, "read the guest's addresses") }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_names_its_node() {
        assert_eq!(upid_node("UPID:pve1:000A1B2C:0F3E2D1C:6560A1B2:qmclone:9001:kasm@pve!autoscale:"), Some("pve1"));
        assert_eq!(upid_node("nope"), None);
        assert_eq!(upid_node("UPID::x"), None);
    }

    #[test]
    fn resources_parse_both_template_flag_shapes() {
        let a: Resource = serde_json::from_str(r#"{"type":"qemu","vmid":9000,"node":"pve1","template":1}"#).unwrap();
        let b: Resource = serde_json::from_str(r#"{"type":"qemu","vmid":9000,"node":"pve1","template":true}"#).unwrap();
        let c: Resource = serde_json::from_str(r#"{"type":"qemu","vmid":101,"node":"pve1"}"#).unwrap();
        assert!(a.template && b.template && !c.template);
    }

    #[tokio::test]
    async fn the_auth_header_is_sensitive_and_redacted() {
        let secret = SecretString::from("0b9d3c52-1111-2222-3333-444455556666");
        let c = Client::new(
            crate::http::build_client(&Default::default()).unwrap(),
            Url::parse("https://pve.example:8006/api2/json").unwrap(),
            Credential::new("kasm@pve", "autoscale", super::super::credential::Source::Given(secret)),
            RetryConfig::none(),
        );
        assert!(c.credential.get().await.unwrap().header.is_sensitive());
        assert!(!format!("{c:?}").contains("0b9d3c52"));
        assert!(
            !c.redactor()
                .redact("PVEAPIToken=kasm@pve!autoscale=0b9d3c52-1111-2222-3333-444455556666")
                .contains("0b9d")
        );
        assert_eq!(
            c.url(&["nodes", "pve1", "tasks", "UPID:pve1:1:2:3:qmclone:9001:kasm@pve!autoscale:", "status"]).path(),
            "/api2/json/nodes/pve1/tasks/UPID:pve1:1:2:3:qmclone:9001:kasm@pve!autoscale:/status"
        );
    }
}
