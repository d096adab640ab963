//! The Kasm manager, as a port: what the engine reads (Docker Agent and server records, sessions)
//! and what the app does (enable, disable, delete records, create server records, set passwords).
//!
//! The HTTP client against Kasm's API lives in this module too (every endpoint path and shape in one
//! place: [`client`]); [`memory::MemoryKasm`] is the in-memory cluster used by tests and the simulator.
//!
//! The records here carry Kasm's own field names (`server_pool_id`, `operational_status`,
//! `last_reported`, `public_ip`: the `servers` table of Kasm's database and its `admin/get_servers`
//! answer), so what an operator reads in Kasm's admin UI and in our decision log is the same thing.

pub mod client;
pub mod import;
mod lenient;
pub mod memory;

pub use client::{KasmClient, KasmClientOptions};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::model::Resources;

/// Whether a Kasm record is a Docker Agent or a Server-pool server (Kasm's `server_type`: `host` or
/// `Desktop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// A Docker Agent (`server_type: "host"`; many container sessions).
    Agent,
    /// A server-pool server (`server_type: "Desktop"`; RDP / VNC / SSH / KasmVNC sessions).
    Server,
}

impl ServerKind {
    /// Kasm's `server_type` value for this kind.
    pub fn server_type(self) -> &'static str {
        match self {
            ServerKind::Agent => "host",
            ServerKind::Server => "Desktop",
        }
    }
}

/// Kasm's server `operational_status` values that mean the record is on its way out
/// (`admin/delete_server` marks `delete_pending`; Kasm then moves it through `destroying`).
pub const GOING_STATUSES: [&str; 2] = ["delete_pending", "destroying"];

/// Kasm's session `operational_status` values that hold an agent's cores and memory (Kasm's
/// `core_calculations` / `memory_calculations` count only these).
pub const ALLOCATING_SESSION_STATUSES: [&str; 2] = ["running", "starting"];

/// Kasm's session `operational_status` values of a session **request** still waiting for compute (Kasm
/// 1.15's `provider_manager`: a request no agent or server can take is saved as `requested` with the
/// message "Requesting Additional Resources", no server and the `autoscale_config_id` of the autoscale
/// config meant to serve it; while a VM is made for it, `provisioning` ("Creating Resources"); once
/// that VM's record exists and the request waits for it to come up, `assigned` ("Assigned
/// Resources"), on that record). They hold nothing in Kasm's own calculations yet, but they will.
pub const QUEUED_SESSION_STATUSES: [&str; 3] = ["requested", "provisioning", "assigned"];

/// Ids compare without dashes and case: Kasm lists UUIDs as 32 hex digits, an operator or an older
/// claim may spell the same UUID with dashes.
pub fn norm_id(id: &str) -> String {
    id.chars().filter(|c| *c != '-').flat_map(char::to_lowercase).collect()
}

/// Whether two Kasm ids name the same record (see [`norm_id`]); UUIDs compare without allocating.
pub fn same_id(a: &str, b: &str) -> bool {
    IdKey::of(a) == IdKey::of(b)
}

/// A Kasm id as a map key, equal exactly when the ids' [`norm_id`]s are: a UUID (32 hex digits once
/// dashes are dropped, either case — every id Kasm lists) is held as its 128-bit value, anything else as
/// its `norm_id`. The engine looks ids up for every session and record of every config, each
/// evaluation; a UUID key is made without allocating and hashes as one integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    /// The id's 32 hex digits.
    Uuid(u128),
    /// Any other id, normalised by [`norm_id`].
    Other(String),
}

impl IdKey {
    /// The key of `id`.
    pub fn of(id: &str) -> IdKey {
        let mut v: u128 = 0;
        let mut digits = 0u32;
        for b in id.bytes() {
            if b == b'-' {
                continue;
            }
            let Some(d) = (b as char).to_digit(16) else { return IdKey::Other(norm_id(id)) };
            digits += 1;
            if digits > 32 {
                return IdKey::Other(norm_id(id));
            }
            v = (v << 4) | d as u128;
        }
        if digits == 32 { IdKey::Uuid(v) } else { IdKey::Other(norm_id(id)) }
    }
}

