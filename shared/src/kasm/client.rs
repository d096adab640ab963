//! The HTTP client for Kasm's API: every endpoint path, request and response shape in this one module.
//!
//! # Which endpoints, and why
//! Kasm's public Developer API (`/api/public/...`) covers sessions, users and groups but has no call for
//! agents or server records, so reads and acts on those use the admin calls Kasm's own web UI makes
//! (`/api/admin/...`). Both accept an API key; the key needs the matching permissions (agents,
//! servers, sessions: view and modify).
//!
//! | port method | call(s) | notes |
//! |---|---|---|
//! | `list_servers` | `admin/get_agents`, `admin/get_servers`, `public/get_kasms` | allocated resources are summed from live sessions: neither list reports them reliably across versions |
//! | `list_sessions` | `public/get_kasms` | |
//! | `set_enabled` | `admin/get_agents` → `admin/update_agent`, else `admin/get_servers` → `admin/update_server` | read-modify-write |
//! | `delete_server` | `admin/get_agents` + `admin/get_servers`, then `admin/delete_server` | missing = done; `force: false` |
//! | `create_server` | `admin/get_servers`, then `admin/create_server` | an existing id = done |
//! | `set_connection_password` | `admin/get_servers` → `admin/update_server` | read-modify-write |
//!
//! Every call is a `POST` with a JSON body. Auth is either `api_key` + `api_key_secret` in the body
//! (Kasm ≤ 1.18) or HTTP Basic `api_key:api_key_secret` (1.19+), per [`KasmAuthMode`].
//!
//! # Behaviour worth knowing
//! - **Reads are retried, writes never**: reads go through [`crate::http::retry`] as idempotent
//!   (timeouts, 5xx, 429, refused connections); a write is sent once, because a 500 or a timeout may
//!   hide a write that happened, and the next evaluation re-reads the truth anyway.
//! - **Updates are read-modify-write**: the record as Kasm listed it, with one field changed, is sent
//!   back whole. Fields this client does not know survive whether Kasm applies updates partially or
//!   whole.
//! - **Lenient parsing**: unknown fields are ignored, optional fields may be missing or `null`, numbers
//!   may arrive as strings, booleans as `0`/`1`/`"true"`. What cannot be read safely (a record
//!   without an id, a check-in time that is not a time) is a [`KasmError::Parse`], not a guess: a
//!   misread agent would be a wrong scaling decision.
//! - Memory arrives in bytes and is reported in MB (10^6 bytes, as Kasm counts).
//! - Ids are compared without dashes and case (Kasm lists 32 hex digits; a claim may hold a dashed
//!   UUID); records keep Kasm's spelling.
//! - Errors name the call and never carry a secret: bodies are redacted ([`crate::http::Redactor`])
//!   and parse errors drop the quoted values serde would echo.

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::Duration;

use super::{KasmApi, KasmError, KasmServer, KasmSession, NewServer, ServerKind};
use crate::config::settings::{KasmAuthMode, KasmSettings};
use crate::http::retry::Idempotency;
use crate::http::{self, ClientOptions, HttpError, Redactor, RetryConfig, TlsOptions};
use crate::model::Resources;

/// The Kasm API calls this client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `admin/get_agents`: Docker Agents.
    GetAgents,
    /// `admin/get_servers`: server records (server pools, fixed servers).
    GetServers,
    /// `public/get_kasms`: live sessions.
    GetKasms,
    /// `admin/update_agent`.
    UpdateAgent,
    /// `admin/update_server`.
    UpdateServer,
    /// `admin/delete_server` (agents and servers).
    DeleteServer,
    /// `admin/create_server`.
    CreateServer,
    /// `admin/get_autoscale_configs` (import; Kasm permission AUTOSCALE_VIEW).
    GetAutoscaleConfigs,
    /// `admin/get_vm_provider_configs` (import; VM_PROVIDER_VIEW).
    GetVmProviderConfigs,
    /// `admin/get_dns_provider_configs` (import; DNS_PROVIDERS_VIEW).
    GetDnsProviderConfigs,
    /// `admin/get_server_pools` (import; SERVER_POOLS_VIEW).
    GetServerPools,
    /// `admin/get_schedules` of one autoscale config (import; AUTOSCALE_SCHEDULE_VIEW).
    GetSchedules,
}

impl Call {
    /// Every call.
    pub const ALL: [Call; 12] = [
        Call::GetAgents,
        Call::GetServers,
        Call::GetKasms,
        Call::UpdateAgent,
        Call::UpdateServer,
        Call::DeleteServer,
        Call::CreateServer,
        Call::GetAutoscaleConfigs,
        Call::GetVmProviderConfigs,
        Call::GetDnsProviderConfigs,
        Call::GetServerPools,
        Call::GetSchedules,
    ];

