//! An in-process Kasm manager for tests: an axum HTTP server on `127.0.0.1:0` that holds agents,
//! server records and sessions in memory and answers the calls `shared::kasm::client` makes, with the
//! shapes of the recorded fixtures (`shared/src/kasm/fixtures/`).
//!
//! It checks credentials either way Kasm accepts them (JSON body or HTTP Basic; [`AcceptAuth`] can
//! insist on one), and has knobs to inject faults on the next calls to a path ([`Fault`]: a status, a
//! malformed answer, a slow answer), to add and remove agents, servers and sessions, and to inspect
//! what was called.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which ways of sending the API key the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptAuth {
    /// `api_key` / `api_key_secret` in the JSON body only (Kasm ≤ 1.18).
    Body,
    /// HTTP Basic only.
    Basic,
    /// Either.
    Either,
}

/// A fault to inject on the next call(s) to a path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a body that echoes the request (the worst case for secrets).
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Do the work at once, then wait this long before answering (a client that gives up first has
    /// lost the answer, not the work).
    Slow(Duration),
}

/// One agent to add.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Kasm's server id of the agent (sessions and claims know it by this).
    pub server_id: String,
    /// Hostname.
    pub hostname: String,
    /// Zone.
    pub zone_id: String,
    /// Enabled.
    pub enabled: bool,
    /// Cores, memory (MB), GPUs as the agent reports them.
    pub cores: f64,
    /// Memory in MB.
    pub memory_mb: f64,
    /// GPUs.
    pub gpus: f64,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    secret: String,
    accept: AcceptAuth,
    agents: BTreeMap<String, Value>,
    servers: BTreeMap<String, Value>,
    sessions: BTreeMap<String, Value>,
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

fn id32(n: u64) -> String {
    format!("{n:032x}")
}

