//! DNS registration in the handlers (an autoscale config's `register_dns`), in one place:
//!
//! - **Name and address**: `<vm_name>.<base_domain_name>` (the rendered `{server_external_fqdn}`) → the
//!   VM's public IP, else its private IP (what Kasm 1.15 registers), with the DNS-provider config's TTL.
//! - **Provision**: registered once the provider has given the VM an address, before the claim records
//!   the VM and before the Kasm record is pointed at it ([`register`]). A crash in between registers it
//!   again when the claim is recovered (upserts are idempotent).
//! - **Later**: the reaper's pass over booting and running claims reads each VM anyway; it registers
//!   an address that appeared only after creation (or moved), and retries a failed registration once
//!   the claim's DNS delay has passed ([`ensure`]).
//! - **Failures** are logged with the autoscale and DNS-provider config names, kept on the claim
//!   (`dns`, `last_error`) and retried with a doubling delay (the claim's retry base, capped at the
//!   capacity backoff's cap). They never lose or block the VM.
//! - **Reap**: the record goes with the VM — after its Kasm record, before the VM ([`unregister`]): a
//!   record left behind would point at an address the cloud may hand to someone else. A DNS failure
//!   keeps the claim `deleting` (the VM too) and the next pass tries again; a record that is not ours is
//!   left untouched and does not hold the VM.
//! - **Orphans**: records carrying our deployment's marker whose claim is gone are deleted, two-phase
//!   after the orphan grace period like VMs ([`sweep`]).

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::reap::ReapReport;
use super::{AppError, Ctx};
use crate::config::AutoscaleConfig;
use crate::dns::{ARecord, DnsError, DnsOwner};
use crate::model::{ClaimId, DnsRegistration, Instance};
use crate::providers::Vm;
use crate::store::{InstanceFilter, StoreError};

/// What `last_error` says for a failed registration starts with this (so a success can clear it).
const FAILED: &str = "DNS registration of";

/// Where a claim's A record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    dns_config: String,
    name: String,
}

/// The claim's record, when its autoscale config registers DNS. `Err` for a config that cannot name one
/// (validation refuses such configs; this guards configs that skipped it).
fn target(cfg: &AutoscaleConfig, inst: &Instance) -> Option<Result<Target, String>> {
    if !cfg.register_dns {
        return None;
    }
    let Some(dns_config) = cfg.dns_provider_config.clone() else {
        return Some(Err(format!(
            "autoscale config {}: register_dns is on but no dns_provider_config is set",
            cfg.autoscale_config_name
        )));
    };
    let base = cfg.base_domain_name.as_deref().unwrap_or("");
    Some(
        crate::dns::fqdn(&inst.vm_name, base)
            .map(|name| Target { dns_config, name })
            .map_err(|e| format!("autoscale config {}: base_domain_name: {e}", cfg.autoscale_config_name)),
    )
}

/// The claim's registration state for `t`: the stored one when it is for the same name, else fresh.
fn state_for(inst: &Instance, t: &Target) -> DnsRegistration {
    match &inst.dns {
        Some(d) if d.dns_config == t.dns_config && d.name == t.name => d.clone(),
        _ => DnsRegistration {
            dns_config: t.dns_config.clone(),
            name: t.name.clone(),
            address: None,
            failures: 0,
            retry_at: None,
        },
    }
}

/// Provision: registers `vm`'s address for the claim `inst` is about to become (its `dns` is updated in
/// place). Returns the failure's message for the claim's `last_error`; the VM is recorded regardless.
pub(crate) async fn register(
    ctx: &Ctx,
    inst: &mut Instance,
    cfg: &AutoscaleConfig,
    vm: &Vm,
    now: DateTime<Utc>,
) -> Option<String> {
    let t = match target(cfg, inst)? {
        Ok(t) => t,
        Err(msg) => {
            tracing::warn!(claim = %inst.id, error = %msg, "no A record can be registered");
            return Some(msg);
        }
    };
    let mut reg = state_for(inst, &t);
    let Some(address) = crate::dns::vm_address(vm).map(str::to_string) else {
        // No address yet (some providers report it only once the VM runs): the reaper registers it.
        inst.dns = Some(reg);
        return None;
    };
    let r = attempt(ctx, inst, &mut reg, &address, now).await;
    let msg = r.err().map(|e| failure(&reg, &e));
    inst.dns = Some(reg);
    msg
}

