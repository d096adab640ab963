//! Kasm's autoscale config: one pool + zone, one VM-provider config, optional DNS config.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::json_text::JsonText;
use super::kasm_names::{
    Accept, KasmColumn, KasmColumns, Target, Unit, no_field, own_id_kept, reference, same, same_or_empty, size,
};
use super::secret::SecretRef;

/// What the config scales: Docker Agents (many container sessions per VM) or Server-pool VMs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoscaleType {
    /// VMs running the Kasm Agent; scaled on standby cores / memory / GPUs. Kasm writes `Docker Agent`.
    #[default]
    #[serde(alias = "Docker Agent")]
    DockerAgent,
    /// Whole VMs reached over RDP / KasmVNC / VNC / SSH; scaled on Minimum Available Sessions. Kasm writes
    /// `Server` (its Helm chart's preseed documentation).
    #[serde(alias = "Server")]
    Server,
}

/// How Kasm connects to a server-pool VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConnectionType {
    /// KasmVNC.
    #[default]
    KasmVNC,
    /// RDP.
    RDP,
    /// VNC.
    VNC,
    /// SSH.
    SSH,
}

/// Predictive pre-warming (ours; Kasm's own AutoScale is reactive): whether the config keeps a
/// time-of-week demand history and provisions ahead of the demand it forecasts. The rule is written
/// once in `engine/mod.rs` ("Forecast").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PredictiveScaling {
    /// Reactive only (the default): no history is kept, nothing is forecast.
    #[default]
    Off,
    /// The history is kept and the forecast raises what must be free ahead of a rush.
    On,
    /// The history is kept and the forecast is computed, logged and reported (what it would have done),
    /// but it never changes the plan: the mode to evaluate before turning it on.
    ForecastOnly,
}

impl PredictiveScaling {
    /// Whether the history is kept and the forecast computed (`on` or `forecast_only`).
    pub fn records(self) -> bool {
        self != PredictiveScaling::Off
    }

    /// The config-file spelling (`off`, `on`, `forecast_only`).
    pub fn as_str(self) -> &'static str {
        match self {
            PredictiveScaling::Off => "off",
            PredictiveScaling::On => "on",
            PredictiveScaling::ForecastOnly => "forecast_only",
        }
    }
}

fn yes() -> bool {
    true
}
fn default_backoff() -> u64 {
    1800
}
fn one() -> u32 {
    1
}

