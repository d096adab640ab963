//! The OpenStack calls we make and their DTOs, with the wire names of the services' own schemas
//! (Nova `nova/api/openstack/compute/schemas/servers.py` and api-ref, Cinder
//! `cinder/api/schemas/volumes.py` and `volumes-v3-volumes.inc`, Glance `images-images-v2.inc`,
//! Neutron `networks.inc`/`security-groups.inc`). Every request carries `X-Auth-Token`; Nova's also
//! `X-OpenStack-Nova-API-Version: <openstack_nova_version>`. Lists page with `limit`/`marker` (the
//! id of the last item seen); errors are `{"<kind>": {"code", "message"}}` (Nova, Cinder) or
//! `{"error": {"code", "message", "title"}}` (Keystone).
//!
//! Retries and status mapping come from [`crate::http`]; this file only knows paths and shapes.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::Error;
use super::credential::Credential;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig, answer_message, message_field};
use secrecy::SecretString;

/// The page size we ask for (Nova's default `max_limit` is 1000).
pub(crate) const PAGE: usize = 200;

/// A service we call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Compute,
    Volume,
    Image,
    /// Neutron, from the token's catalogue (preflight only).
    Network,
}

/// A Nova server (`servers.show_response*` / `detail_response*`, the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `ACTIVE`, `BUILD`, `ERROR`, `SHUTOFF`, `DELETED`, ...
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Network name → addresses.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<Address>>,
    #[serde(default)]
    pub created: Option<String>,
    /// Set when `status` is `ERROR`.
    #[serde(default)]
    pub fault: Option<Fault>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    #[serde(rename = "os-extended-volumes:volumes_attached", default)]
    pub volumes_attached: Vec<AttachedVolume>,
}

/// `addresses.<network>[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Address {
    pub addr: String,
    #[serde(default)]
    pub version: u8,
    /// `fixed` or `floating`.
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

/// `server.fault`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Fault {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub message: String,
}

/// `os-extended-volumes:volumes_attached[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct AttachedVolume {
    pub id: String,
}

/// A Nova flavor (`flavors.detail_response*`, the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Flavor {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub vcpus: u64,
    /// MiB.
    #[serde(default)]
    pub ram: u64,
}

/// A Cinder volume (`volume-show-response.json`, the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Volume {
    pub id: String,
    /// `creating`, `available`, `in-use`, `error`, `deleting`, ...
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The servers it is attached to (empty when it is not).
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
    /// ISO 8601 without a zone (UTC), e.g. `2018-11-29T06:50:07.770785`.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `volume.attachments[]` (`parameters.yaml` `attachments`: the attached server's UUID among others).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct VolumeAttachment {
    #[serde(default)]
    pub server_id: Option<String>,
}

/// The `volume` of `POST /v3/{project_id}/volumes` (`volumes.create`, microversion 3.0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct VolumeCreate {
    pub name: String,
    pub size: u32,
    #[serde(rename = "imageRef")]
    pub image_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A Glance image (`images-images-v2.inc` show, the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `active`, `queued`, `saving`, `deactivated`, ...
    #[serde(default)]
    pub status: String,
}

/// A Nova key pair (`os-keypairs` show).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Keypair {
    pub name: String,
}

/// One named thing of a Neutron list (networks, security groups).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct NeutronItem {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// The error text of a body: the `message` of its one top-level object (`{"itemNotFound":
/// {"code": 404, "message": "..."}}`, `{"error": {...}}`), else the text itself.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(body) {
        for (kind, v) in &o {
            if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
                return message_field(&format!("{kind}: {m}"));
            }
        }
        if let Some(m) = o.get("NeutronError").and_then(|v| v.get("message")).and_then(|m| m.as_str()) {
            return message_field(m);
        }
    }
    answer_message(body)
}

/// The service roots, the credential and the HTTP knobs.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    compute: Url,
    volume: Url,
    image: Url,
    nova_version: String,
    credential: Arc<Credential>,
    retry: RetryConfig,
    page: usize,
}

/// One request.
pub(crate) struct Call<'a> {
    service: Service,
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'a str, String)>,
    body: Option<serde_json::Value>,
    what: &'a str,
    once: bool,
    secret: Option<&'a SecretString>,
}

impl<'a> Call<'a> {
    fn new(service: Service, method: Method, path: &'a [&'a str], what: &'a str) -> Self {
        Call { service, method, path, query: Vec::new(), body: None, what, once: false, secret: None }
    }
}

/// `root` with `path` appended below its own path.
fn join(root: &Url, path: &[&str]) -> Url {
    let mut url = root.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty();
        for s in path {
            p.push(s);
        }
    }
    url
}