    /// The call's name, as errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Call::GetAgents => "get_agents",
            Call::GetServers => "get_servers",
            Call::GetKasms => "get_kasms",
            Call::UpdateAgent => "update_agent",
            Call::UpdateServer => "update_server",
            Call::DeleteServer => "delete_server",
            Call::CreateServer => "create_server",
            Call::GetAutoscaleConfigs => "get_autoscale_configs",
            Call::GetVmProviderConfigs => "get_vm_provider_configs",
            Call::GetDnsProviderConfigs => "get_dns_provider_configs",
            Call::GetServerPools => "get_server_pools",
            Call::GetSchedules => "get_schedules",
        }
    }

    /// The path under the manager's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Call::GetAgents => "/api/admin/get_agents",
            Call::GetServers => "/api/admin/get_servers",
            Call::GetKasms => "/api/public/get_kasms",
            Call::UpdateAgent => "/api/admin/update_agent",
            Call::UpdateServer => "/api/admin/update_server",
            Call::DeleteServer => "/api/admin/delete_server",
            Call::CreateServer => "/api/admin/create_server",
            Call::GetAutoscaleConfigs => "/api/admin/get_autoscale_configs",
            Call::GetVmProviderConfigs => "/api/admin/get_vm_provider_configs",
            Call::GetDnsProviderConfigs => "/api/admin/get_dns_provider_configs",
            Call::GetServerPools => "/api/admin/get_server_pools",
            Call::GetSchedules => "/api/admin/get_schedules",
        }
    }

    /// Whether the call only reads (and so may be retried).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Call::GetAgents
                | Call::GetServers
                | Call::GetKasms
                | Call::GetAutoscaleConfigs
                | Call::GetVmProviderConfigs
                | Call::GetDnsProviderConfigs
                | Call::GetServerPools
                | Call::GetSchedules
        )
    }

    /// The call serving `path`, if any.
    pub fn from_path(path: &str) -> Option<Call> {
        Call::ALL.into_iter().find(|c| c.path() == path)
    }
}

/// Tunables of a [`KasmClient`] beyond [`KasmSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KasmClientOptions {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole call.
    pub request_timeout: Duration,
    /// Retries of reads (writes are never retried).
    pub read_retry: RetryConfig,
    /// Extra CA certificates (PEM) to trust for the manager, e.g. a private CA.
    pub ca_pem: Option<String>,
}

impl Default for KasmClientOptions {
    fn default() -> Self {
        KasmClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            read_retry: RetryConfig {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(5),
                max_retries: 3,
                budget: Duration::from_secs(20),
            },
            ca_pem: None,
        }
    }
}

/// [`KasmApi`] over HTTP. See the module docs.
#[derive(Debug)]
pub struct KasmClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
    secret: SecretString,
    auth: KasmAuthMode,
    read_retry: RetryConfig,
    redactor: Redactor,
}

impl KasmClient {
    /// A client for the manager in `settings`, with the resolved API key secret.
    pub fn new(settings: &KasmSettings, secret: SecretString) -> Result<Self, KasmError> {
        Self::with_options(settings, secret, KasmClientOptions::default())
    }

