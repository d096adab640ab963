//! The scale-evaluator's handler: per config, take the lease and read the store (one
//! [`Store::begin_evaluation`](crate::store::Store::begin_evaluation)), decide, write claims and mark
//! drains, then write the control record and the decision and release (one
//! [`Store::finish_evaluation`](crate::store::Store::finish_evaluation)). Kasm is read once for all.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

use super::{AppError, Ctx};
use crate::config::{AutoscaleConfig, StagingConfig, VmProviderConfig};
use crate::engine::{self, Action, Input, Plan, StagingDemand};
use crate::kasm::{KasmServer, KasmSession, KasmStagingConfig, norm_id, same_id};
use crate::model::{ClaimId, Instance, InstanceState};
use crate::store::{DecisionRecord, EvalSnapshot, InstanceFilter, moved};

/// What one config's evaluation came to.
#[derive(Debug)]
pub struct EvalOutcome {
    /// The autoscale config.
    pub autoscale_config: String,
    /// The plan, or why there is none.
    pub result: Result<Plan, AppError>,
    /// Claims written (new VMs requested).
    pub claimed: Vec<ClaimId>,
    /// Another evaluation held the config's lease: nothing was done.
    pub skipped_lease: bool,
}

/// What one read of Kasm gives every config's evaluation, indexed once (see [`ViewIndex`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct KasmView {
    /// Every record.
    pub servers: Vec<KasmServer>,
    /// Every session, placed or not.
    pub sessions: Vec<KasmSession>,
    /// Every staging config Kasm has.
    pub staging: Vec<KasmStagingConfig>,
    /// Lookups into `servers` and `sessions`.
    index: ViewIndex,
}

/// Kasm's records and sessions indexed by what a config's scope asks for, with every id normalised
/// once. Each config's evaluation is then a few lookups, not a pass over every record and session with
/// ids normalised again: with 1,000 configs over 20,000 records and 100,000 sessions, those passes took
/// minutes (`examples/evaluate_rss.rs`). Positions are into [`KasmView::servers`] / [`KasmView::sessions`].
#[derive(Debug, Clone, Default)]
struct ViewIndex {
    /// Normalised record id → records.
    by_id: HashMap<String, Vec<usize>>,
    /// `friendly_name` → records.
    by_name: HashMap<String, Vec<usize>>,
    /// (normalised zone, normalised pool or `None`) → records.
    by_zone_pool: HashMap<(String, Option<String>), Vec<usize>>,
    /// Normalised record id → the sessions placed on it.
    sessions_on: HashMap<String, Vec<usize>>,
    /// Sessions Kasm queued ([`KasmSession::is_queued`]).
    queued: Vec<usize>,
    /// Staged sessions (`is_standby`).
    staged: Vec<usize>,
}

impl KasmView {
    /// The view of these records, sessions and staging configs, indexed.
    pub(crate) fn new(servers: Vec<KasmServer>, sessions: Vec<KasmSession>, staging: Vec<KasmStagingConfig>) -> Self {
        let mut index = ViewIndex::default();
        for (i, s) in servers.iter().enumerate() {
            index.by_id.entry(norm_id(&s.server_id)).or_default().push(i);
            if let Some(n) = &s.friendly_name {
                index.by_name.entry(n.clone()).or_default().push(i);
            }
            let key = (norm_id(&s.zone_id), s.server_pool_id.as_deref().map(norm_id));
            index.by_zone_pool.entry(key).or_default().push(i);
        }
        for (i, k) in sessions.iter().enumerate() {
            index.sessions_on.entry(norm_id(&k.server_id)).or_default().push(i);
            if k.is_queued() {
                index.queued.push(i);
            }
            if k.is_standby {
                index.staged.push(i);
            }
        }
        KasmView { servers, sessions, staging, index }
    }

    /// Whether Kasm lists a record of this (normalised) id.
    fn lists(&self, norm: &str) -> bool {
        self.index.by_id.contains_key(norm)
    }
}

/// Reads Kasm once: records, sessions and staging configs.
async fn read_kasm(ctx: &Ctx) -> Result<KasmView, crate::kasm::KasmError> {
    let servers = ctx.kasm.list_servers().await?;
    let sessions = ctx.kasm.list_sessions().await?;
    let staging = ctx.kasm.list_staging_configs().await?;
    warn_unlinked_requests(ctx, &sessions);
    Ok(KasmView::new(servers, sessions, staging))
}