/// Reaper: the VM of booting/running claim `inst` is `vm`; registers its address when the claim's
/// record does not hold it yet (registered late, moved, or failed before and due again), and records
/// the outcome on the claim. A DNS failure is returned (for the reaper's report) after it was recorded.
pub(crate) async fn ensure(ctx: &Ctx, inst: &Instance, vm: &Vm, now: DateTime<Utc>) -> Result<(), AppError> {
    let Some(cfg) = ctx.configs.autoscale(&inst.autoscale_config) else { return Ok(()) };
    let Some(Ok(t)) = target(cfg, inst) else { return Ok(()) };
    let Some(address) = crate::dns::vm_address(vm).map(str::to_string) else { return Ok(()) };
    let mut reg = state_for(inst, &t);
    if reg.address.as_deref() == Some(address.as_str()) || reg.retry_at.is_some_and(|at| at > now) {
        return Ok(());
    }
    // The config now names another record (base domain or DNS config changed): the old one goes first.
    if let Some(old) =
        inst.dns.as_ref().filter(|d| d.address.is_some() && (d.name != t.name || d.dns_config != t.dns_config))
        && let Err(e) = delete(ctx, inst, &old.dns_config, &old.name).await
    {
        tracing::warn!(claim = %inst.id, name = %old.name, error = %e, "the old A record stays until the orphan sweep");
    }
    let r = attempt(ctx, inst, &mut reg, &address, now).await;
    let mut n = inst.clone();
    match &r {
        Ok(()) if inst.last_error.as_deref().is_some_and(|e| e.starts_with(FAILED)) => n.last_error = None,
        Ok(()) => {}
        Err(e) => n.set_error(&failure(&reg, e)),
    }
    let config = reg.dns_config.clone();
    n.dns = Some(reg);
    match ctx.store.update(&n).await {
        // Someone moved the claim meanwhile: the next pass decides again (the upsert is idempotent).
        Ok(_) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    r.map_err(|source| AppError::Dns { config, source })
}

/// The claim's `last_error` for a failed registration.
fn failure(reg: &DnsRegistration, e: &DnsError) -> String {
    format!("{FAILED} {} in DNS-provider config {} failed: {e}", reg.name, reg.dns_config)
}

/// One upsert of `address` for `inst`; updates `reg` (address on success; failures and the next
/// attempt's time on failure) and logs a failure with the config names.
async fn attempt(
    ctx: &Ctx,
    inst: &Instance,
    reg: &mut DnsRegistration,
    address: &str,
    now: DateTime<Utc>,
) -> Result<(), DnsError> {
    match upsert(ctx, inst, reg, address).await {
        Ok(()) => {
            tracing::info!(claim = %inst.id, dns_provider_config = %reg.dns_config, name = %reg.name, address, "A record registered");
            reg.address = Some(address.to_string());
            reg.failures = 0;
            reg.retry_at = None;
            Ok(())
        }
        Err(e) => {
            reg.failures = reg.failures.saturating_add(1);
            let t = &ctx.tuning;
            let doubled = t.retry_base_seconds.saturating_mul(1u64 << reg.failures.min(11).saturating_sub(1));
            let wait = e.retry_after().map(|d| d.as_secs()).unwrap_or(0);
            let delay = doubled.min(t.capacity_backoff_max_seconds.max(t.retry_base_seconds)).max(wait);
            reg.retry_at = Some(crate::clock::after(now, delay));
            tracing::warn!(
                claim = %inst.id,
                autoscale_config = %inst.autoscale_config,
                dns_provider_config = %reg.dns_config,
                name = %reg.name,
                class = ?e.class(),
                retry_in_seconds = delay,
                error = %e,
                "DNS registration failed; the VM is kept and the record retried"
            );
            Err(e)
        }
    }
}

async fn upsert(ctx: &Ctx, inst: &Instance, reg: &DnsRegistration, address: &str) -> Result<(), DnsError> {
    let invalid = |message: String| DnsError::Invalid { provider: "dns", message };
    let address: Ipv4Addr = address
        .parse()
        .map_err(|_| invalid(format!("the VM's address {address} is not IPv4 (only A records are registered)")))?;
    let ttl = ctx
        .configs
        .dns_provider_configs
        .iter()
        .find(|d| d.name() == reg.dns_config)
        .map(|d| d.ttl())
        .ok_or_else(|| invalid(format!("no DNS-provider config named {}", reg.dns_config)))?;
    let backend = ctx
        .dns
        .get(&reg.dns_config)
        .ok_or_else(|| invalid(format!("no DNS backend is built for DNS-provider config {}", reg.dns_config)))?;
    let owner = DnsOwner::for_claim(&ctx.configs.settings.deployment_id, inst);
    backend.upsert_a(&ARecord { name: reg.name.clone(), address, ttl, owner }).await
}

/// Deletes the record `name` of `inst` in DNS-provider config `dns_config`. A record that is not ours
/// is left (and logged); a config without a backend (nothing could be registered) or that no longer
/// exists (nothing can be done) is skipped.
async fn delete(ctx: &Ctx, inst: &Instance, dns_config: &str, name: &str) -> Result<(), AppError> {
    let Some(backend) = ctx.dns.get(dns_config) else {
        tracing::warn!(claim = %inst.id, dns_provider_config = dns_config, name, "the DNS-provider config is gone: its A record cannot be removed");
        return Ok(());
    };
    let owner = DnsOwner::for_claim(&ctx.configs.settings.deployment_id, inst);
    match backend.delete_a(name, &owner).await {
        Ok(()) => Ok(()),
        Err(DnsError::NotSupported { .. }) => Ok(()),
        Err(e @ DnsError::NotOurs { .. }) => {
            tracing::warn!(claim = %inst.id, dns_provider_config = dns_config, error = %e, "a record that is not ours holds the VM's name: left untouched");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(claim = %inst.id, autoscale_config = %inst.autoscale_config, dns_provider_config = dns_config, name, error = %e, "failed to remove the A record; the VM is kept until it is gone");
            Err(AppError::Dns { config: dns_config.to_string(), source: e })
        }
    }
}

/// Reap: removes the claim's A record — the one it registered, and the one its config names now (a
/// crash between the DNS provider's accept and the claim's write leaves no trace on the claim).
pub(crate) async fn unregister(ctx: &Ctx, inst: &Instance) -> Result<(), AppError> {
    let mut targets: Vec<(String, String)> = inst.dns.iter().map(|d| (d.dns_config.clone(), d.name.clone())).collect();
    if let Some(cfg) = ctx.configs.autoscale(&inst.autoscale_config)
        && let Some(Ok(t)) = target(cfg, inst)
        && !targets.contains(&(t.dns_config.clone(), t.name.clone()))
    {
        targets.push((t.dns_config, t.name));
    }
    for (config, name) in targets {
        delete(ctx, inst, &config, &name).await?;
    }
    Ok(())
}

/// Reap: records carrying our deployment's marker whose claim is gone (or deleted). Two-phase like the
/// VM sweep: deleted only when seen again after the orphan grace period.
pub(crate) async fn sweep(ctx: &Ctx, now: DateTime<Utc>, rep: &mut ReapReport) {
    if ctx.dns.is_empty() {
        return;
    }
    let live: HashSet<ClaimId> = match ctx.store.list(&InstanceFilter::default()).await {
        Ok(v) => v.into_iter().map(|i| i.id).collect(),
        Err(e) => {
            rep.errors.push(format!("DNS orphan sweep skipped: {e}"));
            return;
        }
    };
    let deployment = &ctx.configs.settings.deployment_id;
    let mut configs: Vec<&String> = ctx.dns.keys().collect();
    configs.sort();
    for config in configs {
        let backend = &ctx.dns[config];
        let owned = match backend.list_owned(deployment).await {
            Ok(v) => v,
            // No backend in this version: nothing of ours can be there.
            Err(DnsError::NotSupported { .. }) => continue,
            Err(e) => {
                rep.fail(format!("DNS orphan sweep of {config}: {e}"), Some(e.class()));
                continue;
            }
        };
        for r in owned {
            let key = format!("dns:{config}/{}", r.name);
            if live.contains(&r.owner.claim) {
                let _ = ctx.store.clear_suspect(&key).await;
                continue;
            }
            match ctx.store.mark_suspect(&key, now).await {
                Ok(first) if (now - first).num_seconds() >= crate::clock::secs(ctx.tuning.orphan_grace_seconds) => {
                    match backend.delete_a(&r.name, &r.owner).await {
                        Ok(()) => {
                            let _ = ctx.store.clear_suspect(&key).await;
                            tracing::warn!(name = %r.name, claim = %r.owner.claim, dns_provider_config = %config, "deleted an orphan A record (our marker, no claim)");
                            rep.dns_orphans_deleted.push(key);
                        }
                        Err(e) => rep.fail(format!("orphan {key}: failed to delete: {e}"), Some(e.class())),
                    }
                }
                Ok(first) if first == now => rep.dns_orphans_suspected.push(key),
                Ok(_) => {}
                Err(e) => rep.errors.push(format!("orphan {key}: {e}")),
            }
        }
    }
}
