//! The Kasm manager, as a port: what the engine reads (servers/agents, sessions) and what the app
//! does (enable, disable, delete records, create server records, set passwords).
//!
//! The HTTP client against Kasm's API lives in this module too (every endpoint path and shape in one
//! place: [`client`]); [`memory::MemoryKasm`] is the in-memory cluster used by tests and the simulator.

pub mod client;
pub mod import;
pub mod memory;

pub use client::{KasmClient, KasmClientOptions};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::model::Resources;

/// Whether a Kasm record is a Docker Agent or a Server-pool server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// A Docker Agent (many container sessions).
    Agent,
    /// A server-pool server (RDP / VNC / SSH / KasmVNC sessions).
    Server,
}

/// One agent or server record as Kasm reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KasmServer {
    /// Kasm's id of the record (for VMs we create: the `{server_id}` we put in the script).
    pub server_id: String,
    /// Agent or server.
    pub kind: ServerKind,
    /// Hostname as registered.
    pub hostname: Option<String>,
    /// IP address as registered.
    pub ip: Option<String>,
    /// Deployment zone.
    pub zone_id: String,
    /// Pool.
    pub pool_id: Option<String>,
    /// Enabled in Kasm (disabled agents take no new sessions).
    pub enabled: bool,
    /// Kasm's status text (e.g. `running`, `missing`).
    pub status: String,
    /// Last check-in; `None` = never checked in.
    pub last_checkin: Option<DateTime<Utc>>,
    /// What the agent reports (cores, memory MB, GPUs).
    pub reported: Resources,
    /// Per-agent overrides set in Kasm (0 = none).
    pub overridden: Resources,
    /// Resources allocated to sessions.
    pub allocated: Resources,
    /// Server pools: sessions this server takes at once (None = the autoscale config's value).
    pub max_sessions: Option<u32>,
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KasmSession {
    /// Kasm's id of the session.
    pub kasm_id: String,
    /// The agent/server it runs on.
    pub server_id: String,
    /// Resources it holds.
    pub resources: Resources,
    /// Kasm's operational status (e.g. `running`).
    pub status: String,
}

/// A server record to create for a server-pool VM (Kasm makes it before the VM exists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewServer {
    /// The id to create it with (the claim's `kasm_server_id`).
    pub server_id: String,
    /// Hostname or IP the connection goes to.
    pub hostname: String,
    /// Zone.
    pub zone_id: String,
    /// Pool.
    pub pool_id: String,
    /// Connection type (KasmVNC, RDP, VNC, SSH).
    pub connection_type: String,
    /// Port.
    pub connection_port: Option<u16>,
    /// Username.
    pub connection_username: Option<String>,
    /// Sessions at once.
    pub max_simultaneous_sessions: u32,
    /// Wait for a check-in before use.
    pub require_checkin: bool,
    /// Enabled on creation.
    pub enabled: bool,
}

/// What went wrong talking to Kasm. Messages name the call, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KasmError {
    /// The API key was refused (401/403).
    #[error("Kasm refused the API key on {call}: {message}")]
    Auth {
        /// The API call.
        call: String,
        /// Kasm's message.
        message: String,
    },
    /// Kasm answered with `{"error_message": ...}` or an error status.
    #[error("Kasm call {call} failed: {message}")]
    Api {
        /// The API call.
        call: String,
        /// Kasm's message.
        message: String,
    },
    /// Kasm could not be reached.
    #[error("Kasm is unreachable on {call}: {message}")]
    Unreachable {
        /// The API call.
        call: String,
        /// The transport error.
        message: String,
    },
    /// Kasm's answer did not parse.
    #[error("Kasm's answer to {call} did not parse: {message}")]
    Parse {
        /// The API call.
        call: String,
        /// What did not parse.
        message: String,
    },
    /// No such record.
    #[error("Kasm has no record {id} ({call})")]
    NotFound {
        /// The API call.
        call: String,
        /// The id asked for.
        id: String,
    },
    /// The client's settings are unusable (bad URL, bad CA certificate); no call was made.
    #[error("Kasm client settings are invalid: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

/// The Kasm manager's API, as the app uses it.
#[async_trait]
pub trait KasmApi: Send + Sync + std::fmt::Debug {
    /// Every agent and server record, in every zone and pool.
    async fn list_servers(&self) -> Result<Vec<KasmServer>, KasmError>;
    /// Every live session.
    async fn list_sessions(&self) -> Result<Vec<KasmSession>, KasmError>;
    /// Enables or disables a record (disabled = takes no new sessions: how a VM is drained).
    async fn set_enabled(&self, server_id: &str, enabled: bool) -> Result<(), KasmError>;
    /// Deletes a record. Deleting a missing record succeeds.
    async fn delete_server(&self, server_id: &str) -> Result<(), KasmError>;
    /// Creates a server-pool server record.
    async fn create_server(&self, server: &NewServer) -> Result<(), KasmError>;
    /// Sets a server record's connection password (the Windows password fetcher's hand-off).
    async fn set_connection_password(&self, server_id: &str, password: &SecretString) -> Result<(), KasmError>;
}