/// Session requests Kasm queued for an autoscale config none of ours has as `autoscale_config_id`
/// count nowhere: say so once per evaluation.
fn warn_unlinked_requests(ctx: &Ctx, sessions: &[KasmSession]) {
    let mut unlinked: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for k in sessions.iter().filter(|k| k.is_queued()) {
        let id = k.autoscale_config_id.as_deref().unwrap_or("");
        let ours = ctx
            .configs
            .autoscale_configs
            .iter()
            .any(|c| c.autoscale_config_id.as_deref().is_some_and(|own| !id.is_empty() && same_id(own, id)));
        if !ours {
            *unlinked.entry(if id.is_empty() { "(none)".into() } else { id.to_string() }).or_default() += 1;
        }
    }
    for (id, n) in unlinked {
        tracing::warn!(
            kasm_autoscale_config_id = %id,
            requests = n,
            "session requests Kasm queued for this autoscale config count toward none of ours: set that id as an autoscale config's autoscale_config_id"
        );
    }
}

/// Evaluates `only` (one config by name) or every config, at the clock's now. `trigger` is logged.
///
/// Kasm is read once for all configs; when that read fails, every config's evaluation stops with
/// the error and nothing is created or destroyed. Configs are evaluated concurrently (at most
/// [`Tuning::evaluation_concurrency`](super::Tuning::evaluation_concurrency) at a time; each under its
/// own lease, and a provider's cap is held by the store's claim transaction, not by running them in
/// turn); the outcomes come back in the configs' order.
pub async fn evaluate(ctx: &Ctx, only: Option<&str>, trigger: &str) -> Vec<EvalOutcome> {
    use futures::StreamExt as _;
    let configs: Vec<&AutoscaleConfig> =
        ctx.configs.autoscale_configs.iter().filter(|c| only.is_none_or(|n| c.autoscale_config_name == n)).collect();
    let kasm_view = read_kasm(ctx).await;
    // The futures are built first (they do nothing until polled): a closure inside the stream
    // would make this future's type too general to be `Send` for the daemon's spawned tasks.
    let each: Vec<_> = configs.into_iter().map(|cfg| evaluate_config(ctx, cfg, &kasm_view, trigger)).collect();
    futures::stream::iter(each).buffered(ctx.tuning.evaluation_concurrency.max(1)).collect().await
}

/// One config's evaluation: lease and snapshot, decide, apply, record.
async fn evaluate_config(
    ctx: &Ctx,
    cfg: &AutoscaleConfig,
    kasm_view: &Result<KasmView, crate::kasm::KasmError>,
    trigger: &str,
) -> EvalOutcome {
    let name = cfg.autoscale_config_name.clone();
    let view = match kasm_view {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(autoscale_config = %name, error = %e, "evaluation stopped: Kasm could not be read; nothing created or destroyed");
            return EvalOutcome {
                autoscale_config: name,
                result: Err(AppError::Kasm(e.clone())),
                claimed: vec![],
                skipped_lease: false,
            };
        }
    };
    let now = ctx.clock.now();
    let begun =
        ctx.store.begin_evaluation(&name, &cfg.vm_provider_config, &ctx.holder, now, ctx.tuning.lease_seconds).await;
    let mut claimed = Vec::new();
    let result = match begun {
        Ok(Some(snapshot)) => evaluate_one(ctx, cfg, view, snapshot, now, trigger, &mut claimed).await,
        Ok(None) => {
            tracing::info!(autoscale_config = %name, "skipped: another evaluation holds this config's lease");
            return EvalOutcome {
                result: Err(AppError::LeaseHeld(name.clone())),
                autoscale_config: name,
                claimed: vec![],
                skipped_lease: true,
            };
        }
        // The lease may have been taken before a read failed.
        Err(e) => Err(e.into()),
    };
    if let Err(e) = &result {
        // On success `finish_evaluation` gave the lease back.
        if let Err(e) = ctx.store.release_lease(&name, &ctx.holder).await {
            tracing::warn!(autoscale_config = %name, error = %e, "failed to release the lease; it expires by itself");
        }
        tracing::error!(autoscale_config = %name, error = %e, "evaluation failed");
    }
    EvalOutcome { autoscale_config: name, result, claimed, skipped_lease: false }
}

/// Evaluates what a trigger names (every config, some, or none), as the schedule, webhooks and manual
/// invocations ask for it.
pub async fn evaluate_triggered(ctx: &Ctx, trigger: &crate::webhook::Trigger, why: &str) -> Vec<EvalOutcome> {
    use crate::webhook::Trigger;
    match trigger {
        Trigger::None => vec![],
        Trigger::All => evaluate(ctx, None, why).await,
        Trigger::Configs(names) => {
            let mut out = Vec::new();
            for n in names {
                out.extend(evaluate(ctx, Some(n), why).await);
            }
            out
        }
    }
}