/// One Docker Agent or server record as Kasm reports it (`admin/get_servers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KasmServer {
    /// Kasm's id of the record (32 hex digits as Kasm lists it).
    pub server_id: String,
    /// Agent or server (`server_type`).
    pub kind: ServerKind,
    /// Hostname as registered.
    pub hostname: Option<String>,
    /// The name shown in Kasm's admin UI; for records we create, the claim's VM name.
    pub friendly_name: Option<String>,
    /// Public IP the agent reported.
    pub public_ip: Option<String>,
    /// Deployment zone.
    pub zone_id: String,
    /// Pool (`server_pool_id`); `None` when the record is in no pool.
    pub server_pool_id: Option<String>,
    /// The Kasm autoscale config that created the record (Kasm's own autoscaler), if any.
    pub autoscale_config_id: Option<String>,
    /// Enabled in Kasm (disabled records take no new sessions).
    pub enabled: bool,
    /// Kasm's `operational_status` (running, starting, missing, dead, delete_pending, destroying).
    pub operational_status: String,
    /// Last report from the agent / server; `None` = never reported.
    pub last_reported: Option<DateTime<Utc>>,
    /// What the agent reports (cores, memory MB, GPUs).
    pub reported: Resources,
    /// Per-record overrides set in Kasm (0 = none).
    pub overridden: Resources,
    /// Resources held by sessions in `running` / `starting` (Kasm's own rule).
    pub allocated: Resources,
    /// Server pools: sessions this server takes at once (None = the autoscale config's value).
    pub max_sessions: Option<u32>,
    /// Kasm's `agent_installed` (server pools: the Kasm Desktop Service checks in).
    pub agent_installed: bool,
}

impl KasmServer {
    /// Whether Kasm is deleting the record (`delete_pending`, `destroying`): it has no capacity, is
    /// not missing, and is never deleted again.
    pub fn is_going(&self) -> bool {
        GOING_STATUSES.iter().any(|s| self.operational_status.eq_ignore_ascii_case(s))
    }
}

/// One session (`public/get_kasms`: Kasm's `Kasm` record as it serialises it).
/// The status and the optional ids are `Box<str>`, 8 bytes less than a `String` each: the scale-evaluator holds
/// every session Kasm lists at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KasmSession {
    /// Kasm's id of the session.
    pub kasm_id: String,
    /// The agent/server it runs on (empty while not placed).
    pub server_id: String,
    /// Resources it holds when it allocates (see [`KasmSession::allocates`]).
    pub resources: Resources,
    /// Kasm's `operational_status` (e.g. `running`, `starting`, `requested`).
    pub status: Box<str>,
    /// Kasm's `is_standby`: a **staged** session (made ahead by a staging config, no user yet). Kasm
    /// counts these as a staging config's current sessions (`StagingConfig.num_current_sessions`);
    /// assigning one to a user clears the flag.
    #[serde(default)]
    pub is_standby: bool,
    /// Kasm's `staging_config_id`: the staging config that made it (staged sessions).
    #[serde(default)]
    pub staging_config_id: Option<Box<str>>,
    /// Kasm's `autoscale_config_id`: the autoscale config a session request was queued for (see
    /// [`QUEUED_SESSION_STATUSES`]).
    #[serde(default)]
    pub autoscale_config_id: Option<Box<str>>,
    /// Kasm's `image_id`: the workspace image.
    #[serde(default)]
    pub image_id: Option<Box<str>>,
}

impl KasmSession {
    /// Whether the session holds its agent's cores/memory/GPUs (`running` or `starting`).
    pub fn allocates(&self) -> bool {
        ALLOCATING_SESSION_STATUSES.iter().any(|s| self.status.eq_ignore_ascii_case(s))
    }

    /// Whether the session is a request still waiting for compute (`requested`, `provisioning`,
    /// `assigned`; see [`QUEUED_SESSION_STATUSES`]).
    pub fn is_queued(&self) -> bool {
        QUEUED_SESSION_STATUSES.iter().any(|s| self.status.eq_ignore_ascii_case(s))
    }

    /// Whether the session is placed on a record (`server_id` set).
    pub fn is_placed(&self) -> bool {
        !self.server_id.trim().is_empty()
    }
}

