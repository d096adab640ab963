//! In-process Nova, Cinder, Glance and Neutron for tests, on the shared fake-API harness
//! ([`crate::fake_api`]), behind a real Keystone ([`keystone`]): every request's `X-Auth-Token` is
//! checked with Keystone (`GET /v3/auth/tokens`, as keystonemiddleware does, access rules of
//! application credentials included: a path no rule allows is refused with 401), and an accepted token
//! is not asked about again for `token_cache_time` (keystonemiddleware's cache; 300 s by default, see
//! [`OpenstackTestServer::set_token_cache_time`]).
//!
//! One server answers all four services, devstack-style: `/compute/v2.1/...` (Nova),
//! `/volume/v3/{project_id}/...` (Cinder), `/image/v2/...` (Glance), `/network/v2.0/...`
//! (Neutron). Bodies are shaped like the services' api-ref samples: `{"server": ...}` /
//! `{"servers": [...], "servers_links": [{"rel": "next", ...}]}` paged with `limit`/`marker`, errors
//! `{"itemNotFound": {"code", "message"}}`. Nova requests must carry `X-OpenStack-Nova-API-Version`,
//! and the create body is checked against Nova's `servers.create` schema for that microversion
//! ([`check_server_create`]); Cinder's against `volumes.create` (3.0).
//!
//! A server is `BUILD` for [`BUILD_POLLS`] reads, then `ACTIVE` (or `ERROR` with a fault when a test
//! asked for one); a volume `creating` for as many reads, then `available`, `in-use` once a server
//! boots from it. Deleting a server deletes its `delete_on_termination` volumes unless a test turned
//! that off (then they stay `available`). Quotas: instances, cores, RAM, volumes, gigabytes. A test
//! can restrict a route to the `admin` role ([`OpenstackTestServer::admin_only`]): the policy check
//! comes after the token check, so such a read is refused with 403 (policy), one no access rule
//! allows with 401.

#[path = "keystone.rs"]
pub mod keystone;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use self::keystone::KeystoneApi;
use crate::fake_api::{FakeApi, Fault, Incoming, Reply};

/// Reads of a new server (volume) before it is `ACTIVE` (`available`).
pub const BUILD_POLLS: u32 = 2;
/// The image the server has (active).
pub const IMAGE_ID: &str = "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b";
/// The network the server has.
pub const NETWORK_ID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// Security groups the server has.
pub const SECURITY_GROUPS: [&str; 2] = ["default", "kasm-agents"];
/// The key pair the server has.
pub const KEY_NAME: &str = "kasm-admin";
/// The fault message of a server the scheduler found no host for (Nova's `NoValidHost`).
pub const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";

/// Flavors: (id, name, vcpus, ram MiB).
pub const FLAVORS: [(&str, &str, u64, u64); 3] =
    [("1", "gen.small", 1, 2048), ("2", "gen.medium", 2, 4096), ("3", "gen.large", 4, 8192)];

/// A server as the test server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestServer {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `BUILD`, `ACTIVE`, `ERROR`.
    pub status: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// The whole create request's `server` object.
    pub request: Value,
    /// `(volume id, delete_on_termination)` of its block device mapping.
    pub volumes: Vec<(String, bool)>,
    /// The fault of an `ERROR` server.
    pub fault: Option<String>,
    /// Creation order.
    pub seq: u64,
    polls_left: u32,
}

/// A volume as the test server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestVolume {
    /// Id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// GB.
    pub size: u64,
    /// `creating`, `available`, `in-use`, `error`.
    pub status: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// The create request's `volume` object.
    pub request: Value,
    /// The server it is attached to.
    pub attached_to: Option<String>,
    /// Creation order.
    pub seq: u64,
    polls_left: u32,
}

/// Quotas (`-1`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Instances.
    pub instances: i64,
    /// Cores.
    pub cores: i64,
    /// RAM in MiB.
    pub ram: i64,
    /// Volumes.
    pub volumes: i64,
    /// Gigabytes of volumes.
    pub gigabytes: i64,
}

#[derive(Debug)]
struct Inner {
    servers: BTreeMap<String, TestServer>,
    volumes: BTreeMap<String, TestVolume>,
    seq: u64,
    quotas: Quotas,
    /// Servers put in list answers so far.
    listed: usize,
    /// Faults the next server builds end in.
    build_faults: Vec<String>,
    /// Whether a server delete deletes its `delete_on_termination` volumes.
    honour_delete_on_termination: bool,
    /// Tokens seen on requests (in order of first use).
    tokens: Vec<String>,
    /// Tokens Keystone accepted, and when (keystonemiddleware's token cache).
    validated: BTreeMap<String, (keystone::Validated, std::time::Instant)>,
    /// How long an accepted token is not asked about again (keystonemiddleware's
    /// `token_cache_time`, 300 s by default).
    token_cache_time: Duration,
    /// The project every request must be scoped to.
    project_id: String,
    /// Routes (`"METHOD template"`) a policy allows only to tokens with the `admin` role, and the
    /// service's refusal (an operator's policy file restricting a read).
    admin_only: BTreeMap<String, Reply>,
}

/// The four services, on one port.
#[derive(Debug, Clone)]
pub struct OpenstackTestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

/// Nova's (and Cinder's) error body.
pub fn err(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, &json!({ kind: {"code": status, "message": message} }))
}

fn not_found(what: &str, id: &str) -> Reply {
    err(404, "itemNotFound", &format!("{what} {id} could not be found."))
}

fn bad(message: &str) -> Reply {
    err(400, "badRequest", message)
}

