//! The OCI Core (compute, API version 20160918) calls we make and their DTOs, with the wire names of
//! Oracle's SDK models (`LaunchInstanceDetails`, `Instance`; `oci-sdk-api.json` extracted from the
//! Python SDK, which Oracle generates from its API specs). Every request is signed
//! ([`super::signer`]); lists page with the `opc-next-page` answer header and the `page` query
//! parameter; errors are `{"code", "message"}`.
//!
//! Retries and the status map come from [`crate::http`]; this file only knows paths and shapes.

use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::Error;
use super::credential::Credential;
use super::signer::RequestSigner;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig, answer_message, message_field};

/// The Core API's version path.
pub(crate) const CORE: &str = "20160918";

/// The Limits API's version path: the SDK's `LimitsClient` has the base path `/` and starts every
/// resource path with `/20190729` (`oci/limits/limits_client.py`, oci 2.189.0).
pub(crate) const LIMITS: &str = "20190729";

/// `Instance` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Instance {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// MOVING, PROVISIONING, RUNNING, STARTING, STOPPING, STOPPED, CREATING_IMAGE, TERMINATING, TERMINATED.
    pub lifecycle_state: String,
    #[serde(default)]
    pub availability_domain: Option<String>,
    #[serde(default)]
    pub freeform_tags: BTreeMap<String, String>,
    #[serde(default)]
    pub time_created: Option<DateTime<Utc>>,
}

/// `VnicAttachment` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VnicAttachment {
    /// ATTACHING, ATTACHED, DETACHING, DETACHED.
    pub lifecycle_state: String,
    /// Missing while the attachment is being made.
    #[serde(default)]
    pub vnic_id: Option<String>,
}

/// `Vnic` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Vnic {
    #[serde(default)]
    pub is_primary: Option<bool>,
    #[serde(default)]
    pub private_ip: Option<String>,
    #[serde(default)]
    pub public_ip: Option<String>,
}

/// `BootVolumeAttachment` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BootVolumeAttachment {
    pub boot_volume_id: String,
    /// ATTACHING, ATTACHED, DETACHING, DETACHED.
    pub lifecycle_state: String,
}

/// `BootVolume` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BootVolume {
    pub id: String,
    #[serde(default)]
    pub freeform_tags: BTreeMap<String, String>,
}

/// `LaunchInstanceDetails` (the fields we send; the config override is merged over it as wire JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LaunchInstanceDetails {
    pub availability_domain: String,
    pub compartment_id: String,
    pub display_name: String,
    pub shape: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape_config: Option<ShapeConfig>,
    pub source_details: SourceDetails,
    pub create_vnic_details: CreateVnicDetails,
    pub metadata: BTreeMap<String, String>,
    pub freeform_tags: BTreeMap<String, String>,
}

/// `LaunchInstanceShapeConfigDetails`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShapeConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocpus: Option<f64>,
    #[serde(rename = "memoryInGBs", skip_serializing_if = "Option::is_none")]
    pub memory_in_gbs: Option<f64>,
    /// `BASELINE_1_8`, `BASELINE_1_2`, `BASELINE_1_1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_ocpu_utilization: Option<String>,
}

/// `InstanceSourceViaImageDetails` (`sourceType: image`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SourceDetails {
    pub source_type: &'static str,
    pub image_id: String,
    #[serde(rename = "bootVolumeSizeInGBs")]
    pub boot_volume_size_in_gbs: u32,
    #[serde(rename = "bootVolumeVpusPerGB")]
    pub boot_volume_vpus_per_gb: u32,
}

/// `CreateVnicDetails`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateVnicDetails {
    pub subnet_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nsg_ids: Vec<String>,
    pub assign_public_ip: bool,
    pub freeform_tags: BTreeMap<String, String>,
}

/// An OCI error body: `{"code": "NotAuthorizedOrNotFound", "message": "..."}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The `(code, message)` of an error body (empty code when the body is not OCI's shape).
pub(crate) fn error_message(body: &str) -> (String, String) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) if !e.code.is_empty() || !e.message.is_empty() => (message_field(&e.code), message_field(&e.message)),
        _ => (String::new(), answer_message(body)),
    }
}