/// One staging config (`admin/get_staging_configs`), with the size of the image it stages
/// (`admin/get_images`). Kasm keeps `num_sessions` staged sessions of the image ready; its
/// AutoScale keeps standby **in addition to** what the staging configs of an autoscale config still
/// need (`AutoScaleConfig.desired_staged_resources` in Kasm 1.15's `data/model.py`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KasmStagingConfig {
    /// Kasm's id of the staging config (staged sessions name it in `staging_config_id`).
    pub staging_config_id: String,
    /// The deployment zone it stages in.
    pub zone_id: String,
    /// The server pool it stages in, if set.
    pub server_pool_id: Option<String>,
    /// Kasm's id of the autoscale config it belongs to, if set: Kasm counts a staging config toward
    /// the autoscale config it names here (`AutoScaleConfig.staging_configs`), and toward no other.
    pub autoscale_config_id: Option<String>,
    /// That autoscale config's name, as Kasm lists it.
    pub autoscale_config_name: Option<String>,
    /// The image staged.
    pub image_id: String,
    /// The image's friendly name, for the decision log.
    pub image_name: Option<String>,
    /// Kasm's `num_sessions` ("Desired Sessions").
    pub num_sessions: u32,
    /// What one session of the image takes: the image's `cores`, `memory` (MB here) and `gpu_count`.
    pub image_size: Resources,
}

/// A record to create before its VM exists (server pools always; Docker Agents when
/// `settings.kasm.agent_registration` is `precreate`). Kasm chooses the id; the record is found
/// again by its `friendly_name`, which is the claim's VM name and so unique to the claim.
#[derive(Debug, Clone)]
pub struct NewServer {
    /// Agent (`host`) or server (`Desktop`).
    pub kind: ServerKind,
    /// The claim's VM name: how the record is found again (idempotency) and shown in Kasm.
    pub friendly_name: String,
    /// Hostname or IP the connection goes to (the VM name until the VM has an address).
    pub hostname: String,
    /// Zone.
    pub zone_id: String,
    /// Pool.
    pub server_pool_id: String,
    /// Connection type (KasmVNC, RDP, VNC, SSH); server pools only.
    pub connection_type: Option<String>,
    /// Port.
    pub connection_port: Option<u16>,
    /// Username (static credentials, or an SSO template such as `{sso_username}`).
    pub connection_username: Option<String>,
    /// Static password (resolved secret); sent once, never logged.
    pub connection_password: Option<SecretString>,
    /// Static SSH private key (resolved secret).
    pub connection_private_key: Option<SecretString>,
    /// Passphrase of the key (resolved secret).
    pub connection_passphrase: Option<SecretString>,
    /// Use the user's own SSH key.
    pub use_user_private_key: bool,
    /// Kasm's `connection_info` JSON (RDP/VNC/SSH options), as the config gives it.
    pub connection_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// Sessions at once.
    pub max_simultaneous_sessions: u32,
    /// Kasm 1.19's `max_simultaneous_users` (server pools; Kasm 1.15's `create_server` does not read it).
    pub max_simultaneous_users: Option<u32>,
    /// Kasm's `agent_installed` (true → the record starts `starting` and waits for the Kasm Desktop
    /// Service to check in: Kasm's Require Checkin).
    pub agent_installed: bool,
    /// Enabled on creation.
    pub enabled: bool,
}

/// A record that exists in Kasm for a claim.
#[derive(Debug, Clone)]
pub struct EnsuredServer {
    /// Kasm's id of the record.
    pub server_id: String,
    /// Whether this call created it (false: it existed already).
    pub created: bool,
    /// The record's registration token (Kasm's `registration_jwt` of a one-record `get_servers`),
    /// rendered as `{checkin_jwt}`; a secret.
    pub registration_jwt: Option<SecretString>,
}