    /// [`KasmClient::new`] with explicit tunables.
    pub fn with_options(
        settings: &KasmSettings,
        secret: SecretString,
        opts: KasmClientOptions,
    ) -> Result<Self, KasmError> {
        let url = url::Url::parse(settings.url.trim())
            .map_err(|e| KasmError::Config { message: format!("the Kasm URL does not parse: {e}") })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(KasmError::Config { message: "the Kasm URL must be http(s)://host[:port][/path]".into() });
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            // Credentials in the URL would end up in logs; a query would break path joining.
            return Err(KasmError::Config { message: "the Kasm URL must not carry credentials or a query".into() });
        }
        let http = http::build_client(&ClientOptions {
            tls: TlsOptions { verify: settings.verify_tls, ca_pem: opts.ca_pem.clone() },
            connect_timeout: opts.connect_timeout,
            request_timeout: opts.request_timeout,
            ..ClientOptions::default()
        })
        .map_err(|e| KasmError::Config { message: e.to_string() })?;
        Ok(KasmClient {
            http,
            base: url.as_str().trim_end_matches('/').to_string(),
            api_key: settings.api_key.clone(),
            redactor: Redactor::new().with_secret(&secret),
            secret,
            auth: settings.auth_mode,
            read_retry: opts.read_retry,
        })
    }

    /// `payload` with the credentials added when they travel in the body.
    fn authed(&self, mut payload: Map<String, Value>) -> Value {
        if self.auth == KasmAuthMode::Body {
            payload.insert("api_key".into(), Value::String(self.api_key.clone()));
            payload.insert("api_key_secret".into(), Value::String(self.secret.expose_secret().to_string()));
        }
        Value::Object(payload)
    }

    /// Makes one call and returns Kasm's JSON answer (an object without `error_message`).
    async fn call(&self, call: Call, payload: Map<String, Value>, redactor: &Redactor) -> Result<Value, KasmError> {
        let mut rb = self.http.post(format!("{}{}", self.base, call.path())).json(&self.authed(payload));
        if self.auth == KasmAuthMode::Basic {
            rb = rb.basic_auth(&self.api_key, Some(self.secret.expose_secret()));
        }
        let req = rb.build().map_err(|e| KasmError::Config {
            message: redactor.redact(&format!("cannot build the {} request: {}", call.name(), e.without_url())),
        })?;
        let (retry, idem) = if call.is_read() {
            (self.read_retry.clone(), Idempotency::Idempotent)
        } else {
            (RetryConfig::none(), Idempotency::NotIdempotent)
        };
        let name = call.name().to_string();
        match http::send(&self.http, req, idem, &retry, redactor).await {
            Ok(resp) => {
                let text = resp.text().await.map_err(|e| KasmError::Unreachable {
                    call: name.clone(),
                    message: HttpError::from_reqwest(e, redactor).to_string(),
                })?;
                parse_answer(call, &text, redactor)
            }
            Err(HttpError::Status { status, body, .. }) => Err(status_error(call, status.as_u16(), &body)),
            Err(e @ (HttpError::Timeout { .. } | HttpError::Connect { .. } | HttpError::Transport { .. })) => {
                Err(KasmError::Unreachable { call: name, message: e.to_string() })
            }
            Err(e) => Err(KasmError::Config { message: e.to_string() }),
        }
    }

    /// Makes the read call `call` with `payload` (credentials are added) and returns Kasm's JSON answer, an
    /// object without `error_message`; retried like every read. Refuses a call that writes.
    pub async fn read_call(&self, call: Call, payload: Map<String, Value>) -> Result<Value, KasmError> {
        if !call.is_read() {
            return Err(KasmError::Config { message: format!("{} is not a read call", call.name()) });
        }
        self.call(call, payload, &self.redactor).await
    }

    async fn read(&self, call: Call, key: &str) -> Result<Vec<Value>, KasmError> {
        let answer = self.call(call, Map::new(), &self.redactor).await?;
        match answer.get(key) {
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(Value::Null) | None => {
                Err(KasmError::Parse { call: call.name().into(), message: format!("the answer has no `{key}` list") })
            }
            Some(_) => Err(KasmError::Parse { call: call.name().into(), message: format!("`{key}` is not a list") }),
        }
    }

    async fn agents_raw(&self) -> Result<Vec<Value>, KasmError> {
        self.read(Call::GetAgents, "agents").await
    }

    async fn servers_raw(&self) -> Result<Vec<Value>, KasmError> {
        self.read(Call::GetServers, "servers").await
    }

    async fn sessions(&self) -> Result<Vec<KasmSession>, KasmError> {
        parse_sessions(&self.read(Call::GetKasms, "kasms").await?)
    }

    /// Whether a record with this id exists, and Kasm's spelling of its server id.
    async fn locate(&self, id: &str) -> Result<Option<String>, KasmError> {
        let (agents, servers) = tokio::try_join!(self.agents_raw(), self.servers_raw())?;
        let found = find_record(&agents, id, &["server_id", "agent_id"])
            .or_else(|| find_record(&servers, id, &["server_id"]))
            .and_then(|r| str_field(r, "server_id").or_else(|| str_field(r, "agent_id")));
        Ok(found)
    }
}

#[async_trait::async_trait]
impl KasmApi for KasmClient {
    async fn list_servers(&self) -> Result<Vec<KasmServer>, KasmError> {
        let (agents, servers, sessions) = tokio::try_join!(self.agents_raw(), self.servers_raw(), self.sessions())?;
        let mut out = parse_agents(&agents)?;
        let agent_ids: std::collections::HashSet<String> = out.iter().map(|s| norm_id(&s.server_id)).collect();
        for s in parse_servers(&servers)? {
            // Some versions list agents among the servers too: the agent record is the richer one.
            if !agent_ids.contains(&norm_id(&s.server_id)) {
                out.push(s);
            }
        }
        let mut allocated: HashMap<String, Resources> = HashMap::new();
        for sess in &sessions {
            *allocated.entry(norm_id(&sess.server_id)).or_default() += sess.resources;
        }
        for s in &mut out {
            s.allocated = allocated.get(&norm_id(&s.server_id)).copied().unwrap_or_default();
        }
        Ok(out)
    }

    async fn list_sessions(&self) -> Result<Vec<KasmSession>, KasmError> {
        self.sessions().await
    }