/// The routes, below the server's root.
const ROUTES: &[&str] = &[
    "POST /compute/v2.1/servers",
    "GET /compute/v2.1/servers",
    "GET /compute/v2.1/servers/detail",
    "GET /compute/v2.1/servers/{id}",
    "DELETE /compute/v2.1/servers/{id}",
    "GET /compute/v2.1/servers/{id}/os-volume_attachments",
    "GET /compute/v2.1/servers/{id}/os-interface",
    "GET /compute/v2.1/flavors",
    "GET /compute/v2.1/flavors/detail",
    "GET /compute/v2.1/flavors/{id}",
    "GET /compute/v2.1/os-keypairs/{name}",
    "GET /compute/v2.1/limits",
    "POST /volume/v3/{project}/volumes",
    "GET /volume/v3/{project}/volumes",
    "GET /volume/v3/{project}/volumes/detail",
    "GET /volume/v3/{project}/volumes/{id}",
    "DELETE /volume/v3/{project}/volumes/{id}",
    "GET /volume/v3/{project}/limits",
    "GET /image/v2/images/{id}",
    "GET /image/v2/schemas/image",
    "GET /network/v2.0/networks/{id}",
    "GET /network/v2.0/security-groups",
];

impl OpenstackTestServer {
    /// Starts the services for `project_id`, checking tokens with `keystone`, and registers them in
    /// Keystone's catalogue (`compute`, `volumev3`, `image`, `network`).
    pub async fn start(keystone: KeystoneApi, project_id: &str) -> OpenstackTestServer {
        let inner = Arc::new(Mutex::new(Inner {
            servers: BTreeMap::new(),
            volumes: BTreeMap::new(),
            seq: 0,
            quotas: Quotas { instances: 20, cores: 40, ram: 81920, volumes: 20, gigabytes: 1000 },
            listed: 0,
            build_faults: Vec::new(),
            honour_delete_on_termination: true,
            tokens: Vec::new(),
            validated: BTreeMap::new(),
            token_cache_time: Duration::from_secs(300),
            project_id: project_id.to_string(),
            admin_only: BTreeMap::new(),
        }));
        let service_token = Arc::new(tokio::sync::Mutex::new(keystone.admin_token().await));
        let mut b = FakeApi::builder();
        for route in ROUTES {
            let st = inner.clone();
            let ks = keystone.clone();
            let svc = service_token.clone();
            b = b.route(
                route,
                crate::fake_api::handler(move |req| {
                    let (st, ks, svc) = (st.clone(), ks.clone(), svc.clone());
                    async move {
                        if let Some(refused) = authenticate(&st, &ks, &svc, &req).await {
                            return refused;
                        }
                        let mut g = st.lock().expect("server lock");
                        answer(&mut g, &req)
                    }
                }),
            );
        }
        let api = b.start().await;
        let url = api.url.clone();
        for (kind, name, path) in [
            ("compute", "nova", "/compute/v2.1".to_string()),
            ("volumev3", "cinderv3", format!("/volume/v3/{project_id}")),
            ("image", "glance", "/image".to_string()),
            ("network", "neutron", "/network".to_string()),
        ] {
            keystone.register(kind, name, &format!("{url}{path}")).await;
        }
        OpenstackTestServer { url, api, inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("server lock")
    }

    /// The fake API underneath (faults, recorded requests).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// Nova's endpoint (`openstack_nova_endpoint`).
    pub fn nova(&self) -> String {
        format!("{}/compute/v2.1", self.url)
    }

    /// Cinder's endpoint with the project (`openstack_cinder_endpoint`).
    pub fn cinder(&self) -> String {
        format!("{}/volume/v3/{}", self.url, self.lock().project_id)
    }

    /// Glance's endpoint (`openstack_glance_endpoint`).
    pub fn glance(&self) -> String {
        format!("{}/image", self.url)
    }

    /// Every server.
    pub fn servers(&self) -> Vec<TestServer> {
        self.lock().servers.values().cloned().collect()
    }

    /// Every volume.
    pub fn volumes(&self) -> Vec<TestVolume> {
        self.lock().volumes.values().cloned().collect()
    }

    /// Adds an `ACTIVE` server with `metadata` (not through the API); returns its id.
    pub fn add_server(&self, name: &str, metadata: &[(&str, &str)]) -> String {
        let mut g = self.lock();
        g.seq += 1;
        let id = uuid_of(g.seq, 0xa);
        let s = TestServer {
            id: id.clone(),
            name: name.into(),
            status: "ACTIVE".into(),
            metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            request: json!({}),
            volumes: Vec::new(),
            fault: None,
            seq: g.seq,
            polls_left: 0,
        };
        g.servers.insert(id.clone(), s);
        id
    }

    /// Adds an unattached volume in `status` with `metadata` (not through the API; one `creating` stays
    /// `creating`); returns its id.
    pub fn add_volume(&self, name: &str, status: &str, metadata: &[(&str, &str)]) -> String {
        let mut g = self.lock();
        g.seq += 1;
        let id = uuid_of(g.seq, 0xb);
        let v = TestVolume {
            id: id.clone(),
            name: Some(name.into()),
            size: 20,
            status: status.into(),
            metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            request: json!({}),
            attached_to: None,
            seq: g.seq,
            // One added `creating` stays so (a volume whose creation is stuck or still running).
            polls_left: u32::MAX,
        };
        g.volumes.insert(id.clone(), v);
        id
    }

    /// A policy allows `route` (`"GET /compute/v2.1/limits"`) only to tokens with the `admin` role:
    /// others get 403 with `refusal` (as oslo.policy does after keystonemiddleware let the token in).
    pub fn admin_only(&self, route: &str, refusal: Reply) {
        assert!(ROUTES.contains(&route), "no route {route}");
        self.lock().admin_only.insert(route.to_string(), refusal);
    }

    /// Removes a server (not through the API).
    pub fn remove_server(&self, id: &str) {
        self.lock().servers.remove(id);
    }

    /// The next `n` server builds end in `ERROR` with `fault`.
    pub fn fail_builds(&self, fault: &str, n: usize) {
        self.lock().build_faults.extend(std::iter::repeat_n(fault.to_string(), n));
    }

    /// Whether deleting a server deletes its `delete_on_termination` volumes (default yes).
    pub fn honour_delete_on_termination(&self, yes: bool) {
        self.lock().honour_delete_on_termination = yes;
    }

    /// Sets the quotas.
    pub fn set_quotas(&self, q: Quotas) {
        self.lock().quotas = q;
    }

    /// How long a token Keystone accepted is not asked about again (keystonemiddleware's
    /// `token_cache_time`; zero: every request is checked, so a revoked token is refused at once).
    pub fn set_token_cache_time(&self, d: Duration) {
        let mut g = self.lock();
        g.token_cache_time = d;
        g.validated.clear();
    }

    /// The distinct tokens requests carried, in order of first use.
    pub fn tokens(&self) -> Vec<String> {
        self.lock().tokens.clone()
    }

    /// Servers put in list answers so far.
    pub fn listed(&self) -> usize {
        self.lock().listed
    }
}

fn uuid_of(seq: u64, kind: u64) -> String {
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", 0x5e7_0000u64 + kind, seq % 0xffff, kind, seq % 0xfff, seq)
}

/// The service type a route belongs to, and its path as the service sees it (for access rules).
fn service_of(path: &str) -> (&'static str, String) {
    for (prefix, kind) in
        [("/compute", "compute"), ("/volume", "volumev3"), ("/image", "image"), ("/network", "network")]
    {
        if let Some(rest) = path.strip_prefix(prefix) {
            return (kind, rest.to_string());
        }
    }
    ("", path.to_string())
}

/// Keystone's access-rule path match: `*` one segment, `**` any number.
fn glob(rule: &str, path: &str) -> bool {
    let r: Vec<&str> = rule.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    fn m(r: &[&str], p: &[&str]) -> bool {
        match (r.first(), p.first()) {
            (None, None) => true,
            (Some(&"**"), _) => m(&r[1..], p) || (!p.is_empty() && m(r, &p[1..])),
            (Some(a), Some(b)) => (*a == "*" || a == b) && m(&r[1..], &p[1..]),
            _ => false,
        }
    }
    m(&r, &p)
}

/// keystonemiddleware's part: the token is valid, scoped to our project, and (for an application
/// credential with access rules) allowed this service, method and path.
async fn authenticate(
    st: &Arc<Mutex<Inner>>,
    ks: &KeystoneApi,
    svc: &Arc<tokio::sync::Mutex<String>>,
    req: &Incoming,
) -> Option<Reply> {
    let unauthorized = || {
        Reply::json(
            401,
            &json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
        )
    };
    let Some(token) = req.headers.get("x-auth-token").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return Some(unauthorized());
    };
    {
        let mut g = st.lock().expect("server lock");
        if !g.tokens.contains(&token) {
            g.tokens.push(token.clone());
        }
    }
    let cached = {
        let g = st.lock().expect("server lock");
        g.validated.get(&token).filter(|(_, at)| at.elapsed() < g.token_cache_time).map(|(v, _)| v.clone())
    };
    let v = match cached {
        Some(v) => v,
        None => match validate(st, ks, svc, &token).await {
            Ok(v) => v,
            Err(refused) => return Some(refused),
        },
    };
    if v.project_id != st.lock().expect("server lock").project_id {
        return Some(err(403, "forbidden", "the token is not scoped to this project"));
    }
    if let Some(rules) = &v.access_rules {
        let (kind, path) = service_of(&format!("/{}", req.path.trim_start_matches('/')));
        let allowed =
            rules.iter().any(|(s, m, p)| s == kind && m.eq_ignore_ascii_case(req.method.as_str()) && glob(p, &path));
        if !allowed {
            return Some(unauthorized());
        }
    }
    // The service's policy, after the token passed keystonemiddleware.
    let g = st.lock().expect("server lock");
    match g.admin_only.get(&format!("{} {}", req.method, req.route)) {
        Some(refusal) if !v.roles.iter().any(|r| r == "admin") => Some(refusal.clone()),
        _ => None,
    }
}

