//! The DigitalOcean API v2 calls we make and their DTOs, with the wire names of the official
//! OpenAPI spec (`digitalocean/openapi`, `specification/resources/...`). Requests are JSON with
//! `Authorization: Bearer <token>`; lists page with `page`/`per_page` and `links.pages.next`; errors
//! are `{id, message, request_id}`; every answer carries `ratelimit-limit`, `ratelimit-remaining` and
//! `ratelimit-reset` (Unix time).
//!
//! Retries and status mapping come from [`crate::http`]; this file only knows paths and shapes, and
//! keeps the last rate-limit headers so that no request is sent once the window is spent.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Error;
use super::credential::{Auth, Credential};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig, answer_message, message_field};
use secrecy::SecretString;

/// The API's own base URL.
pub(crate) const DEFAULT_BASE: &str = "https://api.digitalocean.com";

/// The default page size we ask for (the API's maximum is 200).
pub(crate) const PER_PAGE: usize = 200;

/// `droplet.yml` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Droplet {
    pub id: u64,
    pub name: String,
    /// `new`, `active`, `off` or `archive`.
    pub status: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub networks: Networks,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `droplet.networks`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Networks {
    #[serde(default)]
    pub v4: Vec<NetworkV4>,
}

/// `network_v4.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct NetworkV4 {
    pub ip_address: String,
    /// `public` or `private`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `droplet_single_create.yml` + `droplet_create.yml` (the fields we send).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DropletCreate {
    pub name: String,
    pub region: String,
    pub size: String,
    /// An image slug (string) or id (integer).
    pub image: serde_json::Value,
    pub ssh_keys: Vec<u64>,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

/// `shared/models/action_link.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ActionLink {
    pub id: u64,
    #[serde(default)]
    pub rel: String,
}

#[derive(Debug, Deserialize)]
struct CreateLinks {
    #[serde(default)]
    actions: Vec<ActionLink>,
}

/// `responses/droplet_create.yml` (single droplet).
#[derive(Debug, Deserialize)]
pub(crate) struct Created {
    pub droplet: Droplet,
    #[serde(default)]
    links: Option<CreateLinks>,
}

impl Created {
    /// The id of the droplet's `create` action.
    pub(crate) fn create_action(&self) -> Option<u64> {
        let links = self.links.as_ref()?;
        links.actions.iter().find(|a| a.rel == "create").or(links.actions.first()).map(|a| a.id)
    }
}

/// `actions/models/action.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Action {
    pub id: u64,
    /// `in-progress`, `completed` or `errored`.
    pub status: String,
}

/// `ssh_keys/models/sshKeys.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct SshKey {
    #[serde(default)]
    pub id: Option<u64>,
    pub name: String,
}

/// `firewalls/models/firewall.yml` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Firewall {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub droplet_ids: Option<Vec<u64>>,
}

/// `account/models/account.yml` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Account {
    pub droplet_limit: u64,
    /// `active`, `warning` or `locked`.
    pub status: String,
    #[serde(default)]
    pub status_message: String,
}

/// `regions/models/region.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Region {
    pub slug: String,
    pub available: bool,
    #[serde(default)]
    pub sizes: Vec<String>,
}

/// `sizes/models/size.yml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Size {
    pub slug: String,
    pub available: bool,
    #[serde(default)]
    pub regions: Vec<String>,
}

/// `images/models/image.yml` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Image {
    pub id: u64,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub distribution: Option<String>,
}

/// `domains/models/domain_record.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DomainRecord {
    #[serde(default, skip_serializing)]
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    /// Relative to the domain (`@` for the apex).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// A record's request body. The spec's `domain_record_txt` requires `flags` and `tag` (nullable CAA
/// fields) beside `type`, `name` and `data`: a TXT record sends them as `null`.
fn record_body(r: &DomainRecord) -> Result<serde_json::Value, Error> {
    let mut body = serde_json::to_value(r).map_err(|e| Error::Config { message: e.to_string() })?;
    if r.kind == "TXT"
        && let Some(o) = body.as_object_mut()
    {
        o.insert("flags".into(), serde_json::Value::Null);
        o.insert("tag".into(), serde_json::Value::Null);
    }
    Ok(body)
}