/// An autoscale config, with Kasm's field names and defaults (see KASM.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleConfig {
    /// Name of the config; other configs refer to it by this name.
    pub autoscale_config_name: String,
    /// Kasm's id of this autoscale config, when it mirrors one in Kasm (Kasm's `autoscale_config_id`;
    /// `kasm-autoscale import` keeps it). Kasm names its autoscale configs by id on the staging configs
    /// it counts toward them and on the session requests it queues for them: with the id set, those
    /// count here (see "How it decides" in the README).
    #[serde(default)]
    pub autoscale_config_id: Option<String>,
    /// Docker Agent or Server pool.
    #[serde(default)]
    pub autoscale_type: AutoscaleType,
    /// Disabled configs are neither scaled up nor down.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The Kasm pool (server pool id) the VMs join.
    pub server_pool_id: String,
    /// The Kasm deployment zone the VMs join.
    pub zone_id: String,
    /// Name of the VM-provider config (in `vm_provider_configs`) that creates the VMs.
    #[serde(alias = "vm_provider_config_id")]
    pub vm_provider_config: String,
    /// Name of the DNS-provider config (in `dns_provider_configs`), when `register_dns` is on.
    #[serde(default, alias = "dns_provider_config_id")]
    pub dns_provider_config: Option<String>,
    /// Kasm's Aggressive Scaling ("the system may take more expedient measures to provision raw compute
    /// resources for on-demand session requests"): session requests Kasm has queued for this config
    /// because nothing could take them (`requested`, `provisioning`, `assigned` without a server of the
    /// pool) are demand, and VMs are created for them. Off: they wait for capacity that standby and
    /// staging provide, as in Kasm, where only aggressive scaling provisions for a queued request.
    /// Kasm's default (1.19): true.
    #[serde(default = "yes")]
    pub aggressive_scaling: bool,
    /// Ours: at most this many VMs created or re-enabled per evaluation for the standby, staging and
    /// queued-request shortfall (absent = all the shortfall needs at once; 1 = one step at a time, what
    /// `aggressive_scaling: false` meant before it took Kasm's meaning). A schedule's
    /// `minimum_instances` and rotation replacements are not limited by it.
    #[serde(default)]
    pub max_new_vms_per_evaluation: Option<std::num::NonZeroU32>,
    /// Seconds the scale-down condition must hold continuously before idle VMs are removed.
    #[serde(default = "default_backoff")]
    pub downscale_backoff: u64,
    /// Free cores to keep available across the pool's agents.
    #[serde(default)]
    pub standby_cores: f64,
    /// Free GPUs to keep available.
    #[serde(default)]
    pub standby_gpus: f64,
    /// Free memory (MB) to keep available.
    #[serde(default)]
    pub standby_memory_mb: f64,
    /// Cores each agent is counted with (0 = what the agent reports).
    #[serde(default)]
    pub agent_cores_override: f64,
    /// GPUs each agent is counted with (0 = what the agent reports).
    #[serde(default)]
    pub agent_gpus_override: f64,
    /// Memory (GB) each agent is counted with (0 = what the agent reports).
    #[serde(default)]
    pub agent_memory_override_gb: f64,
    /// Register a DNS record for every VM.
    #[serde(default)]
    pub register_dns: bool,
    /// Base domain the DNS records are created under.
    #[serde(default)]
    pub base_domain_name: Option<String>,
    /// Server pools: how Kasm connects to the VM.
    #[serde(default)]
    pub connection_type: Option<ConnectionType>,
    /// Server pools: the port of the connection.
    #[serde(default)]
    pub connection_port: Option<u16>,
    /// Server pools: the credential type (e.g. static, dynamic).
    #[serde(default)]
    pub connection_credential_type: Option<String>,
    /// Server pools: the connection username.
    #[serde(default)]
    pub connection_username: Option<String>,
    /// Server pools: the connection password (a secret reference).
    #[serde(default)]
    pub connection_password: Option<SecretRef>,
    /// Server pools: the SSH private key (a secret reference).
    #[serde(default)]
    pub connection_private_key: Option<SecretRef>,
    /// Server pools: the passphrase of the private key (a secret reference).
    #[serde(default)]
    pub connection_passphrase: Option<SecretRef>,
    /// Server pools: use the user's own private key.
    #[serde(default)]
    pub use_user_private_key: bool,
    /// Server pools: domain appended to SSO usernames.
    #[serde(default)]
    pub connection_sso_username_domain: Option<String>,
    /// Server pools: extra connection info (a JSON object, or JSON text of one).
    #[serde(default)]
    pub connection_info: Option<JsonText<serde_json::Map<String, serde_json::Value>>>,
    /// Server pools: sessions one server takes at once.
    #[serde(default = "one")]
    pub max_simultaneous_sessions_per_server: u32,
    /// Server pools: "Minimum Available Sessions" to keep free.
    #[serde(default)]
    pub minimum_pool_standby_sessions: u32,
    /// Server pools: wait for the server to check in before it is used.
    #[serde(default)]
    pub require_checkin: bool,
    /// Server pools: "Kasm Desktop Service Installed".
    #[serde(default)]
    pub agent_installed: bool,
    /// Server pools: whether a server is used again after a session (Kasm's `reusable`, default false).
    /// When false (Kasm's default) each server is single-use: once a session has started on it, it
    /// takes no other (we disable it) and is deleted when its sessions end; standby is kept with new
    /// servers.
    #[serde(default)]
    pub reusable: bool,
    /// Server pools: Kasm 1.19's `max_simultaneous_users` (users at once on a server; Kasm's default
    /// 1), sent with the server records we create.
    #[serde(default = "one")]
    pub max_simultaneous_users: u32,
    /// AD: create a computer record for every VM.
    #[serde(default)]
    pub ad_create_machine_record: bool,
    /// AD: the container DN computer records are created in.
    #[serde(default)]
    pub ad_computer_container_dn: Option<String>,
    /// AD: remove computer records recursively on cleanup.
    #[serde(default)]
    pub ad_recursive_machine_record_cleanup: bool,
    /// AD: the Kasm LDAP config used for AD joins.
    #[serde(default)]
    pub ldap_id: Option<String>,
    // Server rotation. Facts: Kasm 1.19's database schema (kasm-helm `tests/schemas/1_19_0-schema.yaml`)
    // has both columns on `autoscale_configs` as nullable INTEGERs, and Kasm's Helm preseed docs
    // (kasm-helm `charts/kasm-helm/docs/preseed.md`) list both as optional with default `null`. Kasm's
    // developer docs list "agent rotation" among the Docker Agent pool's AutoScale settings
    // (https://docs.kasm.com/docs/develop/how-to/autoscale/infrastructure-components), so rotation is
    // not limited to server pools. The exact timing (when the replacement counts, when the old VM is
    // drained, what the cap and standby do to it) is not in the docs we could read: that rule is our
    // decision, written down once in `engine/mod.rs` ("Rotation").
    /// Server rotation (Kasm 1.19 `rotate_servers_in_days`): a VM of this config is replaced once it
    /// has existed this many days — its replacement is claimed
    /// `rotate_servers_pre_warm_minutes` ahead, then the old VM is drained (disabled in Kasm) and
    /// deleted once it has no sessions. Absent (Kasm's default, `null`) or 0 = no rotation. Applies to
    /// docker_agent and server configs alike.
    #[serde(default)]
    pub rotate_servers_in_days: Option<u32>,
    /// Server rotation (Kasm 1.19 `rotate_servers_pre_warm_minutes`): how many minutes before a VM
    /// reaches `rotate_servers_in_days` its replacement is claimed, so the replacement is up when the
    /// old VM is drained. Absent (Kasm's default, `null`) = 0: the replacement is claimed when the old
    /// VM reaches its rotation age. Must be shorter than the rotation period.
    #[serde(default)]
    pub rotate_servers_pre_warm_minutes: Option<u32>,
    /// Ours (no Kasm column): predictive pre-warming, `off` (default), `on` or `forecast_only`. With
    /// `on`, what must be free is raised to the demand a 15-minute time-of-week history forecasts one
    /// boot ahead (never above `max_instances`, never outside the schedules' active windows, nothing
    /// from a thin or erratic history); `forecast_only` logs and reports the forecast without acting.
    #[serde(default)]
    pub predictive_scaling: PredictiveScaling,
}