/// Which OCI service a call goes to: Core (compute, network: `iaas.<region>`), Identity
/// (`identity.<region>.oci`) or Limits (`limits.<region>.oci`). With `endpoint_url` all are that URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Core,
    Identity,
    Limits,
}

/// The OCI API endpoints with their signer.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    identity: Url,
    limits: Url,
    credential: Credential,
    retry: RetryConfig,
    page_size: usize,
}

impl Client {
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        identity: Url,
        limits: Url,
        credential: Credential,
        retry: RetryConfig,
    ) -> Self {
        Client { http, base, identity, limits, credential, retry, page_size: 100 }
    }

    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// The Core, Identity and Limits base URLs.
    #[cfg(test)]
    pub(crate) fn base_urls(&self) -> (&str, &str, &str) {
        (self.base.as_str(), self.identity.as_str(), self.limits.as_str())
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, Error> {
        self.url_of(Api::Core, path, query)
    }

    fn url_of(&self, api: Api, path: &str, query: &[(&str, &str)]) -> Result<Url, Error> {
        let mut url = match api {
            Api::Core => self.base.clone(),
            Api::Identity => self.identity.clone(),
            Api::Limits => self.limits.clone(),
        };
        let joined = format!("{}/{}", url.path().trim_end_matches('/'), path.trim_start_matches('/'));
        url.set_path(&joined);
        if !query.is_empty() {
            // OCI signs the query as sent: keep the encoding `url` produces.
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends one signed request; after a 401 the key is read again and, when it changed, the request
    /// signed and sent once more.
    async fn send(
        &self,
        what: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        idempotency: Idempotency,
    ) -> Result<reqwest::Response, Error> {
        let mut signer = self.credential.get().await?;
        let mut refreshed = false;
        loop {
            let request = self.signed(&signer, method.clone(), url.clone(), body, headers, what)?;
            match crate::http::retry::send(&self.http, request, idempotency, &self.retry, &Redactor::new()).await {
                Ok(r) => return Ok(r),
                Err(source) => {
                    let unauthenticated = source.status().is_some_and(|s| s.as_u16() == 401);
                    if unauthenticated && !refreshed {
                        refreshed = true;
                        // A rotated key: sign again once; the same key: the refusal stands.
                        if let Some(s) = self.credential.refresh(&signer).await? {
                            signer = s;
                            continue;
                        }
                    }
                    return Err(Error::Http { what: what.to_string(), source });
                }
            }
        }
    }

    fn signed(
        &self,
        signer: &RequestSigner,
        method: Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        what: &str,
    ) -> Result<reqwest::Request, Error> {
        let mut b = self.http.request(method, url).header("accept", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(body) = body {
            b = b.header("content-type", "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let mut req = b.build().map_err(|e| Error::Http {
            what: what.to_string(),
            source: HttpError::from_reqwest(e, &Redactor::new()),
        })?;
        signer.sign(&mut req, Utc::now()).map_err(|e| Error::Credential { message: e.to_string() })?;
        Ok(req)
    }

    async fn json<T: DeserializeOwned>(what: &str, resp: reqwest::Response) -> Result<T, Error> {
        let text = resp.text().await.map_err(|e| Error::Http {
            what: what.to_string(),
            source: HttpError::from_reqwest(e, &Redactor::new()),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Decode { what: what.to_string(), message: e.to_string() })
    }

    /// `POST /20160918/instances` with `opc-retry-token`: OCI answers a repeated token with the
    /// instance the first request made, so the call is retried like an idempotent one.
    pub(crate) async fn launch_instance(&self, body: &Value, retry_token: &str) -> Result<Instance, Error> {
        let what = "launch the instance (LaunchInstance)";
        let url = self.url(&format!("{CORE}/instances"), &[])?;
        let resp = self
            .send(what, Method::POST, url, Some(body), &[("opc-retry-token", retry_token)], Idempotency::Idempotent)
            .await?;
        Self::json(what, resp).await
    }

    /// `GET /20160918/instances/{id}`.
    pub(crate) async fn get_instance(&self, id: &str) -> Result<Instance, Error> {
        let what = format!("read instance {id} (GetInstance)");
        let url = self.url(&format!("{CORE}/instances/{}", enc(id)), &[])?;
        let resp = self.send(&what, Method::GET, url, None, &[], Idempotency::FromMethod).await?;
        Self::json(&what, resp).await
    }

    /// `GET /20160918/instances?compartmentId=` across every page (`opc-next-page`).
    pub(crate) async fn list_instances(&self, compartment: &str) -> Result<Vec<Instance>, Error> {
        let what = "list instances (ListInstances)";
        let limit = self.page_size.to_string();
        let mut page: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let mut q = vec![("compartmentId", compartment), ("limit", limit.as_str())];
            if let Some(p) = &page {
                q.push(("page", p.as_str()));
            }
            let url = self.url(&format!("{CORE}/instances"), &q)?;
            let resp = self.send(what, Method::GET, url, None, &[], Idempotency::FromMethod).await?;
            let next = resp.headers().get("opc-next-page").and_then(|v| v.to_str().ok()).map(str::to_string);
            let items: Vec<Instance> = Self::json(what, resp).await?;
            out.extend(items);
            match next {
                Some(n) if !n.is_empty() && page.as_deref() != Some(n.as_str()) => page = Some(n),
                _ => return Ok(out),
            }
        }
    }

    /// One page of a list on `api`: the items and the `opc-next-page` token.
    pub(crate) async fn get_page(
        &self,
        api: Api,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(Vec<Value>, Option<String>), Error> {
        let url = self.url_of(api, &format!("{CORE}/{path}"), query)?;
        let resp = self.send(what, Method::GET, url, None, &[], Idempotency::FromMethod).await?;
        let next = resp.headers().get("opc-next-page").and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok((Self::json(what, resp).await?, next.filter(|n| !n.is_empty())))
    }

    /// `DELETE /20160918/instances/{id}?preserveBootVolume=false` (the boot volume goes with it).
    pub(crate) async fn terminate_instance(&self, id: &str) -> Result<(), Error> {
        let what = format!("terminate instance {id} (TerminateInstance)");
        let url = self.url(&format!("{CORE}/instances/{}", enc(id)), &[("preserveBootVolume", "false")])?;
        self.send(&what, Method::DELETE, url, None, &[], Idempotency::FromMethod).await?;
        Ok(())
    }

    /// A signed request to `path` on the Core base URL, where `path` carries its own API version
    /// (`20160918/...` for Core, `20180115/...` for DNS, whose client is built on the DNS endpoint):
    /// the answer's text and its `opc-next-page`. Retried like an idempotent call: every caller's
    /// request is a read, a full replacement (`PUT`) or a `PATCH` guarded by preconditions.
    pub(crate) async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(String, Option<String>), Error> {
        let url = self.url_of(Api::Core, path, query)?;
        self.text_and_next(what, method, url, body, Idempotency::Idempotent).await
    }

    /// Sends one request ([`Client::send`]); its body as text and its `opc-next-page` (none when empty).
    async fn text_and_next(
        &self,
        what: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<(String, Option<String>), Error> {
        let resp = self.send(what, method, url, body, &[], idempotency).await?;
        let next = resp.headers().get("opc-next-page").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = resp.text().await.map_err(|e| Error::Http {
            what: what.to_string(),
            source: HttpError::from_reqwest(e, &Redactor::new()),
        })?;
        Ok((text, next.filter(|n| !n.is_empty())))
    }

    /// Every item of a Core list (`GET 20160918/<path>`) across its pages (`opc-next-page`).
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, Error> {
        let limit = self.page_size.to_string();
        let mut page: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("limit", limit.as_str()));
            if let Some(p) = &page {
                q.push(("page", p.as_str()));
            }
            let (text, next) = self.call(what, Method::GET, &format!("{CORE}/{path}"), &q, None).await?;
            let items: Vec<T> = serde_json::from_str(&text)
                .map_err(|e| Error::Decode { what: what.to_string(), message: e.to_string() })?;
            out.extend(items);
            match next {
                Some(n) if page.as_deref() != Some(n.as_str()) => page = Some(n),
                Some(_) => {
                    return Err(Error::Decode { what: what.to_string(), message: "opc-next-page repeats".into() });
                }
                None => return Ok(out),
            }
        }
    }

    /// `GET /20160918/vnicAttachments?compartmentId=&instanceId=`, every page.
    pub(crate) async fn list_vnic_attachments(
        &self,
        compartment: &str,
        instance: &str,
    ) -> Result<Vec<VnicAttachment>, Error> {
        let what = format!("list the VNIC attachments of instance {instance} (ListVnicAttachments)");
        self.list_all(&what, "vnicAttachments", &[("compartmentId", compartment), ("instanceId", instance)]).await
    }

    /// `GET /20160918/vnics/{vnicId}`.
    pub(crate) async fn get_vnic(&self, id: &str) -> Result<Vnic, Error> {
        let what = format!("read VNIC {id} (GetVnic)");
        let (text, _) = self.call(&what, Method::GET, &format!("{CORE}/vnics/{}", enc(id)), &[], None).await?;
        serde_json::from_str(&text).map_err(|e| Error::Decode { what, message: e.to_string() })
    }

    /// `GET /20160918/bootVolumeAttachments?availabilityDomain=&compartmentId=&instanceId=`, every page.
    pub(crate) async fn list_boot_volume_attachments(
        &self,
        availability_domain: &str,
        compartment: &str,
        instance: &str,
    ) -> Result<Vec<BootVolumeAttachment>, Error> {
        let what = format!("list the boot volume attachments of instance {instance} (ListBootVolumeAttachments)");
        let q = [("availabilityDomain", availability_domain), ("compartmentId", compartment), ("instanceId", instance)];
        self.list_all(&what, "bootVolumeAttachments", &q).await
    }

    /// `GET /20160918/bootVolumes/{bootVolumeId}`.
    pub(crate) async fn get_boot_volume(&self, id: &str) -> Result<BootVolume, Error> {
        let what = format!("read boot volume {id} (GetBootVolume)");
        let (text, _) = self.call(&what, Method::GET, &format!("{CORE}/bootVolumes/{}", enc(id)), &[], None).await?;
        serde_json::from_str(&text).map_err(|e| Error::Decode { what, message: e.to_string() })
    }

    /// `PUT /20160918/bootVolumes/{bootVolumeId}` with `UpdateBootVolumeDetails {freeformTags}` (the
    /// whole set: OCI replaces a resource's freeform tags with the ones sent).
    pub(crate) async fn update_boot_volume_tags(&self, id: &str, tags: &BTreeMap<String, String>) -> Result<(), Error> {
        let what = format!("tag boot volume {id} (UpdateBootVolume)");
        let body = serde_json::json!({ "freeformTags": tags });
        self.call(&what, Method::PUT, &format!("{CORE}/bootVolumes/{}", enc(id)), &[], Some(&body)).await?;
        Ok(())
    }

    /// The page size lists ask for.
    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    /// A GET of `path` on `api` (preflight reads), parsed as JSON.
    pub(crate) async fn get_json(
        &self,
        api: Api,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, Error> {
        let url = self.url_of(api, &format!("{CORE}/{}", path.trim_start_matches('/')), query)?;
        let resp = self.send(what, Method::GET, url, None, &[], Idempotency::FromMethod).await?;
        Self::json(what, resp).await
    }

    /// `GET /20190729/<path>` on the Limits endpoint (preflight reads): the answer as JSON and its
    /// `opc-next-page`. An empty body is taken as `{}`: the SDK documents that `GetResourceAvailability`
    /// answers "an empty JSON response" for a limit without availability.
    pub(crate) async fn get_limits(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(Value, Option<String>), Error> {
        let url = self.url_of(Api::Limits, &format!("{LIMITS}/{}", path.trim_start_matches('/')), query)?;
        let (text, next) = self.text_and_next(what, Method::GET, url, None, Idempotency::FromMethod).await?;
        let value = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&text).map_err(|e| Error::Decode { what: what.to_string(), message: e.to_string() })?
        };
        Ok((value, next))
    }
}

/// Percent-encodes one path segment (for preflight paths too).
pub(crate) fn segment(s: &str) -> String {
    enc(s)
}

/// Percent-encodes one path segment (OCIDs are safe; anything else is escaped).
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Merges `over` into `base` (objects key by key, anything else replaced).
pub(crate) fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}
