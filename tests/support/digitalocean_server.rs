//! An in-process DigitalOcean API v2 for tests, on the shared fake-API harness ([`crate::fake_api`]):
//! answers the calls `shared::providers::digitalocean` makes in the shapes of the official OpenAPI
//! spec (`{"droplet": ...}` / `{"droplets": [...], "links": {"pages": {"next": ...}}, "meta":
//! {"total": n}}` envelopes, `links.actions` on a create, action objects, errors as `{id, message,
//! request_id}`, `ratelimit-*` headers on every answer), and checks the Bearer token.
//!
//! It keeps droplets, actions, tags, SSH keys, firewalls and one domain's records in memory. A
//! droplet is `new` until its create action has been polled `ACTION_POLLS` times (or the droplet
//! read as often), then `active`. The droplet limit of the account is enforced with a 422.
//! [`DigitalOceanHarness`] drives it for the provider conformance suite and [`Zone`] for the DNS
//! conformance suite.

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::dns::conformance::ZoneAccess;
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use shared::providers::digitalocean::tags;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The token the server accepts.
pub const TOKEN: &str = "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The domain whose records the server keeps.
pub const DOMAIN: &str = "kasm.example.com";
/// Polls of the create action (or reads of the droplet) before a new droplet is active.
pub const ACTION_POLLS: u32 = 2;
/// The message the server answers a create over the droplet limit with (UNSOURCED: the API spec
/// gives only the generic 422 body; this is the wording DigitalOcean is reported to use).
pub const LIMIT_MESSAGE: &str = "creating this/these droplet(s) will exceed your droplet limit";

/// One recorded request (method, route template below `/v2`, decoded path, parameters, ...).
pub use crate::fake_api::Recorded as Request;

/// A droplet as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDroplet {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// `new`, `active`, `off`.
    pub status: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// The image as sent (slug or id).
    pub image: Value,
    /// SSH key ids or fingerprints as sent.
    pub ssh_keys: Vec<Value>,
    /// `user_data` as sent.
    pub user_data: Option<String>,
    /// Reads left before `new` becomes `active`.
    polls_left: u32,
}

/// A DNS record as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord {
    /// Id.
    pub id: u64,
    /// `A`, `TXT`, ...
    pub kind: String,
    /// Relative to the domain (`@` for the apex).
    pub name: String,
    /// Data.
    pub data: String,
    /// TTL.
    pub ttl: u32,
}

#[derive(Debug)]
struct Inner {
    droplets: BTreeMap<u64, TestDroplet>,
    next_id: u64,
    /// Action id → droplet id.
    actions: BTreeMap<u64, u64>,
    tags: BTreeSet<String>,
    ssh_keys: Vec<(u64, String)>,
    /// (id, name, droplet ids).
    firewalls: Vec<(String, String, Vec<u64>)>,
    records: BTreeMap<u64, TestRecord>,
    droplet_limit: u64,
    /// How many droplets the `GET /droplets` answers listed, in all.
    listed: usize,
    /// `ratelimit-remaining` on the next answers.
    remaining: u64,
}

/// The running server (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct DigitalOceanTestServer {
    /// Base URL without `/v2`, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

/// Every route the server answers, below `/v2`.
const ROUTES: &[&str] = &[
    "GET /account",
    "GET /account/keys",
    "GET /droplets",
    "POST /droplets",
    "GET /droplets/{id}",
    "DELETE /droplets/{id}",
    "GET /actions/{id}",
    "GET /tags/{tag}",
    "POST /tags",
    "DELETE /tags/{tag}",
    "GET /firewalls",
    "POST /firewalls/{id}/droplets",
    "GET /regions",
    "GET /sizes",
    "GET /images/{image}",
    "GET /domains/{domain}/records",
    "POST /domains/{domain}/records",
    "PUT /domains/{domain}/records/{id}",
    "DELETE /domains/{domain}/records/{id}",
];