/// What went wrong talking to Kasm. Messages name the call, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KasmError {
    /// The API key was refused (403 "Access Denied", an expired key, or an unlicensed Developer API).
    #[error("Kasm refused the API key on {call}: {message}")]
    Auth {
        /// The API call.
        call: String,
        /// Kasm's message.
        message: String,
    },
    /// The key is valid but lacks a permission the call needs (401 "Unauthorized" /
    /// "Unauthorized Action", or a read-only key on a write).
    #[error("the Kasm API key lacks a permission for {call}: give it {permission} ({message})")]
    Permission {
        /// The API call.
        call: String,
        /// The permission(s) Kasm checks for this call, as its admin UI names them.
        permission: String,
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
    /// Every Docker Agent and server record, in every zone and pool, with `allocated` summed from the
    /// sessions that hold resources (`running` / `starting`).
    async fn list_servers(&self) -> Result<Vec<KasmServer>, KasmError>;
    /// Every session, in every status (session requests not placed yet included).
    async fn list_sessions(&self) -> Result<Vec<KasmSession>, KasmError>;
    /// Every staging config, with the size of the image it stages. A staging config whose image Kasm
    /// does not list is an error (a staging need of unknown size would be a wrong decision).
    async fn list_staging_configs(&self) -> Result<Vec<KasmStagingConfig>, KasmError>;
    /// Enables or disables a record (disabled = takes no new sessions: how a VM is drained).
    /// A missing record is [`KasmError::NotFound`].
    async fn set_enabled(&self, server_id: &str, enabled: bool) -> Result<(), KasmError>;
    /// Deletes a record without force: Kasm refuses while it has sessions. Deleting a missing record,
    /// or one Kasm is already deleting (`delete_pending`, `destroying`), succeeds without a call.
    async fn delete_server(&self, server_id: &str) -> Result<(), KasmError>;
    /// The record called `friendly_name` (our claims' VM names), if exactly one exists; several are
    /// an error (never a guess).
    async fn find_by_name(&self, friendly_name: &str) -> Result<Option<KasmServer>, KasmError>;
    /// Creates the record unless one called `new.friendly_name` exists, and returns its id and
    /// registration token. Safe to repeat: a retry after a lost answer finds the first record.
    async fn ensure_server(&self, new: &NewServer) -> Result<EnsuredServer, KasmError>;
    /// Points a record at the address its VM got (`hostname`).
    async fn set_hostname(&self, server_id: &str, hostname: &str) -> Result<(), KasmError>;
    /// Sets a server record's connection password (the Windows password fetcher's hand-off).
    async fn set_connection_password(&self, server_id: &str, password: &SecretString) -> Result<(), KasmError>;
}

#[cfg(test)]
mod id_key_tests {
    use super::{IdKey, norm_id, same_id};
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn spellings_of_one_uuid_are_one_key() {
        let listed = "0123456789abcdef0123456789abcdef";
        let dashed = "01234567-89AB-CDEF-0123-456789ABCDEF";
        let mut m: HashMap<IdKey, u32> = HashMap::new();
        *m.entry(IdKey::of(listed)).or_default() += 1;
        *m.entry(IdKey::of(dashed)).or_default() += 1;
        assert_eq!(m.len(), 1);
        assert_eq!(m.get(&IdKey::of("0123456789ABCDEF0123456789ABCDEF")), Some(&2));
        assert_eq!(IdKey::of(listed), IdKey::Uuid(0x0123456789abcdef0123456789abcdef));
        assert!(same_id(listed, dashed));
        assert!(!same_id(listed, "0123456789abcdef0123456789abcdee"));
        // 31 and 33 digits, a non-hex letter: not UUIDs, compared as `norm_id`s.
        assert_eq!(
            IdKey::of("0123456789abcdef0123456789abcde"),
            IdKey::Other("0123456789abcdef0123456789abcde".into())
        );
        assert!(matches!(IdKey::of("0123456789abcdef0123456789abcdef0"), IdKey::Other(_)));
        assert_eq!(IdKey::of("agent-G1"), IdKey::Other("agentg1".into()));
        assert!(!same_id("ab", "abc") && !same_id("", "a") && same_id("", "--"));
    }

    proptest! {
        /// The key is equal exactly when the `norm_id`s are: Unicode case (one character may lower to
        /// two), dashes anywhere, hex digits in either case, ids of 32 digits and of other lengths.
        #[test]
        fn the_key_is_equal_exactly_when_norm_ids_are(
            a in "[-aAbBfF09É\u{130}gG]{0,40}|[-0-9a-fA-F]{30,40}",
            b in "[-aAbBfF09É\u{130}gG]{0,40}|[-0-9a-fA-F]{30,40}",
        ) {
            let same = norm_id(&a) == norm_id(&b);
            prop_assert_eq!(IdKey::of(&a) == IdKey::of(&b), same);
            prop_assert_eq!(same_id(&a, &b), same);
            prop_assert_eq!(IdKey::of(&a), IdKey::of(&norm_id(&a)));
            prop_assert_eq!(IdKey::of(&a), IdKey::of(&a.to_uppercase()));
        }
    }
}