/// Kasm's `autoscale_configs` columns. A config names its VM-provider (and DNS-provider) config by one of
/// eleven (five) id columns, one per provider; they resolve to our `vm_provider_config` /
/// `dns_provider_config` by the ids the provider configs of the same file carry.
impl KasmColumns for AutoscaleConfig {
    const KASM_TABLE: &'static str = "autoscale_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id_kept("autoscale_config_id"),
        same("autoscale_config_name"),
        same("autoscale_type"),
        same("enabled"),
        same("server_pool_id"),
        same("zone_id"),
        reference("aws_config_id", "vm_provider_config", Target::VmProvider("aws")),
        reference("azure_config_id", "vm_provider_config", Target::VmProvider("azure")),
        reference("digital_ocean_vm_config_id", "vm_provider_config", Target::VmProvider("digital_ocean")),
        reference("gcp_vm_config_id", "vm_provider_config", Target::VmProvider("gcp")),
        reference("harvester_vm_config_id", "vm_provider_config", Target::VmProvider("harvester")),
        reference("kubevirt_vm_config_id", "vm_provider_config", Target::VmProvider("kubevirt")),
        reference("nutanix_vm_config_id", "vm_provider_config", Target::VmProvider("nutanix")),
        reference("oci_vm_config_id", "vm_provider_config", Target::VmProvider("oci")),
        reference("openstack_vm_config_id", "vm_provider_config", Target::VmProvider("openstack")),
        reference("proxmox_vm_config_id", "vm_provider_config", Target::VmProvider("proxmox")),
        reference("vsphere_vm_config_id", "vm_provider_config", Target::VmProvider("vsphere")),
        reference("aws_dns_config_id", "dns_provider_config", Target::DnsProvider("aws")),
        reference("azure_dns_config_id", "dns_provider_config", Target::DnsProvider("azure")),
        reference("digital_ocean_dns_config_id", "dns_provider_config", Target::DnsProvider("digital_ocean")),
        reference("gcp_dns_config_id", "dns_provider_config", Target::DnsProvider("gcp")),
        reference("oci_dns_config_id", "dns_provider_config", Target::DnsProvider("oci")),
        same("aggressive_scaling"),
        same("downscale_backoff"),
        same("standby_cores"),
        same("standby_gpus"),
        size("standby_memory_bytes", "standby_memory_mb", Unit::Bytes, Unit::Mb, false),
        same("agent_cores_override"),
        same("agent_gpus_override"),
        size("agent_memory_override_bytes", "agent_memory_override_gb", Unit::Bytes, Unit::Gb, false),
        same("register_dns"),
        same("base_domain_name"),
        same("connection_type"),
        same("connection_port"),
        same("connection_credential_type"),
        same("connection_username"),
        same("connection_password"),
        same("connection_private_key"),
        same("connection_passphrase"),
        same("use_user_private_key"),
        same("connection_sso_username_domain"),
        same_or_empty("connection_info"),
        same("max_simultaneous_sessions_per_server"),
        same("minimum_pool_standby_sessions"),
        same("require_checkin"),
        same("agent_installed"),
        same("ad_create_machine_record"),
        same("ad_computer_container_dn"),
        same("ad_recursive_machine_record_cleanup"),
        same("ldap_id"),
        no_field("last_provision", "runtime state Kasm keeps; kasm-autoscale keeps its own in its store", Accept::Any),
        no_field(
            "request_downscale_at",
            "runtime state Kasm keeps; kasm-autoscale keeps its own in its store",
            Accept::Any,
        ),
        no_field(
            "hooks",
            "Kasm's autoscale hooks are run by Kasm's own autoscaler; kasm-autoscale does not run them",
            Accept::Unset,
        ),
        same("reusable"),
        same("max_simultaneous_users"),
        same("rotate_servers_in_days"),
        same("rotate_servers_pre_warm_minutes"),
        // Kasm 1.15 and 1.16 only (removed in 1.17): the TLS certificate and key of the VMs' nginx.
        no_field(
            "nginx_cert",
            "removed in Kasm 1.17; kasm-autoscale renders `{nginx_cert_in}` as None",
            Accept::UnsetOrSecretRef,
        ),
        no_field(
            "nginx_key",
            "removed in Kasm 1.17; kasm-autoscale renders `{nginx_key_in}` as None",
            Accept::UnsetOrSecretRef,
        ),
    ];
}