    async fn set_enabled(&self, server_id: &str, enabled: bool) -> Result<(), KasmError> {
        let agents = self.agents_raw().await?;
        if let Some(rec) = find_record(&agents, server_id, &["server_id", "agent_id"]) {
            let body = update_payload("target_agent", rec, "enabled", Value::Bool(enabled));
            self.call(Call::UpdateAgent, body, &self.redactor).await?;
            return Ok(());
        }
        let servers = self.servers_raw().await?;
        if let Some(rec) = find_record(&servers, server_id, &["server_id"]) {
            let body = update_payload("target_server", rec, "enabled", Value::Bool(enabled));
            self.call(Call::UpdateServer, body, &self.redactor).await?;
            return Ok(());
        }
        Err(KasmError::NotFound { call: Call::UpdateServer.name().into(), id: server_id.to_string() })
    }

    async fn delete_server(&self, server_id: &str) -> Result<(), KasmError> {
        let Some(kasm_id) = self.locate(server_id).await? else { return Ok(()) };
        match self.call(Call::DeleteServer, delete_payload(&kasm_id), &self.redactor).await {
            Ok(_) => Ok(()),
            // Gone in the meantime (another reaper, an operator): that is what we wanted.
            Err(e @ KasmError::Api { .. }) => match self.locate(server_id).await? {
                None => Ok(()),
                Some(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn create_server(&self, server: &NewServer) -> Result<(), KasmError> {
        let servers = self.servers_raw().await?;
        if find_record(&servers, &server.server_id, &["server_id"]).is_some() {
            // Idempotent on the id: a retry after a lost answer must not make a second record.
            return Ok(());
        }
        self.call(Call::CreateServer, create_payload(server), &self.redactor).await?;
        Ok(())
    }

    async fn set_connection_password(&self, server_id: &str, password: &SecretString) -> Result<(), KasmError> {
        let servers = self.servers_raw().await?;
        let Some(rec) = find_record(&servers, server_id, &["server_id"]) else {
            return Err(KasmError::NotFound { call: Call::UpdateServer.name().into(), id: server_id.to_string() });
        };
        let body = update_payload(
            "target_server",
            rec,
            "connection_password",
            Value::String(password.expose_secret().to_string()),
        );
        // The password joins the redactor for this call: Kasm may echo the record in an error.
        let redactor = self.redactor.clone().with_secret(password);
        self.call(Call::UpdateServer, body, &redactor).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Request bodies (without credentials; see `KasmClient::authed`).

/// `{wrapper: record-with-field-set}`: read-modify-write of a listed record.
fn update_payload(wrapper: &str, record: &Value, field: &str, value: Value) -> Map<String, Value> {
    let mut rec = record.as_object().cloned().unwrap_or_default();
    rec.insert(field.into(), value);
    let mut m = Map::new();
    m.insert(wrapper.into(), Value::Object(rec));
    m
}

fn delete_payload(server_id: &str) -> Map<String, Value> {
    // `force: false`: Kasm refuses to delete a record with sessions, a guard behind the engine's drain.
    let v = json!({ "force": false, "target_server": { "server_id": server_id } });
    v.as_object().cloned().unwrap_or_default()
}

fn create_payload(n: &NewServer) -> Map<String, Value> {
    let mut t = Map::new();
    t.insert("server_id".into(), json!(n.server_id));
    t.insert("friendly_name".into(), json!(n.hostname));
    t.insert("hostname".into(), json!(n.hostname));
    t.insert("zone_id".into(), json!(n.zone_id));
    t.insert("pool_id".into(), json!(n.pool_id));
    t.insert("connection_type".into(), json!(n.connection_type));
    if let Some(p) = n.connection_port {
        t.insert("connection_port".into(), json!(p));
    }
    if let Some(u) = &n.connection_username {
        t.insert("connection_username".into(), json!(u));
    }
    t.insert("connection_info".into(), json!("{}"));
    t.insert("max_simultaneous_sessions".into(), json!(n.max_simultaneous_sessions));
    t.insert("require_checkin".into(), json!(n.require_checkin));
    t.insert("enabled".into(), json!(n.enabled));
    let mut m = Map::new();
    m.insert("target_server".into(), Value::Object(t));
    m
}

// ---------------------------------------------------------------------------------------------------
// Answers and errors.

/// Parses a successful answer; `{"error_message": ...}` becomes an error.
fn parse_answer(call: Call, text: &str, redactor: &Redactor) -> Result<Value, KasmError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| KasmError::Parse { call: call.name().into(), message: scrub_serde(&e.to_string()) })?;
    if !v.is_object() {
        return Err(KasmError::Parse { call: call.name().into(), message: "the answer is not a JSON object".into() });
    }
    if let Some(msg) = error_message(&v) {
        let message = http::body_snippet(&msg, redactor);
        return Err(if looks_like_auth(&message) {
            KasmError::Auth { call: call.name().into(), message }
        } else {
            KasmError::Api { call: call.name().into(), message }
        });
    }
    Ok(v)
}

fn error_message(v: &Value) -> Option<String> {
    match v.get("error_message")? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Kasm answers a refused key with `error_message` and, depending on version, 200, 401 or 403.
fn looks_like_auth(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    ["unauthorized", "not authorized", "access denied", "forbidden", "invalid api key", "permission"]
        .iter()
        .any(|k| m.contains(k))
}

/// An error status: 401/403 are auth, anything else an API error with Kasm's message when it sent one.
fn status_error(call: Call, status: u16, body: &str) -> KasmError {
    let kasm_msg = serde_json::from_str::<Value>(body).ok().and_then(|v| error_message(&v));
    let message = match kasm_msg {
        Some(m) => format!("HTTP {status}: {m}"),
        None if body.trim().is_empty() => format!("HTTP {status}"),
        None => format!("HTTP {status}: {}", body.trim()),
    };
    if status == 401 || status == 403 {
        KasmError::Auth { call: call.name().into(), message }
    } else {
        KasmError::Api { call: call.name().into(), message }
    }
}

/// serde's messages quote the offending value (`invalid type: string "…"`), which may be a token:
/// keep the message, drop what is between double quotes.
fn scrub_serde(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Records.

/// Ids compare without dashes and case.
fn norm_id(id: &str) -> String {
    id.chars().filter(|c| *c != '-').flat_map(char::to_lowercase).collect()
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn find_record<'a>(records: &'a [Value], id: &str, keys: &[&str]) -> Option<&'a Value> {
    let want = norm_id(id);
    records.iter().find(|r| keys.iter().any(|k| str_field(r, k).is_some_and(|v| norm_id(&v) == want)))
}

/// Lenient field readers for [`serde`] (`deserialize_with`).
mod lenient {
    use super::*;
    use serde::Deserializer;
    use serde::de::Error as _;

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Null => None,
            other => return Err(D::Error::custom(format!("expected a string, found {}", kind(&other)))),
        })
    }

    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| D::Error::custom("expected a number, found a non-numeric string"))?,
            ),
            Value::Null => None,
            other => return Err(D::Error::custom(format!("expected a number, found {}", kind(&other)))),
        })
    }

    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match number(d)? {
            None => Ok(None),
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(Some(f as u32)),
            Some(_) => Err(D::Error::custom("expected a non-negative whole number")),
        }
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Bool(b) => Some(b),
            Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                "" => None,
                _ => return Err(D::Error::custom("expected a boolean, found another string")),
            },
            Value::Null => None,
            other => return Err(D::Error::custom(format!("expected a boolean, found {}", kind(&other)))),
        })
    }

    /// Kasm's `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC, no zone), or RFC 3339.
    pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = match Value::deserialize(d)? {
            Value::Null => return Ok(None),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s,
            other => return Err(D::Error::custom(format!("expected a time, found {}", kind(&other)))),
        };
        let s = s.trim();
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").map(|n| n.and_utc()))
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
            .map(Some)
            .map_err(|_| D::Error::custom("expected a time as YYYY-MM-DD HH:MM:SS or RFC 3339"))
    }

    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }
}

