//! The reaper's handler: drained VMs without sessions are deleted; `deleting` claims are finished;
//! half-done work is found and finished or undone (stuck claims, VMs that vanished, and — two-phase —
//! VMs carrying our deployment tag without a claim). DNS records (`register_dns`) go with their VM, are
//! registered late or again where that failed, and orphans carrying our marker are swept (see `dns.rs`).

use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

use super::provision::{provision, record_vm};
use super::{AppError, Ctx};
use crate::model::{ClaimId, Instance, InstanceState, OwnerLabels};
use crate::providers::{ErrorClass, ProviderError, VmState};
use crate::store::{InstanceFilter, StoreError, moved};

/// What one reaper pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReapReport {
    /// Draining VMs that reached 0 sessions and were moved to `deleting`.
    pub drained: Vec<ClaimId>,
    /// Claims whose VM was destroyed (now `deleted`).
    pub deleted: Vec<ClaimId>,
    /// Draining VMs still holding sessions (left alone).
    pub waiting_for_sessions: Vec<ClaimId>,
    /// Claims re-driven after being stuck in `requested` / `creating`.
    pub recovered: Vec<ClaimId>,
    /// VMs without a claim seen for the first time (phase one).
    pub orphans_suspected: Vec<String>,
    /// VMs without a claim deleted (phase two).
    pub orphans_deleted: Vec<String>,
    /// DNS records carrying our marker without a live claim, seen for the first time (phase one).
    pub dns_orphans_suspected: Vec<String>,
    /// DNS records carrying our marker without a live claim, deleted (phase two).
    pub dns_orphans_deleted: Vec<String>,
    /// Errors met (the pass goes on after each).
    pub errors: Vec<String>,
    /// The class of each provider or DNS-provider error among `errors`, for the provider-error counts.
    pub provider_errors: Vec<ErrorClass>,
}

impl ReapReport {
    /// Records an error; a provider's or DNS provider's also by its class.
    pub(crate) fn fail(&mut self, message: String, class: Option<ErrorClass>) {
        self.errors.push(message);
        self.provider_errors.extend(class);
    }
}

/// One reaper pass over every claim and provider.
pub async fn reap(ctx: &Ctx) -> ReapReport {
    let mut rep = ReapReport::default();
    let now = ctx.clock.now();
    let all = match ctx.store.list(&InstanceFilter::default()).await {
        Ok(a) => a,
        Err(e) => {
            rep.errors.push(format!("failed to list claims: {e}"));
            return rep;
        }
    };

    // 1. Draining → deleting once the VM has no sessions. Without Kasm's word we delete nothing.
    let draining: Vec<&Instance> = all.iter().filter(|i| i.state == InstanceState::Draining).collect();
    if !draining.is_empty() {
        match ctx.kasm.list_sessions().await {
            Ok(sessions) => {
                let mut per_server: HashMap<String, u32> = HashMap::new();
                for s in sessions.iter().filter(|s| !s.server_id.is_empty()) {
                    *per_server.entry(crate::kasm::norm_id(&s.server_id)).or_default() += 1;
                }
                for inst in draining {
                    if per_server.get(&crate::kasm::norm_id(&inst.kasm_server_id)).copied().unwrap_or(0) > 0 {
                        rep.waiting_for_sessions.push(inst.id.clone());
                        continue;
                    }
                    match step(ctx, inst, InstanceState::Deleting, now).await {
                        Ok(true) => rep.drained.push(inst.id.clone()),
                        Ok(false) => {}
                        Err(e) => rep.fail(format!("claim {}: {e}", inst.id), e.provider_class()),
                    }
                }
            }
            Err(e) => rep.errors.push(format!("draining VMs kept: {e}")),
        }
    }

    // 2. Deleting → deleted: destroy at the provider, remove the Kasm record.
    let deleting =
        match ctx.store.list(&InstanceFilter { states: vec![InstanceState::Deleting], ..Default::default() }).await {
            Ok(d) => d,
            Err(e) => {
                rep.errors.push(format!("failed to list deleting claims: {e}"));
                vec![]
            }
        };
    for inst in &deleting {
        match destroy(ctx, inst, now).await {
            Ok(()) => rep.deleted.push(inst.id.clone()),
            Err(e) => rep.fail(format!("claim {}: failed to destroy: {e}", inst.id), e.provider_class()),
        }
    }

    // 3. Stuck claims: a provisioner died or an event was lost.
    for inst in &all {
        let age = (now - inst.state_since).num_seconds().max(0) as u64;
        let r = match inst.state {
            InstanceState::Requested
                if age >= ctx.tuning.stuck_requested_seconds && inst.not_before.is_none_or(|t| t <= now) =>
            {
                provision(ctx, &inst.id).await.map(|_| true)
            }
            InstanceState::Creating if age >= ctx.tuning.stuck_creating_seconds => {
                recover_creating(ctx, inst, now).await
            }
            InstanceState::Booting | InstanceState::Running => vanished(ctx, inst, now).await,
            _ => Ok(false),
        };
        match r {
            Ok(true) => rep.recovered.push(inst.id.clone()),
            Ok(false) => {}
            Err(e) => rep.fail(format!("claim {}: {e}", inst.id), e.provider_class()),
        }
    }

    // 4. Orphans: VMs with our deployment tag and no live claim. Two-phase: delete only when seen
    //    again after the grace period, so a VM whose claim write is in flight is never touched.
    if ctx.configs.settings.orphan_cleanup {
        orphan_sweep(ctx, now, &mut rep).await;
        super::dns::sweep(ctx, now, &mut rep).await;
    }
    if !rep.errors.is_empty() {
        tracing::warn!(errors = ?rep.errors, "reaper pass finished with errors");
    }
    rep
}