impl Client {
    pub(crate) fn new(
        http: reqwest::Client,
        (compute, volume, image): (Url, Url, Url),
        nova_version: String,
        credential: Arc<Credential>,
        retry: RetryConfig,
    ) -> Self {
        Client { http, compute, volume, image, nova_version, credential, retry, page: PAGE }
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same client asking for `n` items per page.
    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.page = n.clamp(1, 1000);
        self
    }

    /// The credential.
    pub(crate) fn credential(&self) -> &Arc<Credential> {
        &self.credential
    }

    /// The credential, while no one else holds it (right after building).
    pub(crate) fn credential_mut(&mut self) -> Option<&mut Credential> {
        Arc::get_mut(&mut self.credential)
    }

    /// The service roots (compute, volume, image).
    #[cfg(test)]
    pub(crate) fn roots(&self) -> (&str, &str, &str) {
        (self.compute.as_str(), self.volume.as_str(), self.image.as_str())
    }

    fn root(&self, s: Service) -> Result<Url, Error> {
        Ok(match s {
            Service::Compute => self.compute.clone(),
            Service::Volume => self.volume.clone(),
            Service::Image => self.image.clone(),
            Service::Network => {
                let url = self.credential.info().and_then(|i| i.public_url("network")).ok_or_else(|| {
                    Error::Config { message: "the token's catalogue lists no public network (Neutron) endpoint".into() }
                })?;
                let mut u = Url::parse(&url).map_err(|e| Error::Decode {
                    what: "read the catalogue".into(),
                    message: format!("the network endpoint `{url}`: {e}"),
                })?;
                // The catalogue lists Neutron's root; its API is below `/v2.0`.
                if !u.path().trim_end_matches('/').ends_with("/v2.0") {
                    u = join(&u, &["v2.0"]);
                }
                u
            }
        })
    }

    /// One call; returns the body text. A 401 whose token Keystone no longer accepts (expired or
    /// revoked early) is sent once more with a new token; any other 401 is the answer.
    async fn call(&self, c: Call<'_>) -> Result<String, Error> {
        let mut retried = false;
        loop {
            let token = self.credential.token().await?;
            match self.send(&c, &token).await {
                Err(e) if e.status() == Some(401) && !retried => {
                    if !self.credential.renew_after_401(&token).await? {
                        return Err(e);
                    }
                    tracing::info!(
                        what = c.what,
                        "the service refused an expired Keystone token; sending again with a new one"
                    );
                    retried = true;
                }
                other => return other,
            }
        }
    }

    async fn send(&self, c: &Call<'_>, token: &SecretString) -> Result<String, Error> {
        let mut redactor = self.credential.redactor().with_secret(token);
        if let Some(s) = c.secret {
            redactor.add_secret(s);
        }
        let retry = if c.once { RetryConfig::none() } else { self.retry.clone() };
        let mut url = join(&self.root(c.service)?, c.path);
        if !c.query.is_empty() {
            url.query_pairs_mut().extend_pairs(c.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self
            .http
            .request(c.method.clone(), url)
            .header("X-Auth-Token", Credential::header(token)?)
            .header("Accept", "application/json");
        if c.service == Service::Compute {
            req = req.header("X-OpenStack-Nova-API-Version", self.nova_version.as_str());
        }
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        let idem = if c.method == Method::POST { Idempotency::NotIdempotent } else { Idempotency::FromMethod };
        let resp = crate::http::send(&self.http, req, idem, &retry, &redactor).await.map_err(http_err)?;
        resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))
    }

    async fn call_json<T: DeserializeOwned>(&self, c: Call<'_>) -> Result<T, Error> {
        let what = c.what.to_string();
        let text = self.call(c).await?;
        serde_json::from_str(&text).map_err(|e| Error::Decode { what, message: e.to_string() })
    }