#[derive(Debug, Deserialize)]
struct AgentDto {
    #[serde(default, deserialize_with = "lenient::string")]
    agent_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    hostname: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    ip: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    public_ip: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    zone_id: Option<String>,
    /// Kasm versions with Docker Agent pools name the agent's pool; older ones do not.
    #[serde(default, deserialize_with = "lenient::string")]
    pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    operational_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::time")]
    last_reported: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::time")]
    last_checkin: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpus: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores_override: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory_override: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpus_override: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct ServerDto {
    #[serde(default, deserialize_with = "lenient::string")]
    server_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    hostname: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    ip: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    zone_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    operational_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::time")]
    last_reported: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::time")]
    last_checkin: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::count")]
    max_simultaneous_sessions: Option<u32>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpus: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct SessionServerDto {
    #[serde(default, deserialize_with = "lenient::string")]
    server_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SessionDto {
    #[serde(default, deserialize_with = "lenient::string")]
    kasm_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_id: Option<String>,
    #[serde(default)]
    server: Option<SessionServerDto>,
    #[serde(default, deserialize_with = "lenient::string")]
    operational_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpus: Option<f64>,
}

const BYTES_PER_MB: f64 = 1_000_000.0;

fn resources(cores: Option<f64>, memory_bytes: Option<f64>, gpus: Option<f64>) -> Resources {
    Resources::new(cores.unwrap_or(0.0), memory_bytes.unwrap_or(0.0) / BYTES_PER_MB, gpus.unwrap_or(0.0))
}

fn parse_each<T: serde::de::DeserializeOwned>(call: Call, items: &[Value]) -> Result<Vec<T>, KasmError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            T::deserialize(v).map_err(|e| KasmError::Parse {
                call: call.name().into(),
                message: format!("record {i}: {}", scrub_serde(&e.to_string())),
            })
        })
        .collect()
}

