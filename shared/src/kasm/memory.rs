//! An in-memory Kasm cluster: records, sessions and staging configs in maps. Backs tests and the
//! simulator, which plays Kasm's part: placing session requests, queuing those it cannot place
//! (`requested`, as Kasm does), and staging sessions.

use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{EnsuredServer, KasmApi, KasmError, KasmServer, KasmSession, KasmStagingConfig, NewServer, norm_id};
use crate::model::Resources;

#[derive(Debug, Default)]
struct State {
    servers: BTreeMap<String, KasmServer>,
    sessions: BTreeMap<String, KasmSession>,
    staging: BTreeMap<String, KasmStagingConfig>,
    passwords: BTreeMap<String, String>,
    fail: Option<KasmError>,
    /// Records created through `ensure_server` so far (their ids are generated from it).
    created: u64,
}

/// An in-memory Kasm manager.
#[derive(Debug, Default)]
pub struct MemoryKasm {
    state: Mutex<State>,
}

impl MemoryKasm {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("kasm lock")
    }

    /// Adds or replaces a record (a VM checking in, or an operator's static agent).
    pub fn upsert_server(&self, s: KasmServer) {
        self.lock().servers.insert(norm_id(&s.server_id), s);
    }

    /// A record by id.
    pub fn server(&self, id: &str) -> Option<KasmServer> {
        self.lock().servers.get(&norm_id(id)).cloned()
    }

    /// Every record.
    pub fn servers(&self) -> Vec<KasmServer> {
        self.lock().servers.values().cloned().collect()
    }

    /// Starts a session on a server, allocating its resources. Fails if the server is missing. A
    /// queued request with this id (see [`MemoryKasm::queue_session`]) is placed: it keeps its marks.
    pub fn start_session(&self, kasm_id: &str, server_id: &str, r: Resources) -> bool {
        let mut st = self.lock();
        let Some(s) = st.servers.get_mut(&norm_id(server_id)) else { return false };
        s.allocated += r;
        let mut sess = st.sessions.remove(kasm_id).unwrap_or_default();
        sess.kasm_id = kasm_id.to_string();
        sess.server_id = server_id.to_string();
        sess.resources = r;
        sess.status = "running".into();
        st.sessions.insert(kasm_id.to_string(), sess);
        true
    }

    /// Starts a staged session of `staging_config_id` on a server (Kasm's `is_standby`), allocating
    /// its resources. Fails if the server is missing.
    pub fn start_staged_session(&self, kasm_id: &str, server_id: &str, staging_config_id: &str, r: Resources) -> bool {
        if !self.start_session(kasm_id, server_id, r) {
            return false;
        }
        if let Some(s) = self.lock().sessions.get_mut(kasm_id) {
            s.is_standby = true;
            s.staging_config_id = Some(staging_config_id.into());
        }
        true
    }

    /// A user takes a staged session: it is no longer standby (as Kasm assigns one).
    pub fn assign_staged_session(&self, kasm_id: &str) {
        if let Some(s) = self.lock().sessions.get_mut(kasm_id) {
            s.is_standby = false;
        }
    }

    /// Queues a session request no server can take, as Kasm does: `requested`, no server, the
    /// autoscale config (`autoscale_config_id`, Kasm's id) meant to serve it. [`MemoryKasm::start_session`]
    /// with the same id places it.
    pub fn queue_session(&self, kasm_id: &str, autoscale_config_id: &str, r: Resources) {
        let sess = KasmSession {
            kasm_id: kasm_id.to_string(),
            resources: r,
            status: "requested".into(),
            autoscale_config_id: Some(autoscale_config_id.into()),
            ..KasmSession::default()
        };
        self.lock().sessions.insert(kasm_id.to_string(), sess);
    }

    /// Ends a session, freeing its resources.
    pub fn end_session(&self, kasm_id: &str) {
        let mut st = self.lock();
        if let Some(sess) = st.sessions.remove(kasm_id)
            && sess.allocates()
            && let Some(s) = st.servers.get_mut(&norm_id(&sess.server_id))
        {
            s.allocated = s.allocated - sess.resources;
        }
    }

    /// Adds or replaces a staging config.
    pub fn upsert_staging_config(&self, s: KasmStagingConfig) {
        self.lock().staging.insert(norm_id(&s.staging_config_id), s);
    }

    /// Every session.
    pub fn sessions(&self) -> Vec<KasmSession> {
        self.lock().sessions.values().cloned().collect()
    }

    /// Makes every call fail with `err` until cleared with `None` (outage injection).
    pub fn fail_with(&self, err: Option<KasmError>) {
        self.lock().fail = err;
    }

    /// Whether a password was handed to `server_id` (the value is never exposed).
    pub fn has_password(&self, server_id: &str) -> bool {
        self.lock().passwords.contains_key(&norm_id(server_id))
    }

    /// Whether the password handed to `server_id` is `candidate` (tests compare without exposing it).
    pub fn password_is(&self, server_id: &str, candidate: &str) -> bool {
        self.lock().passwords.get(&norm_id(server_id)).is_some_and(|p| p == candidate)
    }

    fn check(&self) -> Result<(), KasmError> {
        match &self.lock().fail {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl KasmApi for MemoryKasm {
    async fn list_servers(&self) -> Result<Vec<KasmServer>, KasmError> {
        self.check()?;
        Ok(self.servers())
    }

    async fn list_sessions(&self) -> Result<Vec<KasmSession>, KasmError> {
        self.check()?;
        Ok(self.sessions())
    }

    async fn list_staging_configs(&self) -> Result<Vec<KasmStagingConfig>, KasmError> {
        self.check()?;
        Ok(self.lock().staging.values().cloned().collect())
    }

    async fn set_enabled(&self, server_id: &str, enabled: bool) -> Result<(), KasmError> {
        self.check()?;
        let mut st = self.lock();
        match st.servers.get_mut(&norm_id(server_id)) {
            Some(s) => {
                s.enabled = enabled;
                Ok(())
            }
            None => Err(KasmError::NotFound { call: "update_server".into(), id: server_id.to_string() }),
        }
    }

    async fn delete_server(&self, server_id: &str) -> Result<(), KasmError> {
        self.check()?;
        let mut st = self.lock();
        let id = norm_id(server_id);
        st.servers.remove(&id);
        st.sessions.retain(|_, s| norm_id(&s.server_id) != id);
        Ok(())
    }

    async fn find_by_name(&self, friendly_name: &str) -> Result<Option<KasmServer>, KasmError> {
        self.check()?;
        let st = self.lock();
        let mut found: Vec<&KasmServer> =
            st.servers.values().filter(|s| s.friendly_name.as_deref() == Some(friendly_name)).collect();
        match found.len() {
            0 | 1 => Ok(found.pop().cloned()),
            n => Err(KasmError::Api {
                call: "get_servers".into(),
                message: format!("{n} records are named {friendly_name:?}"),
            }),
        }
    }

    async fn ensure_server(&self, n: &NewServer) -> Result<EnsuredServer, KasmError> {
        if let Some(s) = self.find_by_name(&n.friendly_name).await? {
            return Ok(EnsuredServer { server_id: s.server_id, created: false, registration_jwt: None });
        }
        let mut st = self.lock();
        st.created += 1;
        // Deterministic ids (the simulator's output must not depend on chance), 32 hex digits like Kasm's.
        let server_id = format!("{:032x}", 0x5e00_0000_u64 + st.created);
        let s = KasmServer {
            server_id: server_id.clone(),
            kind: n.kind,
            hostname: Some(n.hostname.clone()),
            friendly_name: Some(n.friendly_name.clone()),
            public_ip: None,
            zone_id: n.zone_id.clone(),
            server_pool_id: Some(n.server_pool_id.clone()),
            autoscale_config_id: None,
            enabled: n.enabled,
            operational_status: if n.agent_installed { "starting" } else { "running" }.into(),
            last_reported: None,
            reported: Resources::default(),
            overridden: Resources::default(),
            allocated: Resources::default(),
            max_sessions: Some(n.max_simultaneous_sessions),
            agent_installed: n.agent_installed,
        };
        st.servers.insert(server_id.clone(), s);
        Ok(EnsuredServer { server_id, created: true, registration_jwt: None })
    }

    async fn set_hostname(&self, server_id: &str, hostname: &str) -> Result<(), KasmError> {
        self.check()?;
        match self.lock().servers.get_mut(&norm_id(server_id)) {
            Some(s) => {
                s.hostname = Some(hostname.to_string());
                Ok(())
            }
            None => Err(KasmError::NotFound { call: "update_server".into(), id: server_id.to_string() }),
        }
    }

    async fn set_connection_password(&self, server_id: &str, password: &SecretString) -> Result<(), KasmError> {
        use secrecy::ExposeSecret;
        self.check()?;
        let mut st = self.lock();
        let id = norm_id(server_id);
        if !st.servers.contains_key(&id) {
            return Err(KasmError::NotFound { call: "update_server".into(), id: server_id.to_string() });
        }
        st.passwords.insert(id, password.expose_secret().to_string());
        Ok(())
    }
}