/// `shared/models/error.yml`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// The `id` and `message` of an error body (`{id, message, request_id}`), else the text.
pub(crate) fn error_message(body: &str) -> (String, String) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) if !e.message.is_empty() || !e.id.is_empty() => (message_field(&e.id), message_field(&e.message)),
        _ => (String::new(), answer_message(body)),
    }
}

/// `shared/pages.yml` + `shared/meta.yml`.
#[derive(Debug, Default, Deserialize)]
struct Paging {
    #[serde(default)]
    links: Option<Links>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
struct Links {
    #[serde(default)]
    pages: Option<Pages>,
}

#[derive(Debug, Default, Deserialize)]
struct Pages {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    total: Option<u64>,
}

/// The page number `links.pages.next` points to. Only its `page` is used: the next request goes
/// to our own base URL, never to a host named in an answer (the token is sent with it).
fn next_page(paging: &Paging) -> Option<u32> {
    let next = paging.links.as_ref()?.pages.as_ref()?.next.as_deref()?;
    let url = Url::parse(next).ok()?;
    url.query_pairs().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok())
}

/// What the last answer's rate-limit headers said.
#[derive(Debug, Default, Clone, Copy)]
struct RateState {
    remaining: Option<u64>,
    reset: Option<i64>,
}

/// A DigitalOcean API client bound to one base URL and token.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    credential: Arc<Credential>,
    retry: RetryConfig,
    per_page: usize,
    rate: Arc<Mutex<RateState>>,
}

/// One request.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'a str, String)>,
    body: Option<serde_json::Value>,
    what: &'a str,
    once: bool,
    /// A secret besides the token the request carries (the user data), kept out of error text.
    secret: Option<&'a SecretString>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a [&'a str], what: &'a str) -> Self {
        Call { method, path, query: Vec::new(), body: None, what, once: false, secret: None }
    }
}

impl Client {
    /// A client for `base` (`https://api.digitalocean.com` or the config's `endpoint_url`).
    pub(crate) fn new(http: reqwest::Client, base: Url, credential: Credential, retry: RetryConfig) -> Self {
        Client {
            http,
            base,
            credential: Arc::new(credential),
            retry,
            per_page: PER_PAGE,
            rate: Arc::new(Mutex::new(RateState::default())),
        }
    }

    /// The same client with other HTTP retries.
    pub(crate) fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same client asking for `n` items per page.
    pub(crate) fn with_page_size(mut self, n: usize) -> Self {
        self.per_page = n.clamp(1, PER_PAGE);
        self
    }