/// The records of a config's zone and pool, and the sessions on them.
///
/// Our own VMs' records always belong to the config that claimed them (matched by the claim's
/// `server_id` or, for records we create, the claim's VM name as `friendly_name`). Other records
/// belong when their zone matches and their `server_pool_id` is the config's — or, for Docker Agents
/// in no pool (Kasm lists `server_pool_id: null` for agents never assigned to one), by zone alone:
/// capacity that may serve the pool is counted rather than ignored, so a missing field can never make
/// the evaluator see an empty pool and scale up to the cap.
pub(crate) fn scope(
    cfg: &AutoscaleConfig,
    view: &KasmView,
    ours: &HashSet<String>,
    names: &HashSet<&str>,
) -> (Vec<KasmServer>, Vec<KasmSession>) {
    let ix = &view.index;
    let mut picked: Vec<usize> = Vec::new();
    for id in ours {
        picked.extend(ix.by_id.get(id).into_iter().flatten());
    }
    for n in names {
        picked.extend(ix.by_name.get(*n).into_iter().flatten());
    }
    let zone = norm_id(&cfg.zone_id);
    picked.extend(ix.by_zone_pool.get(&(zone.clone(), Some(norm_id(&cfg.server_pool_id)))).into_iter().flatten());
    if cfg.autoscale_type == crate::config::AutoscaleType::DockerAgent {
        let unpooled = ix.by_zone_pool.get(&(zone, None)).into_iter().flatten();
        picked.extend(unpooled.filter(|&&i| view.servers[i].kind == crate::kasm::ServerKind::Agent));
    }
    // In Kasm's order, each once.
    picked.sort_unstable();
    picked.dedup();
    let mut on: Vec<usize> = Vec::new();
    let ids: HashSet<String> = picked.iter().map(|&i| norm_id(&view.servers[i].server_id)).collect();
    for id in &ids {
        on.extend(ix.sessions_on.get(id).into_iter().flatten());
    }
    on.sort_unstable();
    let mine = picked.into_iter().map(|i| view.servers[i].clone()).collect();
    let sess = on.into_iter().map(|i| view.sessions[i].clone()).collect();
    (mine, sess)
}

/// The staging configs that count toward `cfg`, with their staged sessions counted, and notes for the
/// decision log.
///
/// Kasm's: Kasm counts a staging config toward the autoscale config it names by id
/// (`AutoScaleConfig.staging_configs`, by `staging_configs.autoscale_config_id`). With our config's
/// `autoscale_config_id` set, that id decides; without it, the name Kasm lists for the staging config's
/// autoscale config must be ours and the zone the same (an imported config keeps Kasm's name). The config
/// files' staging configs of `cfg` count too, except one for a zone and image Kasm already stages (Kasm's
/// own wins: Kasm allows one staging config per zone and image). Staged sessions are counted from
/// `sessions` as Kasm counts `num_current_sessions`: sessions with `is_standby` naming the staging config.
pub(crate) fn staging_of(
    cfg: &AutoscaleConfig,
    files: &[StagingConfig],
    view: &KasmView,
) -> (Vec<StagingDemand>, Vec<String>) {
    let kasm = &view.staging;
    let staged = |id: &str| {
        view.index
            .staged
            .iter()
            .filter(|&&i| view.sessions[i].staging_config_id.as_deref().is_some_and(|s| same_id(s, id)))
            .count() as u32
    };
    let linked = |s: &KasmStagingConfig| match (&cfg.autoscale_config_id, &s.autoscale_config_id) {
        (Some(ours), Some(theirs)) => same_id(ours, theirs),
        (Some(_), None) | (None, None) => false,
        (None, Some(_)) => {
            s.autoscale_config_name.as_deref() == Some(cfg.autoscale_config_name.as_str())
                && same_id(&s.zone_id, &cfg.zone_id)
        }
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for s in kasm.iter().filter(|s| linked(s)) {
        out.push(StagingDemand {
            staging_config_id: s.staging_config_id.clone(),
            image: s.image_name.clone().unwrap_or_else(|| s.image_id.clone()),
            image_size: s.image_size,
            num_sessions: s.num_sessions,
            current_sessions: staged(&s.staging_config_id),
        });
    }
    for f in files.iter().filter(|f| f.autoscale_config == cfg.autoscale_config_name) {
        let zone = f.zone_id.as_deref().unwrap_or(&cfg.zone_id);
        if let Some(k) = kasm.iter().find(|k| same_id(&k.zone_id, zone) && same_id(&k.image_id, &f.image_id)) {
            notes.push(format!(
                "staging config {} of the config files: Kasm's staging config {} stages image {} in that zone already; Kasm's counts",
                f.id(),
                k.staging_config_id,
                f.image_id
            ));
            continue;
        }
        let id = f.id();
        out.push(StagingDemand {
            current_sessions: staged(&id),
            staging_config_id: id,
            image: f.image_id.clone(),
            image_size: f.image_size(),
            num_sessions: f.num_sessions,
        });
    }
    (out, notes)
}

/// Session requests Kasm queued for `cfg` (its `autoscale_config_id`) that wait for compute on no record:
/// not placed yet, or placed on a record Kasm no longer lists (`servers`, every record). A request Kasm
/// put on a record that exists waits for that record: on one of the config's own it takes that VM's room
/// (the engine sees it among the record's sessions); on another it is that record's, not ours to add.
pub(crate) fn queued_for(cfg: &AutoscaleConfig, view: &KasmView) -> Vec<KasmSession> {
    let Some(own) = cfg.autoscale_config_id.as_deref() else { return Vec::new() };
    view.index
        .queued
        .iter()
        .map(|&i| &view.sessions[i])
        .filter(|k| k.autoscale_config_id.as_deref().is_some_and(|id| same_id(id, own)))
        .filter(|k| !k.is_placed() || !view.lists(&norm_id(&k.server_id)))
        .cloned()
        .collect()
}

/// The provider config an autoscale config names.
fn provider_of<'a>(ctx: &'a Ctx, cfg: &AutoscaleConfig) -> Result<&'a VmProviderConfig, AppError> {
    ctx.configs.provider(&cfg.vm_provider_config).ok_or_else(|| {
        AppError::UnknownConfig(format!(
            "autoscale config {}: vm_provider_config {} does not exist",
            cfg.autoscale_config_name, cfg.vm_provider_config
        ))
    })
}