fn missing(call: Call, i: usize, what: &str) -> KasmError {
    KasmError::Parse { call: call.name().into(), message: format!("record {i} has no {what}") }
}

/// `get_agents` records → agents. `allocated` is left empty (see [`KasmApi::list_servers`]).
fn parse_agents(items: &[Value]) -> Result<Vec<KasmServer>, KasmError> {
    let dtos: Vec<AgentDto> = parse_each(Call::GetAgents, items)?;
    dtos.into_iter()
        .enumerate()
        .map(|(i, a)| {
            // Sessions and our claims know an agent by its server id; very old answers only had agent_id.
            let server_id = a.server_id.or(a.agent_id).ok_or_else(|| missing(Call::GetAgents, i, "server_id"))?;
            Ok(KasmServer {
                server_id,
                kind: ServerKind::Agent,
                hostname: a.hostname,
                ip: a.ip.or(a.public_ip),
                zone_id: a.zone_id.unwrap_or_default(),
                pool_id: a.pool_id.or(a.server_pool_id),
                // Unknown = disabled: capacity we are not sure of is not counted.
                enabled: a.enabled.unwrap_or(false),
                status: a.status.or(a.operational_status).unwrap_or_else(|| "unknown".into()),
                last_checkin: a.last_reported.or(a.last_checkin),
                reported: resources(a.cores, a.memory, a.gpus),
                overridden: resources(a.cores_override, a.memory_override, a.gpus_override),
                allocated: Resources::default(),
                max_sessions: None,
            })
        })
        .collect()
}

/// `get_servers` records → servers (records typed `host` are agents).
fn parse_servers(items: &[Value]) -> Result<Vec<KasmServer>, KasmError> {
    let dtos: Vec<ServerDto> = parse_each(Call::GetServers, items)?;
    dtos.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let server_id = s.server_id.ok_or_else(|| missing(Call::GetServers, i, "server_id"))?;
            let kind = if s.server_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("host")) {
                ServerKind::Agent
            } else {
                ServerKind::Server
            };
            Ok(KasmServer {
                server_id,
                kind,
                hostname: s.hostname,
                ip: s.ip,
                zone_id: s.zone_id.unwrap_or_default(),
                pool_id: s.pool_id.or(s.server_pool_id),
                enabled: s.enabled.unwrap_or(false),
                status: s.status.or(s.operational_status).unwrap_or_else(|| "unknown".into()),
                last_checkin: s.last_reported.or(s.last_checkin),
                reported: resources(s.cores, s.memory, s.gpus),
                overridden: Resources::default(),
                allocated: Resources::default(),
                max_sessions: s.max_simultaneous_sessions,
            })
        })
        .collect()
}

