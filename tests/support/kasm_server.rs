//! An in-process Kasm manager for tests: an axum HTTP server on `127.0.0.1:0` that answers the calls
//! a real Kasm manager has, the way Kasm 1.15's own API server does (the decompiled `admin_api.py`,
//! `utils.py`, `data/model.py`, `data/access_postgres.py`; facts only), and nothing else:
//! - `admin/get_servers` lists Docker Agents (`server_type: "host"`) and servers (`"Desktop"`) with
//!   their sessions; with `target_server.server_id` only that record, plus a `registration_jwt`.
//! - `public/get_kasms` lists every session, placed or not (`server_id`, `cores`, `memory` bytes,
//!   `operational_status`, `is_standby`, `staging_config_id`, `autoscale_config_id`, `image_id`).
//! - `admin/get_staging_configs` lists staging configs (`num_current_sessions` = their sessions with
//!   `is_standby`); `admin/get_images` lists images (`cores`, `memory` bytes, `gpu_count`).
//! - `admin/update_server` needs `server_type` (401 "Unauthorized Action" without it, or without the
//!   Agents/Servers Modify permission for that type), changes only the fields sent (`null` = keep),
//!   except `agent_installed` and `use_user_private_key`, which become false when absent (as in
//!   1.15); answers `{"server": …}`.
//! - `admin/create_server` needs `server_type` (and Agents/Servers Create), ignores a caller's
//!   `server_id` (the id is generated), starts the record `starting` when `agent_installed`, else
//!   `running`; answers `{}`.
//! - `admin/delete_server` needs `force` to be a boolean, refuses while the record has sessions
//!   unless forced, and only marks it `delete_pending`: the record disappears after the next full
//!   listing shows it ([`KasmTestServer::finish_deletes`] removes it at once).
//! - any other path (e.g. `admin/get_agents`, `admin/update_agent`) is 404.
//!
//! Auth as Kasm 1.15 reads it: `api-key` / `api-key-secret` headers first, else `api_key` /
//! `api_key_secret` in the body ([`AcceptAuth`] may insist on one way, or on HTTP Basic as shown in
//! pre-release 1.19 docs); a bad key is 403 "Access Denied", a missing permission 401 "Unauthorized".
//! Agents register themselves ([`KasmTestServer::add_agent`]) with the id their script carries.
//! Knobs inject faults on the next calls to a path ([`Fault`]) and take permissions away
//! ([`KasmTestServer::revoke`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which ways of sending the API key the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptAuth {
    /// `api_key` / `api_key_secret` in the JSON body only (Kasm's documented Developer API).
    Body,
    /// `api-key` / `api-key-secret` headers only.
    Header,
    /// HTTP Basic only (pre-release 1.19 docs).
    Basic,
    /// Any of the three.
    Either,
}

/// A fault to inject on the next call(s) to a path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a body that echoes the request (the worst case for secrets).
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Answer with this status and exactly this body (a proxy's or a server's own error text).
    Answer(u16, String),
    /// Do the work at once, then wait this long before answering (a client that gives up first has
    /// lost the answer, not the work).
    Slow(Duration),
}

/// Kasm's API-key permissions this server checks (`JWT_AUTHORIZATION` names).
pub const PERMISSIONS: [&str; 11] = [
    "AGENTS_VIEW",
    "AGENTS_MODIFY",
    "AGENTS_CREATE",
    "SERVERS_VIEW",
    "SERVERS_MODIFY",
    "SERVERS_CREATE",
    "SERVERS_DELETE",
    "SESSIONS_VIEW",
    "SESSIONS_DELETE",
    "STAGING_VIEW",
    "IMAGES_VIEW",
];

