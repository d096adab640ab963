//! The scaling engine: a **pure** function `decide(input, now) -> Plan`. No I/O, no clock, no
//! randomness. Every rule of KASM.md's "Scaling rule" lives here, and every plan says why.
//!
//! Where Kasm's behaviour is not public, the rules below are **our** decisions; this list is the one
//! place they are written down. `decide.rs` implements them in this order.
//!
//! # Matching
//! A Kasm record belongs to a claim when `record.server_id == instance.kasm_server_id`; claims left
//! unmatched then match by hostname (the claim's `hostname` or `vm_name`, ASCII case-insensitive) or
//! `private_ip`. A record belongs to at most one claim (claims in id order; among several matching
//! records the smallest `server_id` wins). Records of no claim are the operator's own: they count
//! toward capacity and are never drained or destroyed. Records of the other pool type are ignored.
//!
//! # Health
//! A record counts when it is enabled and its `last_checkin` is within `timers.agent_missing_after`
//! of now. Server-pool servers without the desktop service never check in, so a server record that
//! never checked in counts while enabled; one that stopped checking in is missing.
//!
//! # Docker agents
//! Per dimension d ∈ {cores, memory_mb, gpus}: capacity of one of our agents = the config's override
//! when > 0 (what the Kasm manager would have set on an agent its autoscaler launched), else Kasm's
//! per-agent `overridden` when > 0, else `reported`; an agent that is not ours (a static agent in the
//! same pool) keeps its own: `overridden` when > 0, else `reported`. `free_d` = Σ over counting records of
//! max(0, capacity − allocated − queued) + Σ over pending VMs of (per-VM size − what sessions on it
//! hold or are queued for, at least 0). `queued` = the session requests queued on the record
//! (`requested`/`provisioning`/`assigned`: Kasm starts them there once it can, though its `allocated`
//! counts only `running`/`starting`). Pending VMs are claims in requested/creating/booting whose record
//! does not count yet (e.g. registered disabled, not yet activated). Per-VM size per dimension: override
//! when > 0, else `Input::new_vm_size`, else the largest capacity among the pool's agent records; when
//! still unknown for a dimension that is short, the plan says so and at most one VM is pending at a
//! time until it reports its size.
//!
//! # Demand: standby, staging, queued requests
//! What must be free (`target_d`) = `standby_d` + staging_d + queued_d:
//! - **Staging** (Kasm's `AutoScaleConfig.desired_staged_resources`, Kasm 1.15 `data/model.py`): for
//!   every [`StagingDemand`] with `num_sessions` > 0, image size_d × (desired − currently staged); the
//!   staged sessions themselves run on the agents and already hold their room. An image larger than
//!   one VM in any dimension (the per-VM size above; Kasm compares with the config's overrides) is
//!   **unmet**: reported (per dimension, the largest excess, as Kasm's `unmet_*`), not provisioned for.
//!   Ours: desired − staged never goes below 0 (Kasm's sum would subtract an excess of staged sessions);
//!   an unknown per-VM size counts as fitting.
//! - **Queued requests** (Kasm's Aggressive Scaling): with `aggressive_scaling`, the resources of
//!   [`Input::queued`] — requests Kasm queued for this config that wait on no record — that
//!   fit one VM; larger ones are reported only. Without it they are reported and wait: Kasm's own code
//!   provisions for a queued request only with aggressive scaling (Kasm 1.15's `provider_manager`, where
//!   a request is queued: with the flag it starts creating a VM for that request at once, without it
//!   it does nothing more).
//!
//! Server pools count sessions instead: target = `minimum_pool_standby_sessions` + missing staged
//! sessions (each takes a slot; ours, Kasm's code shows only the resource sum) + queued requests
//! (aggressive).
//!
//! # Scale up
//! When `free_d < target_d` for some d: `max_d ceil((target_d − free_d) / per_vm_d)` VMs, at most
//! `max_new_vms_per_evaluation` (ours; undrains count toward it) when set. A dimension a new VM adds
//! nothing to (per_vm_d = 0) is skipped with a reason (creating VMs cannot help it). Draining VMs whose
//! record still exists and checks in are undrained first, most recently drained first. Creates are
//! capped so `owned_total + create ≤ max_instances` (`owned_total` counts every state but deleted,
//! failed and deleting included); none while `control.backoff_until > now`, while the config is
//! disabled, or while its schedules are inactive.
//!
//! # Server pools
//! Available sessions = Σ over counting server records (max sessions − sessions on it) + Σ over pending
//! servers of (`max_simultaneous_sessions_per_server` − sessions queued on it); max sessions =
//! `record.max_sessions`, else the config's value. Scale up while available < target
//! (`ceil(shortfall / max sessions)`, the same step limit), undrain first as above.
//!
//! **Single-use servers** (`reusable: false`, Kasm's default): Kasm deletes a non-reusable server
//! once its session ends. Ours: a running server of ours with any session (of an enabled config) is
//! drained at once — disabled, so no other session lands on it — and counts no capacity; the reaper
//! deletes it once its sessions end, and standby is kept with new servers. A draining server of a
//! single-use config is never undrained (it may have had a session; we keep no per-VM "used" mark,
//! so an idle drained one is replaced rather than reused). With `reusable: true` servers serve on.
//!
//! # Floor
//! An active schedule's `minimum_instances` (the largest among the active windows) keeps at least
//! that many owned VMs that are not draining (requested, creating, booting, running): missing ones
//! are undrained or created at once, whatever `max_new_vms_per_evaluation` says (it is a fixed fleet,
//! not a shortfall estimate); scale-down never goes below it.
//!
//! # Scale down
//! A candidate is an owned, running VM whose record is enabled and which has 0 sessions (counted from
//! `Input::sessions` by server id, never from `allocated`). A candidate is removable when, without
//! it, `free_d ≥ target_d` (standby, staging, counted queued requests) for every dimension it adds to
//! (a dimension it adds nothing to is not affected by its removal), counting only records — pending VMs
//! are never counted as free capacity here. Server pools: available − what it adds ≥ target. Once the clock below allows it, candidates
//! are drained greedily, newest first (created_at, then claim id), each re-checked against what is
//! left, never below the floor.
//!
//! ## The downscale clock (`request_downscale_at`, `last_provision`)
//! Kasm keeps both per config; how its clock runs is not public. Ours:
//! - The **condition**: some candidate is removable, the floor allows one fewer VM, and the plan
//!   does not scale up.
//! - The clock is [`ControlState::request_downscale_at`], read from the store and written back from
//!   [`Plan::request_downscale_at`] after every evaluation. The plan sets it to `Some(now)` when the
//!   condition holds and no clock is stored (it starts), keeps the stored value while the condition
//!   holds and less than `downscale_backoff` s have passed since it, and sets `None` (reset) when
//!   the condition does not hold. The evaluation that starts the clock never drains, even with a
//!   backoff of 0: a drain needs the condition seen at two evaluations.
//! - Once the stored clock is ≥ `downscale_backoff` s old and the condition still holds, the plan
//!   drains and resets the clock; a further drain needs the condition to hold for a whole backoff
//!   again.
//! - **A scale-up restarts the clock**: a plan that creates VMs (standby, floor or rotation
//!   replacements), undrains a VM, or wants VMs the cap or a provider backoff withholds, resets it
//!   (`None`, the reason says which). The backoff then counts from the first evaluation after it at
//!   which the condition holds again — never from before the scale-up. This is what Kasm's
//!   `last_provision` suggests; we get it from the clock alone.
//! - The clock is not checked against the evaluation interval: with evaluations every minute, a
//!   drain comes between `downscale_backoff` s and `downscale_backoff` s + one interval after the
//!   condition first held. A disabled config or an inactive schedule resets it.
//! - [`ControlState::last_provision`] is a record, not an input: the scale-evaluator sets it to now
//!   when the store accepted at least one of the plan's claims (undrains do not set it; no VM is
//!   provisioned). The engine does not read it: the plan that claimed the VMs already restarted the
//!   clock.
//!
//! # Rotation
//! Kasm 1.19's `rotate_servers_in_days` (N) and `rotate_servers_pre_warm_minutes` (P) on the config;
//! N absent or 0 = off. Kasm's docs name the fields but not this timing: the rule is ours. Only our
//! running VMs with a Kasm record rotate (the operator's records never do); a VM's age counts from
//! [`Instance::vm_since`] (the provisioner's move to `booting`: the provider made the VM).
//! - **Due** at age ≥ N days − P minutes: the VM gets one replacement claim
//!   ([`Plan::replacements`]; the claim's [`Instance::replaces`] names it) even when standby is met. A
//!   due VM with a live replacement (requested, creating, booting or running, not being destroyed)
//!   gets no other; a failed or destroyed one is claimed again. Replacements come after the standby
//!   and floor creates, under the same provider backoff and `max_instances` cap, oldest VM first; a
//!   due VM the cap or backoff leaves without one keeps serving, and the plan says why.
//! - **Retiring** = due with a live replacement: its capacity no longer counts anywhere (the
//!   replacement's does, pending or running) — not for the standby shortfall, not toward the floor,
//!   not for scale-down. Neither it nor its replacement is a scale-down candidate while it retires.
//! - **Drained** once it is N days old and its replacement counts through its record (`Drain` with
//!   `replaced_by`, no backoff clock, oldest first), even with sessions: they end where they are,
//!   and the reaper deletes the VM once it has none. The drain waits while the capacity left without
//!   it (the other retiring VMs still counted) would fall below standby / Minimum Available Sessions
//!   in a dimension it adds to, or the VMs left below the floor: the shortfall, computed without
//!   retiring VMs, creates what is missing first. Rotation never takes capacity below standby.
//! - A draining VM past its due age is never undrained. Idle scale-down candidates that are due
//!   (left without a replacement by the cap) go first.
//! - Disabled config or inactive schedule: no replacements, no rotation drains; an inactive schedule
//!   drains every VM, rotating or not, like any other ("Inactive schedule").
//!
//! # Schedules
//! Kasm's rule (`Schedule.is_active` in Kasm 1.15's `data/model.py`), matched minute for minute in
//! `schedule::is_active`. A config is active if it has no schedules or any of its schedules is
//! active. A schedule is read on the wall clock of its IANA zone at now, in whole minutes (the
//! seconds of now and of `active_start_time`/`active_end_time` are dropped); `days_of_the_week` are
//! ISO weekdays, 1 = Monday .. 7 = Sunday:
//! - today listed: start < end → active iff start ≤ now ≤ end (the end minute is inclusive);
//!   start ≥ end → active iff now ≥ start, to midnight (so start = end means "from the start until
//!   midnight", not 24 hours);
//! - today not listed, yesterday listed and start > end → active iff now ≤ end: yesterday's window
//!   past midnight. It continues into the next morning only when that day is not itself listed
//!   (Mon–Fri 22:00–06:00 is active Mon–Fri 22:00–24:00 and Saturday 00:00–06:00);
//! - "yesterday" is today's ISO number − 1, as in Kasm: on a Monday that is 0, which no schedule
//!   lists, so a Sunday window crossing midnight stops at midnight. A Kasm quirk matched knowingly;
//!   a second schedule (Monday 00:00 to the end) adds the morning.
//!
//! `24:00` (ours, accepted before this rule; Kasm stores a time of day, which cannot be 24:00) is an
//! end only and means 23:59, the last minute. DST: now becomes wall time as Python's `astimezone`
//! makes it (one wall time per instant). Skipped wall times never occur: a start in the gap opens
//! the window at the first minute after it, an end in the gap closes it when the clock jumps.
//! Repeated wall times occur twice: a window ending in the repeated hour reopens when the clock falls
//! back, one starting in it closes when the clock falls back and reopens at its start. A schedule
//! that does not parse is treated as active (fail open: never strand users) without a floor, and
//! says so. The floor (`minimum_instances`, ours) is the largest among the active schedules.
//!
//! # Inactive schedule
//! Kasm: outside the schedule no new sessions (staged or user created) are assigned to the config's
//! agents, and a VM with sessions is never removed. While the config is enabled and no schedule is
//! active:
//! - No creates, no undrains, no rotation replacements, no floor; the clock is reset.
//! - Every running VM of ours with a Kasm record is drained at once (no backoff), busy or idle:
//!   disabled in Kasm, so no new session lands on it, and deleted by the reaper once it has no
//!   sessions. The reason names the schedules and the sessions it has. (A record Kasm is already
//!   deleting takes no sessions and is left alone; a running VM without a record has nothing to
//!   disable and is left to the dead-agent timer.)
//! - Booting VMs (our rule): one that checks in is never activated; it is drained instead
//!   (`Drain` from `booting`: its record stays or becomes disabled, and the reaper deletes it). One
//!   still booting is left as it is (in-flight claims are not cancelled) and the provision timeout
//!   applies as usual; it is drained once it checks in, if the schedule is still inactive then.
//! - A VM with sessions is never destroyed (as always): it drains until its sessions end.
//! - When a schedule is active again, draining VMs that still exist and check in are undrained
//!   before anything is created (the scale-up rule: when the standby or the floor needs them,
//!   most recently drained first, within `max_new_vms_per_evaluation` unless below the floor); those
//!   not needed stay draining and go once idle. A draining VM past its rotation due age is never
//!   undrained.
//!
//! # Forecast
//! Ours (Kasm's AutoScale is reactive; the model is AWS EC2 Auto Scaling's predictive scaling: a
//! forecast from recent weeks, capacity launched one warm-up ahead, a forecast-only mode). With
//! `predictive_scaling: on` or `forecast_only` (`off`, the default, changes nothing and keeps no
//! history), [`forecast`] holds the rule's parts:
//! - **History** ([`DemandHistory`], kept in [`ControlState::history`]): 672 buckets of 15 minutes,
//!   Monday 00:00 UTC first. Each evaluation observes the demand in use ([`forecast::in_use`]: the
//!   resources of the non-staged sessions on the config's records that allocate or are queued there,
//!   plus the requests queued for it on no record; server pools count those sessions); a bucket keeps
//!   this week's peak, and the first observation of a later week folds that peak into an
//!   exponentially weighted mean and variance (the newest week weighs 0.5). A history recorded for
//!   another type, zone, pool or VM-provider config ([`forecast::identity`]) is dropped: a new or
//!   changed config starts empty. Buckets are UTC (a daylight-saving change shifts the office's
//!   pattern by an hour until the new weeks outweigh the old). Demand in use is capped by capacity:
//!   while the config is short (Docker Agents: free capacity on the agents that are up below the
//!   standby; server pools: fewer available sessions than the minimum), users wait unseen, so the
//!   demand observed during a shortage and when it ends (the users who waited placed by then) also
//!   raises every bucket since the shortage began, at most an hour back
//!   ([`DemandHistory::observe_capped`]); a peak raised that way is marked an estimate. A quarter
//!   hour observed only while the tracking pause held (below) is left out when its week closes (a
//!   holiday does not make next week's buckets erratic), unless the week before was left out too
//!   (so a lasting fall in demand is learned a week later).
//! - **Lead time**: the p90 (nearest rank) of the newest 32 of our claims' create → checked-in
//!   times (measured when the plan activates them), once 3 are measured; until then
//!   `provision_timeout / 2`; never more than `provision_timeout`.
//! - **Confidence**: a bucket forecasts only with at least 1 week folded (a config forecasts after
//!   one week of warm-up) and a weighted standard deviation of at most half its mean in every
//!   dimension with demand (judged from the second week on): thin or erratic history
//!   forecasts nothing, and the plan says which. Tracking: when the quarter hour that just ended had
//!   a mean of at least one VM's worth in its history (at least 1 week, however erratic) and demand
//!   now is below a quarter of it, today does not follow the history (a holiday) and nothing is
//!   forecast.
//! - **Forecast demand** F = per dimension the largest confident mean among the buckets from now to
//!   now + lead + one evaluation interval (a VM that checked in serves from the next evaluation), counting only instants at which the schedules are active (no pre-warming outside
//!   them); nothing while the config cannot scale up (disabled, schedule inactive). **Today's
//!   level**: where the history's level now ([`DemandHistory::level_at`]: a line from the previous
//!   bucket's mean to the current one's, both measured, not estimates) is at least one VM's worth in
//!   a dimension, and demand in use now is a share r < 1 of it (the largest share over such
//!   dimensions), F is scaled by r: a quieter day is pre-warmed for its own size. Never scaled up:
//!   a busier day gets the history's F and the reactive need.
//! - **With `on`** what must be free grows by max(0, F − in use now) per dimension (server pools:
//!   sessions): the need is the larger of the reactive need and the forecast demand plus the standby.
//!   Creates go through the usual `max_instances` cap, provider backoff and
//!   `max_new_vms_per_evaluation`, so the forecast never exceeds the cap. Scale-down keeps the same
//!   target, so VMs made for the forecast are removable only once the forecast window has passed,
//!   and then through the usual backoff clock.
//! - **With `forecast_only`** the same forecast is computed and logged ("would create +N") and
//!   reported in [`Summary::forecast`], and the plan is what `off` gives.
//!
//! # Disabled config
//! No creates, no undrains, no drains, clock reset; lifecycle actions still happen.
//!
//! # Lifecycle
//! - Booting docker agent whose record checked in recently → `Activate { enable: !record.enabled }`
//!   (agents register disabled). Booting server → activated once its record checked in, or at once
//!   when `require_checkin` is false and the record exists (enabling it if disabled). Not while an
//!   enabled config's schedule is inactive: `Drain` instead ("Inactive schedule").
//! - Booting claim not activated after `timers.provision_timeout` s in booting → `Destroy`.
//! - Running claim whose record's `last_checkin` is ≥ `agent_dead_after` old, or whose record is
//!   missing (or, docker agents, never checked in) for that long since `state_since` → `Destroy`.
//! - Failed claims → `Destroy` (cleanup). Draining and deleting claims are left to the reaper.
//! - A VM with sessions is never destroyed, whatever its claim says (the plan says why it waits).
//!
//! # Output
//! Actions come as: destroys, activates (claim id order), undrains, drains (rotation's, then
//! scale-down's in the order chosen, or the inactive schedule's in claim id order).
//! Every plan carries reasons with the numbers, and a complete [`Summary`].