impl KasmTestServer {
    /// Starts a server accepting `api_key` / `secret` as `accept` says.
    pub async fn start(api_key: &str, secret: &str, accept: AcceptAuth) -> KasmTestServer {
        let inner = Arc::new(Mutex::new(Inner {
            api_key: api_key.into(),
            secret: secret.into(),
            accept,
            agents: BTreeMap::new(),
            servers: BTreeMap::new(),
            sessions: BTreeMap::new(),
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

    /// Adds an agent; returns its agent id.
    pub fn add_agent(&self, a: AgentSpec) -> String {
        let mut st = self.lock();
        let agent_id = id32(0xa000 + st.next_id);
        st.next_id += 1;
        let rec = json!({
            "agent_id": agent_id,
            "server_id": a.server_id,
            "hostname": a.hostname,
            "zone_id": a.zone_id,
            "zone_name": "default",
            "enabled": a.enabled,
            "status": "running",
            "last_reported": "2026-11-22 08:30:12.123456",
            "cores": a.cores,
            // Kasm reports bytes, as a string in some versions.
            "memory": format!("{}", (a.memory_mb * 1_000_000.0) as u64),
            "gpus": a.gpus,
            "cores_override": 0,
            "memory_override": 0,
            "gpus_override": null,
            "version": "1.18.0",
        });
        st.agents.insert(agent_id.clone(), rec);
        agent_id
    }

    /// The agent with this server id reports now (its `last_reported` becomes the wall-clock time), as
    /// a live agent does every few seconds; for tests that run the real clock.
    pub fn check_in(&self, server_id: &str) {
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        for a in self.lock().agents.values_mut().filter(|a| a["server_id"] == server_id) {
            a["last_reported"] = json!(now);
        }
    }

    /// Sessions running now.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Removes the agent with this server id.
    pub fn remove_agent(&self, server_id: &str) {
        self.lock().agents.retain(|_, a| a["server_id"] != server_id);
    }

    /// Adds a server-pool server record.
    pub fn add_server(&self, server_id: &str, hostname: &str, zone_id: &str, pool_id: &str, enabled: bool) {
        let rec = json!({
            "server_id": server_id,
            "friendly_name": hostname,
            "hostname": hostname,
            "connection_type": "RDP",
            "connection_port": "3389",
            "connection_info": "{}",
            "max_simultaneous_sessions": "1",
            "enabled": if enabled { 1 } else { 0 },
            "operational_status": "running",
            "zone_id": zone_id,
            "server_pool_id": pool_id,
            "last_reported": "2026-11-22T08:29:00Z",
            "server_type": "Desktop",
        });
        self.lock().servers.insert(server_id.to_string(), rec);
    }

    /// Starts a session on `server_id`.
    pub fn add_session(&self, kasm_id: &str, server_id: &str, cores: f64, memory_mb: f64) {
        let rec = json!({
            "kasm_id": kasm_id,
            "user_id": "50faa5439c574b518cd868dac9256e4b",
            "server_id": server_id,
            "operational_status": "running",
            "cores": cores,
            "memory": (memory_mb * 1_000_000.0) as u64,
            "token": format!("session-token-{kasm_id}"),
            "server": { "server_id": server_id, "hostname": "host", "port": 443, "zone_name": "default" },
        });
        self.lock().sessions.insert(kasm_id.to_string(), rec);
    }

    /// Ends a session.
    pub fn remove_session(&self, kasm_id: &str) {
        self.lock().sessions.remove(kasm_id);
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

    /// The agent record with this server id.
    pub fn agent(&self, server_id: &str) -> Option<Value> {
        self.lock().agents.values().find(|a| a["server_id"] == server_id).cloned()
    }

    /// The server record with this id.
    pub fn server(&self, server_id: &str) -> Option<Value> {
        self.lock().servers.get(server_id).cloned()
    }

    /// Number of server records.
    pub fn server_count(&self) -> usize {
        self.lock().servers.len()
    }

    /// The connection password set on a server record (tests check the hand-off).
    pub fn password(&self, server_id: &str) -> Option<String> {
        self.lock().passwords.get(server_id).cloned()
    }
}

fn kasm_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error_message": msg }))).into_response()
}

fn authorized(st: &Inner, headers: &HeaderMap, body: &Value) -> bool {
    let basic_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|pair| pair == format!("{}:{}", st.api_key, st.secret));
    let body_ok = body["api_key"] == st.api_key.as_str() && body["api_key_secret"] == st.secret.as_str();
    match st.accept {
        AcceptAuth::Body => body_ok,
        AcceptAuth::Basic => basic_ok,
        AcceptAuth::Either => body_ok || basic_ok,
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
        Some(Fault::Malformed) => return (StatusCode::OK, "{\"agents\": [ {\"agent_id\": ").into_response(),
        Some(Fault::Slow(d)) => {
            let resp = answer(&inner, &call, &headers, &raw);
            tokio::time::sleep(d).await;
            return resp;
        }
        None => {}
    }
    answer(&inner, &call, &headers, &raw)
}

/// Does what the call asks and answers it.
fn answer(inner: &Mutex<Inner>, call: &str, headers: &HeaderMap, raw: &[u8]) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(raw) else {
        return kasm_error(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    let mut st = inner.lock().expect("lock");
    if !authorized(&st, headers, &body) {
        return kasm_error(StatusCode::UNAUTHORIZED, "Unauthorized access attempt with invalid API key");
    }
    match call {
        "admin/get_agents" => axum::Json(json!({ "agents": st.agents.values().collect::<Vec<_>>() })).into_response(),
        "admin/get_servers" => {
            axum::Json(json!({ "servers": st.servers.values().collect::<Vec<_>>() })).into_response()
        }
        "public/get_kasms" => axum::Json(json!({
            "current_time": "2026-11-22 08:30:15.000000",
            "kasms": st.sessions.values().collect::<Vec<_>>(),
        }))
        .into_response(),
        "admin/update_agent" => {
            let t = &body["target_agent"];
            let Some(agent_id) = t["agent_id"].as_str() else {
                return kasm_error(StatusCode::OK, "target_agent.agent_id is required");
            };
            let Some(rec) = st.agents.get_mut(agent_id) else { return kasm_error(StatusCode::OK, "Agent not found") };
            if let Some(e) = t.get("enabled") {
                rec["enabled"] = e.clone();
            }
            axum::Json(json!({ "agent": rec })).into_response()
        }
        "admin/update_server" => {
            let t = body["target_server"].as_object().cloned().unwrap_or_default();
            let Some(id) = t.get("server_id").and_then(Value::as_str).map(str::to_string) else {
                return kasm_error(StatusCode::OK, "target_server.server_id is required");
            };
            if !st.servers.contains_key(&id) {
                return kasm_error(StatusCode::OK, "Server not found");
            }
            if let Some(pw) = t.get("connection_password").and_then(Value::as_str) {
                st.passwords.insert(id.clone(), pw.to_string());
            }
            let rec = st.servers.get_mut(&id).expect("checked");
            for (k, v) in t.iter().filter(|(k, _)| k.as_str() != "connection_password") {
                rec[k] = v.clone();
            }
            axum::Json(json!({ "server": rec })).into_response()
        }
        "admin/delete_server" => {
            let Some(id) = body["target_server"]["server_id"].as_str().map(str::to_string) else {
                return kasm_error(StatusCode::OK, "target_server.server_id is required");
            };
            let force = body["force"].as_bool().unwrap_or(false);
            let exists = st.servers.contains_key(&id) || st.agents.values().any(|a| a["server_id"] == id.as_str());
            if !exists {
                return kasm_error(StatusCode::OK, "Server not found");
            }
            if !force && st.sessions.values().any(|s| s["server_id"] == id.as_str()) {
                return kasm_error(StatusCode::OK, "Server has active sessions; use force to delete");
            }
            st.servers.remove(&id);
            st.agents.retain(|_, a| a["server_id"] != id.as_str());
            st.sessions.retain(|_, s| s["server_id"] != id.as_str());
            axum::Json(json!({})).into_response()
        }
        "admin/create_server" => {
            let t: Map<String, Value> = body["target_server"].as_object().cloned().unwrap_or_default();
            let id = match t.get("server_id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None => {
                    st.next_id += 1;
                    id32(0xc000 + st.next_id)
                }
            };
            if st.servers.contains_key(&id) {
                return kasm_error(StatusCode::OK, "A server with this id already exists");
            }
            let rec = json!({
                "server_id": id,
                "friendly_name": t.get("friendly_name").cloned().unwrap_or(Value::Null),
                "hostname": t.get("hostname").cloned().unwrap_or(Value::Null),
                "connection_type": t.get("connection_type").cloned().unwrap_or(Value::Null),
                "connection_port": t.get("connection_port").cloned().unwrap_or(Value::Null),
                "connection_info": t.get("connection_info").cloned().unwrap_or(json!("{}")),
                "max_simultaneous_sessions": t.get("max_simultaneous_sessions").cloned().unwrap_or(json!(1)),
                "enabled": t.get("enabled").cloned().unwrap_or(json!(false)),
                "operational_status": "starting",
                "zone_id": t.get("zone_id").cloned().unwrap_or(Value::Null),
                "server_pool_id": t.get("pool_id").cloned().unwrap_or(Value::Null),
                "last_reported": null,
                "server_type": "Desktop",
            });
            st.servers.insert(id, rec.clone());
            axum::Json(json!({ "server": rec })).into_response()
        }
        _ => kasm_error(StatusCode::NOT_FOUND, "No such API call"),
    }
}
