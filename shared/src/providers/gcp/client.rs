//! The Compute Engine v1 calls we make and their DTOs, with the wire names of the official discovery
//! document (`compute.v1.json`: `resources.<r>.methods.<m>` for paths and parameters,
//! `schemas.<S>` for bodies). Paths are relative to `<root>/compute/v1/`; the root is
//! `https://compute.googleapis.com/` or the config's `endpoint_url`. Lists page with `maxResults` and
//! `pageToken` → `nextPageToken`; writes answer an `Operation` polled with `zoneOperations.get`.
//!
//! Errors are Google's JSON error envelope `{"error": {"code", "message", "errors": [{"reason",
//! "domain", "message"}], "status"}}` (Google Cloud API design guide, "Errors"; the discovery document
//! does not describe it), parsed by [`api_error`].
//!
//! Retries and status mapping come from [`crate::http`]; this file only knows paths and shapes.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::Error;
use super::credential::{Auth, Credential};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig, answer_message, message_field};

/// The API's own root URL (the discovery document's `rootUrl`).
pub(crate) const DEFAULT_ROOT: &str = "https://compute.googleapis.com";

/// The Cloud Resource Manager API's root URL (its `v1` reference:
/// <https://cloud.google.com/resource-manager/reference/rest/v1/projects/testIamPermissions>).
pub(crate) const RESOURCE_MANAGER_ROOT: &str = "https://cloudresourcemanager.googleapis.com";

/// The largest page `instances.list` gives (`maxResults`: 0–500).
pub(crate) const MAX_RESULTS: usize = 500;

/// `schemas.Instance` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Instance {
    /// `uint64` as a string.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// `PROVISIONING`, `STAGING`, `RUNNING`, `STOPPING`, `STOPPED`, `SUSPENDING`, `SUSPENDED`,
    /// `REPAIRING`, `TERMINATED`, `PENDING`, `PENDING_STOP`, `DEPROVISIONING`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub disks: Vec<AttachedDisk>,
}

/// `schemas.NetworkInterface` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkInterface {
    #[serde(default, rename = "networkIP")]
    pub network_ip: Option<String>,
    #[serde(default)]
    pub access_configs: Vec<AccessConfig>,
}

/// `schemas.AccessConfig` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessConfig {
    #[serde(default, rename = "natIP")]
    pub nat_ip: Option<String>,
}

/// `schemas.AttachedDisk` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttachedDisk {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub boot: bool,
    #[serde(default)]
    pub auto_delete: bool,
}

/// `schemas.Operation` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Operation {
    pub name: String,
    /// `PENDING`, `RUNNING` or `DONE`.
    pub status: String,
    #[serde(default)]
    pub error: Option<OperationError>,
    #[serde(default)]
    pub http_error_status_code: Option<u16>,
    #[serde(default)]
    pub http_error_message: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

/// `schemas.Operation.error`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct OperationError {
    #[serde(default)]
    pub errors: Vec<OperationErrorItem>,
}

/// `schemas.Operation.error.errors[]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct OperationErrorItem {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// `schemas.InstanceList`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceList {
    #[serde(default)]
    items: Vec<Instance>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// `schemas.Region` (the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Region {
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub quotas: Vec<Quota>,
}

/// `schemas.Quota`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Quota {
    pub metric: String,
    pub limit: f64,
    pub usage: f64,
}

/// `schemas.MachineType` (the fields we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MachineType {
    pub name: String,
    #[serde(default)]
    pub guest_cpus: u32,
    #[serde(default)]
    pub memory_mb: u64,
}

/// `schemas.Image` (the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Image {
    pub name: String,
    /// `READY`, `PENDING`, `FAILED`, `DELETING`.
    #[serde(default)]
    pub status: String,
}

/// Any resource answered with a `name` and maybe a `status` (Project, Zone, Subnetwork).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Named {
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// The answer of a `testIamPermissions` call: Compute's `schemas.TestPermissionsResponse` and Cloud
/// Resource Manager's `TestIamPermissionsResponse` are both `{"permissions": [string]}`, "a subset of
/// the permissions asked that the caller is allowed" (an empty subset leaves the field out).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Permissions {
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Google's error envelope (`{"error": {...}}`).
#[derive(Debug, Default, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// What an error answer said: its reasons (`errors[].reason`, then `status`) and its message, else
/// the body text.
pub(crate) fn api_error(body: &str) -> (Vec<String>, String) {
    match serde_json::from_str::<ErrorEnvelope>(body).ok().and_then(|e| e.error) {
        Some(e) => {
            let mut reasons: Vec<String> = e.errors.into_iter().map(|i| i.reason).filter(|r| !r.is_empty()).collect();
            if !e.status.is_empty() {
                reasons.push(e.status);
            }
            (reasons.iter().map(|r| message_field(r)).collect(), message_field(&e.message))
        }
        None => (Vec::new(), answer_message(body)),
    }
}

