//! The store: claims (the [`Instance`] lifecycle), per-config control records, leases, decision
//! logs and orphan suspects.
//!
//! Every write that moves a claim is a compare-and-set on the claim's `version`, so a duplicate or
//! late event is a no-op ([`StoreError::Conflict`]). The `max_instances` cap is enforced by the store
//! itself in [`Store::try_claim`], atomically, never by a read-then-write in the caller.
//!
//! An evaluation of one config is [`Store::begin_evaluation`] (lease, then every read it needs) and
//! [`Store::finish_evaluation`] (control record, decision, lease back), so a backend that bills per
//! request can do each in as few requests as it can; [`begin_evaluation_stepwise`] and
//! [`finish_evaluation_stepwise`] are the same from the single-record methods.

pub mod conformance;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;
pub mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::ConfigSet;
use crate::engine::{ControlState, Plan};
use crate::model::{ClaimId, Instance, InstanceState};

#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record changed since it was read (or a claim with that id exists): someone else won.
    #[error("conflict on {key}: it was changed by someone else")]
    Conflict {
        /// The record.
        key: String,
    },
    /// No such record.
    #[error("no record {key}")]
    NotFound {
        /// The record.
        key: String,
    },
    /// A claim may not move between these states.
    #[error("claim {claim} may not move from {from} to {to}")]
    IllegalTransition {
        /// The claim.
        claim: ClaimId,
        /// Current state.
        from: InstanceState,
        /// Requested state.
        to: InstanceState,
    },
    /// The backend failed (I/O, corruption, service error).
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// A record with the version its next write must expect.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Version to pass back on write (0 = not stored yet).
    pub version: u64,
}

/// Which claims to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFilter {
    /// Only this autoscale config's.
    pub autoscale_config: Option<String>,
    /// Only this provider config's.
    pub provider_config: Option<String>,
    /// Only claims in one of these states (empty = every state).
    pub states: Vec<InstanceState>,
    /// Include `deleted` claims (ignored when `states` is given).
    pub include_deleted: bool,
}

impl InstanceFilter {
    /// Whether `i` passes the filter.
    pub fn matches(&self, i: &Instance) -> bool {
        self.autoscale_config.as_ref().is_none_or(|c| &i.autoscale_config == c)
            && self.provider_config.as_ref().is_none_or(|c| &i.provider_config == c)
            && if self.states.is_empty() {
                self.include_deleted || i.state != InstanceState::Deleted
            } else {
                self.states.contains(&i.state)
            }
    }
}

/// One evaluation, as logged: the plan carries the inputs summary and the reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// What triggered it (schedule, webhook, manual, simulate).
    pub trigger: String,
    /// The plan, with inputs summary and reasons.
    pub plan: Plan,
}

/// A change to a claim, as the change feed reports it (the local equivalent of DynamoDB Streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The claim.
    pub claim: ClaimId,
    /// State before (None = new claim).
    pub old_state: Option<InstanceState>,
    /// State after.
    pub new_state: InstanceState,
}

/// What an evaluation reads once it holds its config's lease ([`Store::begin_evaluation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSnapshot {
    /// The config's control record, with the version its write must expect.
    pub control: Versioned<ControlState>,
    /// The config's claims (every state but `deleted`), oldest first, as [`Store::list`] gives them.
    pub instances: Vec<Instance>,
    /// Claims of the provider config counting toward its cap, of every autoscale config
    /// ([`Store::count_owned`]).
    pub owned_total: u32,
}