impl AutoscaleConfig {
    /// A docker-agent config with Kasm's defaults (tests and examples start here).
    pub fn docker_agent(name: &str, provider_config: &str) -> Self {
        AutoscaleConfig {
            autoscale_config_name: name.to_string(),
            autoscale_config_id: None,
            autoscale_type: AutoscaleType::DockerAgent,
            enabled: true,
            server_pool_id: "pool".into(),
            zone_id: "zone".into(),
            vm_provider_config: provider_config.to_string(),
            dns_provider_config: None,
            aggressive_scaling: true,
            max_new_vms_per_evaluation: None,
            downscale_backoff: default_backoff(),
            standby_cores: 0.0,
            standby_gpus: 0.0,
            standby_memory_mb: 0.0,
            agent_cores_override: 0.0,
            agent_gpus_override: 0.0,
            agent_memory_override_gb: 0.0,
            register_dns: false,
            base_domain_name: None,
            connection_type: None,
            connection_port: None,
            connection_credential_type: None,
            connection_username: None,
            connection_password: None,
            connection_private_key: None,
            connection_passphrase: None,
            use_user_private_key: false,
            connection_sso_username_domain: None,
            connection_info: None,
            max_simultaneous_sessions_per_server: 1,
            minimum_pool_standby_sessions: 0,
            require_checkin: false,
            agent_installed: false,
            reusable: false,
            max_simultaneous_users: 1,
            ad_create_machine_record: false,
            ad_computer_container_dn: None,
            ad_recursive_machine_record_cleanup: false,
            ldap_id: None,
            rotate_servers_in_days: None,
            rotate_servers_pre_warm_minutes: None,
            predictive_scaling: PredictiveScaling::Off,
        }
    }

    /// Server rotation as `(rotate after, claim the replacement after)` in seconds of a VM's age, or
    /// `None` when rotation is off (`rotate_servers_in_days` absent or 0). A pre-warm longer than the
    /// period (refused by validation) claims the replacement as soon as the VM exists.
    pub fn rotation(&self) -> Option<(i64, i64)> {
        let days = self.rotate_servers_in_days.filter(|d| *d > 0)?;
        let rotate = days as i64 * 86_400;
        let pre_warm = self.rotate_servers_pre_warm_minutes.unwrap_or(0) as i64 * 60;
        Some((rotate, (rotate - pre_warm).max(0)))
    }

    /// The standby the config asks for, per dimension.
    pub fn standby(&self) -> crate::model::Resources {
        crate::model::Resources::new(self.standby_cores, self.standby_memory_mb, self.standby_gpus)
    }

    /// The OS family of this config's VMs: the provider config's, or for a server pool reached over RDP
    /// what the provider config says such servers run (`os_for_rdp_servers`).
    pub fn vm_os(&self, provider: &crate::config::VmProviderConfig) -> crate::model::OsFamily {
        if self.autoscale_type == AutoscaleType::Server && self.connection_type == Some(ConnectionType::RDP) {
            return provider.common().os_for_rdp_servers();
        }
        provider.common().os()
    }

    /// The overrides (0 = not set), per dimension, memory converted to MB.
    pub fn overrides(&self) -> crate::model::Resources {
        crate::model::Resources::new(
            self.agent_cores_override,
            self.agent_memory_override_gb * 1024.0,
            self.agent_gpus_override,
        )
    }
}
