//! Deployment-wide settings: Kasm's global timers (made settings) and how to reach the Kasm manager.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretRef;

fn deployment() -> String {
    "kasm-autoscale".to_string()
}
fn s600() -> u64 {
    600
}
fn s3600() -> u64 {
    3600
}
fn s30() -> u64 {
    30
}
fn ten() -> u32 {
    10
}
fn yes() -> bool {
    true
}

/// Settings that apply to every config of one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Id of this kasm-autoscale installation; every VM carries it as its ownership tag, and the
    /// reaper only ever deletes VMs carrying it.
    #[serde(default = "deployment")]
    pub deployment_id: String,
    /// Seconds a new VM has to check in to Kasm before it is destroyed (Kasm: 600).
    #[serde(default = "s600")]
    pub provision_timeout: u64,
    /// Seconds without a check-in before an agent counts as missing and its capacity is not counted (Kasm: 600).
    #[serde(default = "s600")]
    pub agent_missing_after: u64,
    /// Seconds without a check-in before a VM we created is destroyed as dead (Kasm: 3600).
    #[serde(default = "s3600")]
    pub agent_dead_after: u64,
    /// Destroy VMs that carry our deployment tag but have no claim (two-phase: seen twice).
    #[serde(default = "yes")]
    pub orphan_cleanup: bool,
    /// Provider calls made in parallel (Kasm: 10).
    #[serde(default = "ten")]
    pub provisioning_workers: u32,
    /// Seconds between scheduled evaluations of the local daemon (Lambda: the EventBridge schedule).
    #[serde(default = "s30")]
    pub evaluation_interval: u64,
    /// How to reach the Kasm manager's API.
    #[serde(default)]
    pub kasm: Option<KasmSettings>,
    /// Webhook secrets (signed events and the Splunk-HEC endpoint); absent = webhooks closed.
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
}

/// The webhook ways in and their secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// HMAC key of signed events (`X-Kasm-Autoscale-Signature`); absent = signed events refused.
    #[serde(default)]
    pub hmac_secret: Option<SecretRef>,
    /// Token of the Splunk-HEC endpoint (Kasm log shipping); absent = that endpoint refused.
    #[serde(default)]
    pub splunk_hec_token: Option<SecretRef>,
    /// Largest accepted body, bytes (default 262144).
    #[serde(default = "max_body")]
    pub max_body_bytes: usize,
    /// Bearer token the local daemon's `/metrics` and `/status` (the status page's data) require
    /// (`Authorization: Bearer <token>`); absent = both are open to whoever reaches the listener
    /// (loopback by default; see also `run --admin-listen`).
    #[serde(default)]
    pub metrics_token: Option<SecretRef>,
}

fn max_body() -> usize {
    262_144
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deployment_id: deployment(),
            provision_timeout: s600(),
            agent_missing_after: s600(),
            agent_dead_after: s3600(),
            orphan_cleanup: true,
            provisioning_workers: ten(),
            evaluation_interval: s30(),
            kasm: None,
            webhook: None,
        }
    }
}

/// How the Kasm API key is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KasmAuthMode {
    /// `api_key` and `api_key_secret` in the JSON body: what Kasm's Developer API documents for
    /// every version up to 1.18, and what its 1.15 server reads (the default).
    #[default]
    Body,
    /// `api-key` and `api-key-secret` request headers (Kasm 1.15's server reads them before the body).
    Header,
    /// HTTP Basic `api_key:api_key_secret`: shown only in pre-release Kasm 1.19 docs; an option,
    /// never the default.
    Basic,
}

/// How a Docker Agent VM we create gets its Kasm record (see the README, "How agents register").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentRegistration {
    /// The agent registers itself with the manager token, under the id we render as `{server_id}`
    /// (the agent installer's `-i {server_id}`); we match its record by that id only.
    #[default]
    RenderedId,
    /// We create the agent's record first (`admin/create_server`, `server_type: "host"`; the key needs
    /// Agents Create) and render the id Kasm generated as `{server_id}`.
    Precreate,
}

/// The Kasm manager this deployment scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KasmSettings {
    /// Base URL of the Kasm manager, e.g. `https://kasm.example.com`.
    pub url: String,
    /// The API key (not secret on its own).
    pub api_key: String,
    /// The API key secret (a secret reference).
    pub api_key_secret: SecretRef,
    /// How the key is sent.
    #[serde(default)]
    pub auth_mode: KasmAuthMode,
    /// Verify the manager's TLS certificate (turn off only for a lab with a self-signed certificate).
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// The zone manager token agents register with (`{manager_token}`, a secret reference).
    #[serde(default)]
    pub manager_token: Option<SecretRef>,
    /// The zone's upstream auth address (`{upstream_auth_address}`).
    #[serde(default)]
    pub upstream_auth_address: Option<String>,
    /// How the Docker Agents we create get their Kasm record.
    #[serde(default)]
    pub agent_registration: AgentRegistration,
}