/// An error answer in the spec's shape (`shared/models/error.yml`).
pub fn err(status: u16, id: &str, message: &str) -> Reply {
    Reply::json(status, &json!({"id": id, "message": message, "request_id": "4d9d8375-3c56-4925-a3e7-eb137fed17e9"}))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// A throttled answer: `ratelimit-remaining: 0` and `ratelimit-reset` `wait` from now (Unix time).
pub fn throttled(wait: Duration) -> Reply {
    err(429, "too_many_requests", "API rate limit exceeded.")
        .header("ratelimit-limit", "5000")
        .header("ratelimit-remaining", "0")
        .header("ratelimit-reset", (now() + wait.as_secs()).to_string())
}

impl DigitalOceanTestServer {
    /// Starts a server with SSH key `ops-key` (id 289794), firewall `kasm-fw`, and a limit of 25
    /// droplets.
    pub async fn start() -> DigitalOceanTestServer {
        let inner = Arc::new(Mutex::new(Inner {
            droplets: BTreeMap::new(),
            next_id: 3_164_444,
            actions: BTreeMap::new(),
            tags: BTreeSet::new(),
            ssh_keys: vec![(289_794, "ops-key".into()), (289_795, "other-key".into())],
            firewalls: vec![
                ("fb6045f1-cf1d-4ca3-bfac-18832663025b".into(), "kasm-fw".into(), Vec::new()),
                ("bb4b2611-3d72-467b-8602-280330ecd65c".into(), "other-fw".into(), Vec::new()),
            ],
            records: BTreeMap::new(),
            droplet_limit: 25,
            listed: 0,
            remaining: 4999,
        }));
        let mut b = FakeApi::builder()
            .prefix("/v2")
            .guard(|req| {
                let got = req.headers.get("authorization").and_then(|v| v.to_str().ok());
                (got != Some(format!("Bearer {TOKEN}").as_str()))
                    .then(|| err(401, "unauthorized", "Unable to authenticate you"))
            })
            .unrouted(|_, _| err(404, "not_found", "The resource you were accessing could not be found."));
        let url_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        for route in ROUTES {
            let st = inner.clone();
            let url = url_cell.clone();
            b = b.route(
                route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    let url = url.clone();
                    async move {
                        let base = url.lock().expect("url").clone();
                        answer(&st, &base, req)
                    }
                }),
            );
        }
        let api = b.start().await;
        *url_cell.lock().expect("url") = api.url.clone();
        DigitalOceanTestServer { url: api.url.clone(), api, inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("server lock")
    }

    /// The fake API underneath (faults, recorded requests).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.api.requests()
    }

    /// Every droplet.
    pub fn droplets(&self) -> Vec<TestDroplet> {
        self.lock().droplets.values().cloned().collect()
    }

    /// The droplet `id`.
    pub fn droplet(&self, id: u64) -> Option<TestDroplet> {
        self.lock().droplets.get(&id).cloned()
    }

    /// Adds an active droplet with `tags` (an operator's); returns its id.
    pub fn add_droplet(&self, name: &str, tags: &[&str]) -> u64 {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.droplets.insert(
            id,
            TestDroplet {
                id,
                name: name.into(),
                status: "active".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                region: "nyc3".into(),
                size: "s-1vcpu-1gb".into(),
                image: json!("ubuntu-24-04-x64"),
                ssh_keys: Vec::new(),
                user_data: None,
                polls_left: 0,
            },
        );
        id
    }

    /// Removes droplet `id` (as an operator would).
    pub fn remove_droplet(&self, id: u64) {
        self.lock().droplets.remove(&id);
    }

    /// Every tag of the account.
    pub fn tags(&self) -> BTreeSet<String> {
        self.lock().tags.clone()
    }

    /// The droplet ids of firewall `name`.
    pub fn firewall_droplets(&self, name: &str) -> Vec<u64> {
        self.lock().firewalls.iter().find(|f| f.1 == name).map(|f| f.2.clone()).unwrap_or_default()
    }

    /// Sets the account's droplet limit.
    pub fn set_droplet_limit(&self, n: u64) {
        self.lock().droplet_limit = n;
    }

    /// Sets `ratelimit-remaining` of the next answers.
    pub fn set_remaining(&self, n: u64) {
        self.lock().remaining = n;
    }

    /// Every record of the domain.
    pub fn records(&self) -> Vec<TestRecord> {
        self.lock().records.values().cloned().collect()
    }

    /// Adds a record (as an operator would) at `name` relative to the domain.
    pub fn add_record(&self, kind: &str, name: &str, data: &str) -> u64 {
        let mut st = self.lock();
        let id = 28_448_429 + st.records.len() as u64 + st.next_id;
        st.next_id += 1;
        st.records.insert(id, TestRecord { id, kind: kind.into(), name: name.into(), data: data.into(), ttl: 1800 });
        id
    }
}