mod decide;
pub mod forecast;
mod headline;
#[cfg(test)]
mod props;
pub(crate) mod schedule;
#[cfg(test)]
mod tests;

pub use decide::{decide, decide_all};
pub use forecast::{DemandHistory, ForecastSummary};

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
    /// Seconds between two evaluations (`settings.evaluation_interval`): a VM that checks in is put
    /// into service at the next one, so the forecast looks this much further ahead than a boot.
    #[serde(default = "default_evaluation_interval")]
    pub evaluation_interval: u64,
}

fn default_evaluation_interval() -> u64 {
    30
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            provision_timeout: 600,
            agent_missing_after: 600,
            agent_dead_after: 3600,
            evaluation_interval: default_evaluation_interval(),
        }
    }
}

/// The per-config runtime state the engine reads and (through the plan) updates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlState {
    /// When the scale-down condition started to hold (Kasm's `request_downscale_at`); `None` = it does not hold.
    pub request_downscale_at: Option<DateTime<Utc>>,
    /// When VMs were last requested for this config (Kasm's `last_provision`): set by the
    /// scale-evaluator when the store accepted a claim; a record only, the engine does not read it
    /// (see "The downscale clock" in the module docs).
    pub last_provision: Option<DateTime<Utc>>,
    /// No new VMs before this instant (provider capacity/failure backoff, set by the provisioner).
    pub backoff_until: Option<DateTime<Utc>>,
    /// Provider failures in a row (drives the backoff).
    pub consecutive_failures: u32,
    /// Predictive scaling: the config's time-of-week demand history and measured boot times, kept with
    /// the control record (one item per config) and replaced by [`forecast::record`] after every
    /// evaluation; `None` while `predictive_scaling` is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<DemandHistory>,
}