/// Asks Keystone about `token`; an accepted one is cached. `Err` is the refusal to answer.
async fn validate(
    st: &Arc<Mutex<Inner>>,
    ks: &KeystoneApi,
    svc: &Arc<tokio::sync::Mutex<String>>,
    token: &str,
) -> Result<keystone::Validated, Reply> {
    let unauthorized = || {
        Reply::json(
            401,
            &json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
        )
    };
    let service_token = svc.lock().await.clone();
    let v = match ks.validate(&service_token, token).await {
        Some(v) => v,
        None => {
            // Our own service token may have expired: renew once and ask again.
            let fresh = ks.fresh_admin_token().await;
            *svc.lock().await = fresh.clone();
            match ks.validate(&fresh, token).await {
                Some(v) => v,
                None => return Err(unauthorized()),
            }
        }
    };
    st.lock().expect("server lock").validated.insert(token.to_string(), (v.clone(), std::time::Instant::now()));
    Ok(v)
}

/// `limit`/`marker` paging over `items` (in creation order) with `<key>_links` next.
fn paged(req: &Incoming, base: &str, key: &str, items: Vec<(String, Value)>) -> Result<(Value, usize), Reply> {
    let limit = match req.param("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| bad("limit param must be an integer"))?,
        None => 1000,
    };
    let start = match req.param("marker") {
        Some(m) => items
            .iter()
            .position(|(id, _)| id == m)
            .map(|i| i + 1)
            .ok_or_else(|| bad(&format!("marker [{m}] not found")))?,
        None => 0,
    };
    let page: Vec<(String, Value)> = items.iter().skip(start).take(limit.max(1)).cloned().collect();
    let more = start + page.len() < items.len();
    let n = page.len();
    let mut out = Map::new();
    if let (true, Some((last, _))) = (more, page.last()) {
        out.insert(
            format!("{key}_links"),
            json!([{"rel": "next", "href": format!("{base}?limit={limit}&marker={last}")}]),
        );
    }
    out.insert(key.into(), Value::Array(page.into_iter().map(|(_, v)| v).collect()));
    Ok((Value::Object(out), n))
}