fn droplet_json(d: &TestDroplet) -> Value {
    let networks = if d.status == "new" {
        json!({"v4": [], "v6": []})
    } else {
        let n = d.id % 250 + 1;
        json!({"v4": [
            {"ip_address": format!("10.128.0.{n}"), "netmask": "255.255.0.0", "gateway": "nil", "type": "private"},
            {"ip_address": format!("104.236.32.{n}"), "netmask": "255.255.192.0", "gateway": "104.236.0.1", "type": "public"}
        ], "v6": []})
    };
    json!({
        "id": d.id, "name": d.name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": false,
        "status": d.status, "kernel": null, "created_at": "2020-07-21T18:37:44Z", "features": [],
        "backup_ids": [], "next_backup_window": null, "snapshot_ids": [],
        "image": {"id": 63663980, "slug": d.image, "regions": ["nyc3"]}, "volume_ids": [],
        "size": {"slug": d.size}, "size_slug": d.size, "networks": networks,
        "region": {"slug": d.region, "name": "New York 3", "available": true, "features": [], "sizes": []},
        "tags": d.tags, "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000"
    })
}

/// One page of `items` (`page`/`per_page` from the query) with `links.pages` and `meta.total`.
fn paged(req: &Incoming, base: &str, key: &str, items: Vec<Value>) -> (Value, usize) {
    let per_page = req.param("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(20).clamp(1, 200);
    let page = req.param("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let start = ((page - 1) * per_page).min(total);
    let end = (start + per_page).min(total);
    let last = total.div_ceil(per_page).max(1);
    let link = |n: usize| {
        let mut q: Vec<(String, String)> = req
            .params
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
            .collect();
        q.push(("page".into(), n.to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        format!("{base}/v2{}?{qs}", req.path)
    };
    let mut pages = serde_json::Map::new();
    if page < last {
        pages.insert("last".into(), json!(link(last)));
        pages.insert("next".into(), json!(link(page + 1)));
    }
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    let slice = items[start..end].to_vec();
    let n = slice.len();
    (json!({ key: slice, "links": {"pages": pages}, "meta": {"total": total} }), n)
}

fn legal_tag(t: &str) -> bool {
    !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

fn legal_droplet_name(n: &str) -> bool {
    // `^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`, at most 255.
    let b = n.as_bytes();
    !b.is_empty()
        && n.len() <= 255
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'))
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn not_found() -> Reply {
    err(404, "not_found", "The resource you were accessing could not be found.")
}

fn answer(inner: &Arc<Mutex<Inner>>, base: &str, req: Incoming) -> Reply {
    let mut st = inner.lock().expect("server lock");
    let reply = route(&mut st, base, &req);
    // Counts down, but reaches 0 only when a test sets it.
    let remaining = st.remaining;
    if remaining > 1 {
        st.remaining -= 1;
    }
    reply
        .header("ratelimit-limit", "5000")
        .header("ratelimit-remaining", remaining.to_string())
        .header("ratelimit-reset", (now() + 60).to_string())
}

fn tick(d: &mut TestDroplet) {
    if d.status == "new" {
        d.polls_left = d.polls_left.saturating_sub(1);
        if d.polls_left == 0 {
            d.status = "active".into();
        }
    }
}

fn route(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let id = || req.var("id").parse::<u64>().ok();
    match (req.method.as_str(), req.route.as_str()) {
        ("GET", "/account") => Reply::json(
            200,
            &json!({"account": {"droplet_limit": st.droplet_limit, "floating_ip_limit": 5, "email": "ops@example.com",
                "name": "Ops", "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef", "email_verified": true,
                "status": "active", "status_message": "", "team": {"uuid": "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", "name": "Ops"}}}),
        ),
        ("GET", "/account/keys") => {
            let keys: Vec<Value> = st
                .ssh_keys
                .iter()
                .map(|(id, name)| json!({"id": id, "fingerprint": format!("3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:{:02x}", id % 256), "public_key": "ssh-ed25519 AAAAexample", "name": name}))
                .collect();
            Reply::json(200, &paged(req, base, "ssh_keys", keys).0)
        }
        ("GET", "/droplets") => {
            if req.param("tag_name").is_some() && (req.param("name").is_some() || req.param("type").is_some()) {
                return err(422, "unprocessable_entity", "tag_name can not be combined with name or type");
            }
            let items: Vec<Value> = st
                .droplets
                .values()
                .filter(|d| req.param("tag_name").is_none_or(|t| d.tags.iter().any(|x| x == t)))
                .filter(|d| req.param("name").is_none_or(|n| d.name.eq_ignore_ascii_case(n)))
                .map(droplet_json)
                .collect();
            let (body, n) = paged(req, base, "droplets", items);
            st.listed += n;
            Reply::json(200, &body)
        }
        ("POST", "/droplets") => {
            let Some(b) = req.json() else { return err(400, "bad_request", "the body is not JSON") };
            let name = b["name"].as_str().unwrap_or_default().to_string();
            if !legal_droplet_name(&name) {
                return err(422, "unprocessable_entity", "name is invalid");
            }
            let (Some(size), Some(image)) =
                (b["size"].as_str(), b.get("image").filter(|i| i.is_string() || i.is_u64()))
            else {
                return err(422, "unprocessable_entity", "size and image are required");
            };
            let tags: Vec<String> = match b.get("tags") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) if a.iter().all(|t| t.as_str().is_some_and(legal_tag)) => {
                    a.iter().map(|t| t.as_str().unwrap_or_default().to_string()).collect()
                }
                _ => return err(422, "unprocessable_entity", "tags must be an array of valid tag names"),
            };
            let ssh_keys: Vec<Value> = b.get("ssh_keys").and_then(|k| k.as_array()).cloned().unwrap_or_default();
            if ssh_keys.iter().any(|k| !k.as_u64().is_some_and(|k| st.ssh_keys.iter().any(|(id, _)| *id == k))) {
                return err(422, "unprocessable_entity", "ssh_keys holds a key that does not exist");
            }
            let user_data = b.get("user_data").and_then(|u| u.as_str()).map(str::to_string);
            if user_data.as_ref().is_some_and(|u| u.len() > 64 * 1024) {
                return err(422, "unprocessable_entity", "user_data may not exceed 64 KiB");
            }
            if st.droplets.len() as u64 >= st.droplet_limit {
                return err(422, "unprocessable_entity", LIMIT_MESSAGE);
            }
            let id = st.next_id;
            st.next_id += 1;
            // Droplet create accepts new tags ("Tag names can either be existing or new tags").
            st.tags.extend(tags.iter().cloned());
            let d = TestDroplet {
                id,
                name,
                status: "new".into(),
                tags,
                region: b["region"].as_str().unwrap_or("nyc3").to_string(),
                size: size.to_string(),
                image: image.clone(),
                ssh_keys,
                user_data,
                polls_left: ACTION_POLLS,
            };
            let body = droplet_json(&d);
            st.droplets.insert(id, d);
            let action = 7515 + id;
            st.actions.insert(action, id);
            Reply::json(
                202,
                &json!({"droplet": body, "links": {"actions": [{"id": action, "rel": "create", "href": format!("{base}/v2/actions/{action}")}]}}),
            )
        }
        ("GET", "/droplets/{id}") => match id().and_then(|id| st.droplets.get_mut(&id)) {
            Some(d) => {
                tick(d);
                Reply::json(200, &json!({"droplet": droplet_json(d)}))
            }
            None => not_found(),
        },
        ("DELETE", "/droplets/{id}") => match id().and_then(|id| st.droplets.remove(&id)) {
            Some(d) => {
                for f in &mut st.firewalls {
                    f.2.retain(|x| *x != d.id);
                }
                Reply::empty(204)
            }
            None => not_found(),
        },
        ("GET", "/actions/{id}") => {
            let Some((action, droplet)) = id().and_then(|a| st.actions.get(&a).map(|d| (a, *d))) else {
                return not_found();
            };
            let status = match st.droplets.get_mut(&droplet) {
                Some(d) => {
                    tick(d);
                    if d.status == "new" { "in-progress" } else { "completed" }
                }
                None => "completed",
            };
            Reply::json(
                200,
                &json!({"action": {"id": action, "status": status, "type": "create", "started_at": "2020-11-14T16:29:21Z",
                    "completed_at": null, "resource_id": droplet, "resource_type": "droplet", "region_slug": "nyc3"}}),
            )
        }
        ("GET", "/tags/{tag}") => {
            let t = req.var("tag");
            if st.tags.contains(t) {
                let count = st.droplets.values().filter(|d| d.tags.iter().any(|x| x == t)).count();
                Reply::json(
                    200,
                    &json!({"tag": {"name": t, "resources": {"count": count, "droplets": {"count": count}}}}),
                )
            } else {
                not_found()
            }
        }
        ("POST", "/tags") => {
            let name = req.json().and_then(|b| b["name"].as_str().map(str::to_string)).unwrap_or_default();
            if !legal_tag(&name) {
                return Reply::json(
                    400,
                    &json!({"error": format!("Error validating resource tag: \"tag-name \\\"{name}\\\" contains invalid characters\""), "messages": null, "root_causes": []}),
                );
            }
            st.tags.insert(name.clone());
            Reply::json(201, &json!({"tag": {"name": name, "resources": {"count": 0}}}))
        }
        ("DELETE", "/tags/{tag}") => {
            let t = req.var("tag").to_string();
            if !st.tags.remove(&t) {
                return not_found();
            }
            for d in st.droplets.values_mut() {
                d.tags.retain(|x| *x != t);
            }
            Reply::empty(204)
        }
        ("GET", "/firewalls") => {
            let items: Vec<Value> = st
                .firewalls
                .iter()
                .map(|(id, name, ids)| json!({"id": id, "name": name, "status": "succeeded", "inbound_rules": [], "outbound_rules": [], "created_at": "2017-05-23T21:24:00Z", "droplet_ids": ids, "tags": [], "pending_changes": []}))
                .collect();
            Reply::json(200, &paged(req, base, "firewalls", items).0)
        }
        ("POST", "/firewalls/{id}/droplets") => {
            let ids: Vec<u64> = req
                .json()
                .and_then(|b| b["droplet_ids"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()))
                .unwrap_or_default();
            if ids.is_empty() {
                return err(400, "bad_request", "droplet_ids is required");
            }
            if ids.iter().any(|d| !st.droplets.contains_key(d)) {
                return not_found();
            }
            let fid = req.var("id").to_string();
            match st.firewalls.iter_mut().find(|f| f.0 == fid) {
                Some(f) => {
                    for d in ids {
                        if !f.2.contains(&d) {
                            f.2.push(d);
                        }
                    }
                    Reply::empty(204)
                }
                None => not_found(),
            }
        }
        ("GET", "/regions") => {
            let items = vec![
                json!({"name": "New York 3", "slug": "nyc3", "features": ["metadata"], "available": true, "sizes": ["s-1vcpu-1gb", "s-2vcpu-4gb"]}),
                json!({"name": "San Francisco 1", "slug": "sfo1", "features": [], "available": false, "sizes": []}),
            ];
            Reply::json(200, &paged(req, base, "regions", items).0)
        }
        ("GET", "/sizes") => {
            let items = vec![
                json!({"slug": "s-1vcpu-1gb", "memory": 1024, "vcpus": 1, "disk": 25, "transfer": 1.0, "price_monthly": 6.0, "price_hourly": 0.00893, "regions": ["nyc3"], "available": true, "description": "Basic"}),
                json!({"slug": "s-2vcpu-4gb", "memory": 4096, "vcpus": 2, "disk": 80, "transfer": 4.0, "price_monthly": 24.0, "price_hourly": 0.03571, "regions": ["nyc3"], "available": true, "description": "Basic"}),
            ];
            Reply::json(200, &paged(req, base, "sizes", items).0)
        }
        ("GET", "/images/{image}") => match req.var("image") {
            "docker-20-04" | "63663980" => Reply::json(
                200,
                &json!({"image": {"id": 63663980, "name": "Docker on Ubuntu 20.04", "distribution": "Ubuntu", "slug": "docker-20-04", "public": true, "regions": ["nyc3"], "type": "base", "min_disk_size": 20, "size_gigabytes": 2.36, "status": "available"}}),
            ),
            _ => not_found(),
        },
        (_, r) if r.starts_with("/domains/{domain}") => {
            if req.var("domain") != DOMAIN {
                return not_found();
            }
            records(st, base, req)
        }
        _ => err(404, "not_found", "The resource you were accessing could not be found."),
    }
}

fn record_json(r: &TestRecord) -> Value {
    json!({"id": r.id, "type": r.kind, "name": r.name, "data": r.data, "priority": null, "port": null, "ttl": r.ttl, "weight": null, "flags": null, "tag": null})
}

fn fqdn(relative: &str) -> String {
    if relative == "@" { DOMAIN.to_string() } else { format!("{relative}.{DOMAIN}") }
}

fn records(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let id = req.var("id").parse::<u64>().ok();
    match req.method.as_str() {
        "GET" => {
            let items: Vec<Value> = st
                .records
                .values()
                .filter(|r| req.param("type").is_none_or(|t| r.kind == t))
                .filter(|r| req.param("name").is_none_or(|n| fqdn(&r.name).eq_ignore_ascii_case(n)))
                .map(record_json)
                .collect();
            Reply::json(200, &paged(req, base, "domain_records", items).0)
        }
        "POST" | "PUT" => {
            let Some(b) = req.json() else { return err(400, "bad_request", "the body is not JSON") };
            let (Some(kind), Some(name), Some(data)) = (b["type"].as_str(), b["name"].as_str(), b["data"].as_str())
            else {
                return err(422, "unprocessable_entity", "type, name and data are required");
            };
            // `domain_record_txt` requires `flags` and `tag` (nullable) besides type, name and data.
            if kind == "TXT" && !b.as_object().is_some_and(|o| o.contains_key("flags") && o.contains_key("tag")) {
                return err(422, "unprocessable_entity", "flags and tag are required for TXT records");
            }
            if kind == "A" && data.parse::<Ipv4Addr>().is_err() {
                return err(422, "unprocessable_entity", "data is not an IPv4 address");
            }
            let ttl = b["ttl"].as_u64().unwrap_or(1800) as u32;
            if ttl < 30 {
                return err(422, "unprocessable_entity", "ttl must be at least 30");
            }
            let rid = match (req.method.as_str(), id) {
                ("PUT", Some(id)) if st.records.contains_key(&id) => id,
                ("PUT", _) => return not_found(),
                _ => {
                    st.next_id += 1;
                    28_448_429 + st.next_id
                }
            };
            let r = TestRecord { id: rid, kind: kind.into(), name: name.into(), data: data.into(), ttl };
            let body = json!({"domain_record": record_json(&r)});
            st.records.insert(rid, r);
            Reply::json(if req.method.as_str() == "POST" { 201 } else { 200 }, &body)
        }
        "DELETE" => match id.and_then(|id| st.records.remove(&id)) {
            Some(_) => Reply::empty(204),
            None => not_found(),
        },
        _ => not_found(),
    }
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct DigitalOceanHarness {
    server: DigitalOceanTestServer,
    /// How long a stalled request is held (longer than the client's timeout).
    stall: Duration,
    page_size: usize,
}

impl DigitalOceanHarness {
    /// A harness over `server`; the provider must list with `page_size` per page.
    pub fn new(server: DigitalOceanTestServer, page_size: usize, stall: Duration) -> Self {
        DigitalOceanHarness { server, stall, page_size }
    }

    fn route(op: Op) -> &'static str {
        match op {
            Op::Create => "POST /droplets",
            Op::Get => "GET /droplets/{id}",
            Op::Delete => "DELETE /droplets/{id}",
            Op::List => "GET /droplets",
        }
    }
}

#[async_trait]
impl Harness for DigitalOceanHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => err(401, "unauthorized", "Unable to authenticate you"),
            F::Forbidden => err(403, "forbidden", "You do not have access for the attempted action."),
            F::NotFound => not_found(),
            F::Conflict => err(409, "conflict", "The droplet is being modified by another request."),
            F::RateLimited { retry_after } => throttled(retry_after),
            F::ServerError => err(500, "server_error", "Unexpected server-side error"),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "server_error", "too late") };
                return self.server.api.inject(Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a create's answer");
                err(422, "unprocessable_entity", LIMIT_MESSAGE)
            }
        };
        self.server.api.inject(Self::route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(Self::route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(Self::route(op))
    }

    fn retries(&self) -> RetryRules {
        // The create is sent once (a retried POST could make a second droplet); reads and the
        // DELETE are retried. The throttling hint is `ratelimit-reset`, a Unix time in whole
        // seconds, so the wait the error carries is within a second of the asked one, not equal.
        RetryRules { retried: &[Op::Get, Op::Delete, Op::List], retry_after_hint: false }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        // DigitalOcean's create takes no idempotency token.
        None
    }

    fn missing_id(&self) -> String {
        "999999999".into()
    }

    async fn create_foreign_vm(&self) -> String {
        self.server.add_droplet("ops-bastion", &["web", "env:prod"]).to_string()
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_droplet(id.parse().expect("a droplet id"));
    }

    async fn vm_exists(&self, id: &str) -> bool {
        id.parse().ok().and_then(|id| self.server.droplet(id)).is_some()
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim_tag = tags::claim_tag(spec.claim.as_str());
        self.server.droplets().iter().filter(|d| d.tags.contains(&claim_tag) || d.name == spec.name).count()
    }
}

/// The server's domain as the DNS conformance suite reads and plants records.
#[derive(Debug, Clone)]
pub struct Zone(pub DigitalOceanTestServer);

impl Zone {
    fn relative(name: &str) -> String {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        if n == DOMAIN {
            "@".into()
        } else {
            n.strip_suffix(&format!(".{DOMAIN}")).expect("a name in the domain").to_string()
        }
    }
}

#[async_trait]
impl ZoneAccess for Zone {
    async fn put_foreign_a(&self, name: &str, address: Ipv4Addr) {
        self.0.add_record("A", &Self::relative(name), &address.to_string());
    }

    async fn put_txt(&self, name: &str, text: &str) {
        self.0.add_record("TXT", &Self::relative(name), text);
    }

    async fn a_record(&self, name: &str) -> Option<Ipv4Addr> {
        let rel = Self::relative(name);
        self.0.records().into_iter().find(|r| r.kind == "A" && r.name == rel).and_then(|r| r.data.parse().ok())
    }

    async fn txt(&self, name: &str) -> Option<Vec<String>> {
        let rel = Self::relative(name);
        let t: Vec<String> =
            self.0.records().into_iter().filter(|r| r.kind == "TXT" && r.name == rel).map(|r| r.data).collect();
        (!t.is_empty()).then_some(t)
    }
}