/// One staging config of the autoscale config, as the engine counts it: Kasm keeps `num_sessions`
/// staged sessions of an image ready, and its AutoScale keeps room for the ones still missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StagingDemand {
    /// Kasm's id of the staging config (for the decision log).
    pub staging_config_id: String,
    /// The image staged (its name or id, for the decision log).
    pub image: String,
    /// What one session of the image takes.
    pub image_size: Resources,
    /// Desired staged sessions (Kasm's `num_sessions`).
    pub num_sessions: u32,
    /// Staged sessions that exist now (Kasm's `num_current_sessions`: its sessions with `is_standby`).
    pub current_sessions: u32,
}

impl StagingDemand {
    /// Staged sessions still missing: desired − current, never below 0.
    pub fn remaining(&self) -> u32 {
        self.num_sessions.saturating_sub(self.current_sessions)
    }
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
    /// Live sessions on those records (session requests queued on them included).
    pub sessions: Vec<KasmSession>,
    /// The staging configs that count toward this config, with their staged sessions counted.
    pub staging: Vec<StagingDemand>,
    /// Session requests Kasm queued for this config (`requested`, `provisioning`, `assigned`) that wait
    /// on no record (none yet, or one Kasm no longer lists): waiting for capacity. Requests on a record
    /// are in `sessions` and take that record's room.
    pub queued: Vec<KasmSession>,
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
    /// Scale-down, rotation or an inactive schedule: disable the record and mark the claim
    /// `draining` (deleted once it has no sessions). The claim is `running`, or, for an inactive
    /// schedule, `booting` (a VM that booted outside the schedule is never put into service).
    Drain {
        /// The claim.
        claim: ClaimId,
        /// Its Kasm record.
        server_id: String,
        /// Why.
        reason: String,
        /// Rotation: the claim of the VM that replaced this one (other drains have none). A drain for
        /// rotation or an inactive schedule may disable a VM with sessions; it is still deleted only
        /// once they ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaced_by: Option<ClaimId>,
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
    /// Free capacity per dimension (docker agents), booting VMs included, VMs retiring for rotation
    /// not (their replacements stand in for them).
    pub free: Resources,
    /// Free capacity on the records that check in (docker agents): `free` without the VMs on their way
    /// up — what a user asking now can be given.
    #[serde(default)]
    pub free_ready: Resources,
    /// Standby asked for.
    pub standby: Resources,
    /// Docker agents: what the staging configs still need free, per dimension (images that fit a VM).
    #[serde(default)]
    pub staging: Resources,
    /// Docker agents: the largest amount per dimension by which a staged image exceeds what one VM
    /// offers (Kasm's "unmet"); such staging configs are reported, not provisioned for.
    #[serde(default)]
    pub staging_unmet: Resources,
    /// Server pools: staged sessions still missing (each takes a session slot).
    #[serde(default)]
    pub staging_sessions: u32,
    /// Session requests queued for the config and waiting on no record.
    #[serde(default)]
    pub queued_requests: u32,
    /// Docker agents: what those requests take, when they count as demand (`aggressive_scaling`).
    #[serde(default)]
    pub queued: Resources,
    /// What one new VM adds (after overrides).
    pub per_vm: Resources,
    /// Server pools: available sessions, booting servers included, servers retiring for rotation not.
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
    /// Predictive scaling: what the forecast saw and did (absent while `predictive_scaling` is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSummary>,
}

/// What to do for one autoscale config, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The autoscale config.
    pub autoscale_config: String,
    /// New VMs to claim, rotation replacements included.
    pub create: u32,
    /// Rotation: the claims whose replacement this plan claims, one new claim each (counted in
    /// `create`, written with [`Instance::replaces`] set); the other `create − replacements.len()`
    /// claims are for standby and the floor. Absent in decisions recorded before rotation existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replacements: Vec<ClaimId>,
    /// Per-claim actions.
    pub actions: Vec<Action>,
    /// The new value of `request_downscale_at` (the backoff clock); `None` whenever the plan creates
    /// or undrains VMs (a scale-up restarts the clock).
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
