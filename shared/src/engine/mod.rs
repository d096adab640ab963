//! The scaling engine: a **pure** function `decide(input, now) -> Plan`. No I/O, no clock, no
//! randomness. Every rule of KASM.md's "Scaling rule" lives here, and every plan says why.

mod decide;

pub use decide::{decide, decide_all};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::config::{AutoscaleConfig, Schedule};
use crate::kasm::{KasmServer, KasmSession};
use crate::model::{ClaimId, Instance, Resources};

/// Global timers (Kasm's defaults are settings, see [`crate::config::Settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timers {
    /// Seconds a booting VM has to check in before it is destroyed.
    pub provision_timeout: u64,
    /// Seconds without a check-in after which an agent's capacity no longer counts.
    pub agent_missing_after: u64,
    /// Seconds without a check-in after which a VM we own is destroyed as dead.
    pub agent_dead_after: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { provision_timeout: 600, agent_missing_after: 600, agent_dead_after: 3600 }
    }
}

/// The per-config runtime state the engine reads and (through the plan) updates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlState {
    /// When the scale-down condition started to hold (Kasm's `request_downscale_at`); `None` = it does not hold.
    pub request_downscale_at: Option<DateTime<Utc>>,
    /// When VMs were last requested for this config.
    pub last_provision: Option<DateTime<Utc>>,
    /// No new VMs before this instant (provider capacity/failure backoff, set by the provisioner).
    pub backoff_until: Option<DateTime<Utc>>,
    /// Provider failures in a row (drives the backoff).
    pub consecutive_failures: u32,
}

/// Everything `decide` needs for one autoscale config.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The autoscale config.
    pub config: AutoscaleConfig,
    /// Its schedules (empty = always active).
    pub schedules: Vec<Schedule>,
    /// The provider config's `max_instances`.
    pub max_instances: u32,
    /// Claims counting toward the provider config's cap, across every autoscale config sharing it
    /// (every state but `deleted`).
    pub owned_total: u32,
    /// What one new VM adds before the config's overrides apply (from the provider config's size or
    /// the provider's instance type); `None` = unknown, overrides must be set.
    pub new_vm_size: Option<Resources>,
    /// Runtime state.
    pub control: ControlState,
    /// Global timers.
    pub timers: Timers,
    /// This config's claims, every state but `deleted`.
    pub instances: Vec<Instance>,
    /// Kasm's records in this config's zone and pool (ours and the operator's own).
    pub servers: Vec<KasmServer>,
    /// Live sessions on those records.
    pub sessions: Vec<KasmSession>,
}

/// One thing the app must do for one claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A VM we created checked in: enable its record if disabled, and mark the claim `running`.
    Activate {
        /// The claim.
        claim: ClaimId,
        /// Its Kasm record.
        server_id: String,
        /// The record is disabled and must be enabled.
        enable: bool,
    },
    /// Scale-down: disable the record and mark the claim `draining` (deleted once it has no sessions).
    Drain {
        /// The claim.
        claim: ClaimId,
        /// Its Kasm record.
        server_id: String,
        /// Why.
        reason: String,
    },
    /// Demand came back: re-enable a draining VM instead of creating a new one.
    Undrain {
        /// The claim.
        claim: ClaimId,
        /// Its Kasm record.
        server_id: String,
    },
    /// Destroy the VM now (provision timeout, dead agent, failed create).
    Destroy {
        /// The claim.
        claim: ClaimId,
        /// Why.
        reason: String,
    },
}

/// The inputs as the engine saw them, for the decision log and `plan`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Whether a schedule (or none) makes the config active now.
    pub active: bool,
    /// Free capacity per dimension (docker agents), booting VMs included.
    pub free: Resources,
    /// Standby asked for.
    pub standby: Resources,
    /// What one new VM adds (after overrides).
    pub per_vm: Resources,
    /// Server pools: available sessions, booting servers included.
    pub available_sessions: u32,
    /// Server pools: Minimum Available Sessions.
    pub minimum_sessions: u32,
    /// Claims by state.
    pub vms_by_state: BTreeMap<String, u32>,
    /// Live sessions on this config's records.
    pub sessions: u32,
    /// Claims counting toward the cap (provider config wide).
    pub owned_total: u32,
    /// The cap.
    pub max_instances: u32,
    /// Floor from an active schedule's `minimum_instances`.
    pub minimum_instances: u32,
}

/// What to do for one autoscale config, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The autoscale config.
    pub autoscale_config: String,
    /// New VMs to claim.
    pub create: u32,
    /// Per-claim actions.
    pub actions: Vec<Action>,
    /// The new value of `request_downscale_at` (the backoff clock).
    pub request_downscale_at: Option<DateTime<Utc>>,
    /// Human-readable reasons, e.g. "free cores 2 < standby 8: +2 agents of 4 cores".
    pub reasons: Vec<String>,
    /// The inputs as seen.
    pub summary: Summary,
}

impl Plan {
    /// Whether applying the plan changes anything (VMs or records). The backoff clock alone does not count.
    pub fn changes_something(&self) -> bool {
        self.create > 0 || !self.actions.is_empty()
    }
}