    /// The API base URL.
    #[cfg(test)]
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            p.push("v2");
            for s in path {
                p.push(s);
            }
        }
        url
    }

    /// Refuses to send while the last answer said the window is spent (`ratelimit-remaining: 0`
    /// before `ratelimit-reset`): waits when the reset is near (within the retry cap), else hands
    /// back a rate-limit error carrying the wait.
    async fn respect_window(&self, what: &str) -> Result<(), Error> {
        let st = *self.rate.lock().expect("rate state");
        let (Some(0), Some(reset)) = (st.remaining, st.reset) else { return Ok(()) };
        let now = chrono::Utc::now().timestamp();
        if reset <= now {
            return Ok(());
        }
        let wait = Duration::from_secs((reset - now) as u64);
        if wait <= self.retry.cap {
            tokio::time::sleep(wait).await;
            return Ok(());
        }
        Err(Error::Http {
            what: what.to_string(),
            source: HttpError::Status {
                status: StatusCode::TOO_MANY_REQUESTS,
                body: "the API's rate-limit window is spent (ratelimit-remaining: 0); not sending".into(),
                retry_after: Some(wait),
            },
        })
    }

    fn note_rate(&self, headers: &reqwest::header::HeaderMap) {
        let num = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
        if let (Some(remaining), reset) = (num("ratelimit-remaining"), num("ratelimit-reset")) {
            *self.rate.lock().expect("rate state") = RateState { remaining: Some(remaining.max(0) as u64), reset };
        }
    }

    /// One call; returns the body text (empty for 204). A 401 re-reads the token from its secret
    /// once: when it changed (rotated), the request is sent again with the new one.
    async fn call(&self, c: Call<'_>) -> Result<String, Error> {
        self.respect_window(c.what).await?;
        let mut auth = self.credential.get().await?;
        let mut refreshed = false;
        loop {
            match self.send(&c, &auth).await {
                Err(e) if e.status() == Some(401) && !refreshed => match self.credential.refresh(&auth).await? {
                    Some(fresh) => {
                        tracing::info!("the API refused the token; sending again with the rotated one");
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
        let mut url = self.url(c.path);
        if !c.query.is_empty() {
            url.query_pairs_mut().extend_pairs(c.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(c.method.clone(), url).header(AUTHORIZATION, auth.header.clone());
        if let Some(body) = &c.body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap_or_default());
        }
        let what = c.what;
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        // POSTs create things: a timeout is not retried (the lookup by claim makes the next attempt safe).
        let idem = if c.method == Method::POST { Idempotency::NotIdempotent } else { Idempotency::FromMethod };
        let resp = crate::http::send(&self.http, req, idem, &retry, redactor).await.map_err(http_err)?;
        self.note_rate(resp.headers());
        resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))
    }

    async fn call_json<T: DeserializeOwned>(&self, c: Call<'_>) -> Result<T, Error> {
        let what = c.what.to_string();
        let text = self.call(c).await?;
        // serde's message names the field and position, never the value.
        serde_json::from_str(&text).map_err(|e| Error::Decode { what, message: e.to_string() })
    }

    /// Every item of a paged list under `key`, following `links.pages.next`.
    async fn all<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        key: &str,
        what: &str,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", self.per_page.to_string()));
            let v: serde_json::Value = self.call_json(Call { query: q, ..Call::new(Method::GET, path, what) }).await?;
            let items = v.get(key).cloned().ok_or_else(|| Error::Decode {
                what: what.to_string(),
                message: format!("the answer has no `{key}`"),
            })?;
            let items: Vec<T> = serde_json::from_value(items)
                .map_err(|e| Error::Decode { what: what.to_string(), message: format!("`{key}`: {e}") })?;
            out.extend(items);
            let paging: Paging = serde_json::from_value(v).unwrap_or_default();
            match next_page(&paging) {
                Some(n) if n > page => page = n,
                Some(_) => {
                    return Err(Error::Decode {
                        what: what.to_string(),
                        message: format!("links.pages.next does not move past page {page}"),
                    });
                }
                None => return Ok(out),
            }
        }
    }

    /// `GET /v2/account`.
    pub(crate) async fn account(&self) -> Result<Account, Error> {
        #[derive(Deserialize)]
        struct A {
            account: Account,
        }
        let a: A = self.call_json(Call::new(Method::GET, &["account"], "read the account")).await?;
        Ok(a.account)
    }

    /// `GET /v2/droplets?tag_name=` across every page.
    pub(crate) async fn droplets_by_tag(&self, tag: &str) -> Result<Vec<Droplet>, Error> {
        self.all(&["droplets"], &[("tag_name", tag.to_string())], "droplets", "list droplets by tag").await
    }

    /// `GET /v2/droplets?per_page=1`: `meta.total`, the number of droplets of the account.
    pub(crate) async fn droplet_count(&self) -> Result<u64, Error> {
        let q = vec![("per_page", "1".to_string())];
        let v: Paging =
            self.call_json(Call { query: q, ..Call::new(Method::GET, &["droplets"], "count droplets") }).await?;
        v.meta.and_then(|m| m.total).ok_or_else(|| Error::Decode {
            what: "count droplets".into(),
            message: "the answer has no meta.total".into(),
        })
    }

    /// `GET /v2/droplets/{id}`.
    pub(crate) async fn droplet(&self, id: u64) -> Result<Droplet, Error> {
        #[derive(Deserialize)]
        struct D {
            droplet: Droplet,
        }
        let id = id.to_string();
        let d: D = self.call_json(Call::new(Method::GET, &["droplets", &id], "read the droplet")).await?;
        Ok(d.droplet)
    }

    /// `POST /v2/droplets`, sent once (DigitalOcean has no idempotency token: a retry could make a
    /// second droplet; the engine's next attempt looks the claim up first).
    pub(crate) async fn create_droplet(&self, body: &DropletCreate) -> Result<Created, Error> {
        // The user data holds secrets (the manager token): keep it out of any error text.
        let user_data = body.user_data.as_ref().map(|u| SecretString::from(u.clone()));
        let json = serde_json::to_value(body).map_err(|e| Error::Config { message: e.to_string() })?;
        self.call_json(Call {
            body: Some(json),
            once: true,
            secret: user_data.as_ref(),
            ..Call::new(Method::POST, &["droplets"], "create the droplet")
        })
        .await
    }

    /// `DELETE /v2/droplets/{id}` (204).
    pub(crate) async fn delete_droplet(&self, id: u64) -> Result<(), Error> {
        let id = id.to_string();
        self.call(Call::new(Method::DELETE, &["droplets", &id], "delete the droplet")).await.map(drop)
    }

    /// `GET /v2/actions/{id}`, once (the caller polls).
    pub(crate) async fn action(&self, id: u64) -> Result<Action, Error> {
        #[derive(Deserialize)]
        struct A {
            action: Action,
        }
        let id = id.to_string();
        let a: A = self.call_json(Call::new(Method::GET, &["actions", &id], "read the create action")).await?;
        Ok(a.action)
    }

    /// `GET /v2/tags/{tag}`: whether the tag exists.
    pub(crate) async fn tag_exists(&self, tag: &str) -> Result<bool, Error> {
        match self.call(Call::new(Method::GET, &["tags", tag], "read a tag")).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST /v2/tags` `{name}` (201).
    pub(crate) async fn create_tag(&self, tag: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "name": tag });
        self.call(Call { body: Some(body), ..Call::new(Method::POST, &["tags"], "create a tag") }).await.map(drop)
    }

    /// `DELETE /v2/tags/{tag}` (204).
    pub(crate) async fn delete_tag(&self, tag: &str) -> Result<(), Error> {
        self.call(Call::new(Method::DELETE, &["tags", tag], "delete a tag")).await.map(drop)
    }

    /// `GET /v2/account/keys` across every page.
    pub(crate) async fn ssh_keys(&self) -> Result<Vec<SshKey>, Error> {
        self.all(&["account", "keys"], &[], "ssh_keys", "list SSH keys").await
    }

    /// `GET /v2/firewalls` across every page.
    pub(crate) async fn firewalls(&self) -> Result<Vec<Firewall>, Error> {
        self.all(&["firewalls"], &[], "firewalls", "list firewalls").await
    }

    /// `POST /v2/firewalls/{id}/droplets` `{droplet_ids}` (204). Adding a droplet twice is harmless.
    pub(crate) async fn add_to_firewall(&self, firewall: &str, droplet: u64) -> Result<(), Error> {
        let body = serde_json::json!({ "droplet_ids": [droplet] });
        self.call(Call {
            body: Some(body),
            ..Call::new(Method::POST, &["firewalls", firewall, "droplets"], "add the droplet to the firewall")
        })
        .await
        .map(drop)
    }

    /// `GET /v2/regions` across every page.
    pub(crate) async fn regions(&self) -> Result<Vec<Region>, Error> {
        self.all(&["regions"], &[], "regions", "list regions").await
    }

    /// `GET /v2/sizes` across every page.
    pub(crate) async fn sizes(&self) -> Result<Vec<Size>, Error> {
        self.all(&["sizes"], &[], "sizes", "list sizes").await
    }

    /// `GET /v2/images/{id or slug}`.
    pub(crate) async fn image(&self, image: &str) -> Result<Image, Error> {
        #[derive(Deserialize)]
        struct I {
            image: Image,
        }
        let i: I = self.call_json(Call::new(Method::GET, &["images", image], "read the image")).await?;
        Ok(i.image)
    }

    /// `GET /v2/domains/{domain}/records?name=<fqdn>` across every page (`name` must be fully
    /// qualified; the answers' `name` is relative to the domain).
    pub(crate) async fn records_named(&self, domain: &str, fqdn: &str) -> Result<Vec<DomainRecord>, Error> {
        let q = [("name", fqdn.to_string())];
        self.all(&["domains", domain, "records"], &q, "domain_records", "list the name's DNS records").await
    }

    /// `GET /v2/domains/{domain}/records?type=` across every page.
    pub(crate) async fn records_of_type(&self, domain: &str, kind: &str) -> Result<Vec<DomainRecord>, Error> {
        let q = [("type", kind.to_string())];
        self.all(&["domains", domain, "records"], &q, "domain_records", "list the domain's DNS records").await
    }

    /// `POST /v2/domains/{domain}/records` (201).
    pub(crate) async fn create_record(&self, domain: &str, r: &DomainRecord) -> Result<(), Error> {
        let body = record_body(r)?;
        self.call(Call {
            body: Some(body),
            ..Call::new(Method::POST, &["domains", domain, "records"], "create a DNS record")
        })
        .await
        .map(drop)
    }

    /// `PUT /v2/domains/{domain}/records/{id}`.
    pub(crate) async fn update_record(&self, domain: &str, id: u64, r: &DomainRecord) -> Result<(), Error> {
        let body = record_body(r)?;
        let id = id.to_string();
        self.call(Call {
            body: Some(body),
            ..Call::new(Method::PUT, &["domains", domain, "records", &id], "update a DNS record")
        })
        .await
        .map(drop)
    }

    /// `DELETE /v2/domains/{domain}/records/{id}` (204).
    pub(crate) async fn delete_record(&self, domain: &str, id: u64) -> Result<(), Error> {
        let id = id.to_string();
        self.call(Call::new(Method::DELETE, &["domains", domain, "records", &id], "delete a DNS record"))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_shaped_bodies_parse() {
        let list: serde_json::Value = serde_json::from_str(include_str!("fixtures/droplets_page.json")).unwrap();
        let d: Vec<Droplet> = serde_json::from_value(list["droplets"].clone()).unwrap();
        assert_eq!(d[0].id, 3164444);
        assert_eq!(d[0].status, "active");
        assert_eq!(d[0].networks.v4.iter().find(|n| n.kind == "public").unwrap().ip_address, "104.236.32.182");
        let paging: Paging = serde_json::from_value(list).unwrap();
        assert_eq!(next_page(&paging), Some(2));
        assert_eq!(paging.meta.unwrap().total, Some(2));

        let created: Created = serde_json::from_str(include_str!("fixtures/droplet_create.json")).unwrap();
        assert_eq!(created.create_action(), Some(7515));
        assert_eq!(created.droplet.status, "new");

        assert_eq!(
            error_message(
                r#"{"id":"not_found","message":"The resource you were accessing could not be found.","request_id":"4d9d8375"}"#
            ),
            ("not_found".into(), "The resource you were accessing could not be found.".into())
        );
        assert_eq!(error_message("oops").1, "oops");
    }

    #[test]
    fn the_create_body_has_the_spec_names() {
        let b = DropletCreate {
            name: "kasm-x".into(),
            region: "nyc3".into(),
            size: "s-1vcpu-1gb".into(),
            image: serde_json::json!("ubuntu-22-04-x64"),
            ssh_keys: vec![289794],
            tags: vec!["ka:d:prod".into()],
            user_data: None,
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"kasm-x","region":"nyc3","size":"s-1vcpu-1gb","image":"ubuntu-22-04-x64",
                "ssh_keys":[289794],"tags":["ka:d:prod"]})
        );
        let r = DomainRecord { id: 7, kind: "A".into(), name: "www".into(), data: "10.0.0.1".into(), ttl: Some(60) };
        assert_eq!(record_body(&r).unwrap(), serde_json::json!({"type":"A","name":"www","data":"10.0.0.1","ttl":60}));
        let t = DomainRecord { kind: "TXT".into(), data: "m".into(), ..r };
        assert_eq!(
            record_body(&t).unwrap(),
            serde_json::json!({"type":"TXT","name":"www","data":"m","ttl":60,"flags":null,"tag":null})
        );
    }
}
