//! The HTTP client for Kasm's API: every endpoint path, request and response shape in this one module.
//!
//! # Which calls, and where they come from
//! Every path, field and status here was read off Kasm's own server code (the decompiled 1.15 API
//! server, `admin_api.py`, `utils.py`, `data/model.py`, `data/access_postgres.py`) and Kasm 1.19's
//! database schema; see `fixtures/README.md` for the source of each fixture. Kasm has no
//! `get_agents`/`update_agent`: Docker Agents are `servers` records with `server_type: "host"`,
//! server-pool servers have `server_type: "Desktop"`.
//!
//! | port method | call(s) | Kasm permission(s) |
//! |---|---|---|
//! | `list_servers` | `admin/get_servers` + `public/get_kasms` | Agents View, Servers View, Sessions View |
//! | `list_sessions` | `public/get_kasms` | Sessions View |
//! | `list_staging_configs` | `admin/get_staging_configs`, then (only when there is one) `admin/get_images` | Staging View, Images View |
//! | `set_enabled`, `set_hostname`, `set_connection_password` | `admin/get_servers {target_server}` → `admin/update_server` | Agents Modify (agents) / Servers Modify (servers) |
//! | `delete_server` | `admin/get_servers {target_server}` → `admin/delete_server {force: false}` | Servers Delete (Kasm checks it for agents too) |
//! | `find_by_name` | `admin/get_servers` | as `list_servers` |
//! | `ensure_server` | `admin/get_servers` → `admin/create_server` → `admin/get_servers` (twice) | Servers Create (servers) / Agents Create (agents, `precreate` only) |
//!
//! Every call is a `POST` with a JSON body. Auth ([`KasmAuthMode`]): `api_key` + `api_key_secret` in
//! the body (the default; Kasm's documented Developer API), the `api-key` / `api-key-secret` headers
//! (read first by Kasm 1.15's server), or HTTP Basic (pre-release 1.19 docs only).
//!
//! # Behaviour worth knowing
//! - **Reads are retried, writes never**: reads go through [`crate::http::retry`] as idempotent
//!   (timeouts, 5xx, 429, refused connections); a write is sent once, because a 500 or a timeout may
//!   hide a write that happened, and the next evaluation re-reads the truth anyway.
//! - **Updates are partial, with two fields carried over**: `update_server` requires `server_type`
//!   (without it Kasm answers 401 "Unauthorized Action") and leaves every field that is absent or
//!   `null` alone — except `agent_installed` and `use_user_private_key`, which Kasm 1.15 defaults to
//!   `false` when absent. So an update sends `server_id`, `server_type`, the changed field, and those
//!   two as the record had them; nothing else.
//! - **Kasm chooses record ids**: `create_server` ignores a caller's id and answers `{}`. A record we
//!   create is named with the claim's VM name (`friendly_name`) and found again by that name, never by
//!   address; a second record with the same name is an error, not a guess.
//! - **Deletes are asynchronous**: `delete_server` only marks the record `delete_pending` (Kasm removes
//!   it later) and refuses while the record has sessions unless forced; we never force. A record that
//!   is already `delete_pending` or `destroying` is not deleted again.
//! - **Errors**: 403 "Access Denied" (bad key), "… not licensed" and 401 "Access has expired" are
//!   [`KasmError::Auth`]; any other 401 ("Unauthorized", "Unauthorized Action": a valid key without the
//!   permission, or a read-only key on a write) is [`KasmError::Permission`] naming the permission
//!   Kasm checks for that call; `{"error_message": …}` with 200 is [`KasmError::Api`].
//! - **Lenient parsing** (`kasm/lenient.rs`): unknown fields are ignored, optional fields may be
//!   missing or `null`, numbers may arrive as strings; both spellings of renamed columns are read
//!   (1.15 `memory` / 1.19 `memory_bytes`, `memory_override` / `memory_override_bytes`;
//!   `autoscale_config_id` top-level or under `autoscale_config`). What cannot be read safely (a record
//!   without an id or with an unknown `server_type`, a time that is not a time) is a
//!   [`KasmError::Parse`]: a misread record would be a wrong scaling decision.
//! - Memory arrives in bytes and is reported in MB (10^6 bytes). GPUs: the `gpus` Kasm derives from
//!   `docker_info`.
//! - Ids compare without dashes and case ([`super::norm_id`]); records keep Kasm's spelling.
//! - Errors name the call and never carry a secret: bodies are redacted ([`crate::http::Redactor`])
//!   and parse errors drop the quoted values serde would echo.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::Duration;

use super::lenient;
use super::{
    EnsuredServer, KasmApi, KasmError, KasmServer, KasmSession, KasmStagingConfig, NewServer, ServerKind, norm_id,
    same_id,
};
use crate::config::settings::{KasmAuthMode, KasmSettings};
use crate::http::retry::Idempotency;
use crate::http::{self, ClientOptions, HttpError, Redactor, RetryConfig, TlsOptions};
use crate::model::Resources;

/// The Kasm API calls this client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `admin/get_servers`: Docker Agent (`host`) and server (`Desktop`) records.
    GetServers,
    /// `public/get_kasms`: sessions.
    GetKasms,
    /// `admin/update_server`: partial update of a record.
    UpdateServer,
    /// `admin/delete_server`: marks a record `delete_pending`.
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
    /// `admin/get_staging_configs`: every staging config (STAGING_VIEW).
    GetStagingConfigs,
    /// `admin/get_images`: every image, enabled or not, with its `cores`, `memory` and `gpu_count`
    /// (IMAGES_VIEW); read for the size of the images staging configs stage.
    GetImages,
}

impl Call {
    /// Every call.
    pub const ALL: [Call; 12] = [
        Call::GetServers,
        Call::GetKasms,
        Call::UpdateServer,
        Call::DeleteServer,
        Call::CreateServer,
        Call::GetAutoscaleConfigs,
        Call::GetVmProviderConfigs,
        Call::GetDnsProviderConfigs,
        Call::GetServerPools,
        Call::GetSchedules,
        Call::GetStagingConfigs,
        Call::GetImages,
    ];

