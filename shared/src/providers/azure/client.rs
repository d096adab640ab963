//! The Azure Resource Manager calls we make: one function per call, the paths of the official REST
//! specs (`Microsoft.Compute` 2024-07-01, `Microsoft.Network` 2024-05-01, DNS 2018-05-01; the
//! api-versions are pinned below), and the ARM async-operation contract (`azure-resource-manager-rpc`,
//! `v1.0/async-api-reference.md`): a `PUT`/`DELETE` answered `201`/`202` is finished by polling its
//! `Azure-AsyncOperation` URL (`{status: InProgress|Succeeded|Failed|Canceled, error}`), else its
//! `Location` URL (`202` while running), else the resource's `provisioningState`; the wait between
//! polls is the answer's `Retry-After` (seconds) when it gives one, and the whole wait is bounded.
//! Errors are `{"error": {"code", "message"}}`.
//!
//! Requests carry `Authorization: Bearer <token>` from [`Credential`]. A poll or next-page URL the API
//! hands back is followed only when it points at our own ARM endpoint (scheme, host and port): the
//! token is never sent to a host named in an answer.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::Error;
use super::credential::Credential;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig, answer_message, message_field};
use crate::providers::Timings;

/// `Microsoft.Compute` api-version (virtualMachines, extensions, usages, vmSizes): ComputeRP stable 2024-07-01.
pub const COMPUTE_API: &str = "2024-07-01";
/// `Microsoft.Network` api-version (networkInterfaces, publicIPAddresses, networkSecurityGroups, subnets).
pub const NETWORK_API: &str = "2024-05-01";
/// Azure DNS api-version (dnsZones and record sets).
pub const DNS_API: &str = "2018-05-01";
/// `Microsoft.Compute/disks` api-version (DiskRP; Disks – Get / Update): the stable
/// `DiskRP/stable/2023-10-02/disk.json` of Azure/azure-rest-api-specs, the version Microsoft Learn's
/// "Disks - Update" page documents (<https://learn.microsoft.com/en-us/rest/api/compute/disks/update>):
/// `PATCH .../providers/Microsoft.Compute/disks/{diskName}` with a `DiskUpdate` body (`tags`,
/// `properties`, `sku`), answered `200`/`202` with the `Disk`.
pub const DISK_API: &str = "2023-10-02";
/// `Microsoft.Compute/skus` api-version (Resource Skus – List): `Skus/stable/2021-07-01/skus.json` of
/// Azure/azure-rest-api-specs, as on <https://learn.microsoft.com/en-us/rest/api/compute/resource-skus/list>:
/// `GET /subscriptions/{s}/providers/Microsoft.Compute/skus?$filter=location eq '{region}'`, answered
/// `{"value": [ResourceSku], "nextLink"}`.
pub const SKUS_API: &str = "2021-07-01";
/// `Microsoft.Compute/galleries` api-version (GalleryImages – Get, GalleryImageVersions – Get /
/// ListByGalleryImage): `GalleryRP/stable/2024-03-03` of Azure/azure-rest-api-specs (its examples
/// `GalleryImage_Get.json`, `GalleryImageVersion_Get.json`); the request paths as Microsoft Learn gives
/// them (`.../galleries/{galleryName}/images/{galleryImageName}/versions/{galleryImageVersionName}`,
/// <https://learn.microsoft.com/en-us/rest/api/compute/gallery-image-versions/get>).
pub const GALLERY_API: &str = "2024-03-03";

/// The longest wait between two polls when the API gives no `Retry-After`.
pub const MAX_POLL: Duration = Duration::from_secs(30);

/// `{"error": {"code", "message"}}` (ARM's error body; also the `error` of a failed operation).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ApiError,
}

/// The `code` and `message` of an ARM error body, else the body's text.
pub(crate) fn error_message(body: &str) -> (String, String) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => (message_field(&e.error.code), message_field(&e.error.message)),
        Err(_) => (String::new(), answer_message(body)),
    }
}