/// The store port.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Writes a new claim **only if** fewer than `cap` claims of `claim.provider_config` count toward
    /// the cap (every state but `deleted`), atomically. `Ok(false)` = the cap is reached, nothing written.
    /// A claim id that exists already is a [`StoreError::Conflict`].
    async fn try_claim(&self, claim: &Instance, cap: u32) -> Result<bool, StoreError>;

    /// Replaces a claim **only if** its stored version is `new.version` (the version read), and
    /// returns it with the version bumped. Illegal state moves are refused.
    async fn update(&self, new: &Instance) -> Result<Instance, StoreError>;

    /// One claim.
    async fn get(&self, id: &ClaimId) -> Result<Option<Instance>, StoreError>;

    /// Claims passing `filter`, oldest first.
    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError>;

    /// Claims of a provider config counting toward its cap.
    async fn count_owned(&self, provider_config: &str) -> Result<u32, StoreError>;

    /// The control record of an autoscale config (default, version 0, when none is stored).
    async fn control(&self, autoscale_config: &str) -> Result<Versioned<ControlState>, StoreError>;

    /// Writes the control record only if its stored version is `expected_version`.
    async fn put_control(
        &self,
        autoscale_config: &str,
        state: &ControlState,
        expected_version: u64,
    ) -> Result<(), StoreError>;

    /// Takes the per-config lease for `ttl_seconds` unless another holder has it unexpired.
    async fn acquire_lease(
        &self,
        autoscale_config: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl_seconds: u64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease back (no-op unless `holder` has it).
    async fn release_lease(&self, autoscale_config: &str, holder: &str) -> Result<(), StoreError>;

    /// Starts an evaluation of `autoscale_config`: takes its lease as [`Store::acquire_lease`] does,
    /// then reads what the evaluation needs.
    ///
    /// # Behavior
    /// - `Ok(None)` when another holder has the lease unexpired; nothing is read.
    /// - The reads happen **after** the lease is taken, so they see every claim a previous holder made.
    /// - The snapshot holds the config's control record and version, its claims as
    ///   [`Store::list`] with only `autoscale_config` set gives them, and
    ///   [`Store::count_owned`] of `provider_config`.
    /// - On an error the lease may have been taken: the caller gives it back ([`Store::release_lease`]).
    ///
    /// The default is [`begin_evaluation_stepwise`]; a backend with round trips to save overrides it.
    async fn begin_evaluation(
        &self,
        autoscale_config: &str,
        provider_config: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl_seconds: u64,
    ) -> Result<Option<EvalSnapshot>, StoreError> {
        begin_evaluation_stepwise(self, autoscale_config, provider_config, holder, now, ttl_seconds).await
    }

    /// Ends an evaluation `holder` began: writes the control record if `control` is given (the state
    /// and the version read), appends `decision`, and gives the lease back.
    ///
    /// # Behavior
    /// - The control write is a compare-and-set as in [`Store::put_control`]: a stale version is a
    ///   [`StoreError::Conflict`], and then neither the decision is appended nor the lease given back
    ///   (the caller releases it).
    /// - Otherwise the outcome is that of [`Store::put_control`], [`Store::record_decision`] and
    ///   [`Store::release_lease`] in turn, also when the lease expired and another holder took it
    ///   meanwhile (that holder keeps it).
    /// - Failing to give the lease back after both writes is logged, not returned: it expires by itself.
    ///
    /// The default is [`finish_evaluation_stepwise`].
    async fn finish_evaluation(
        &self,
        autoscale_config: &str,
        holder: &str,
        control: Option<(&ControlState, u64)>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError> {
        finish_evaluation_stepwise(self, autoscale_config, holder, control, decision).await
    }

    /// Appends to the decision log.
    async fn record_decision(&self, rec: &DecisionRecord) -> Result<(), StoreError>;

    /// The newest decisions, newest first, optionally of one config.
    async fn decisions(&self, autoscale_config: Option<&str>, limit: usize) -> Result<Vec<DecisionRecord>, StoreError>;

    /// Notes that `key` (a provider VM id without a claim) was seen as an orphan; returns when it was
    /// first seen (phase one of the two-phase orphan cleanup).
    async fn mark_suspect(&self, key: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError>;

    /// Forgets a suspect (it was claimed, or deleted).
    async fn clear_suspect(&self, key: &str) -> Result<(), StoreError>;

    /// The configs stored in the store, if any were applied.
    async fn load_configs(&self) -> Result<Option<ConfigSet>, StoreError>;

    /// Replaces the stored configs.
    async fn save_configs(&self, configs: &ConfigSet) -> Result<(), StoreError>;

    /// The change feed, where the backend has one in-process.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}

/// [`Store::begin_evaluation`] from single-record calls: [`Store::acquire_lease`], then
/// [`Store::list`], [`Store::count_owned`] and [`Store::control`].
pub async fn begin_evaluation_stepwise<S: Store + ?Sized>(
    s: &S,
    autoscale_config: &str,
    provider_config: &str,
    holder: &str,
    now: DateTime<Utc>,
    ttl_seconds: u64,
) -> Result<Option<EvalSnapshot>, StoreError> {
    if !s.acquire_lease(autoscale_config, holder, now, ttl_seconds).await? {
        return Ok(None);
    }
    let filter = InstanceFilter { autoscale_config: Some(autoscale_config.to_string()), ..Default::default() };
    let instances = s.list(&filter).await?;
    let owned_total = s.count_owned(provider_config).await?;
    let control = s.control(autoscale_config).await?;
    Ok(Some(EvalSnapshot { control, instances, owned_total }))
}

/// [`Store::finish_evaluation`] from single-record calls: [`Store::put_control`] (when given),
/// [`Store::record_decision`], [`Store::release_lease`].
pub async fn finish_evaluation_stepwise<S: Store + ?Sized>(
    s: &S,
    autoscale_config: &str,
    holder: &str,
    control: Option<(&ControlState, u64)>,
    decision: &DecisionRecord,
) -> Result<(), StoreError> {
    if let Some((state, expected)) = control {
        s.put_control(autoscale_config, state, expected).await?;
    }
    s.record_decision(decision).await?;
    if let Err(e) = s.release_lease(autoscale_config, holder).await {
        tracing::warn!(autoscale_config, error = %e, "failed to release the lease; it expires by itself");
    }
    Ok(())
}

/// When a lease taken at `now` for `ttl_seconds` expires (the end of time if that overflows).
pub fn lease_expiry(now: DateTime<Utc>, ttl_seconds: u64) -> DateTime<Utc> {
    i64::try_from(ttl_seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Moves a claim to `to` at `now` (bumping nothing: the store bumps the version), or says why not.
pub fn moved(inst: &Instance, to: InstanceState, now: DateTime<Utc>) -> Result<Instance, StoreError> {
    if !inst.state.can_move_to(to) {
        return Err(StoreError::IllegalTransition { claim: inst.id.clone(), from: inst.state, to });
    }
    let mut n = inst.clone();
    n.state = to;
    n.state_since = now;
    n.transitions.insert(to.as_str().to_string(), now);
    Ok(n)
}