    /// The call's name, as errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Call::GetServers => "get_servers",
            Call::GetKasms => "get_kasms",
            Call::UpdateServer => "update_server",
            Call::DeleteServer => "delete_server",
            Call::CreateServer => "create_server",
            Call::GetAutoscaleConfigs => "get_autoscale_configs",
            Call::GetVmProviderConfigs => "get_vm_provider_configs",
            Call::GetDnsProviderConfigs => "get_dns_provider_configs",
            Call::GetServerPools => "get_server_pools",
            Call::GetSchedules => "get_schedules",
            Call::GetStagingConfigs => "get_staging_configs",
            Call::GetImages => "get_images",
        }
    }

    /// The path under the manager's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Call::GetServers => "/api/admin/get_servers",
            Call::GetKasms => "/api/public/get_kasms",
            Call::UpdateServer => "/api/admin/update_server",
            Call::DeleteServer => "/api/admin/delete_server",
            Call::CreateServer => "/api/admin/create_server",
            Call::GetAutoscaleConfigs => "/api/admin/get_autoscale_configs",
            Call::GetVmProviderConfigs => "/api/admin/get_vm_provider_configs",
            Call::GetDnsProviderConfigs => "/api/admin/get_dns_provider_configs",
            Call::GetServerPools => "/api/admin/get_server_pools",
            Call::GetSchedules => "/api/admin/get_schedules",
            Call::GetStagingConfigs => "/api/admin/get_staging_configs",
            Call::GetImages => "/api/admin/get_images",
        }
    }

    /// Whether the call only reads (and so may be retried).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Call::GetServers
                | Call::GetKasms
                | Call::GetAutoscaleConfigs
                | Call::GetVmProviderConfigs
                | Call::GetDnsProviderConfigs
                | Call::GetServerPools
                | Call::GetSchedules
                | Call::GetStagingConfigs
                | Call::GetImages
        )
    }

    /// The permission(s) Kasm checks for the call (its `@Authenticated(requested_actions=…)` and, for
    /// records, the per-`server_type` check), as Kasm's API-key Permissions tab names them.
    pub fn permission(self, kind: Option<ServerKind>) -> &'static str {
        match (self, kind) {
            (Call::GetServers, _) => "Agents View and Servers View (each record type is listed only with its own)",
            (Call::GetKasms, _) => "Sessions View",
            (Call::UpdateServer, Some(ServerKind::Agent)) => "Agents Modify",
            (Call::UpdateServer, Some(ServerKind::Server)) => "Servers Modify",
            (Call::UpdateServer, None) => "Agents Modify / Servers Modify",
            (Call::DeleteServer, _) => "Servers Delete",
            (Call::CreateServer, Some(ServerKind::Agent)) => "Agents Create",
            (Call::CreateServer, Some(ServerKind::Server)) => "Servers Create",
            (Call::CreateServer, None) => "Agents Create / Servers Create",
            (Call::GetAutoscaleConfigs, _) => "Auto Scale View",
            (Call::GetVmProviderConfigs, _) => "VM Provider View",
            (Call::GetDnsProviderConfigs, _) => "DNS Providers View",
            (Call::GetServerPools, _) => "Server Pools View",
            (Call::GetSchedules, _) => "Auto Scale Schedule View",
            (Call::GetStagingConfigs, _) => "Staging View",
            (Call::GetImages, _) => "Images View",
        }
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

    /// Makes one call and returns Kasm's JSON answer (an object without `error_message`). `kind` names
    /// the record type a write is about, for the permission a 401 names.
    async fn call(
        &self,
        call: Call,
        kind: Option<ServerKind>,
        payload: Map<String, Value>,
        redactor: &Redactor,
    ) -> Result<Value, KasmError> {
        let mut rb = self.http.post(format!("{}{}", self.base, call.path())).json(&self.authed(payload));
        match self.auth {
            KasmAuthMode::Body => {}
            KasmAuthMode::Header => {
                rb = rb.header("api-key", &self.api_key).header("api-key-secret", self.secret.expose_secret());
            }
            KasmAuthMode::Basic => rb = rb.basic_auth(&self.api_key, Some(self.secret.expose_secret())),
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
            Err(HttpError::Status { status, body, .. }) => Err(status_error(call, kind, status.as_u16(), &body)),
            Err(e @ (HttpError::Timeout { .. } | HttpError::Connect { .. } | HttpError::Transport { .. })) => {
                Err(KasmError::Unreachable { call: name, message: e.to_string() })
            }
            Err(e) => Err(KasmError::Config { message: e.to_string() }),
        }
    }

    /// Makes the read call `call` with `payload` (credentials are added) and returns Kasm's JSON answer,
    /// an object without `error_message`; retried like every read. Refuses a call that writes.
    pub async fn read_call(&self, call: Call, payload: Map<String, Value>) -> Result<Value, KasmError> {
        if !call.is_read() {
            return Err(KasmError::Config { message: format!("{} is not a read call", call.name()) });
        }
        self.call(call, None, payload, &self.redactor).await
    }

    /// `get_servers`, every record or (with `one`) the record with that id: `(raw, parsed)` pairs.
    async fn servers(&self, one: Option<&str>) -> Result<Vec<(Value, KasmServer)>, KasmError> {
        let mut payload = Map::new();
        if let Some(id) = one {
            payload.insert("target_server".into(), json!({ "server_id": norm_id(id) }));
        }
        let answer = self.call(Call::GetServers, None, payload, &self.redactor).await?;
        let items = list_of(Call::GetServers, &answer, "servers")?;
        let parsed = parse_servers(&items)?;
        let mut out: Vec<(Value, KasmServer)> = items.into_iter().zip(parsed).collect();
        if let Some(id) = one {
            // The filter is Kasm's; keep only the record asked for whatever a version answers.
            out.retain(|(_, s)| same_id(&s.server_id, id));
        }
        Ok(out)
    }

    /// The record with this id, if Kasm has it.
    async fn one(&self, server_id: &str) -> Result<Option<(Value, KasmServer)>, KasmError> {
        Ok(self.servers(Some(server_id)).await?.into_iter().next())
    }

    async fn sessions(&self) -> Result<Vec<KasmSession>, KasmError> {
        let answer = self.call(Call::GetKasms, None, Map::new(), &self.redactor).await?;
        parse_sessions(&list_of(Call::GetKasms, &answer, "kasms")?)
    }

    /// `get_staging_configs`, joined with `get_images` for the image sizes (not called when there is
    /// no staging config).
    async fn staging_configs(&self) -> Result<Vec<KasmStagingConfig>, KasmError> {
        let answer = self.call(Call::GetStagingConfigs, None, Map::new(), &self.redactor).await?;
        let staging = parse_staging_configs(&list_of(Call::GetStagingConfigs, &answer, "staging_configs")?)?;
        if staging.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self.call(Call::GetImages, None, Map::new(), &self.redactor).await?;
        let images = parse_images(&list_of(Call::GetImages, &answer, "images")?)?;
        join_images(staging, &images)
    }

    /// A partial `update_server` of one record (see the module docs).
    async fn update(&self, server_id: &str, changes: Map<String, Value>, redactor: &Redactor) -> Result<(), KasmError> {
        let Some((raw, rec)) = self.one(server_id).await? else {
            return Err(KasmError::NotFound { call: Call::UpdateServer.name().into(), id: server_id.to_string() });
        };
        let body = update_payload(&raw, &rec, changes);
        self.call(Call::UpdateServer, Some(rec.kind), body, redactor).await?;
        Ok(())
    }

    /// The records whose `friendly_name` is exactly `name`.
    async fn named(&self, name: &str) -> Result<Vec<KasmServer>, KasmError> {
        Ok(self
            .servers(None)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.friendly_name.as_deref() == Some(name))
            .collect())
    }
}