/// The operation resource an `Azure-AsyncOperation` URL answers.
#[derive(Debug, Deserialize)]
struct Operation {
    status: String,
    #[serde(default)]
    error: Option<ApiError>,
}

/// A list answer: `{"value": [...], "nextLink": "..."}`.
#[derive(Debug, Deserialize)]
struct ListPage<T> {
    value: Vec<T>,
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
}

/// One answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
    }

    fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs)
    }
}

/// An ARM client bound to one endpoint, subscription and credential.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    credential: Arc<Credential>,
    retry: RetryConfig,
    timings: Timings,
}

/// One request.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// An absolute URL (a poll or next-page URL), or our base joined with `path`.
    pub url: Url,
    pub body: Option<Value>,
    pub what: &'a str,
    /// A secret the body carries besides the token (custom data, a password), kept out of error text.
    pub secrets: Vec<SecretString>,
}

impl Client {
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        credential: Credential,
        retry: RetryConfig,
        timings: Timings,
    ) -> Self {
        Client { http, base, credential: Arc::new(credential), retry, timings }
    }

    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    pub(crate) fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// The ARM base URL.
    #[cfg(test)]
    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    /// The credential (preflight reads a token on its own).
    pub(crate) fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Our base URL + the resource path `path` (each segment escaped) + `?api-version=`.
    pub(crate) fn url(&self, path: &[&str], api_version: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            for s in path {
                p.push(s);
            }
        }
        url.query_pairs_mut().append_pair("api-version", api_version);
        url
    }

    /// Whether `url` points at our ARM endpoint (same scheme, host and port).
    fn is_ours(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// A URL the API handed back (poll, next page), checked to point at our endpoint.
    fn follow(&self, raw: &str, what: &str) -> Result<Url, Error> {
        let url = Url::parse(raw).map_err(|e| Error::Decode {
            what: what.to_string(),
            message: format!("the URL `{raw}` does not parse: {e}"),
        })?;
        if !self.is_ours(&url) {
            return Err(Error::Decode {
                what: what.to_string(),
                message: format!(
                    "the API pointed at {}, not our ARM endpoint {}; not sending the token there",
                    url.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// One call. A 401 whose code says the token expired (`ExpiredAuthenticationToken`) fetches a new
    /// token and sends once more; any other 401 forgets the cached token (the next call fetches one) and
    /// is handed back.
    pub(crate) async fn call(&self, c: &Call<'_>) -> Result<Answer, Error> {
        let mut token = self.credential.token().await?;
        let mut again = true;
        loop {
            match self.send(c, &token).await {
                Err(e) if e.status() == Some(401) => {
                    self.credential.invalidate().await;
                    let expired = matches!(&e, Error::Http { source: HttpError::Status { body, .. }, .. }
                        if error_message(body).0 == "ExpiredAuthenticationToken");
                    if expired && again {
                        tracing::info!("ARM says the token expired; fetching a new one and sending again");
                        token = self.credential.token().await?;
                        again = false;
                        continue;
                    }
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    async fn send(&self, c: &Call<'_>, token: &SecretString) -> Result<Answer, Error> {
        let mut redactor = self.credential.redactor().with_secret(token);
        for s in &c.secrets {
            redactor = redactor.with_secret(s);
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let mut header = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| Error::Credential { message: "the access token is not a valid HTTP header value".into() })?;
        header.set_sensitive(true);
        let mut req = self.http.request(c.method.clone(), c.url.clone()).header(AUTHORIZATION, header);
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        // ARM's PUT (create or update by name) and DELETE are idempotent: a retry converges. Our only
        // PATCH sets a resource's tags to a whole map (ARM replaces the tags with the map sent), so
        // sending it twice leaves the same tags: idempotent too.
        let idempotency = if c.method == Method::PATCH { Idempotency::Idempotent } else { Idempotency::FromMethod };
        let resp = crate::http::send(&self.http, req, idempotency, &self.retry, &redactor).await.map_err(http_err)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        Ok(Answer { status, headers, body })
    }

    fn decode<T: DeserializeOwned>(what: &str, body: &str) -> Result<T, Error> {
        // serde's message names the field and position, never the value.
        serde_json::from_str(body).map_err(|e| Error::Decode { what: what.to_string(), message: e.to_string() })
    }

    /// `GET` a resource: `None` when it does not exist (404, except a missing resource group or
    /// subscription, which is an error naming it).
    pub(crate) async fn get<T: DeserializeOwned>(&self, url: Url, what: &str) -> Result<Option<T>, Error> {
        let c = Call { method: Method::GET, url, body: None, what, secrets: Vec::new() };
        match self.call(&c).await {
            Ok(a) => Ok(Some(Self::decode(what, &a.body)?)),
            Err(e) if e.is_missing_resource() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET` a list across every page (`nextLink`).
    pub(crate) async fn list<T: DeserializeOwned>(&self, url: Url, what: &str) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        let mut next = Some(url);
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                return Err(Error::Decode { what: what.to_string(), message: "nextLink repeats a page".into() });
            }
            let c = Call { method: Method::GET, url, body: None, what, secrets: Vec::new() };
            let a = self.call(&c).await?;
            let page: ListPage<T> = Self::decode(what, &a.body)?;
            out.extend(page.value);
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                next = Some(self.follow(&link, what)?);
            }
        }
        Ok(out)
    }

    /// `PUT` a resource by name (create or update: idempotent) and wait until it is provisioned.
    /// Returns the resource as the last answer or a final `GET` gives it.
    pub(crate) async fn put(
        &self,
        url: Url,
        body: Value,
        what: &str,
        secrets: Vec<SecretString>,
    ) -> Result<Value, Error> {
        self.write(Method::PUT, url, body, what, secrets).await
    }

    /// `PATCH` a resource (ARM's update: `tags` are replaced by the map sent, `properties` merged) and
    /// wait until it is done (`200`, or `202` with `Location` / `Azure-AsyncOperation`,
    /// `async-api-reference.md` "Updating using PATCH"). Returns the resource as updated.
    pub(crate) async fn patch(&self, url: Url, body: Value, what: &str) -> Result<Value, Error> {
        self.write(Method::PATCH, url, body, what, Vec::new()).await
    }

    async fn write(
        &self,
        method: Method,
        url: Url,
        body: Value,
        what: &str,
        secrets: Vec<SecretString>,
    ) -> Result<Value, Error> {
        let c = Call { method, url: url.clone(), body: Some(body), what, secrets };
        let a = self.call(&c).await?;
        let first: Value = if a.body.trim().is_empty() { Value::Null } else { Self::decode(what, &a.body)? };
        let state = provisioning_state(&first);
        let done = matches!(a.status, 200 | 201)
            && state.is_none_or(is_succeeded)
            && !a.headers.contains_key("azure-asyncoperation");
        if done {
            return Ok(first);
        }
        self.wait(&a, Some(&url), what).await?;
        self.get::<Value>(url, what).await?.ok_or_else(|| Error::Decode {
            what: what.to_string(),
            message: "the resource is gone after its create".into(),
        })
    }

    /// `DELETE` a resource and wait until it is gone. `Ok(false)`: it did not exist (404 or 204).
    pub(crate) async fn delete(&self, url: Url, what: &str) -> Result<bool, Error> {
        let c = Call { method: Method::DELETE, url, body: None, what, secrets: Vec::new() };
        let a = match self.call(&c).await {
            Ok(a) => a,
            Err(e) if e.is_missing_resource() => return Ok(false),
            Err(e) => return Err(e),
        };
        match a.status {
            204 => Ok(false),
            200 => Ok(true),
            _ => {
                self.wait(&a, None, what).await?;
                Ok(true)
            }
        }
    }

    /// Waits for the operation `a` started: its `Azure-AsyncOperation`, else its `Location`, else
    /// (for a PUT) the provisioning state of `resource`. Bounded by [`Timings::operation_timeout`].
    async fn wait(&self, first: &Answer, resource: Option<&Url>, what: &str) -> Result<(), Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let timeout = || Error::Timeout { what: what.to_string(), secs: self.timings.operation_timeout.as_secs() };
        let mut backoff = self.timings.poll;
        let async_url = first.header("azure-asyncoperation").map(|u| self.follow(u, what)).transpose()?;
        let location = first.header("location").map(|u| self.follow(u, what)).transpose()?;
        let mut retry_after = first.retry_after();
        loop {
            // Retry-After when given (the contract: wait it before polling), else a doubling backoff.
            let wait = match retry_after {
                Some(r) => r.max(self.timings.poll),
                None => {
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_POLL.max(self.timings.poll));
                    w
                }
            };
            if Instant::now() + wait > deadline {
                return Err(timeout());
            }
            tokio::time::sleep(wait).await;
            if let Some(u) = &async_url {
                let c = Call { method: Method::GET, url: u.clone(), body: None, what, secrets: Vec::new() };
                let a = self.call(&c).await?;
                retry_after = a.retry_after();
                let op: Operation = Self::decode(what, &a.body)?;
                match op.status.as_str() {
                    "Succeeded" => return Ok(()),
                    "Failed" | "Canceled" => {
                        let e = op.error.unwrap_or_default();
                        return Err(Error::OperationFailed {
                            what: what.to_string(),
                            status: op.status,
                            code: e.code,
                            message: e.message,
                        });
                    }
                    _ => continue,
                }
            }
            if let Some(u) = &location {
                let c = Call { method: Method::GET, url: u.clone(), body: None, what, secrets: Vec::new() };
                let a = self.call(&c).await?;
                retry_after = a.retry_after();
                if a.status == 202 {
                    continue;
                }
                return Ok(());
            }
            let Some(r) = resource else {
                // A 202 without a URL to poll: the contract requires one; nothing to wait on.
                return Err(Error::Decode {
                    what: what.to_string(),
                    message: format!("HTTP {} without Azure-AsyncOperation or Location", first.status),
                });
            };
            let Some(v) = self.get::<Value>(r.clone(), what).await? else {
                return Err(Error::Decode {
                    what: what.to_string(),
                    message: "the resource is gone while being created".into(),
                });
            };
            match provisioning_state(&v) {
                None => return Ok(()),
                Some(s) if is_succeeded(s) => return Ok(()),
                Some(s @ ("Failed" | "Canceled")) => {
                    return Err(Error::OperationFailed {
                        what: what.to_string(),
                        status: s.to_string(),
                        code: String::new(),
                        message: format!("provisioningState {s}"),
                    });
                }
                Some(_) => {}
            }
        }
    }
}

/// `properties.provisioningState` of a resource body.
pub(crate) fn provisioning_state(v: &Value) -> Option<&str> {
    v.get("properties")?.get("provisioningState")?.as_str()
}

fn is_succeeded(s: &str) -> bool {
    s == "Succeeded"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_parse() {
        let (code, msg) = error_message(
            r#"{"error":{"code":"SkuNotAvailable","message":"The requested size for resource '/subscriptions/x' is currently not available in location 'eastus'."}}"#,
        );
        assert_eq!(code, "SkuNotAvailable");
        assert!(msg.contains("not available"));
        assert_eq!(
            error_message("<html><h1>Bad gateway</h1><p>echo: token=x</p></html>"),
            (String::new(), "Bad gateway echo: token=[REDACTED]".into())
        );
        let op: Operation = serde_json::from_str(
            r#"{"id":"x","name":"y","status":"Failed","startTime":"2024-01-01T00:00:00Z","error":{"code":"AllocationFailed","message":"no"}}"#,
        )
        .unwrap();
        assert_eq!((op.status.as_str(), op.error.unwrap().code.as_str()), ("Failed", "AllocationFailed"));
        let v: Value = serde_json::json!({"properties": {"provisioningState": "Creating"}});
        assert_eq!(provisioning_state(&v), Some("Creating"));
    }
}