/// Builds the engine's input for one config from the store (read without a lease: the read-only
/// path of [`plan`]) and Kasm; also returns the control record's version and notes for the decision log.
pub(crate) async fn build_input(
    ctx: &Ctx,
    cfg: &AutoscaleConfig,
    view: &KasmView,
) -> Result<(Input, u64, Vec<String>), AppError> {
    let name = &cfg.autoscale_config_name;
    let pcfg = provider_of(ctx, cfg)?;
    let instances =
        ctx.store.list(&InstanceFilter { autoscale_config: Some(name.clone()), ..Default::default() }).await?;
    let owned_total = ctx.store.count_owned(pcfg.name()).await?;
    let control = ctx.store.control(name).await?;
    Ok(input_from(ctx, cfg, pcfg, view, EvalSnapshot { control, instances, owned_total }))
}

/// The engine's input from what the store gave and Kasm's view, the control record's version, and notes
/// for the decision log.
fn input_from(
    ctx: &Ctx,
    cfg: &AutoscaleConfig,
    pcfg: &VmProviderConfig,
    view: &KasmView,
    snapshot: EvalSnapshot,
) -> (Input, u64, Vec<String>) {
    let EvalSnapshot { control, instances, owned_total } = snapshot;
    let ours: HashSet<String> = instances.iter().map(|i| crate::kasm::norm_id(&i.kasm_server_id)).collect();
    let names: HashSet<&str> = instances.iter().map(|i| i.vm_name.as_str()).collect();
    let (servers, sessions) = scope(cfg, view, &ours, &names);
    let (staging, notes) = staging_of(cfg, &ctx.configs.staging_configs, view);
    let queued = queued_for(cfg, view);
    let input = Input {
        config: cfg.clone(),
        schedules: ctx.configs.schedules_of(&cfg.autoscale_config_name),
        max_instances: pcfg.max_instances(),
        owned_total,
        new_vm_size: pcfg.common().vm_size(),
        control: control.value,
        timers: ctx.timers(),
        instances,
        servers,
        sessions,
        staging,
        queued,
    };
    (input, control.version, notes)
}

/// What `decide` would do for `only` (or every config) now, changing nothing: `kasm-autoscale plan`.
pub async fn plan(ctx: &Ctx, only: Option<&str>) -> Result<Vec<(Input, Plan)>, AppError> {
    let view = read_kasm(ctx).await?;
    let now = ctx.clock.now();
    let mut out = Vec::new();
    for cfg in ctx.configs.autoscale_configs.iter().filter(|c| only.is_none_or(|n| c.autoscale_config_name == n)) {
        let (input, _, notes) = build_input(ctx, cfg, &view).await?;
        let mut plan = engine::decide(&input, now);
        plan.reasons.extend(notes);
        out.push((input, plan));
    }
    Ok(out)
}