/// Moves `inst` to `to`; `Ok(false)` when someone else moved it first.
async fn step(ctx: &Ctx, inst: &Instance, to: InstanceState, now: DateTime<Utc>) -> Result<bool, AppError> {
    match ctx.store.update(&moved(inst, to, now)?).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes a `deleting` claim's Kasm record, destroys its VM (by id, or by its claim label when the
/// id was never recorded), and marks it `deleted`. The record goes first: Kasm refuses to delete a
/// record that still has sessions (we never force), and that refusal keeps the VM alive.
async fn destroy(ctx: &Ctx, inst: &Instance, now: DateTime<Utc>) -> Result<(), AppError> {
    ctx.kasm.delete_server(&inst.kasm_server_id).await?;
    // A record made for the claim whose id never reached the claim (a crash in between) carries the
    // claim's VM name.
    if let Some(cfg) = ctx.configs.autoscale(&inst.autoscale_config)
        && super::provision::needs_record(ctx, cfg)
        && let Some(rec) = ctx.kasm.find_by_name(&inst.vm_name).await?
        && !crate::kasm::same_id(&rec.server_id, &inst.kasm_server_id)
    {
        ctx.kasm.delete_server(&rec.server_id).await?;
    }
    // The A record (register_dns) before the VM: left behind, it would name an address the cloud may
    // hand to someone else. A failure keeps the claim (and the VM) for the next pass.
    super::dns::unregister(ctx, inst).await?;
    let provider = ctx.provider(&inst.provider_config)?;
    let mut ids: Vec<String> = inst.vm_id.iter().cloned().collect();
    if ids.is_empty() {
        let labels = OwnerLabels::for_claim(&ctx.configs.settings.deployment_id, inst);
        ids = provider.list_vms(&labels).await?.into_iter().map(|v| v.id).collect();
    }
    for id in &ids {
        provider.delete_vm(id).await?;
    }
    let mut done = moved(inst, InstanceState::Deleted, now)?;
    done.end_reason = done.end_reason.or(Some("deleted".into()));
    ctx.store.update(&done).await?;
    tracing::info!(claim = %inst.id, vm_ids = ?ids, reason = ?inst.end_reason, "VM destroyed");
    Ok(())
}

/// A claim stuck in `creating`: the provisioner died after (or before) the provider call. If the VM
/// exists (found by its claim label) record it; otherwise hand the claim back to `requested`.
async fn recover_creating(ctx: &Ctx, inst: &Instance, now: DateTime<Utc>) -> Result<bool, AppError> {
    let provider = ctx.provider(&inst.provider_config)?;
    let labels = OwnerLabels::for_claim(&ctx.configs.settings.deployment_id, inst);
    let found = provider.list_vms(&labels).await?;
    // A `Deleted` entry is a leftover (e.g. a boot volume whose VM was never made), not the VM.
    if let Some(vm) = found.iter().find(|v| v.state != VmState::Deleted) {
        let Some(cfg) = ctx.configs.autoscale(&inst.autoscale_config) else {
            return step(ctx, inst, InstanceState::Deleting, now).await;
        };
        record_vm(ctx, inst, cfg, vm, now).await?;
        return Ok(true);
    }
    let mut back = moved(inst, InstanceState::Requested, now)?;
    back.set_error("provisioner stopped mid-way; retrying");
    match ctx.store.update(&back).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A booting/running claim whose VM is gone at the provider (deleted by hand): finish it.
async fn vanished(ctx: &Ctx, inst: &Instance, now: DateTime<Utc>) -> Result<bool, AppError> {
    let Some(vm_id) = &inst.vm_id else { return Ok(false) };
    let provider = ctx.provider(&inst.provider_config)?;
    match provider.get_vm(vm_id).await {
        Err(ProviderError::NotFound { .. }) => {
            let mut n = moved(inst, InstanceState::Deleting, now)?;
            n.end_reason = Some("VM vanished at the provider".into());
            match ctx.store.update(&n).await {
                Ok(_) => Ok(true),
                Err(StoreError::Conflict { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Ok(vm) => {
            // The VM is there: its A record (register_dns) once it has an address, or at a new one.
            super::dns::ensure(ctx, inst, &vm, now).await?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

async fn orphan_sweep(ctx: &Ctx, now: DateTime<Utc>, rep: &mut ReapReport) {
    let live: HashSet<ClaimId> = match ctx.store.list(&InstanceFilter::default()).await {
        Ok(v) => v.into_iter().map(|i| i.id).collect(),
        Err(e) => {
            rep.errors.push(format!("orphan sweep skipped: {e}"));
            return;
        }
    };
    let labels = OwnerLabels::deployment(&ctx.configs.settings.deployment_id);
    for name in ctx.providers.names() {
        let provider = match ctx.providers.get(name) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                rep.fail(format!("orphan sweep of {name}: {e}"), Some(e.class()));
                continue;
            }
            None => continue,
        };
        let vms = match provider.list_vms(&labels).await {
            Ok(v) => v,
            Err(e) => {
                rep.fail(format!("orphan sweep of {name}: {e}"), Some(e.class()));
                continue;
            }
        };
        for vm in vms {
            let key = format!("{name}/{}", vm.id);
            if vm.claim().is_some_and(|c| live.contains(&c)) {
                let _ = ctx.store.clear_suspect(&key).await;
                continue;
            }
            match ctx.store.mark_suspect(&key, now).await {
                Ok(first) if (now - first).num_seconds() >= crate::clock::secs(ctx.tuning.orphan_grace_seconds) => {
                    match provider.delete_vm(&vm.id).await {
                        Ok(()) => {
                            let _ = ctx.store.clear_suspect(&key).await;
                            tracing::warn!(vm = %vm.id, provider_config = %name, "deleted an orphan VM (our tag, no claim)");
                            rep.orphans_deleted.push(key);
                        }
                        Err(e) => rep.fail(format!("orphan {key}: failed to delete: {e}"), Some(e.class())),
                    }
                }
                Ok(first) if first == now => rep.orphans_suspected.push(key),
                Ok(_) => {}
                Err(e) => rep.errors.push(format!("orphan {key}: {e}")),
            }
        }
    }
}