fn server_json(s: &TestServer) -> Value {
    let n = s.seq % 250 + 1;
    let addresses = if s.status == "ACTIVE" {
        json!({"private": [{"addr": format!("10.0.0.{n}"), "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]})
    } else {
        json!({})
    };
    let mut v = json!({
        "id": s.id, "name": s.name, "status": s.status, "tenant_id": "p", "user_id": "u",
        "metadata": s.metadata, "addresses": addresses, "created": "2026-12-01T10:00:00Z", "updated": "2026-12-01T10:00:00Z",
        "hostId": "", "accessIPv4": "", "accessIPv6": "", "progress": 0, "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-STS:task_state": if s.status == "BUILD" { json!("spawning") } else { Value::Null },
        "OS-EXT-STS:vm_state": s.status.to_ascii_lowercase(),
        "os-extended-volumes:volumes_attached": s.volumes.iter().map(|(id, d)| json!({"id": id, "delete_on_termination": d})).collect::<Vec<_>>(),
        "flavor": {"original_name": "gen.medium", "vcpus": 2, "ram": 4096, "disk": 0, "ephemeral": 0, "swap": 0, "extra_specs": {}},
        "image": if s.volumes.is_empty() { json!({"id": IMAGE_ID}) } else { json!("") },
        "links": [{"rel": "self", "href": format!("http://openstack.example.com/v2.1/servers/{}", s.id)}],
        "security_groups": [{"name": "default"}],
    });
    if let Some(f) = &s.fault {
        v["fault"] = json!({"code": 500, "created": "2026-12-01T10:00:01Z", "message": f});
    }
    v
}

fn volume_json(v: &TestVolume) -> Value {
    json!({
        "id": v.id, "name": v.name, "size": v.size, "status": v.status, "metadata": v.metadata,
        "attachments": v.attached_to.iter().map(|s| json!({"server_id": s, "volume_id": v.id, "device": "/dev/vda"})).collect::<Vec<_>>(),
        "availability_zone": "nova", "bootable": "true", "encrypted": false, "multiattach": false,
        "volume_type": v.request.get("volume_type").cloned().unwrap_or(json!("__DEFAULT__")),
        "created_at": "2026-12-01T10:00:00.000000", "updated_at": null, "snapshot_id": null, "source_volid": null,
        "description": null, "replication_status": null, "consistencygroup_id": null, "migration_status": null,
        "links": [{"rel": "self", "href": format!("http://openstack.example.com/v3/p/volumes/{}", v.id)}],
    })
}

/// The microversion a Nova request announces (`2.N`), or the error Nova answers.
fn microversion(req: &Incoming) -> Result<u32, Reply> {
    let v = req.headers.get("x-openstack-nova-api-version").and_then(|v| v.to_str().ok()).unwrap_or("2.1");
    v.strip_prefix("2.")
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| (1..=100).contains(m))
        .ok_or_else(|| err(406, "computeFault", &format!("Version {v} is not supported by the API.")))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

fn nova_name(v: &Value) -> bool {
    v.as_str().is_some_and(|s| (1..=255).contains(&s.chars().count()) && s.trim() == s)
}

/// Nova's `servers.create*` schema for microversion `2.<mv>`, the parts a client can get wrong: the
/// attributes that exist at that version (additionalProperties false), `name`/`flavorRef`/`networks`
/// required, formats of `imageRef`, `networks[].uuid`, `security_groups[].name`,
/// `block_device_mapping_v2[]`, `metadata` keys and values, `user_data` (base64, at most 65535).
pub fn check_server_create(body: &Value, mv: u32) -> Result<(), String> {
    let top = body.as_object().ok_or("the body is not an object")?;
    for k in top.keys() {
        if !["server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"].contains(&k.as_str()) {
            return Err(format!("Additional properties are not allowed ('{k}' was unexpected)"));
        }
    }
    let s = top.get("server").and_then(|s| s.as_object()).ok_or("'server' is a required property")?;
    let mut allowed = vec![
        "name",
        "imageRef",
        "flavorRef",
        "adminPass",
        "metadata",
        "networks",
        "accessIPv4",
        "accessIPv6",
        "user_data",
        "availability_zone",
        "block_device_mapping",
        "block_device_mapping_v2",
        "config_drive",
        "key_name",
        "min_count",
        "max_count",
        "return_reservation_id",
        "security_groups",
        "OS-DCF:diskConfig",
    ];
    for (k, from, to) in [
        ("description", 19, 999),
        ("tags", 52, 999),
        ("personality", 0, 56),
        ("trusted_image_certificates", 63, 999),
        ("host", 74, 999),
        ("hypervisor_hostname", 74, 999),
        ("hostname", 90, 999),
    ] {
        if (from..=to).contains(&mv) {
            allowed.push(k);
        }
    }
    for k in s.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("Additional properties are not allowed ('{k}' was unexpected)"));
        }
    }
    for k in ["name", "flavorRef"] {
        if !s.contains_key(k) {
            return Err(format!("'{k}' is a required property"));
        }
    }
    if mv >= 37 && !s.contains_key("networks") {
        return Err("'networks' is a required property".into());
    }
    if !nova_name(&s["name"]) {
        return Err("Invalid input for field/attribute name.".into());
    }
    if !(s["flavorRef"].as_str().is_some_and(|f| !f.is_empty()) || s["flavorRef"].is_u64()) {
        return Err("Invalid input for field/attribute flavorRef.".into());
    }
    if let Some(i) = s.get("imageRef")
        && !i.as_str().is_some_and(|i| i.is_empty() || is_uuid(i))
    {
        return Err("Invalid input for field/attribute imageRef.".into());
    }
    if let Some(n) = s.get("networks") {
        let ok = n.as_str().is_some_and(|n| n == "auto" || n == "none")
            || n.as_array().is_some_and(|a| {
                a.iter().all(|x| {
                    x.as_object().is_some_and(|o| {
                        o.keys().all(|k| ["uuid", "port", "fixed_ip", "tag"].contains(&k.as_str()))
                            && o.get("uuid").is_none_or(|u| u.as_str().is_some_and(is_uuid))
                    })
                })
            });
        if !ok {
            return Err("Invalid input for field/attribute networks.".into());
        }
    }
    if let Some(g) = s.get("security_groups")
        && !g.as_array().is_some_and(|a| {
            a.iter().all(|x| x.as_object().is_some_and(|o| o.len() == 1 && o.get("name").is_some_and(nova_name)))
        })
    {
        return Err("Invalid input for field/attribute security_groups.".into());
    }
    for k in ["key_name", "availability_zone"] {
        if let Some(v) = s.get(k)
            && !nova_name(v)
        {
            return Err(format!("Invalid input for field/attribute {k}."));
        }
    }
    if let Some(m) = s.get("metadata") {
        let o = m.as_object().ok_or("Invalid input for field/attribute metadata.")?;
        for (k, v) in o {
            let key_ok =
                (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:. ".contains(&b));
            if !key_ok || v.as_str().is_none_or(|v| v.chars().count() > 255) {
                return Err(format!("Invalid input for field/attribute metadata. Value: {k}"));
            }
        }
    }
    if let Some(u) = s.get("user_data") {
        let u = u.as_str().ok_or("Invalid input for field/attribute user_data.")?;
        use base64::Engine;
        if u.len() > 65535 || base64::engine::general_purpose::STANDARD.decode(u).is_err() {
            return Err("Invalid input for field/attribute user_data.".into());
        }
    }
    if let Some(b) = s.get("block_device_mapping_v2") {
        let a = b.as_array().ok_or("Invalid input for field/attribute block_device_mapping_v2.")?;
        let keys = [
            "boot_index",
            "connection_info",
            "delete_on_termination",
            "destination_type",
            "device_name",
            "device_type",
            "disk_bus",
            "guest_format",
            "image_id",
            "no_device",
            "snapshot_id",
            "source_type",
            "uuid",
            "volume_id",
            "volume_size",
            "volume_type",
            "tag",
        ];
        for x in a {
            let o = x.as_object().ok_or("Invalid input for field/attribute block_device_mapping_v2.")?;
            if let Some(k) = o.keys().find(|k| !keys.contains(&k.as_str())) {
                return Err(format!("Additional properties are not allowed ('{k}' was unexpected)"));
            }
            if o.get("source_type")
                .is_some_and(|v| !["volume", "image", "snapshot", "blank"].contains(&v.as_str().unwrap_or("")))
                || o.get("destination_type").is_some_and(|v| !["local", "volume"].contains(&v.as_str().unwrap_or("")))
                || o.get("uuid").is_some_and(|v| !v.as_str().is_some_and(|u| !u.is_empty() && u.len() <= 255))
                || o.get("delete_on_termination").is_some_and(|v| !v.is_boolean())
            {
                return Err("Invalid input for field/attribute block_device_mapping_v2.".into());
            }
            if o.get("volume_type").is_some() && mv < 67 {
                return Err("Additional properties are not allowed ('volume_type' was unexpected)".into());
            }
        }
    }
    Ok(())
}

/// Cinder's `volumes.create` (3.0) for the keys a client sends: `size` (1-2147483647), `name`,
/// `imageRef`, `volume_type`, `availability_zone`, `metadata` (keys `^[a-zA-Z0-9-_:. /]{1,255}$`,
/// values at most 255).
pub fn check_volume_create(body: &Value) -> Result<(), String> {
    let top = body.as_object().ok_or("the body is not an object")?;
    if let Some(k) = top.keys().find(|k| !["volume", "OS-SCH-HNT:scheduler_hints"].contains(&k.as_str())) {
        return Err(format!("Additional properties are not allowed ('{k}' was unexpected)"));
    }
    let v = top.get("volume").and_then(|v| v.as_object()).ok_or("'volume' is a required property")?;
    if !v.get("size").and_then(|s| s.as_u64()).is_some_and(|s| (1..=2_147_483_647).contains(&s)) {
        return Err("Invalid input for field/attribute size.".into());
    }
    for k in ["name", "imageRef", "volume_type", "availability_zone"] {
        if let Some(x) = v.get(k)
            && !(x.is_null() || x.as_str().is_some_and(|s| s.len() <= 255))
        {
            return Err(format!("Invalid input for field/attribute {k}."));
        }
    }
    if let Some(m) = v.get("metadata").filter(|m| !m.is_null()) {
        let o = m.as_object().ok_or("Invalid input for field/attribute metadata.")?;
        for (k, x) in o {
            let key_ok =
                (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:. /".contains(&b));
            if !key_ok || x.as_str().is_none_or(|x| x.chars().count() > 255) {
                return Err(format!("Invalid input for field/attribute metadata. Value: {k}"));
            }
        }
    }
    Ok(())
}

fn tick_server(s: &mut TestServer, faults: &mut Vec<String>) {
    if s.status == "BUILD" {
        s.polls_left = s.polls_left.saturating_sub(1);
        if s.polls_left == 0 {
            if faults.is_empty() {
                s.status = "ACTIVE".into();
            } else {
                s.status = "ERROR".into();
                s.fault = Some(faults.remove(0));
            }
        }
    }
}

fn tick_volume(v: &mut TestVolume) {
    if v.status == "creating" {
        v.polls_left = v.polls_left.saturating_sub(1);
        if v.polls_left == 0 {
            v.status = "available".into();
        }
    }
}

fn flavor_json(f: &(&str, &str, u64, u64)) -> Value {
    json!({"id": f.0, "name": f.1, "vcpus": f.2, "ram": f.3, "disk": 0, "OS-FLV-EXT-DATA:ephemeral": 0,
        "swap": 0, "rxtx_factor": 1.0, "os-flavor-access:is_public": true, "OS-FLV-DISABLED:disabled": false,
        "description": null, "extra_specs": {}, "links": []})
}

fn answer(st: &mut Inner, req: &Incoming) -> Reply {
    let is_compute = req.route.starts_with("/compute");
    let mv = if is_compute {
        match microversion(req) {
            Ok(m) => m,
            Err(r) => return r,
        }
    } else {
        0
    };
    let id = req.var("id").to_string();
    if req.route.starts_with("/volume") && req.var("project") != st.project_id {
        return err(400, "badRequest", "Malformed request url");
    }
    match (req.method.as_str(), req.route.as_str()) {
        ("POST", "/compute/v2.1/servers") => {
            let Some(body) = req.json() else { return bad("Malformed request body") };
            if let Err(e) = check_server_create(&body, mv) {
                return bad(&e);
            }
            let s = &body["server"];
            if !FLAVORS.iter().any(|f| s["flavorRef"].as_str() == Some(f.0)) {
                return bad(&format!("Flavor {} could not be found.", s["flavorRef"]));
            }
            let live = st.servers.len() as i64;
            if st.quotas.instances >= 0 && live >= st.quotas.instances {
                return err(
                    403,
                    "forbidden",
                    &format!(
                        "Quota exceeded for instances: Requested 1, but already used {live} of {} instances",
                        st.quotas.instances
                    ),
                );
            }
            let mut volumes = Vec::new();
            if let Some(bdm) = s.get("block_device_mapping_v2").and_then(|b| b.as_array()) {
                for b in bdm {
                    let vid = b["uuid"].as_str().unwrap_or_default().to_string();
                    match st.volumes.get(&vid) {
                        Some(v) if v.status == "available" => {}
                        Some(v) => return bad(&format!("Volume {vid} status must be available, but is {}", v.status)),
                        None => return bad(&format!("Block Device Mapping is Invalid: failed to get volume {vid}.")),
                    }
                    volumes.push((vid, b["delete_on_termination"].as_bool().unwrap_or(false)));
                }
            } else if s.get("imageRef").and_then(|i| i.as_str()) != Some(IMAGE_ID) {
                return bad(&format!("Image {} could not be found.", s["imageRef"]));
            }
            if let Some(n) = s["networks"].as_array()
                && n.iter().any(|x| x["uuid"].as_str() != Some(NETWORK_ID))
            {
                return bad("Network could not be found.");
            }
            if let Some(g) = s.get("security_groups").and_then(|g| g.as_array())
                && let Some(x) = g.iter().find(|x| !SECURITY_GROUPS.contains(&x["name"].as_str().unwrap_or("")))
            {
                return bad(&format!(
                    "Unable to find security_group with name or id '{}'",
                    x["name"].as_str().unwrap_or("")
                ));
            }
            if let Some(k) = s.get("key_name").and_then(|k| k.as_str())
                && k != KEY_NAME
            {
                return bad("Invalid key_name provided.");
            }
            st.seq += 1;
            let sid = uuid_of(st.seq, 0x5);
            for (vid, _) in &volumes {
                if let Some(v) = st.volumes.get_mut(vid) {
                    v.status = "in-use".into();
                    v.attached_to = Some(sid.clone());
                }
            }
            let server = TestServer {
                id: sid.clone(),
                name: s["name"].as_str().unwrap_or_default().to_string(),
                status: "BUILD".into(),
                metadata: s["metadata"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default(),
                request: s.clone(),
                volumes,
                fault: None,
                seq: st.seq,
                polls_left: BUILD_POLLS,
            };
            st.servers.insert(sid.clone(), server);
            Reply::json(
                202,
                &json!({"server": {"id": sid, "OS-DCF:diskConfig": "MANUAL", "adminPass": "x8Pq2Lr", "security_groups": [{"name": "default"}],
                    "links": [{"rel": "self", "href": format!("http://openstack.example.com/v2.1/servers/{sid}")}]}}),
            )
        }
        ("GET", "/compute/v2.1/servers") | ("GET", "/compute/v2.1/servers/detail") => {
            let detail = req.route.ends_with("/detail");
            for k in req.params.keys() {
                if !["name", "limit", "marker"].contains(&k.as_str()) {
                    return bad(&format!("Additional properties are not allowed ('{k}' was unexpected)"));
                }
            }
            let name = req.param("name").map(|n| {
                let exact = n.starts_with('^') && n.ends_with('$');
                let inner: String = n.trim_start_matches('^').trim_end_matches('$').replace('\\', "");
                (exact, inner)
            });
            let mut list: Vec<&TestServer> = st
                .servers
                .values()
                .filter(|s| match &name {
                    Some((true, n)) => &s.name == n,
                    Some((false, n)) => s.name.contains(n.as_str()),
                    None => true,
                })
                .collect();
            list.sort_by_key(|s| s.seq);
            let items: Vec<(String, Value)> = list
                .into_iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        if detail { server_json(s) } else { json!({"id": s.id, "name": s.name, "links": []}) },
                    )
                })
                .collect();
            match paged(req, &format!("http://openstack.example.com/v2.1{}", req.path), "servers", items) {
                Ok((v, n)) => {
                    st.listed += n;
                    Reply::json(200, &v)
                }
                Err(r) => r,
            }
        }
        ("GET", "/compute/v2.1/servers/{id}") => {
            let Inner { servers, build_faults, .. } = st;
            match servers.get_mut(&id) {
                Some(s) => {
                    tick_server(s, build_faults);
                    Reply::json(200, &json!({ "server": server_json(s) }))
                }
                None => not_found("Instance", &id),
            }
        }
        ("DELETE", "/compute/v2.1/servers/{id}") => match st.servers.remove(&id) {
            Some(s) => {
                for (vid, dot) in s.volumes {
                    if dot && st.honour_delete_on_termination {
                        st.volumes.remove(&vid);
                    } else if let Some(v) = st.volumes.get_mut(&vid) {
                        v.status = "available".into();
                        v.attached_to = None;
                    }
                }
                Reply::empty(204)
            }
            None => not_found("Instance", &id),
        },
        ("GET", "/compute/v2.1/servers/{id}/os-volume_attachments") => match st.servers.get(&id) {
            Some(s) => Reply::json(
                200,
                &json!({"volumeAttachments": s.volumes.iter().map(|(v, _)| json!({"id": v, "volumeId": v, "serverId": s.id, "device": "/dev/vda"})).collect::<Vec<_>>()}),
            ),
            None => not_found("Instance", &id),
        },
        ("GET", "/compute/v2.1/servers/{id}/os-interface") => match st.servers.get(&id) {
            Some(_) => Reply::json(200, &json!({"interfaceAttachments": []})),
            None => not_found("Instance", &id),
        },
        ("GET", "/compute/v2.1/flavors") | ("GET", "/compute/v2.1/flavors/detail") => {
            let items: Vec<(String, Value)> = FLAVORS.iter().map(|f| (f.0.to_string(), flavor_json(f))).collect();
            match paged(req, "http://openstack.example.com/v2.1/flavors/detail", "flavors", items) {
                Ok((v, _)) => Reply::json(200, &v),
                Err(r) => r,
            }
        }
        ("GET", "/compute/v2.1/flavors/{id}") => match FLAVORS.iter().find(|f| f.0 == id) {
            Some(f) => Reply::json(200, &json!({ "flavor": flavor_json(f) })),
            None => not_found("Flavor", &id),
        },
        ("GET", "/compute/v2.1/os-keypairs/{name}") => {
            let name = req.var("name");
            if name == KEY_NAME {
                Reply::json(
                    200,
                    &json!({"keypair": {"name": name, "public_key": "ssh-ed25519 AAAAexample", "fingerprint": "7e:eb:ab:24:ba:d1:e1:88:ae:9a:fb:66:53:df:d3:bd", "type": "ssh", "user_id": "u", "id": 1, "created_at": "2026-12-01T10:00:00.000000", "deleted": false, "deleted_at": null, "updated_at": null}}),
                )
            } else {
                not_found("Keypair", name)
            }
        }
        ("GET", "/compute/v2.1/limits") => {
            let (cores, ram) = st.servers.values().fold((0u64, 0u64), |(c, r), _| (c + 2, r + 4096));
            Reply::json(
                200,
                &json!({"limits": {"rate": [], "absolute": {
                    "maxTotalInstances": st.quotas.instances, "totalInstancesUsed": st.servers.len(),
                    "maxTotalCores": st.quotas.cores, "totalCoresUsed": cores,
                    "maxTotalRAMSize": st.quotas.ram, "totalRAMUsed": ram,
                    "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
                    "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
                    "maxTotalFloatingIps": -1, "totalFloatingIpsUsed": 0, "maxSecurityGroups": -1, "totalSecurityGroupsUsed": 0,
                    "maxSecurityGroupRules": -1, "totalServerGroupsUsed": 0
                }}}),
            )
        }
        ("POST", "/volume/v3/{project}/volumes") => {
            let Some(body) = req.json() else { return bad("Malformed request body") };
            if let Err(e) = check_volume_create(&body) {
                return bad(&e);
            }
            let v = &body["volume"];
            let size = v["size"].as_u64().unwrap_or(0);
            let used: u64 = st.volumes.values().map(|v| v.size).sum();
            if st.quotas.volumes >= 0 && st.volumes.len() as i64 >= st.quotas.volumes {
                return err(
                    413,
                    "overLimit",
                    &format!(
                        "VolumeLimitExceeded: Maximum number of volumes allowed ({}) exceeded for quota 'volumes'.",
                        st.quotas.volumes
                    ),
                );
            }
            if st.quotas.gigabytes >= 0 && (used + size) as i64 > st.quotas.gigabytes {
                return err(
                    413,
                    "overLimit",
                    &format!(
                        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {size}G, quota is {}G and {used}G has been consumed.",
                        st.quotas.gigabytes
                    ),
                );
            }
            if v.get("imageRef").and_then(|i| i.as_str()).is_some_and(|i| i != IMAGE_ID) {
                return bad("Invalid image identifier or unable to access requested image.");
            }
            st.seq += 1;
            let vid = uuid_of(st.seq, 0xb);
            let vol = TestVolume {
                id: vid.clone(),
                name: v["name"].as_str().map(str::to_string),
                size,
                status: "creating".into(),
                metadata: v["metadata"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default(),
                request: v.clone(),
                attached_to: None,
                seq: st.seq,
                polls_left: BUILD_POLLS,
            };
            let out = volume_json(&vol);
            st.volumes.insert(vid, vol);
            Reply::json(202, &json!({ "volume": out }))
        }
        ("GET", "/volume/v3/{project}/volumes") | ("GET", "/volume/v3/{project}/volumes/detail") => {
            for k in req.params.keys() {
                if !["limit", "marker"].contains(&k.as_str()) {
                    return bad(&format!("Invalid filter keys: {k}"));
                }
            }
            let mut list: Vec<&TestVolume> = st.volumes.values().collect();
            list.sort_by_key(|v| v.seq);
            let items: Vec<(String, Value)> = list.into_iter().map(|v| (v.id.clone(), volume_json(v))).collect();
            match paged(req, "http://openstack.example.com/v3/p/volumes/detail", "volumes", items) {
                Ok((v, _)) => Reply::json(200, &v),
                Err(r) => r,
            }
        }
        ("GET", "/volume/v3/{project}/volumes/{id}") => match st.volumes.get_mut(&id) {
            Some(v) => {
                tick_volume(v);
                Reply::json(200, &json!({ "volume": volume_json(v) }))
            }
            None => not_found("Volume", &id),
        },
        ("DELETE", "/volume/v3/{project}/volumes/{id}") => match st.volumes.get(&id) {
            Some(v) if !["available", "error"].contains(&v.status.as_str()) => bad(
                "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.",
            ),
            Some(_) => {
                st.volumes.remove(&id);
                Reply::empty(202)
            }
            None => not_found("Volume", &id),
        },
        ("GET", "/volume/v3/{project}/limits") => {
            let used: u64 = st.volumes.values().map(|v| v.size).sum();
            Reply::json(
                200,
                &json!({"limits": {"rate": [], "absolute": {
                    "maxTotalVolumes": st.quotas.volumes, "totalVolumesUsed": st.volumes.len(),
                    "maxTotalVolumeGigabytes": st.quotas.gigabytes, "totalGigabytesUsed": used,
                    "maxTotalSnapshots": 10, "totalSnapshotsUsed": 0, "maxTotalBackups": 10, "totalBackupsUsed": 0,
                    "maxTotalBackupGigabytes": 1000, "totalBackupGigabytesUsed": 0
                }}}),
            )
        }
        ("GET", "/image/v2/images/{id}") => {
            if id == IMAGE_ID {
                Reply::json(
                    200,
                    &json!({"id": IMAGE_ID, "name": "ubuntu-24.04-kasm", "status": "active", "visibility": "shared",
                        "protected": false, "os_hidden": false, "tags": [], "container_format": "bare", "disk_format": "qcow2",
                        "min_disk": 0, "min_ram": 0, "size": 1_073_741_824u64, "virtual_size": null, "checksum": null,
                        "os_hash_algo": null, "os_hash_value": null, "owner": "p", "created_at": "2026-11-01T10:00:00Z",
                        "updated_at": "2026-11-01T10:00:00Z", "self": format!("/v2/images/{IMAGE_ID}"),
                        "file": format!("/v2/images/{IMAGE_ID}/file"), "schema": "/v2/schemas/image"}),
                )
            } else {
                Reply::text(404, format!("No image found with ID {id}"))
            }
        }
        ("GET", "/image/v2/schemas/image") => Reply::json(200, &json!({"name": "image", "properties": {}})),
        ("GET", "/network/v2.0/networks/{id}") => {
            if id == NETWORK_ID {
                Reply::json(
                    200,
                    &json!({"network": {"id": NETWORK_ID, "name": "kasm-net", "status": "ACTIVE", "admin_state_up": true,
                        "shared": false, "subnets": [], "project_id": "p", "tenant_id": "p", "mtu": 1450}}),
                )
            } else {
                Reply::json(
                    404,
                    &json!({"NeutronError": {"type": "NetworkNotFound", "message": format!("Network {id} could not be found."), "detail": ""}}),
                )
            }
        }
        ("GET", "/network/v2.0/security-groups") => {
            let name = req.param("name");
            let groups: Vec<Value> = SECURITY_GROUPS
                .iter()
                .enumerate()
                .filter(|(_, g)| name.is_none_or(|n| n == **g))
                .map(|(i, g)| json!({"id": uuid_of(i as u64 + 1, 0xc), "name": g, "description": "", "security_group_rules": [], "project_id": "p", "tenant_id": "p", "stateful": true}))
                .collect();
            Reply::json(200, &json!({ "security_groups": groups }))
        }
        _ => err(404, "itemNotFound", "The resource could not be found."),
    }
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct OpenstackHarness {
    server: OpenstackTestServer,
    stall: Duration,
    page_size: usize,
}

impl OpenstackHarness {
    /// A harness over `server`; the provider must list with `page_size` per page.
    pub fn new(server: OpenstackTestServer, page_size: usize, stall: Duration) -> Self {
        OpenstackHarness { server, stall, page_size }
    }

    fn route(op: Op) -> &'static str {
        match op {
            Op::Create => "POST /compute/v2.1/servers",
            Op::Get => "GET /compute/v2.1/servers/{id}",
            Op::Delete => "DELETE /compute/v2.1/servers/{id}",
            Op::List => "GET /compute/v2.1/servers/detail",
        }
    }
}

#[async_trait]
impl Harness for OpenstackHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => Reply::json(
                401,
                &json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
            ),
            F::Forbidden => err(403, "forbidden", "Policy doesn't allow os_compute_api:servers:index to be performed."),
            F::NotFound => not_found("Instance", "x"),
            F::Conflict => {
                err(409, "conflictingRequest", "Cannot 'delete' instance while it is in task_state deleting")
            }
            F::RateLimited { retry_after } => {
                err(429, "overLimit", "Rate limit exceeded.").header("Retry-After", retry_after.as_secs().to_string())
            }
            F::ServerError => err(500, "computeFault", "Unexpected API Error. Please report this."),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "computeFault", "too late") };
                return self.server.api.inject(Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a create's answer");
                err(403, "forbidden", "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances")
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
        // The create is sent once (Nova has no idempotency token); reads and the DELETE are retried.
        RetryRules { retried: &[Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.listed()
    }

    fn last_create_token(&self) -> Option<String> {
        None
    }

    fn missing_id(&self) -> String {
        "0badf00d-0000-4000-8000-000000000000".into()
    }

    async fn create_foreign_vm(&self) -> String {
        self.server.add_server("ops-bastion", &[("team", "ops")])
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_server(id);
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.server.servers().iter().any(|s| s.id == id)
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim = spec.claim.as_str();
        self.server
            .servers()
            .iter()
            .filter(|s| {
                s.name == spec.name || s.metadata.get("kasm-autoscale-claim").map(String::as_str) == Some(claim)
            })
            .count()
    }
}