/// One config's evaluation under its lease, from the snapshot `begin_evaluation` read; ends with
/// `finish_evaluation` (which gives the lease back) unless it fails.
async fn evaluate_one(
    ctx: &Ctx,
    cfg: &AutoscaleConfig,
    view: &KasmView,
    snapshot: EvalSnapshot,
    now: DateTime<Utc>,
    trigger: &str,
    claimed: &mut Vec<ClaimId>,
) -> Result<Plan, AppError> {
    let name = &cfg.autoscale_config_name;
    let pcfg = provider_of(ctx, cfg)?;
    let (input, control_version, notes) = input_from(ctx, cfg, pcfg, view, snapshot);
    let mut plan = engine::decide(&input, now);
    plan.reasons.extend(notes);

    // Apply: claims first (each one a conditional write that enforces the cap), then actions. The
    // standby/floor claims come first, then one per rotation replacement, naming the VM it replaces.
    let standby_n = plan.create as usize - plan.replacements.len().min(plan.create as usize);
    for k in 0..plan.create as usize {
        let mut claim =
            Instance::new_claim(ClaimId::generate(now), name, pcfg.name(), pcfg.kind().as_str(), cfg.vm_os(pcfg), now);
        claim.replaces = k.checked_sub(standby_n).and_then(|r| plan.replacements.get(r)).cloned();
        if ctx.store.try_claim(&claim, pcfg.max_instances()).await? {
            claimed.push(claim.id.clone());
        } else {
            plan.reasons.push(format!(
                "store refused a claim: {} already owns max_instances {} (a concurrent evaluation took the slot)",
                pcfg.name(),
                pcfg.max_instances()
            ));
            break;
        }
    }
    for action in &plan.actions {
        if let Err(e) = apply_action(ctx, &input.instances, action, now).await {
            // One failed action must not stop the others; the next evaluation sees the truth again.
            tracing::warn!(autoscale_config = %name, ?action, error = %e, "action failed; will be re-decided next evaluation");
            plan.reasons.push(format!("action failed: {e}"));
        }
    }
    let mut next = input.control.clone();
    next.request_downscale_at = plan.request_downscale_at;
    // Predictive scaling: the demand seen now and the boots measured by this plan's activations.
    next.history = engine::forecast::record(&input, &plan, now);
    if !claimed.is_empty() {
        next.last_provision = Some(now);
    }
    let changed = (next != input.control).then_some((&next, control_version));
    let rec = DecisionRecord { at: now, trigger: trigger.to_string(), plan: plan.clone() };
    ctx.store.finish_evaluation(name, &ctx.holder, changed, &rec).await?;
    tracing::info!(
        target: "kasm_autoscale::decision",
        autoscale_config = %name,
        trigger,
        create = plan.create,
        claimed = claimed.len(),
        actions = plan.actions.len(),
        decision = %serde_json::to_string(&plan).unwrap_or_default(),
        "evaluation"
    );
    Ok(plan)
}

async fn apply_action(ctx: &Ctx, instances: &[Instance], action: &Action, now: DateTime<Utc>) -> Result<(), AppError> {
    let find = |id: &ClaimId| instances.iter().find(|i| &i.id == id).cloned();
    match action {
        Action::Activate { claim, server_id, enable } => {
            let Some(inst) = find(claim) else { return Ok(()) };
            if *enable {
                ctx.kasm.set_enabled(server_id, true).await?;
            }
            ctx.store.update(&moved(&inst, InstanceState::Running, now)?).await?;
        }
        Action::Drain { claim, server_id, reason, .. } => {
            let Some(inst) = find(claim) else { return Ok(()) };
            // Disable first: once disabled Kasm places no new session there, so "0 sessions" stays true.
            ctx.kasm.set_enabled(server_id, false).await?;
            let mut n = moved(&inst, InstanceState::Draining, now)?;
            n.end_reason = Some(reason.clone());
            ctx.store.update(&n).await?;
        }
        Action::Undrain { claim, server_id } => {
            let Some(inst) = find(claim) else { return Ok(()) };
            ctx.kasm.set_enabled(server_id, true).await?;
            let mut n = moved(&inst, InstanceState::Running, now)?;
            n.end_reason = None;
            ctx.store.update(&n).await?;
        }
        Action::Destroy { claim, reason } => {
            let Some(inst) = find(claim) else { return Ok(()) };
            let mut n = moved(&inst, InstanceState::Deleting, now)?;
            n.end_reason = Some(reason.clone());
            ctx.store.update(&n).await?;
        }
    }
    Ok(())
}