/// One Docker Agent registering itself.
#[derive(Debug, Clone, Default)]
pub struct AgentSpec {
    /// The id the agent registers with (its script's `-i {server_id}`); Kasm lists it as 32 hex.
    pub server_id: String,
    /// Hostname it reports.
    pub hostname: String,
    /// Zone.
    pub zone_id: String,
    /// Pool (`server_pool_id`), `None` = no pool.
    pub server_pool_id: Option<String>,
    /// Enabled (Kasm registers agents disabled unless `auto_agent` is on).
    pub enabled: bool,
    /// Cores it reports.
    pub cores: f64,
    /// Memory in MB it reports (listed in bytes).
    pub memory_mb: f64,
    /// GPUs.
    pub gpus: f64,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    secret: String,
    accept: AcceptAuth,
    permissions: BTreeSet<&'static str>,
    /// Records by normalised id (32 lower-case hex digits).
    records: BTreeMap<String, Value>,
    sessions: BTreeMap<String, Value>,
    staging: BTreeMap<String, Value>,
    images: BTreeMap<String, Value>,
    /// Records marked `delete_pending`, with the full listings left before they disappear.
    deleting: HashMap<String, u32>,
    passwords: HashMap<String, String>,
    faults: HashMap<String, VecDeque<Fault>>,
    hits: HashMap<String, usize>,
    next_id: u64,
}

/// The running server. Dropping it stops nothing (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct KasmTestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

/// Kasm lists UUIDs as 32 hex digits.
pub fn norm(id: &str) -> String {
    id.chars().filter(|c| *c != '-').flat_map(char::to_lowercase).collect()
}

fn now_text() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