/// One request.
struct Call<'a> {
    method: Method,
    /// Another API's base URL (Cloud Resource Manager) instead of Compute Engine's.
    root: Option<&'a Url>,
    path: Vec<&'a str>,
    query: Vec<(&'a str, String)>,
    body: Option<serde_json::Value>,
    what: &'a str,
    /// A secret besides the token the request carries (the startup script), kept out of error text.
    secret: Option<&'a SecretString>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: Vec<&'a str>, what: &'a str) -> Self {
        Call { method, root: None, path, query: Vec::new(), body: None, what, secret: None }
    }
}

/// A Compute Engine client bound to one root URL, project and zone.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    pub(crate) project: String,
    pub(crate) zone: String,
    credential: Arc<Credential>,
    retry: RetryConfig,
    page_size: usize,
    /// The Cloud Resource Manager `v1` base URL (`projects.testIamPermissions`).
    resource_manager: Url,
}

impl Client {
    /// A client for `base` (the API root followed by the service path, e.g. `.../compute/v1`).
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        project: String,
        zone: String,
        credential: Arc<Credential>,
        retry: RetryConfig,
    ) -> Self {
        // Until `with_resource_manager`: Compute's own base, so a client built without it fails loudly
        // (404) rather than calling an unintended host.
        let resource_manager = base.clone();
        Client { http, base, project, zone, credential, retry, page_size: MAX_RESULTS, resource_manager }
    }

    /// The same client calling Cloud Resource Manager at `base` (its root followed by `v1`).
    pub(crate) fn with_resource_manager(mut self, base: Url) -> Self {
        self.resource_manager = base;
        self
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same client asking for `n` items per page.
    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, MAX_RESULTS);
        self
    }

    /// The base URL (root + service path).
    #[cfg(test)]
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, root: Option<&Url>, path: &[&str]) -> Url {
        let mut url = root.unwrap_or(&self.base).clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            for s in path {
                p.push(s);
            }
        }
        url
    }

    /// One call; returns the body text. A 401 drops the token; the request is sent again once when
    /// the key file changed (see [`Credential::refresh`]).
    async fn call(&self, c: Call<'_>) -> Result<String, Error> {
        let mut auth = self.credential.get().await?;
        let mut refreshed = false;
        loop {
            match self.send(&c, &auth).await {
                Err(e) if e.status() == Some(401) && !refreshed => match self.credential.refresh(&auth).await? {
                    Some(fresh) => {
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
        let mut url = self.url(c.root, &c.path);
        if !c.query.is_empty() {
            url.query_pairs_mut().extend_pairs(c.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(c.method.clone(), url).header(AUTHORIZATION, auth.header.clone());
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        // Every write we send carries a `requestId`: the API ignores a repeat, so all are safe to retry.
        let resp = crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &redactor)
            .await
            .map_err(http_err)?;
        resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))
    }

    async fn call_json<T: DeserializeOwned>(&self, c: Call<'_>) -> Result<T, Error> {
        let what = c.what.to_string();
        let text = self.call(c).await?;
        // serde's message names the field and position, never the value.
        serde_json::from_str(&text).map_err(|e| Error::Decode { what, message: e.to_string() })
    }

    /// Gets an access token (preflight's credential check).
    pub(crate) async fn authenticate(&self) -> Result<(), Error> {
        self.credential.get().await.map(drop)
    }

    fn zonal<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut p = vec!["projects", self.project.as_str(), "zones", self.zone.as_str()];
        p.extend_from_slice(rest);
        p
    }

    /// `instances.get`.
    pub(crate) async fn instance(&self, name: &str) -> Result<Instance, Error> {
        self.call_json(Call::new(Method::GET, self.zonal(&["instances", name]), "read the instance")).await
    }

    /// `instances.list` with `filter`, across every page (`pageToken` → `nextPageToken`).
    pub(crate) async fn instances(&self, filter: &str) -> Result<Vec<Instance>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("filter", filter.to_string()), ("maxResults", self.page_size.to_string())];
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let page: InstanceList = self
                .call_json(Call { query: q, ..Call::new(Method::GET, self.zonal(&["instances"]), "list instances") })
                .await?;
            out.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) == token.as_ref() => {
                    return Err(Error::Decode {
                        what: "list instances".into(),
                        message: "nextPageToken repeats the token of the page it answers".into(),
                    });
                }
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// `instances.insert?requestId=` with `body` (a `schemas.Instance`).
    pub(crate) async fn insert(
        &self,
        body: serde_json::Value,
        request_id: &str,
        script: Option<&SecretString>,
    ) -> Result<Operation, Error> {
        self.call_json(Call {
            body: Some(body),
            query: vec![("requestId", request_id.to_string())],
            secret: script,
            ..Call::new(Method::POST, self.zonal(&["instances"]), "create the instance")
        })
        .await
    }

    /// `instances.delete?requestId=`.
    pub(crate) async fn delete(&self, name: &str, request_id: &str) -> Result<Operation, Error> {
        self.call_json(Call {
            query: vec![("requestId", request_id.to_string())],
            ..Call::new(Method::DELETE, self.zonal(&["instances", name]), "delete the instance")
        })
        .await
    }

    /// `zoneOperations.get`, once (the caller polls).
    pub(crate) async fn operation(&self, name: &str) -> Result<Operation, Error> {
        self.call_json(Call::new(Method::GET, self.zonal(&["operations", name]), "read the zone operation")).await
    }

    /// `projects.get`.
    pub(crate) async fn project(&self) -> Result<Named, Error> {
        self.call_json(Call::new(Method::GET, vec!["projects", self.project.as_str()], "read the project")).await
    }

    /// `zones.get`.
    pub(crate) async fn zone(&self) -> Result<Named, Error> {
        self.call_json(Call::new(Method::GET, self.zonal(&[]), "read the zone")).await
    }

    /// `regions.get`.
    pub(crate) async fn region(&self, region: &str) -> Result<Region, Error> {
        let p = vec!["projects", self.project.as_str(), "regions", region];
        self.call_json(Call::new(Method::GET, p, "read the region")).await
    }

    /// `machineTypes.get`.
    pub(crate) async fn machine_type(&self, name: &str) -> Result<MachineType, Error> {
        self.call_json(Call::new(Method::GET, self.zonal(&["machineTypes", name]), "read the machine type")).await
    }

    /// `images.get` (`family` false) or `images.getFromFamily` (`family` true) in `project`.
    pub(crate) async fn image(&self, project: &str, name: &str, family: bool) -> Result<Image, Error> {
        let p = if family {
            vec!["projects", project, "global", "images", "family", name]
        } else {
            vec!["projects", project, "global", "images", name]
        };
        self.call_json(Call::new(Method::GET, p, "read the image")).await
    }

    /// Cloud Resource Manager `projects.testIamPermissions` on our project: which of `permissions` the
    /// caller has there (`POST {root}/v1/projects/{project}:testIamPermissions`, body
    /// `{"permissions": [...]}`; "There are no permissions required for making this API call").
    pub(crate) async fn project_permissions(&self, permissions: &[&str]) -> Result<Permissions, Error> {
        let resource = format!("{}:testIamPermissions", self.project);
        let body = serde_json::json!({ "permissions": permissions });
        self.call_json(Call {
            root: Some(&self.resource_manager),
            body: Some(body),
            ..Call::new(Method::POST, vec!["projects", resource.as_str()], "test the project's IAM permissions")
        })
        .await
    }

    /// Compute Engine `subnetworks.testIamPermissions`: which of `permissions` the caller has on the
    /// subnetwork (`schemas.TestPermissionsRequest` / `TestPermissionsResponse`).
    pub(crate) async fn subnetwork_permissions(
        &self,
        project: &str,
        region: &str,
        name: &str,
        permissions: &[&str],
    ) -> Result<Permissions, Error> {
        let p = vec!["projects", project, "regions", region, "subnetworks", name, "testIamPermissions"];
        let body = serde_json::json!({ "permissions": permissions });
        self.call_json(Call { body: Some(body), ..Call::new(Method::POST, p, "test the subnetwork's IAM permissions") })
            .await
    }

    /// `subnetworks.get`.
    pub(crate) async fn subnetwork(&self, project: &str, region: &str, name: &str) -> Result<Named, Error> {
        let p = vec!["projects", project, "regions", region, "subnetworks", name];
        self.call_json(Call::new(Method::GET, p, "read the subnetwork")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_shaped_bodies_parse() {
        let i: Instance = serde_json::from_str(
            r#"{"kind":"compute#instance","id":"4567","creationTimestamp":"2026-01-02T03:04:05.000-07:00",
            "name":"kasm-1","status":"RUNNING","labels":{"a":"b"},
            "networkInterfaces":[{"networkIP":"10.150.0.2","accessConfigs":[{"type":"ONE_TO_ONE_NAT","natIP":"34.1.2.3"}]}],
            "disks":[{"boot":true,"autoDelete":true,"source":"projects/p/zones/z/disks/kasm-1"}]}"#,
        )
        .unwrap();
        assert_eq!(i.network_interfaces[0].network_ip.as_deref(), Some("10.150.0.2"));
        assert_eq!(i.network_interfaces[0].access_configs[0].nat_ip.as_deref(), Some("34.1.2.3"));
        assert!(i.disks[0].auto_delete);
        let op: Operation = serde_json::from_str(
            r#"{"name":"operation-1","status":"DONE","httpErrorStatusCode":400,
            "error":{"errors":[{"code":"ZONE_RESOURCE_POOL_EXHAUSTED","message":"no"}]}}"#,
        )
        .unwrap();
        assert_eq!(op.error.unwrap().errors[0].code, "ZONE_RESOURCE_POOL_EXHAUSTED");
        let (reasons, msg) = api_error(
            r#"{"error":{"code":403,"message":"Compute Engine API has not been used","errors":[{"message":"x","domain":"usageLimits","reason":"accessNotConfigured"}],"status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(reasons, ["accessNotConfigured", "PERMISSION_DENIED"]);
        assert_eq!(msg, "Compute Engine API has not been used");
        assert_eq!(api_error("oops").1, "oops");
    }
}