/// `get_kasms` records → sessions. A session not placed on a server yet has an empty `server_id`.
fn parse_sessions(items: &[Value]) -> Result<Vec<KasmSession>, KasmError> {
    let dtos: Vec<SessionDto> = parse_each(Call::GetKasms, items)?;
    dtos.into_iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(KasmSession {
                kasm_id: k.kasm_id.ok_or_else(|| missing(Call::GetKasms, i, "kasm_id"))?,
                server_id: k.server_id.or(k.server.and_then(|s| s.server_id)).unwrap_or_default(),
                resources: resources(k.cores, k.memory, k.gpus),
                status: k.operational_status.or(k.status).unwrap_or_else(|| "unknown".into()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;

    const SECRET: &str = "kasm-secret-0123456789";

    fn fixture(name: &str) -> Value {
        let text = match name {
            "get_agents" => include_str!("fixtures/get_agents.json"),
            "get_servers" => include_str!("fixtures/get_servers.json"),
            "get_kasms" => include_str!("fixtures/get_kasms.json"),
            "update_agent" => include_str!("fixtures/update_agent.json"),
            "update_server" => include_str!("fixtures/update_server.json"),
            "update_server_password" => include_str!("fixtures/update_server_password.json"),
            "delete_server" => include_str!("fixtures/delete_server.json"),
            "create_server" => include_str!("fixtures/create_server.json"),
            "error" => include_str!("fixtures/error.json"),
            "get_autoscale_configs" => include_str!("fixtures/import/get_autoscale_configs.json"),
            "get_vm_provider_configs" => include_str!("fixtures/import/get_vm_provider_configs.json"),
            "get_dns_provider_configs" => include_str!("fixtures/import/get_dns_provider_configs.json"),
            "get_server_pools" => include_str!("fixtures/import/get_server_pools.json"),
            "get_schedules" => include_str!("fixtures/import/get_schedules.json"),
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    /// A fixture's request with the placeholders filled in.
    fn expected_request(name: &str, password: Option<&str>) -> Value {
        let text = fixture(name)["request"]
            .to_string()
            .replace("{{api_key}}", "key-1")
            .replace("{{api_key_secret}}", SECRET)
            .replace("{{password}}", password.unwrap_or(""));
        serde_json::from_str(&text).unwrap()
    }

    fn settings(mode: KasmAuthMode) -> KasmSettings {
        KasmSettings {
            url: "https://kasm.example.com/".into(),
            api_key: "key-1".into(),
            api_key_secret: SecretRef::Env("KASM_SECRET".into()),
            auth_mode: mode,
            verify_tls: true,
            manager_token: None,
            upstream_auth_address: None,
        }
    }

    fn client(mode: KasmAuthMode) -> KasmClient {
        KasmClient::new(&settings(mode), SecretString::from(SECRET)).unwrap()
    }

    fn items(name: &str, key: &str) -> Vec<Value> {
        fixture(name)["response"][key].as_array().unwrap().clone()
    }

    #[test]
    fn every_call_has_a_fixture_with_its_path() {
        for c in Call::ALL {
            let f = fixture(c.name());
            assert_eq!(f["call"], c.name());
            assert_eq!(f["path"], c.path());
            assert_eq!(Call::from_path(c.path()), Some(c));
        }
        assert_eq!(fixture("update_server_password")["path"], Call::UpdateServer.path());
    }

    #[test]
    fn agents_parse_leniently() {
        let a = parse_agents(&items("get_agents", "agents")).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].server_id, "2f4c6e8a0b1d3f5a7c9e1b3d5f7a9c1e");
        assert_eq!(a[0].kind, ServerKind::Agent);
        assert!(a[0].enabled);
        assert_eq!(a[0].status, "running");
        assert_eq!(a[0].ip.as_deref(), Some("10.0.1.11"));
        assert_eq!(a[0].reported, Resources::new(4.0, 16_000.0, 0.0));
        assert_eq!(a[0].overridden, Resources::new(8.0, 0.0, 0.0));
        assert_eq!(a[0].last_checkin.unwrap().to_rfc3339(), "2026-11-22T08:30:12.123456+00:00");
        // Strings for booleans and numbers, the other status field, no check-in yet.
        assert!(!a[1].enabled);
        assert_eq!(a[1].status, "missing");
        assert_eq!(a[1].last_checkin, None);
        assert_eq!(a[1].reported, Resources::new(2.0, 8_000.0, 0.0));
    }

    #[test]
    fn servers_parse_leniently() {
        let s = parse_servers(&items("get_servers", "servers")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, ServerKind::Server);
        assert!(s[0].enabled, "enabled: 1");
        assert_eq!(s[0].max_sessions, Some(2));
        assert_eq!(s[0].pool_id.as_deref(), Some("4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e"));
        assert_eq!(s[0].last_checkin.unwrap().to_rfc3339(), "2026-11-22T08:29:00+00:00");
        assert_eq!(s[1].pool_id.as_deref(), Some("4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e"), "pool_id spelling");
        assert_eq!(s[1].status, "unknown");
        assert_eq!(s[1].max_sessions, None);
        assert_eq!(s[1].last_checkin, None);
    }

    #[test]
    fn sessions_parse_leniently() {
        let k = parse_sessions(&items("get_kasms", "kasms")).unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].server_id, "2f4c6e8a0b1d3f5a7c9e1b3d5f7a9c1e");
        assert_eq!(k[0].resources, Resources::new(2.0, 2_768.0, 0.0));
        assert_eq!(k[0].status, "running");
        assert_eq!(k[1].server_id, "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f", "from the nested server");
        assert_eq!(k[1].resources, Resources::default());
    }

    #[test]
    fn unreadable_records_are_parse_errors_without_values() {
        let bad_time = vec![json!({"agent_id": "a", "last_reported": "yesterday-ish token-xyz"})];
        let e = parse_agents(&bad_time).unwrap_err();
        assert!(matches!(&e, KasmError::Parse { call, .. } if call == "get_agents"), "{e}");
        assert!(!e.to_string().contains("token-xyz"), "{e}");
        let no_id = vec![json!({"hostname": "h"})];
        assert!(matches!(parse_agents(&no_id), Err(KasmError::Parse { .. })));
        let bad_type = vec![json!({"kasm_id": "k", "cores": {"secret": "s3cr3t-value"}})];
        let e = parse_sessions(&bad_type).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let bad_count = vec![json!({"server_id": "s", "max_simultaneous_sessions": "-1"})];
        assert!(matches!(parse_servers(&bad_count), Err(KasmError::Parse { .. })));
    }

    #[test]
    fn request_bodies_match_the_fixtures() {
        let c = client(KasmAuthMode::Body);
        for read in ["get_agents", "get_servers", "get_kasms"] {
            assert_eq!(c.authed(Map::new()), expected_request(read, None), "{read}");
        }
        let agents = items("get_agents", "agents");
        let body = update_payload("target_agent", &agents[1], "enabled", Value::Bool(true));
        assert_eq!(c.authed(body), expected_request("update_agent", None));
        let servers = items("get_servers", "servers");
        let body = update_payload("target_server", &servers[1], "enabled", Value::Bool(true));
        assert_eq!(c.authed(body), expected_request("update_server", None));
        let body = update_payload("target_server", &servers[1], "connection_password", json!("pw-1234"));
        assert_eq!(c.authed(body), expected_request("update_server_password", Some("pw-1234")));
        assert_eq!(
            c.authed(delete_payload("9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f")),
            expected_request("delete_server", None)
        );
        let n = NewServer {
            server_id: "1f2e3d4c5b6a79880716253443526170".into(),
            hostname: "10.0.2.37".into(),
            zone_id: "5a6b7c8d9e0f11223344556677889900".into(),
            pool_id: "4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e".into(),
            connection_type: "RDP".into(),
            connection_port: Some(3389),
            connection_username: Some("Administrator".into()),
            max_simultaneous_sessions: 1,
            require_checkin: true,
            enabled: true,
        };
        assert_eq!(c.authed(create_payload(&n)), expected_request("create_server", None));
    }

    #[test]
    fn basic_mode_keeps_credentials_out_of_the_body() {
        let c = client(KasmAuthMode::Basic);
        let body = c.authed(delete_payload("x"));
        assert!(body.get("api_key").is_none() && body.get("api_key_secret").is_none());
        assert!(!body.to_string().contains(SECRET));
    }

    #[test]
    fn error_answers_name_the_call() {
        let r = Redactor::new();
        let e = parse_answer(Call::GetAgents, &fixture("error")["response"].to_string(), &r).unwrap_err();
        assert!(matches!(&e, KasmError::Auth { call, .. } if call == "get_agents"), "{e:?}");
        let e = parse_answer(Call::DeleteServer, r#"{"error_message":"Server has active sessions"}"#, &r).unwrap_err();
        assert!(
            matches!(&e, KasmError::Api { call, message } if call == "delete_server" && message.contains("active"))
        );
        assert!(parse_answer(Call::GetKasms, r#"{"error_message":null,"kasms":[]}"#, &r).is_ok());
        assert!(parse_answer(Call::GetKasms, r#"{"error_message":"","kasms":[]}"#, &r).is_ok());
        assert!(matches!(parse_answer(Call::GetKasms, "<html>", &r), Err(KasmError::Parse { .. })));
        assert!(matches!(parse_answer(Call::GetKasms, "[1]", &r), Err(KasmError::Parse { .. })));
        let e = status_error(Call::GetServers, 403, r#"{"error_message":"Forbidden"}"#);
        assert!(
            matches!(&e, KasmError::Auth { call, message } if call == "get_servers" && message.contains("Forbidden"))
        );
        let e = status_error(Call::GetServers, 502, "");
        assert!(matches!(&e, KasmError::Api { message, .. } if message == "HTTP 502"));
    }

    #[test]
    fn ids_match_without_dashes_or_case() {
        let recs = vec![json!({"server_id": "9C8B7A6F5E4D3C2B1A0F9E8D7C6B5A4F"})];
        assert!(find_record(&recs, "9c8b7a6f-5e4d-3c2b-1a0f-9e8d7c6b5a4f", &["server_id"]).is_some());
        assert!(find_record(&recs, "9c8b7a6f", &["server_id"]).is_none());
    }

    #[test]
    fn settings_are_checked_and_the_secret_never_shows() {
        let c = client(KasmAuthMode::Body);
        assert_eq!(c.base, "https://kasm.example.com");
        assert!(!format!("{c:?}").contains(SECRET));
        for bad in ["kasm.example.com", "ftp://kasm", "https://u:p@kasm", "https://kasm/?x=1"] {
            let s = KasmSettings { url: bad.into(), ..settings(KasmAuthMode::Body) };
            let e = KasmClient::new(&s, SecretString::from(SECRET)).unwrap_err();
            assert!(matches!(e, KasmError::Config { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn serde_messages_lose_quoted_values() {
        assert_eq!(
            scrub_serde(r#"invalid type: string "abc", expected f64"#),
            r#"invalid type: string "…", expected f64"#
        );
        assert_eq!(scrub_serde("missing field `server_id`"), "missing field `server_id`");
    }
}