impl KasmTestServer {
    /// Starts a server accepting `api_key` / `secret` as `accept` says, with every permission.
    pub async fn start(api_key: &str, secret: &str, accept: AcceptAuth) -> KasmTestServer {
        let inner = Arc::new(Mutex::new(Inner {
            api_key: api_key.into(),
            secret: secret.into(),
            accept,
            permissions: PERMISSIONS.into_iter().collect(),
            records: BTreeMap::new(),
            sessions: BTreeMap::new(),
            staging: BTreeMap::new(),
            images: BTreeMap::new(),
            deleting: HashMap::new(),
            passwords: HashMap::new(),
            faults: HashMap::new(),
            hits: HashMap::new(),
            next_id: 1,
        }));
        let app = Router::new().route("/api/{*call}", post(handle)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KasmTestServer { url: format!("http://{addr}"), inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("kasm test server lock")
    }

    /// Takes a permission (a [`PERMISSIONS`] name) away from the key.
    pub fn revoke(&self, permission: &str) {
        self.lock().permissions.retain(|p| *p != permission);
    }

    /// A Docker Agent registers itself with the manager token, under the id its script carries
    /// (an existing record with that id, e.g. one made by `create_server`, is taken over). Returns
    /// the id as Kasm lists it.
    pub fn add_agent(&self, a: AgentSpec) -> String {
        let id = norm(&a.server_id);
        let mut st = self.lock();
        let rec = st.records.entry(id.clone()).or_insert_with(|| json!({ "server_id": id, "server_type": "host" }));
        let fields = json!({
            "hostname": a.hostname,
            "zone_id": norm(&a.zone_id),
            "zone_name": "default",
            "enabled": a.enabled,
            "operational_status": "running",
            "last_reported": now_text(),
            "agent_version": "1.15.0",
            "cores": a.cores,
            // Kasm reports bytes.
            "memory": (a.memory_mb * 1_000_000.0) as u64,
            "gpus": a.gpus,
            "cores_override": 0,
            "memory_override": 0,
            "gpus_override": 0,
            "max_simultaneous_sessions": 1,
            "agent_installed": false,
            "use_user_private_key": false,
            "connection_type": "KasmVNC",
        });
        for (k, v) in fields.as_object().expect("object") {
            if k == "enabled" && rec.get("enabled").is_some() {
                continue; // a pre-made record keeps the state the admin (or we) gave it
            }
            rec[k] = v.clone();
        }
        if let Some(p) = a.server_pool_id {
            rec["server_pool_id"] = json!(norm(&p));
        } else if rec.get("server_pool_id").is_none() {
            rec["server_pool_id"] = Value::Null;
        }
        id
    }

    /// The record with this id reports now (its `last_reported` becomes the wall-clock time; a
    /// `starting` record becomes `running`), as a live agent or Desktop Service does.
    pub fn check_in(&self, server_id: &str) {
        if let Some(rec) = self.lock().records.get_mut(&norm(server_id)) {
            rec["last_reported"] = json!(now_text());
            if rec["operational_status"] == "starting" {
                rec["operational_status"] = json!("running");
            }
        }
    }

    /// Sessions that exist now.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Removes a record at once (an operator deleting it, or Kasm finishing a delete).
    pub fn remove_agent(&self, server_id: &str) {
        self.lock().records.remove(&norm(server_id));
    }

    /// Adds a server-pool server record as an operator would.
    pub fn add_server(&self, server_id: &str, hostname: &str, zone_id: &str, pool_id: &str, enabled: bool) {
        let id = norm(server_id);
        let rec = json!({
            "server_id": id,
            "server_type": "Desktop",
            "friendly_name": hostname,
            "hostname": hostname,
            "connection_type": "RDP",
            "connection_port": 3389,
            "connection_info": {},
            "max_simultaneous_sessions": 1,
            "enabled": enabled,
            "operational_status": "running",
            "zone_id": norm(zone_id),
            "server_pool_id": norm(pool_id),
            "last_reported": null,
            "agent_installed": false,
            "use_user_private_key": false,
        });
        self.lock().records.insert(id, rec);
    }

    /// Starts a `running` session on `server_id`.
    pub fn add_session(&self, kasm_id: &str, server_id: &str, cores: f64, memory_mb: f64) {
        self.add_session_with_status(kasm_id, server_id, cores, memory_mb, "running");
    }

    /// Adds a session in any of Kasm's session statuses (`starting`, `requested`, `delete_pending`…).
    pub fn add_session_with_status(&self, kasm_id: &str, server_id: &str, cores: f64, memory_mb: f64, status: &str) {
        let sid = if server_id.is_empty() { Value::Null } else { json!(norm(server_id)) };
        let rec = json!({
            "kasm_id": kasm_id,
            "user_id": "50faa5439c574b518cd868dac9256e4b",
            "server_id": sid,
            "operational_status": status,
            "cores": cores,
            "memory": (memory_mb * 1_000_000.0) as u64,
            "gpus": 0,
            "token": "",
            "is_standby": false,
            "staging_config_id": null,
            "autoscale_config_id": null,
            "image_id": null,
            "user": { "username": "user@kasm.local" },
        });
        self.lock().sessions.insert(kasm_id.to_string(), rec);
    }

    /// A session request Kasm could not place, queued for the autoscale config `autoscale_config_id`
    /// (`requested`, no server), as Kasm's provider manager saves it.
    pub fn add_queued_session(&self, kasm_id: &str, autoscale_config_id: &str, cores: f64, memory_mb: f64) {
        self.add_session_with_status(kasm_id, "", cores, memory_mb, "requested");
        let mut st = self.lock();
        let rec = st.sessions.get_mut(kasm_id).expect("just added");
        rec["autoscale_config_id"] = json!(norm(autoscale_config_id));
        rec["operational_message"] = json!("Requesting Additional Resources");
    }

    /// A staged session of `staging_config_id` running on `server_id` (no user, `is_standby`).
    pub fn add_staged_session(
        &self,
        kasm_id: &str,
        server_id: &str,
        staging_config_id: &str,
        cores: f64,
        memory_mb: f64,
    ) {
        self.add_session(kasm_id, server_id, cores, memory_mb);
        let mut st = self.lock();
        let rec = st.sessions.get_mut(kasm_id).expect("just added");
        rec["is_standby"] = json!(true);
        rec["user_id"] = Value::Null;
        rec["staging_config_id"] = json!(norm(staging_config_id));
    }

    /// Adds an image (`cores`, memory in MB, listed in bytes, `gpu_count`).
    pub fn add_image(&self, image_id: &str, friendly_name: &str, cores: f64, memory_mb: f64, gpus: u32) {
        let id = norm(image_id);
        let rec = json!({
            "image_id": id,
            "friendly_name": friendly_name,
            "name": format!("kasmweb/{}:1.15.0", friendly_name.to_lowercase()),
            "cores": cores,
            "memory": (memory_mb * 1_000_000.0) as u64,
            "gpu_count": gpus,
            "enabled": true,
            "image_type": "Container",
            "server": {},
            "server_pool": {},
        });
        self.lock().images.insert(id, rec);
    }

    /// Adds a staging config: `num_sessions` of `image_id` in `zone_id`, for the autoscale config
    /// with Kasm id `autoscale_config_id` (if any).
    pub fn add_staging_config(
        &self,
        staging_config_id: &str,
        zone_id: &str,
        autoscale_config_id: Option<&str>,
        image_id: &str,
        num_sessions: u32,
    ) {
        let id = norm(staging_config_id);
        let rec = json!({
            "staging_config_id": id,
            "zone_id": norm(zone_id),
            "zone_name": "default",
            "image_id": norm(image_id),
            "num_sessions": num_sessions,
            "expiration": 2.0,
            "allow_kasm_audio": false,
            "server_pool_id": null,
            "server_pool_name": null,
            "autoscale_config_id": autoscale_config_id.map(norm),
            "autoscale_config_name": autoscale_config_id.map(|_| "agents"),
        });
        self.lock().staging.insert(id, rec);
    }

    /// Ends a session.
    pub fn remove_session(&self, kasm_id: &str) {
        self.lock().sessions.remove(kasm_id);
    }

    /// Finishes every pending delete now (Kasm's background removal).
    pub fn finish_deletes(&self) {
        let mut st = self.lock();
        let ids: Vec<String> = st.deleting.drain().map(|(k, _)| k).collect();
        for id in ids {
            st.records.remove(&id);
        }
    }

    /// Injects `fault` on the next `times` calls to `path` (e.g. `/api/public/get_kasms`).
    pub fn inject(&self, path: &str, fault: Fault, times: usize) {
        let mut st = self.lock();
        let q = st.faults.entry(path.to_string()).or_default();
        for _ in 0..times {
            q.push_back(fault.clone());
        }
    }

    /// How many times `path` was called (faulted calls included).
    pub fn hits(&self, path: &str) -> usize {
        self.lock().hits.get(path).copied().unwrap_or(0)
    }

    /// Every path called, with its count.
    pub fn paths_called(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self.lock().hits.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort();
        v
    }

    /// The daemon tests' load: an operator's own agent (not ours) `server_id` of 4 cores and 16,000 MB in
    /// `zone` and `pool`, enabled, all of whose cores two running sessions (`s1`, `s2`: 2 cores and
    /// 2,000 MB each) take — so a pool that keeps cores free has to make a VM.
    pub fn add_busy_static_agent(&self, server_id: &str, zone: &str, pool: &str) {
        self.add_agent(AgentSpec {
            server_id: server_id.into(),
            hostname: "static-agent".into(),
            zone_id: zone.into(),
            server_pool_id: Some(pool.into()),
            enabled: true,
            cores: 4.0,
            memory_mb: 16_000.0,
            gpus: 0.0,
        });
        self.add_session("s1", server_id, 2.0, 2_000.0);
        self.add_session("s2", server_id, 2.0, 2_000.0);
    }

    /// Our VM's agent booting: it registers under `server_id` (4 cores, `memory_mb`) in `zone` and
    /// `pool` disabled, as Kasm registers agents without `auto_agent`, then checks in every 200 ms until
    /// the autoscaler enables it; fails the test after `limit`.
    pub async fn register_until_enabled(
        &self,
        server_id: &str,
        hostname: &str,
        zone: &str,
        pool: &str,
        memory_mb: f64,
        limit: std::time::Duration,
    ) {
        self.add_agent(AgentSpec {
            server_id: server_id.into(),
            hostname: hostname.into(),
            zone_id: zone.into(),
            server_pool_id: Some(pool.into()),
            enabled: false,
            cores: 4.0,
            memory_mb,
            gpus: 0.0,
        });
        crate::daemon::wait_for("the agent to be enabled", limit, || {
            self.check_in(server_id);
            self.agent(server_id).is_some_and(|a| a["enabled"] == true)
        })
        .await;
    }

    /// The record with this id (agent or server), as Kasm stores it.
    pub fn agent(&self, server_id: &str) -> Option<Value> {
        self.lock().records.get(&norm(server_id)).cloned()
    }

    /// Whether the record is gone or Kasm is deleting it (`delete_pending` after `delete_server`).
    pub fn is_gone(&self, server_id: &str) -> bool {
        self.agent(server_id).is_none_or(|r| r["operational_status"] == "delete_pending")
    }

    /// The record with this id (agent or server).
    pub fn server(&self, server_id: &str) -> Option<Value> {
        self.agent(server_id)
    }

    /// The records called `friendly_name`.
    pub fn named(&self, friendly_name: &str) -> Vec<Value> {
        self.lock().records.values().filter(|r| r["friendly_name"] == friendly_name).cloned().collect()
    }

    /// Number of server-pool (`Desktop`) records.
    pub fn server_count(&self) -> usize {
        self.lock().records.values().filter(|r| r["server_type"] == "Desktop").count()
    }

    /// Every record.
    pub fn records(&self) -> Vec<Value> {
        self.lock().records.values().cloned().collect()
    }

    /// The connection password set on a record (tests check the hand-off).
    pub fn password(&self, server_id: &str) -> Option<String> {
        self.lock().passwords.get(&norm(server_id)).cloned()
    }
}

fn kasm_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error_message": msg }))).into_response()
}

/// Kasm 1.15 reads the `api-key`/`api-key-secret` headers first, else the body fields.
fn authorized(st: &Inner, headers: &HeaderMap, body: &Value) -> bool {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let basic_ok = header("authorization")
        .and_then(|v| v.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|pair| pair == format!("{}:{}", st.api_key, st.secret));
    let header_ok = header("api-key").as_deref() == Some(st.api_key.as_str())
        && header("api-key-secret").as_deref() == Some(st.secret.as_str());
    let body_ok = body["api_key"] == st.api_key.as_str() && body["api_key_secret"] == st.secret.as_str();
    match st.accept {
        AcceptAuth::Body => body_ok,
        AcceptAuth::Header => header_ok,
        AcceptAuth::Basic => basic_ok,
        AcceptAuth::Either => body_ok || header_ok || basic_ok,
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = format!("/api/{call}");
    let fault = {
        let mut st = inner.lock().expect("lock");
        *st.hits.entry(path.clone()).or_default() += 1;
        st.faults.get_mut(&path).and_then(VecDeque::pop_front)
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            // Echo the request: a careless server does, and errors must still not leak its secrets.
            let echo = String::from_utf8_lossy(&raw).to_string();
            return (status, format!("{{\"error_message\": \"injected {code}\", \"request\": {echo}}}"))
                .into_response();
        }
        Some(Fault::Malformed) => return (StatusCode::OK, "{\"servers\": [ {\"server_id\": ").into_response(),
        Some(Fault::Answer(code, body)) => {
            return (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
        }
        Some(Fault::Slow(d)) => {
            let resp = answer(&inner, &call, &headers, &raw);
            tokio::time::sleep(d).await;
            return resp;
        }
        None => {}
    }
    answer(&inner, &call, &headers, &raw)
}

/// The permission a record type needs for an action (`VIEW`, `MODIFY`, `CREATE`).
fn type_permission(server_type: &str, action: &str) -> Option<String> {
    match server_type {
        "host" => Some(format!("AGENTS_{action}")),
        "Desktop" => Some(format!("SERVERS_{action}")),
        _ => None,
    }
}

/// Does what the call asks and answers it.
fn answer(inner: &Mutex<Inner>, call: &str, headers: &HeaderMap, raw: &[u8]) -> Response {
    let known = [
        "admin/get_servers",
        "public/get_kasms",
        "admin/update_server",
        "admin/create_server",
        "admin/delete_server",
        "admin/get_staging_configs",
        "admin/get_images",
    ];
    if !known.contains(&call) {
        return (StatusCode::NOT_FOUND, "404 Not Found").into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(raw) else {
        return kasm_error(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    let mut st = inner.lock().expect("lock");
    if !authorized(&st, headers, &body) {
        return kasm_error(StatusCode::FORBIDDEN, "Access Denied");
    }
    let has = |st: &Inner, p: &str| st.permissions.contains(p);
    // The decorator's check: any one of the call's permissions.
    let needed: &[&str] = match call {
        "admin/get_servers" => &["SERVERS_VIEW", "AGENTS_VIEW"],
        "public/get_kasms" => &["SESSIONS_VIEW"],
        "admin/update_server" => &["SERVERS_MODIFY", "AGENTS_MODIFY"],
        "admin/create_server" => &["SERVERS_CREATE", "AGENTS_CREATE"],
        "admin/get_staging_configs" => &["STAGING_VIEW"],
        "admin/get_images" => &["IMAGES_VIEW"],
        _ => &["SERVERS_DELETE"],
    };
    if !needed.iter().any(|p| has(&st, p)) {
        return kasm_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match call {
        "admin/get_servers" => {
            let one = body["target_server"]["server_id"].as_str().map(norm);
            if one.is_none() {
                // A full listing: deletes that were shown once finish now.
                let done: Vec<String> = st
                    .deleting
                    .iter_mut()
                    .filter_map(|(k, left)| {
                        *left = left.saturating_sub(1);
                        (*left == 0).then(|| k.clone())
                    })
                    .collect();
                for id in done {
                    st.deleting.remove(&id);
                    st.records.remove(&id);
                }
            }
            let sessions = st.sessions.clone();
            let servers: Vec<Value> = st
                .records
                .values()
                .filter(|r| one.as_deref().is_none_or(|id| r["server_id"] == id))
                .filter(|r| {
                    type_permission(r["server_type"].as_str().unwrap_or(""), "VIEW").is_some_and(|p| has(&st, &p))
                })
                .map(|r| {
                    let mut r = r.clone();
                    let id = r["server_id"].clone();
                    r["kasms"] = json!(sessions
                        .values()
                        .filter(|s| s["server_id"] == id)
                        .map(|s| json!({ "kasm_id": s["kasm_id"], "start_date": "2026-11-22 08:00:00", "user": s["user"] }))
                        .collect::<Vec<_>>());
                    r["autoscale_config"] = json!({ "autoscale_config_id": null, "autoscale_config_name": null });
                    if r.get("connection_password").is_some_and(|p| !p.is_null()) {
                        r["connection_password"] = json!("********");
                    }
                    if one.is_some() {
                        r["registration_jwt"] = json!(format!("test-registration-jwt-{}", id.as_str().unwrap_or("")));
                    }
                    r
                })
                .collect();
            axum::Json(json!({ "servers": servers })).into_response()
        }
        "public/get_kasms" => axum::Json(json!({
            "current_time": "2026-11-22 08:30:15.000000",
            "kasms": st.sessions.values().collect::<Vec<_>>(),
        }))
        .into_response(),
        "admin/get_staging_configs" => {
            let staging: Vec<Value> = st
                .staging
                .values()
                .map(|c| {
                    let mut c = c.clone();
                    let current = st
                        .sessions
                        .values()
                        .filter(|k| k["is_standby"] == true && k["staging_config_id"] == c["staging_config_id"])
                        .count();
                    c["num_current_sessions"] = json!(current);
                    c["image_friendly_name"] = st
                        .images
                        .get(c["image_id"].as_str().unwrap_or(""))
                        .map(|i| i["friendly_name"].clone())
                        .unwrap_or(Value::Null);
                    c
                })
                .collect();
            axum::Json(json!({ "staging_configs": staging })).into_response()
        }
        "admin/get_images" => axum::Json(json!({ "images": st.images.values().collect::<Vec<_>>() })).into_response(),
        "admin/update_server" => {
            let Some(t) = body["target_server"].as_object().cloned() else {
                return kasm_error(StatusCode::OK, "Invalid Request: Missing required parameters");
            };
            let Some(id) = t.get("server_id").and_then(Value::as_str).map(norm) else {
                return kasm_error(StatusCode::OK, "Invalid Request: Missing required parameters");
            };
            if !st.records.contains_key(&id) {
                return kasm_error(StatusCode::OK, &format!("Server ({id}) Does not Exist"));
            }
            let server_type = t.get("server_type").and_then(Value::as_str).unwrap_or("");
            if !type_permission(server_type, "MODIFY").is_some_and(|p| has(&st, &p)) {
                return kasm_error(StatusCode::UNAUTHORIZED, "Unauthorized Action");
            }
            if let Some(pw) = t.get("connection_password").and_then(Value::as_str) {
                st.passwords.insert(id.clone(), pw.to_string());
            }
            let rec = st.records.get_mut(&id).expect("checked");
            for (k, v) in &t {
                if v.is_null() || k == "server_id" || k == "connection_password" {
                    continue;
                }
                rec[k] = v.clone();
            }
            // Kasm 1.15 passes these two as `get(…, False)`: absent means false.
            for k in ["agent_installed", "use_user_private_key"] {
                if !t.contains_key(k) {
                    rec[k] = json!(false);
                }
            }
            axum::Json(json!({ "server": rec })).into_response()
        }
        "admin/delete_server" => {
            if body.get("force").is_some_and(|f| !f.is_boolean()) {
                return kasm_error(StatusCode::OK, "Invalid Request. 'force' option must be boolean");
            }
            let force = body["force"].as_bool().unwrap_or(false);
            let Some(id) = body["target_server"]["server_id"].as_str().map(norm) else {
                return kasm_error(StatusCode::OK, "Invalid Request: Missing required parameters");
            };
            if !st.records.contains_key(&id) {
                return kasm_error(StatusCode::OK, &format!("Server ({id}) Does not Exist"));
            }
            let n = st.sessions.values().filter(|s| s["server_id"] == id.as_str()).count();
            if n > 0 && !force {
                return kasm_error(
                    StatusCode::OK,
                    &format!("Server contains ({n}) kasms and 'force' option not set to True"),
                );
            }
            st.records.get_mut(&id).expect("checked")["operational_status"] = json!("delete_pending");
            st.deleting.entry(id).or_insert(2);
            axum::Json(json!({})).into_response()
        }
        "admin/create_server" => {
            let t: Map<String, Value> = body["target_server"].as_object().cloned().unwrap_or_default();
            if t.is_empty() {
                return kasm_error(StatusCode::OK, "Invalid Request: Missing required parameters");
            }
            let server_type = t.get("server_type").and_then(Value::as_str).unwrap_or("").to_string();
            if !type_permission(&server_type, "CREATE").is_some_and(|p| has(&st, &p)) {
                return kasm_error(StatusCode::UNAUTHORIZED, "Unauthorized Action");
            }
            st.next_id += 1;
            // Kasm's own id (uuid_generate_v4); whatever the caller sent is ignored.
            let id = format!("{:08x}c0de4d2e8f00{:016x}", st.next_id, st.next_id * 7919);
            let agent_installed = t.get("agent_installed").and_then(Value::as_bool).unwrap_or(false);
            let get = |k: &str| t.get(k).cloned().unwrap_or(Value::Null);
            let rec = json!({
                "server_id": id,
                "server_type": server_type,
                "friendly_name": get("friendly_name"),
                "hostname": get("hostname"),
                "connection_type": t.get("connection_type").cloned().unwrap_or(json!("KasmVNC")),
                "connection_port": get("connection_port"),
                "connection_info": t.get("connection_info").cloned().unwrap_or(json!({})),
                "connection_username": get("connection_username"),
                "max_simultaneous_sessions": t.get("max_simultaneous_sessions").cloned().unwrap_or(json!(1)),
                "enabled": t.get("enabled").cloned().unwrap_or(json!(true)),
                "operational_status": if agent_installed { "starting" } else { "running" },
                "zone_id": get("zone_id"),
                "server_pool_id": get("server_pool_id"),
                "last_reported": null,
                "agent_installed": agent_installed,
                "use_user_private_key": t.get("use_user_private_key").cloned().unwrap_or(json!(false)),
                "cores": 0,
                "memory": 0,
            });
            if let Some(pw) = t.get("connection_password").and_then(Value::as_str) {
                st.passwords.insert(id.clone(), pw.to_string());
            }
            st.records.insert(id, rec);
            axum::Json(json!({})).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "404 Not Found").into_response(),
    }
}