    /// Every item under `key` of a `limit`/`marker` paged list: the next page starts after the last
    /// item's `id`, until a page comes back shorter than the limit and without a `<key>_links` next.
    async fn all<T: DeserializeOwned + HasId>(
        &self,
        service: Service,
        path: &[&str],
        query: &[(&str, String)],
        key: &str,
        what: &str,
    ) -> Result<Vec<T>, Error> {
        let mut out: Vec<T> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", self.page.to_string()));
            if let Some(m) = &marker {
                q.push(("marker", m.clone()));
            }
            let v: serde_json::Value =
                self.call_json(Call { query: q, ..Call::new(service, Method::GET, path, what) }).await?;
            let items = v.get(key).cloned().ok_or_else(|| Error::Decode {
                what: what.to_string(),
                message: format!("the answer has no `{key}`"),
            })?;
            let items: Vec<T> = serde_json::from_value(items)
                .map_err(|e| Error::Decode { what: what.to_string(), message: format!("`{key}`: {e}") })?;
            let has_next = v
                .get(format!("{key}_links"))
                .and_then(|l| l.as_array())
                .is_some_and(|l| l.iter().any(|x| x.get("rel").and_then(|r| r.as_str()) == Some("next")));
            let n = items.len();
            let last = items.last().map(|i| i.id().to_string());
            out.extend(items);
            match last {
                Some(l) if has_next || n >= self.page => {
                    if marker.as_deref() == Some(l.as_str()) {
                        return Err(Error::Decode {
                            what: what.to_string(),
                            message: format!("paging does not move past marker {l}"),
                        });
                    }
                    marker = Some(l);
                }
                _ => return Ok(out),
            }
        }
    }

    /// `GET /servers/detail` across every page, with `name` (a regular expression) when given.
    pub(crate) async fn servers(&self, name_regex: Option<&str>) -> Result<Vec<Server>, Error> {
        let q: Vec<(&str, String)> = name_regex.map(|n| vec![("name", n.to_string())]).unwrap_or_default();
        self.all(Service::Compute, &["servers", "detail"], &q, "servers", "list servers").await
    }

    /// `GET /servers/{id}`.
    pub(crate) async fn server(&self, id: &str) -> Result<Server, Error> {
        #[derive(Deserialize)]
        struct S {
            server: Server,
        }
        let s: S =
            self.call_json(Call::new(Service::Compute, Method::GET, &["servers", id], "read the server")).await?;
        Ok(s.server)
    }

    /// `POST /servers` (202), sent once (Nova has no idempotency token: a retried POST could make a
    /// second server; the next attempt looks the claim up first). Returns the new server's id.
    pub(crate) async fn create_server(
        &self,
        body: serde_json::Value,
        user_data: Option<&SecretString>,
    ) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        #[derive(Deserialize)]
        struct S {
            server: Created,
        }
        let s: S = self
            .call_json(Call {
                body: Some(body),
                once: true,
                secret: user_data,
                ..Call::new(Service::Compute, Method::POST, &["servers"], "create the server")
            })
            .await?;
        Ok(s.server.id)
    }

    /// `DELETE /servers/{id}` (204).
    pub(crate) async fn delete_server(&self, id: &str) -> Result<(), Error> {
        self.call(Call::new(Service::Compute, Method::DELETE, &["servers", id], "delete the server")).await.map(drop)
    }

    /// `GET /flavors/detail` across every page.
    pub(crate) async fn flavors(&self) -> Result<Vec<Flavor>, Error> {
        self.all(Service::Compute, &["flavors", "detail"], &[], "flavors", "list flavors").await
    }

    /// `GET /os-keypairs/{name}`.
    pub(crate) async fn keypair(&self, name: &str) -> Result<Keypair, Error> {
        #[derive(Deserialize)]
        struct K {
            keypair: Keypair,
        }
        let k: K = self
            .call_json(Call::new(Service::Compute, Method::GET, &["os-keypairs", name], "read the key pair"))
            .await?;
        Ok(k.keypair)
    }

    /// `GET /limits`: the `absolute` limits and usage (`maxTotalInstances`, `totalInstancesUsed`, ...).
    pub(crate) async fn compute_limits(&self) -> Result<BTreeMap<String, i64>, Error> {
        self.absolute(Service::Compute, "read the compute limits").await
    }

    /// `GET /v3/{project_id}/limits`: the `absolute` volume limits and usage.
    pub(crate) async fn volume_limits(&self) -> Result<BTreeMap<String, i64>, Error> {
        self.absolute(Service::Volume, "read the volume limits").await
    }

    async fn absolute(&self, s: Service, what: &str) -> Result<BTreeMap<String, i64>, Error> {
        let v: serde_json::Value = self.call_json(Call::new(s, Method::GET, &["limits"], what)).await?;
        let abs = v.get("limits").and_then(|l| l.get("absolute")).and_then(|a| a.as_object()).ok_or_else(|| {
            Error::Decode { what: what.to_string(), message: "the answer has no limits.absolute".into() }
        })?;
        Ok(abs.iter().filter_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n))).collect())
    }

    /// `POST /v3/{project_id}/volumes` (202), sent once.
    pub(crate) async fn create_volume(&self, v: &VolumeCreate) -> Result<Volume, Error> {
        #[derive(Deserialize)]
        struct V {
            volume: Volume,
        }
        let body = serde_json::json!({ "volume": v });
        let v: V = self
            .call_json(Call {
                body: Some(body),
                once: true,
                ..Call::new(Service::Volume, Method::POST, &["volumes"], "create the boot volume")
            })
            .await?;
        Ok(v.volume)
    }

    /// `GET /v3/{project_id}/volumes/{id}`.
    pub(crate) async fn volume(&self, id: &str) -> Result<Volume, Error> {
        #[derive(Deserialize)]
        struct V {
            volume: Volume,
        }
        let v: V =
            self.call_json(Call::new(Service::Volume, Method::GET, &["volumes", id], "read the boot volume")).await?;
        Ok(v.volume)
    }

    /// `GET /v3/{project_id}/volumes/detail` across every page.
    pub(crate) async fn volumes(&self) -> Result<Vec<Volume>, Error> {
        self.all(Service::Volume, &["volumes", "detail"], &[], "volumes", "list volumes").await
    }

    /// `DELETE /v3/{project_id}/volumes/{id}` (202).
    pub(crate) async fn delete_volume(&self, id: &str) -> Result<(), Error> {
        self.call(Call::new(Service::Volume, Method::DELETE, &["volumes", id], "delete the boot volume"))
            .await
            .map(drop)
    }

    /// `GET /v2/images/{id}` (Glance).
    pub(crate) async fn image(&self, id: &str) -> Result<Image, Error> {
        self.call_json(Call::new(Service::Image, Method::GET, &["v2", "images", id], "read the image")).await
    }

    /// `GET /v2.0/networks/{id}` (Neutron, from the catalogue).
    pub(crate) async fn network(&self, id: &str) -> Result<NeutronItem, Error> {
        #[derive(Deserialize)]
        struct N {
            network: NeutronItem,
        }
        let n: N =
            self.call_json(Call::new(Service::Network, Method::GET, &["networks", id], "read the network")).await?;
        Ok(n.network)
    }

    /// `GET /v2.0/security-groups?name=` (Neutron, from the catalogue).
    pub(crate) async fn security_groups_named(&self, name: &str) -> Result<Vec<NeutronItem>, Error> {
        #[derive(Deserialize)]
        struct G {
            security_groups: Vec<NeutronItem>,
        }
        let q = vec![("name", name.to_string())];
        let g: G = self
            .call_json(Call {
                query: q,
                ..Call::new(Service::Network, Method::GET, &["security-groups"], "list security groups")
            })
            .await?;
        Ok(g.security_groups)
    }

    /// A read of `path` below the service's root, its answer dropped (the access-rule checks).
    pub(crate) async fn probe(&self, service: Service, path: &[&str], query: &[(&str, String)]) -> Result<(), Error> {
        self.call(Call { query: query.to_vec(), ..Call::new(service, Method::GET, path, "read") }).await.map(drop)
    }
}