#[async_trait::async_trait]
impl KasmApi for KasmClient {
    async fn list_servers(&self) -> Result<Vec<KasmServer>, KasmError> {
        let (servers, sessions) = tokio::try_join!(self.servers(None), self.sessions())?;
        let mut out: Vec<KasmServer> = servers.into_iter().map(|(_, s)| s).collect();
        let mut allocated: HashMap<String, Resources> = HashMap::new();
        for sess in sessions.iter().filter(|s| s.allocates()) {
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

    async fn list_staging_configs(&self) -> Result<Vec<KasmStagingConfig>, KasmError> {
        self.staging_configs().await
    }

    async fn set_enabled(&self, server_id: &str, enabled: bool) -> Result<(), KasmError> {
        let mut changes = Map::new();
        changes.insert("enabled".into(), Value::Bool(enabled));
        self.update(server_id, changes, &self.redactor).await
    }

    async fn delete_server(&self, server_id: &str) -> Result<(), KasmError> {
        let Some((_, rec)) = self.one(server_id).await? else { return Ok(()) };
        if rec.is_going() {
            return Ok(());
        }
        match self.call(Call::DeleteServer, Some(rec.kind), delete_payload(&rec.server_id), &self.redactor).await {
            Ok(_) => Ok(()),
            // Gone or going in the meantime (another reaper, an operator): that is what we wanted.
            Err(e @ KasmError::Api { .. }) => match self.one(server_id).await? {
                None => Ok(()),
                Some((_, r)) if r.is_going() => Ok(()),
                Some(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn find_by_name(&self, friendly_name: &str) -> Result<Option<KasmServer>, KasmError> {
        let mut found = self.named(friendly_name).await?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(KasmError::Api {
                call: Call::GetServers.name().into(),
                message: format!(
                    "{n} records are named {friendly_name:?}; expected one (remove the duplicates in Kasm's admin UI)"
                ),
            }),
        }
    }

    async fn ensure_server(&self, new: &NewServer) -> Result<EnsuredServer, KasmError> {
        let (server_id, created) = match self.find_by_name(&new.friendly_name).await? {
            Some(s) => (s.server_id, false),
            None => {
                let mut redactor = self.redactor.clone();
                for s in [&new.connection_password, &new.connection_private_key, &new.connection_passphrase]
                    .into_iter()
                    .flatten()
                {
                    redactor = redactor.with_secret(s);
                }
                self.call(Call::CreateServer, Some(new.kind), create_payload(new), &redactor).await?;
                // Kasm answers `{}` (1.15): the record is found by the name we gave it.
                match self.find_by_name(&new.friendly_name).await? {
                    Some(s) => (s.server_id, true),
                    None => {
                        return Err(KasmError::Api {
                            call: Call::CreateServer.name().into(),
                            message: format!(
                                "Kasm accepted the record {:?} but get_servers does not list it (does the key have {}?)",
                                new.friendly_name,
                                Call::GetServers.permission(Some(new.kind))
                            ),
                        });
                    }
                }
            }
        };
        let registration_jwt = match self.one(&server_id).await? {
            Some((raw, _)) => raw
                .get("registration_jwt")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_string()))
                .inspect(http::remember),
            None => None,
        };
        Ok(EnsuredServer { server_id, created, registration_jwt })
    }

    async fn set_hostname(&self, server_id: &str, hostname: &str) -> Result<(), KasmError> {
        let mut changes = Map::new();
        changes.insert("hostname".into(), Value::String(hostname.to_string()));
        self.update(server_id, changes, &self.redactor).await
    }

    async fn set_connection_password(&self, server_id: &str, password: &SecretString) -> Result<(), KasmError> {
        let mut changes = Map::new();
        changes.insert("connection_password".into(), Value::String(password.expose_secret().to_string()));
        // The password joins the redactor for this call: Kasm may echo the record in an error.
        let redactor = self.redactor.clone().with_secret(password);
        self.update(server_id, changes, &redactor).await
    }
}

// ---------------------------------------------------------------------------------------------------
// Request bodies (without credentials; see `KasmClient::authed`).

/// `{target_server: {server_id, server_type, agent_installed, use_user_private_key, ...changes}}`: the
/// fields Kasm's `update_server` requires or would reset when absent, taken from the record as
/// listed, and the changes.
fn update_payload(raw: &Value, rec: &KasmServer, changes: Map<String, Value>) -> Map<String, Value> {
    let mut t = Map::new();
    t.insert("server_id".into(), json!(rec.server_id));
    let server_type = raw.get("server_type").and_then(Value::as_str).unwrap_or(rec.kind.server_type());
    t.insert("server_type".into(), json!(server_type));
    for carried in ["agent_installed", "use_user_private_key"] {
        if let Some(v) = raw.get(carried).and_then(|v| lenient::boolean(v.clone()).ok().flatten()) {
            t.insert(carried.into(), Value::Bool(v));
        }
    }
    t.extend(changes);
    let mut m = Map::new();
    m.insert("target_server".into(), Value::Object(t));
    m
}

fn delete_payload(server_id: &str) -> Map<String, Value> {
    // `force: false` (a real boolean: Kasm rejects anything else): Kasm refuses to delete a record
    // with sessions, a guard behind the engine's drain.
    let mut m = Map::new();
    m.insert("force".into(), Value::Bool(false));
    m.insert("target_server".into(), json!({ "server_id": server_id }));
    m
}

/// `create_server`'s `target_server`: the fields Kasm 1.15's `create_server` reads, no id (Kasm
/// generates it).
fn create_payload(n: &NewServer) -> Map<String, Value> {
    let mut t = Map::new();
    t.insert("server_type".into(), json!(n.kind.server_type()));
    t.insert("friendly_name".into(), json!(n.friendly_name));
    t.insert("hostname".into(), json!(n.hostname));
    t.insert("zone_id".into(), json!(n.zone_id));
    t.insert("server_pool_id".into(), json!(n.server_pool_id));
    t.insert("enabled".into(), json!(n.enabled));
    t.insert("max_simultaneous_sessions".into(), json!(n.max_simultaneous_sessions));
    if let Some(u) = n.max_simultaneous_users {
        t.insert("max_simultaneous_users".into(), json!(u));
    }
    t.insert("agent_installed".into(), json!(n.agent_installed));
    t.insert("use_user_private_key".into(), json!(n.use_user_private_key));
    if let Some(c) = &n.connection_type {
        t.insert("connection_type".into(), json!(c));
    }
    if let Some(p) = n.connection_port {
        t.insert("connection_port".into(), json!(p));
    }
    if let Some(u) = &n.connection_username {
        t.insert("connection_username".into(), json!(u));
    }
    let secrets = [
        ("connection_password", &n.connection_password),
        ("connection_private_key", &n.connection_private_key),
        ("connection_passphrase", &n.connection_passphrase),
    ];
    for (k, v) in secrets {
        if let Some(v) = v {
            t.insert(k.into(), json!(v.expose_secret()));
        }
    }
    if let Some(info) = &n.connection_info {
        t.insert("connection_info".into(), Value::Object(info.clone()));
    }
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
        return Err(KasmError::Api { call: call.name().into(), message: http::message_field(&redactor.redact(&msg)) });
    }
    Ok(v)
}

/// Every answer parser over one text, as each call would read it (the `responses` fuzz target).
#[cfg(feature = "fuzz")]
pub(crate) fn fuzz_answers(text: &str) {
    let r = Redactor::new();
    let _ = status_error(Call::GetServers, None, 401, text);
    let Ok(answer) = parse_answer(Call::GetServers, text, &r) else { return };
    if let Ok(items) = list_of(Call::GetServers, &answer, "servers") {
        let _ = parse_servers(&items);
    }
    if let Ok(items) = list_of(Call::GetKasms, &answer, "kasms") {
        let _ = parse_sessions(&items);
    }
    if let Ok(items) = list_of(Call::GetStagingConfigs, &answer, "staging_configs") {
        let _ = parse_staging_configs(&items);
    }
    if let Ok(items) = list_of(Call::GetImages, &answer, "images") {
        let _ = parse_images(&items);
    }
}

/// `answer[key]` as a list; a missing or other value is a parse error naming the call.
fn list_of(call: Call, answer: &Value, key: &str) -> Result<Vec<Value>, KasmError> {
    match answer.get(key) {
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(Value::Null) | None => {
            Err(KasmError::Parse { call: call.name().into(), message: format!("the answer has no `{key}` list") })
        }
        Some(_) => Err(KasmError::Parse { call: call.name().into(), message: format!("`{key}` is not a list") }),
    }
}

fn error_message(v: &Value) -> Option<String> {
    match v.get("error_message")? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// An error status, as Kasm 1.15's `Authenticated` decorator and handlers set them: 403 is a refused
/// key ("Access Denied") or an unlicensed Developer API; 401 is an expired key ("Access has
/// expired") or, otherwise, a missing permission ("Unauthorized", "Unauthorized Action").
fn status_error(call: Call, kind: Option<ServerKind>, status: u16, body: &str) -> KasmError {
    let kasm_msg = serde_json::from_str::<Value>(body).ok().and_then(|v| error_message(&v));
    let said = match &kasm_msg {
        Some(m) => http::message_field(m),
        None => http::answer_message(body),
    };
    let message = if said.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {said}") };
    let expired = kasm_msg.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("expired"));
    match status {
        403 => KasmError::Auth { call: call.name().into(), message },
        401 if expired => KasmError::Auth { call: call.name().into(), message },
        401 => KasmError::Permission { call: call.name().into(), permission: call.permission(kind).into(), message },
        _ => KasmError::Api { call: call.name().into(), message },
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

/// The autoscale link as Kasm 1.15's `get_servers` adds it (`{"autoscale_config": {...}}`).
#[derive(Debug, Default, Deserialize)]
struct AutoscaleLinkDto {
    #[serde(default, deserialize_with = "lenient::string")]
    autoscale_config_id: Option<String>,
}

/// One `get_servers` record: `Server.jsonDict` plus what `_get_servers` adds, in 1.15 and 1.19
/// spellings.
#[derive(Debug, Deserialize)]
struct ServerDto {
    #[serde(default, deserialize_with = "lenient::string")]
    server_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    hostname: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    friendly_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    public_ip: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    zone_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    autoscale_config_id: Option<String>,
    #[serde(default)]
    autoscale_config: Option<AutoscaleLinkDto>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    operational_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::time")]
    last_reported: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::count")]
    max_simultaneous_sessions: Option<u32>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    agent_installed: Option<bool>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory_bytes: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpus: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores_override: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory_override: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory_override_bytes: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpus_override: Option<f64>,
}

/// The image link `get_kasms` adds to a session (`{"image": {"image_id", ...}}`).
#[derive(Debug, Default, Deserialize)]
struct ImageLinkDto {
    #[serde(default, deserialize_with = "lenient::string")]
    image_id: Option<String>,
}

/// One `get_kasms` session (`Kasm.__dict__` serialised: every column of Kasm's `kasms` table, among them
/// `is_standby`, `staging_config_id`, `autoscale_config_id` and `image_id`, plus a nested `image`).
#[derive(Debug, Deserialize)]
struct SessionDto {
    #[serde(default, deserialize_with = "lenient::string")]
    kasm_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    is_standby: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    staging_config_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    autoscale_config_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    image_id: Option<String>,
    #[serde(default)]
    image: Option<ImageLinkDto>,
    #[serde(default, deserialize_with = "lenient::string")]
    operational_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory_bytes: Option<f64>,
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

/// `get_servers` records → agents (`host`) and servers (`Desktop`). `allocated` is left empty (see
/// [`KasmApi::list_servers`]).
fn parse_servers(items: &[Value]) -> Result<Vec<KasmServer>, KasmError> {
    let dtos: Vec<ServerDto> = parse_each(Call::GetServers, items)?;
    dtos.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let server_id = s.server_id.ok_or_else(|| missing(Call::GetServers, i, "server_id"))?;
            let kind = match s.server_type.as_deref() {
                Some("host") => ServerKind::Agent,
                Some("Desktop") => ServerKind::Server,
                Some(other) => {
                    return Err(KasmError::Parse {
                        call: Call::GetServers.name().into(),
                        message: format!("record {i} has an unknown server_type {other:?} (expected host or Desktop)"),
                    });
                }
                None => return Err(missing(Call::GetServers, i, "server_type")),
            };
            Ok(KasmServer {
                server_id,
                kind,
                hostname: s.hostname,
                friendly_name: s.friendly_name,
                public_ip: s.public_ip,
                zone_id: s.zone_id.unwrap_or_default(),
                server_pool_id: s.server_pool_id,
                autoscale_config_id: s.autoscale_config_id.or(s.autoscale_config.and_then(|a| a.autoscale_config_id)),
                // Unknown = disabled: capacity we are not sure of is not counted.
                enabled: s.enabled.unwrap_or(false),
                operational_status: s.operational_status.unwrap_or_else(|| "unknown".into()),
                last_reported: s.last_reported,
                reported: resources(s.cores, s.memory_bytes.or(s.memory), s.gpus),
                overridden: resources(s.cores_override, s.memory_override_bytes.or(s.memory_override), s.gpus_override),
                allocated: Resources::default(),
                max_sessions: s.max_simultaneous_sessions,
                agent_installed: s.agent_installed.unwrap_or(false),
            })
        })
        .collect()
}

/// `get_kasms` records → sessions. A session not placed on a server yet has an empty `server_id`: Kasm
/// 1.15's `get_kasms` lists every session, placed or not (its byte code appends each record; only the
/// nested `server` block is left empty for a request without a server).
fn parse_sessions(items: &[Value]) -> Result<Vec<KasmSession>, KasmError> {
    let dtos: Vec<SessionDto> = parse_each(Call::GetKasms, items)?;
    dtos.into_iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(KasmSession {
                kasm_id: k.kasm_id.ok_or_else(|| missing(Call::GetKasms, i, "kasm_id"))?,
                server_id: k.server_id.unwrap_or_default(),
                resources: resources(k.cores, k.memory_bytes.or(k.memory), k.gpus),
                status: k.operational_status.map_or_else(|| "unknown".into(), String::into_boxed_str),
                is_standby: k.is_standby.unwrap_or(false),
                staging_config_id: k.staging_config_id.map(String::into_boxed_str),
                autoscale_config_id: k.autoscale_config_id.map(String::into_boxed_str),
                image_id: k.image_id.or(k.image.and_then(|i| i.image_id)).map(String::into_boxed_str),
            })
        })
        .collect()
}

/// One `get_staging_configs` record (`StagingConfig.jsonDict` in Kasm 1.15: its columns plus
/// `num_current_sessions`, `zone_name`, `server_pool_name`, `autoscale_config_name`,
/// `image_friendly_name`).
#[derive(Debug, Deserialize)]
struct StagingDto {
    #[serde(default, deserialize_with = "lenient::string")]
    staging_config_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    zone_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    server_pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    autoscale_config_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    autoscale_config_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    image_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    image_friendly_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::count")]
    num_sessions: Option<u32>,
}

/// `get_staging_configs` records → staging configs, image sizes left empty (see [`join_images`]). A
/// record without `staging_config_id`, `image_id` or `num_sessions` (all required columns in Kasm) is a
/// parse error naming the field.
fn parse_staging_configs(items: &[Value]) -> Result<Vec<KasmStagingConfig>, KasmError> {
    let call = Call::GetStagingConfigs;
    let dtos: Vec<StagingDto> = parse_each(call, items)?;
    dtos.into_iter()
        .enumerate()
        .map(|(i, d)| {
            Ok(KasmStagingConfig {
                staging_config_id: d.staging_config_id.ok_or_else(|| missing(call, i, "staging_config_id"))?,
                zone_id: d.zone_id.unwrap_or_default(),
                server_pool_id: d.server_pool_id,
                autoscale_config_id: d.autoscale_config_id,
                autoscale_config_name: d.autoscale_config_name,
                image_id: d.image_id.ok_or_else(|| missing(call, i, "image_id"))?,
                image_name: d.image_friendly_name,
                num_sessions: d.num_sessions.ok_or_else(|| missing(call, i, "num_sessions"))?,
                image_size: Resources::default(),
            })
        })
        .collect()
}

/// One `get_images` record (`Image.jsonDict`: `cores`, `memory` in bytes — 1.19's column is
/// `memory_bytes` — and `gpu_count`).
#[derive(Debug, Deserialize)]
struct ImageDto {
    #[serde(default, deserialize_with = "lenient::string")]
    image_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    friendly_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    cores: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    memory_bytes: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    gpu_count: Option<f64>,
}

/// An image's size and name.
#[derive(Debug, Clone)]
struct ImageSize {
    size: Resources,
    name: Option<String>,
}

/// `get_images` records → image sizes by normalised id. An image without `cores` or memory is a parse
/// error naming the field: its sessions would be counted as taking nothing. A missing `gpu_count` is 0
/// (Kasm 1.15's column is `NOT NULL DEFAULT 0`; an answer without it has no GPU images).
fn parse_images(items: &[Value]) -> Result<HashMap<String, ImageSize>, KasmError> {
    let call = Call::GetImages;
    let dtos: Vec<ImageDto> = parse_each(call, items)?;
    let mut out = HashMap::with_capacity(dtos.len());
    for (i, d) in dtos.into_iter().enumerate() {
        let id = d.image_id.ok_or_else(|| missing(call, i, "image_id"))?;
        let cores = d.cores.ok_or_else(|| missing(call, i, "cores"))?;
        let memory = d.memory_bytes.or(d.memory).ok_or_else(|| missing(call, i, "memory (or memory_bytes)"))?;
        let size = resources(Some(cores), Some(memory), d.gpu_count);
        out.insert(norm_id(&id), ImageSize { size, name: d.friendly_name });
    }
    Ok(out)
}

/// Gives every staging config the size of its image; an image `get_images` does not list is an error
/// naming the staging config and the image.
fn join_images(
    staging: Vec<KasmStagingConfig>,
    images: &HashMap<String, ImageSize>,
) -> Result<Vec<KasmStagingConfig>, KasmError> {
    staging
        .into_iter()
        .map(|mut s| match images.get(&norm_id(&s.image_id)) {
            Some(img) => {
                s.image_size = img.size;
                if s.image_name.is_none() {
                    s.image_name = img.name.clone();
                }
                Ok(s)
            }
            None => Err(KasmError::Api {
                call: Call::GetImages.name().into(),
                message: format!(
                    "staging config {} stages image {}, which get_images does not list (does the key have {}?)",
                    s.staging_config_id,
                    s.image_id,
                    Call::GetImages.permission(None)
                ),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;
    use crate::config::settings::AgentRegistration;

    const SECRET: &str = "kasm-secret-0123456789";
    const AGENT: &str = "2f4c6e8a0b1d3f5a7c9e1b3d5f7a9c1e";
    const SERVER: &str = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f";

    fn fixture(name: &str) -> Value {
        let text = match name {
            "get_servers" => include_str!("fixtures/get_servers.json"),
            "get_servers_one" => include_str!("fixtures/get_servers_one.json"),
            "get_kasms" => include_str!("fixtures/get_kasms.json"),
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
            "get_staging_configs" => include_str!("fixtures/get_staging_configs.json"),
            "get_images" => include_str!("fixtures/get_images.json"),
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
            agent_registration: AgentRegistration::RenderedId,
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
            assert!(f["source"].as_str().is_some_and(|s| s.contains("Kasm")), "{}: no source", c.name());
        }
        assert_eq!(fixture("update_server_password")["path"], Call::UpdateServer.path());
        assert_eq!(fixture("get_servers_one")["path"], Call::GetServers.path());
        // What Kasm does not have is not called.
        assert!(Call::from_path("/api/admin/get_agents").is_none());
        assert!(Call::from_path("/api/admin/update_agent").is_none());
    }

    #[test]
    fn servers_parse_both_types_and_both_versions() {
        let s = parse_servers(&items("get_servers", "servers")).unwrap();
        assert_eq!(s.len(), 3);
        let a = &s[0];
        assert_eq!((a.server_id.as_str(), a.kind), (AGENT, ServerKind::Agent));
        assert!(a.enabled && !a.is_going());
        assert_eq!(a.operational_status, "running");
        assert_eq!(a.public_ip.as_deref(), Some("203.0.113.11"));
        assert_eq!(a.server_pool_id, None);
        assert_eq!(a.autoscale_config_id.as_deref(), Some("0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"), "nested in 1.15");
        assert_eq!(a.reported, Resources::new(4.0, 16_000.0, 0.0));
        assert_eq!(a.overridden, Resources::new(8.0, 0.0, 0.0));
        assert_eq!(a.last_reported.unwrap().to_rfc3339(), "2026-11-22T08:30:12.123456+00:00");
        let d = &s[1];
        assert_eq!((d.server_id.as_str(), d.kind), (SERVER, ServerKind::Server));
        assert!(d.enabled, "enabled: 1");
        assert!(d.agent_installed);
        assert_eq!(d.max_sessions, Some(2));
        assert_eq!(d.friendly_name.as_deref(), Some("kasm-01jd0000000000000000000000"));
        assert_eq!(d.server_pool_id.as_deref(), Some("4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e"));
        assert_eq!(d.last_reported, None);
        let g = &s[2];
        assert!(g.is_going() && !g.enabled, "delete_pending, enabled: \"false\"");
        assert_eq!(g.reported, Resources::new(2.0, 8_000.0, 0.0));
    }

    #[test]
    fn sessions_parse_and_only_running_or_starting_allocate() {
        let k = parse_sessions(&items("get_kasms", "kasms")).unwrap();
        assert_eq!(k.len(), 7);
        assert_eq!(k[0].server_id, AGENT);
        assert_eq!(k[0].resources, Resources::new(2.0, 2_768.0, 0.0));
        assert_eq!(k[1].resources, Resources::new(1.0, 1_000.0, 0.0));
        let allocating: Vec<bool> = k.iter().map(KasmSession::allocates).collect();
        assert_eq!(allocating, [true, true, false, true, false, true, false]);
        assert_eq!(k[4].server_id, "", "not placed yet");
        assert_eq!(&*k[4].status, "requested");
    }

    #[test]
    fn sessions_carry_staging_and_queue_marks() {
        let k = parse_sessions(&items("get_kasms", "kasms")).unwrap();
        let queued: Vec<bool> = k.iter().map(KasmSession::is_queued).collect();
        assert_eq!(queued, [false, false, false, false, true, false, true]);
        // A request no agent could take: no server, the autoscale config it was queued for.
        assert!(!k[4].is_placed());
        assert_eq!(k[4].autoscale_config_id.as_deref(), Some("0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"));
        assert_eq!(k[4].image_id.as_deref(), Some("0a1b2c3d4e5f60718293a4b5c6d7e8f1"), "from the nested image");
        // A staged session: is_standby and its staging config.
        assert!(k[5].is_standby && k[5].allocates());
        assert_eq!(k[5].staging_config_id.as_deref(), Some("5c1a7e2b9d3f4a6c8e0b2d4f6a8c0e21"));
        assert!(k.iter().filter(|s| s.kasm_id != k[5].kasm_id).all(|s| !s.is_standby), "\"false\" is false");
        // Queued on a VM still booting: placed, not allocating yet.
        assert!(k[6].is_placed() && k[6].is_queued() && !k[6].allocates());
        assert_eq!(k[6].resources, Resources::new(2.0, 2_768.0, 0.0));
    }

    #[test]
    fn staging_configs_join_their_image_sizes() {
        let staging = parse_staging_configs(&items("get_staging_configs", "staging_configs")).unwrap();
        assert_eq!(staging.len(), 3);
        assert_eq!(staging[0].num_sessions, 4);
        assert_eq!(staging[1].num_sessions, 2, "a numeric string");
        assert_eq!(staging[0].autoscale_config_id.as_deref(), Some("0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"));
        assert_eq!(staging[0].autoscale_config_name.as_deref(), Some("aws-agents"));
        assert_eq!(staging[2].autoscale_config_id, None);
        let images = parse_images(&items("get_images", "images")).unwrap();
        assert_eq!(images.len(), 4);
        let joined = join_images(staging, &images).unwrap();
        assert_eq!(joined[0].image_size, Resources::new(2.0, 2_768.0, 0.0));
        assert_eq!(joined[0].image_name.as_deref(), Some("Chrome"));
        assert_eq!(joined[1].image_size, Resources::new(1.0, 768.0, 0.0));
        assert_eq!(joined[2].image_size, Resources::new(4.0, 8_000.0, 1.0), "1.19's memory_bytes");
        assert_eq!(joined[2].image_name.as_deref(), Some("Blender (GPU)"), "named from the image");
    }

    #[test]
    fn staging_configs_that_cannot_be_read_safely_are_errors_naming_the_field() {
        let e = parse_staging_configs(&[json!({"staging_config_id": "s", "num_sessions": 1})]).unwrap_err();
        assert!(
            matches!(&e, KasmError::Parse { call, message } if call == "get_staging_configs" && message.contains("image_id")),
            "{e}"
        );
        let e = parse_staging_configs(&[json!({"staging_config_id": "s", "image_id": "i"})]).unwrap_err();
        assert!(e.to_string().contains("num_sessions"), "{e}");
        let e = parse_staging_configs(&[json!({"staging_config_id": "s", "image_id": "i", "num_sessions": -2})])
            .unwrap_err();
        assert!(matches!(e, KasmError::Parse { .. }));
        let e = parse_images(&[json!({"image_id": "i", "memory": 1})]).unwrap_err();
        assert!(e.to_string().contains("cores"), "{e}");
        let e = parse_images(&[json!({"image_id": "i", "cores": 1})]).unwrap_err();
        assert!(e.to_string().contains("memory"), "{e}");
        let staging = parse_staging_configs(&items("get_staging_configs", "staging_configs")).unwrap();
        let e = join_images(staging, &HashMap::new()).unwrap_err();
        assert!(
            matches!(&e, KasmError::Api { call, message } if call == "get_images"
                && message.contains("5c1a7e2b9d3f4a6c8e0b2d4f6a8c0e21") && message.contains("Images View")),
            "{e}"
        );
    }

    #[test]
    fn unreadable_records_are_parse_errors_without_values() {
        let bad_time = vec![json!({"server_id": "a", "server_type": "host", "last_reported": "yesterday token-xyz"})];
        let e = parse_servers(&bad_time).unwrap_err();
        assert!(matches!(&e, KasmError::Parse { call, .. } if call == "get_servers"), "{e}");
        assert!(!e.to_string().contains("token-xyz"), "{e}");
        assert!(matches!(
            parse_servers(&[json!({"hostname": "h", "server_type": "host"})]),
            Err(KasmError::Parse { .. })
        ));
        let e = parse_servers(&[json!({"server_id": "s"})]).unwrap_err();
        assert!(e.to_string().contains("server_type"), "{e}");
        let e = parse_servers(&[json!({"server_id": "s", "server_type": "Agent"})]).unwrap_err();
        assert!(e.to_string().contains("unknown server_type"), "{e}");
        let bad_type = vec![json!({"kasm_id": "k", "cores": {"secret": "s3cr3t-value"}})];
        let e = parse_sessions(&bad_type).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let bad_count = vec![json!({"server_id": "s", "server_type": "Desktop", "max_simultaneous_sessions": "-1"})];
        assert!(matches!(parse_servers(&bad_count), Err(KasmError::Parse { .. })));
    }

    #[test]
    fn request_bodies_match_the_fixtures() {
        let c = client(KasmAuthMode::Body);
        for read in ["get_servers", "get_kasms", "get_staging_configs", "get_images"] {
            assert_eq!(c.authed(Map::new()), expected_request(read, None), "{read}");
        }
        let one = json!({ "target_server": { "server_id": SERVER } }).as_object().cloned().unwrap();
        assert_eq!(c.authed(one), expected_request("get_servers_one", None));
        let raw = &items("get_servers", "servers")[1];
        let rec = &parse_servers(std::slice::from_ref(raw)).unwrap()[0];
        let changes = json!({ "enabled": false }).as_object().cloned().unwrap();
        assert_eq!(c.authed(update_payload(raw, rec, changes)), expected_request("update_server", None));
        let changes = json!({ "connection_password": "pw-1234" }).as_object().cloned().unwrap();
        assert_eq!(
            c.authed(update_payload(raw, rec, changes)),
            expected_request("update_server_password", Some("pw-1234"))
        );
        assert_eq!(c.authed(delete_payload(SERVER)), expected_request("delete_server", None));
        let n = NewServer {
            kind: ServerKind::Server,
            friendly_name: "kasm-01jd0000000000000000000000".into(),
            hostname: "kasm-01jd0000000000000000000000".into(),
            zone_id: "5a6b7c8d9e0f11223344556677889900".into(),
            server_pool_id: "4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e".into(),
            connection_type: Some("RDP".into()),
            connection_port: Some(3389),
            connection_username: Some("Administrator".into()),
            connection_password: Some(SecretString::from("static-pw-5678")),
            connection_private_key: None,
            connection_passphrase: None,
            use_user_private_key: false,
            connection_info: json!({ "guac": { "settings": { "ignore-cert": "true" } } }).as_object().cloned(),
            max_simultaneous_sessions: 2,
            max_simultaneous_users: Some(1),
            agent_installed: true,
            enabled: true,
        };
        assert_eq!(c.authed(create_payload(&n)), expected_request("create_server", Some("static-pw-5678")));
        assert!(create_payload(&n)["target_server"].get("server_id").is_none(), "Kasm chooses the id");
        let agent = NewServer { kind: ServerKind::Agent, connection_type: None, ..n };
        assert_eq!(create_payload(&agent)["target_server"]["server_type"], "host");
    }

    #[test]
    fn an_update_of_a_record_without_the_carried_fields_sends_only_the_change() {
        let raw = json!({ "server_id": AGENT, "server_type": "host" });
        let rec = &parse_servers(std::slice::from_ref(&raw)).unwrap()[0];
        let body = update_payload(&raw, rec, json!({ "enabled": true }).as_object().cloned().unwrap());
        assert_eq!(body["target_server"], json!({ "server_id": AGENT, "server_type": "host", "enabled": true }));
    }

    #[test]
    fn header_and_basic_modes_keep_credentials_out_of_the_body() {
        for mode in [KasmAuthMode::Basic, KasmAuthMode::Header] {
            let c = client(mode);
            let body = c.authed(delete_payload("x"));
            assert!(body.get("api_key").is_none() && body.get("api_key_secret").is_none());
            assert!(!body.to_string().contains(SECRET));
        }
    }

    #[test]
    fn statuses_map_as_kasm_sets_them() {
        let r = Redactor::new();
        let resp = |k: &str| fixture("error")["responses"][k].to_string();
        let e = status_error(Call::GetServers, None, 403, &resp("403"));
        assert!(
            matches!(&e, KasmError::Auth { call, message } if call == "get_servers" && message.contains("Access Denied"))
        );
        let e = status_error(Call::GetKasms, None, 403, &resp("403-licence"));
        assert!(matches!(&e, KasmError::Auth { message, .. } if message.contains("not licensed")));
        let e = status_error(Call::GetKasms, None, 401, &resp("401-expired"));
        assert!(matches!(&e, KasmError::Auth { message, .. } if message.contains("expired")));
        let e = status_error(Call::UpdateServer, Some(ServerKind::Agent), 401, &resp("401-action"));
        assert!(
            matches!(&e, KasmError::Permission { call, permission, .. } if call == "update_server" && permission == "Agents Modify"),
            "{e:?}"
        );
        assert!(e.to_string().contains("Agents Modify"), "{e}");
        let e = status_error(Call::CreateServer, Some(ServerKind::Server), 401, &resp("401"));
        assert!(matches!(&e, KasmError::Permission { permission, .. } if permission == "Servers Create"));
        let e = status_error(Call::DeleteServer, Some(ServerKind::Agent), 401, &resp("401"));
        assert!(matches!(&e, KasmError::Permission { permission, .. } if permission == "Servers Delete"));
        let e = parse_answer(Call::UpdateServer, &resp("200"), &r).unwrap_err();
        assert!(
            matches!(&e, KasmError::Api { call, message } if call == "update_server" && message.contains("Does not Exist"))
        );
        assert!(parse_answer(Call::GetKasms, r#"{"error_message":null,"kasms":[]}"#, &r).is_ok());
        assert!(parse_answer(Call::GetKasms, r#"{"error_message":"","kasms":[]}"#, &r).is_ok());
        assert!(matches!(parse_answer(Call::GetKasms, "<html>", &r), Err(KasmError::Parse { .. })));
        assert!(matches!(parse_answer(Call::GetKasms, "[1]", &r), Err(KasmError::Parse { .. })));
        let e = status_error(Call::GetServers, None, 502, "");
        assert!(matches!(&e, KasmError::Api { message, .. } if message == "HTTP 502"));
    }

    #[test]
    fn ids_match_without_dashes_or_case() {
        assert!(same_id("9C8B7A6F5E4D3C2B1A0F9E8D7C6B5A4F", "9c8b7a6f-5e4d-3c2b-1a0f-9e8d7c6b5a4f"));
        assert!(!same_id("9c8b7a6f", "9c8b7a6f-5e4d-3c2b-1a0f-9e8d7c6b5a4f"));
        assert_eq!(norm_id("AB-cd"), "abcd");
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