/// Items with an `id` (the `marker` of the next page).
pub(crate) trait HasId {
    fn id(&self) -> &str;
}

impl HasId for Server {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for Flavor {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for Volume {
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_shaped_bodies_parse() {
        let v: serde_json::Value = serde_json::from_str(include_str!("fixtures/servers_detail.json")).unwrap();
        let s: Vec<Server> = serde_json::from_value(v["servers"].clone()).unwrap();
        assert_eq!(s[0].id, "f5dc173b-6804-445a-a6d8-c705dad5b5eb");
        assert_eq!(s[0].status, "ACTIVE");
        assert_eq!(s[0].addresses["private"][0].addr, "192.168.1.30");
        assert_eq!(s[0].volumes_attached.len(), 2);
        let v: serde_json::Value = serde_json::from_str(include_str!("fixtures/volume.json")).unwrap();
        let vol: Volume = serde_json::from_value(v["volume"].clone()).unwrap();
        assert_eq!(vol.status, "creating");
        assert!(vol.attachments.is_empty());
        assert_eq!(vol.created_at.as_deref(), Some("2026-11-30T04:00:12.715987"));
        let v: serde_json::Value = serde_json::from_str(include_str!("fixtures/volume_in_use.json")).unwrap();
        let vol: Volume = serde_json::from_value(v["volume"].clone()).unwrap();
        assert_eq!(vol.attachments[0].server_id.as_deref(), Some("f5dc173b-6804-445a-a6d8-c705dad5b5eb"));
        assert_eq!(
            error_message(r#"{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}"#),
            "itemNotFound: Instance x could not be found."
        );
        assert_eq!(
            error_message(
                r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#
            ),
            "error: The request you have made requires authentication."
        );
        assert_eq!(error_message("oops"), "oops");
    }

    #[test]
    fn the_volume_body_has_the_spec_names() {
        let v = VolumeCreate {
            name: "kasm-x".into(),
            size: 20,
            image_ref: "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b".into(),
            volume_type: None,
            availability_zone: Some("nova".into()),
            metadata: [("k".to_string(), "v".to_string())].into(),
        };
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"name": "kasm-x", "size": 20, "imageRef": "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
                "availability_zone": "nova", "metadata": {"k": "v"}})
        );
    }
}
