//! The provisioner's handler: claim → render startup script → `create_vm` → record the VM.
//! Errors are classified: retryable → back to `requested` with a delay; out of capacity → `failed`
//! and a capacity backoff on the config; anything else → `failed` with the error recorded.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{AppError, Ctx};
use crate::config::{AutoscaleConfig, AutoscaleType, VmProviderConfig};
use crate::kasm::NewServer;
use crate::model::{ClaimId, Instance, InstanceState, OwnerLabels};
use crate::providers::{ErrorClass, ProviderError, Vm, VmSpec};
use crate::script::{self, Vars};
use crate::store::{InstanceFilter, StoreError, moved};

/// What provisioning one claim came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionOutcome {
    /// The VM exists; the claim is `booting`.
    Created {
        /// The provider's VM id.
        vm_id: String,
    },
    /// Nothing to do: the claim is not `requested` (a duplicate or late event), or someone else took it.
    AlreadyHandled,
    /// Not yet: the claim's retry delay has not passed.
    NotYet,
    /// A retryable error; the claim is back in `requested` with a delay.
    Retrying {
        /// The redacted error.
        error: String,
        /// The provider error's class.
        class: Option<ErrorClass>,
    },
    /// The claim failed for good (counts toward the cap until the reaper cleans it up).
    Failed {
        /// The redacted error.
        error: String,
        /// The provider error's class (None: a config, secret or script problem).
        class: Option<ErrorClass>,
    },
}

/// Provisions one claim. Safe to call any number of times for the same claim, concurrently too:
/// only the caller whose `requested → creating` write wins calls the provider.
pub async fn provision(ctx: &Ctx, id: &ClaimId) -> Result<ProvisionOutcome, AppError> {
    let now = ctx.clock.now();
    let Some(inst) = ctx.store.get(id).await? else {
        return Err(StoreError::NotFound { key: id.to_string() }.into());
    };
    if inst.state != InstanceState::Requested {
        return Ok(ProvisionOutcome::AlreadyHandled);
    }
    if inst.not_before.is_some_and(|t| t > now) {
        return Ok(ProvisionOutcome::NotYet);
    }
    let mut creating = moved(&inst, InstanceState::Creating, now)?;
    creating.attempts += 1;
    let creating = match ctx.store.update(&creating).await {
        Ok(i) => i,
        Err(StoreError::Conflict { .. }) => return Ok(ProvisionOutcome::AlreadyHandled),
        Err(e) => return Err(e.into()),
    };
    let cfg = ctx.configs.autoscale(&creating.autoscale_config).cloned();
    let pcfg = ctx.configs.provider(&creating.provider_config).cloned();
    let (Some(cfg), Some(pcfg)) = (cfg, pcfg) else {
        let msg = format!(
            "autoscale config {} or VM-provider config {} no longer exists",
            creating.autoscale_config, creating.provider_config
        );
        fail(ctx, &creating, &msg, now).await?;
        return Ok(ProvisionOutcome::Failed { error: msg, class: None });
    };
    let spec = match build_spec(ctx, &creating, &cfg, &pcfg).await {
        Ok(s) => s,
        Err(e) => {
            // A config or secret problem: retrying cannot help until an operator fixes it.
            let msg = e.to_string();
            fail(ctx, &creating, &msg, now).await?;
            return Ok(ProvisionOutcome::Failed { error: msg, class: None });
        }
    };
    let provider = ctx.provider(&creating.provider_config)?.clone();
    match provider.create_vm(&spec).await {
        Ok(vm) => {
            let vm_id = vm.id.clone();
            record_vm(ctx, &creating, &cfg, &vm, now).await?;
            Ok(ProvisionOutcome::Created { vm_id })
        }
        Err(e) => handle_create_error(ctx, &creating, e, now).await,
    }
}

/// Provisions every `requested` claim whose delay has passed (the local change-feed consumer and
/// the reaper's safety net). Returns each claim's outcome.
pub async fn provision_pending(ctx: &Ctx) -> Vec<(ClaimId, Result<ProvisionOutcome, AppError>)> {
    let pending =
        match ctx.store.list(&InstanceFilter { states: vec![InstanceState::Requested], ..Default::default() }).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "failed to list requested claims");
                return vec![];
            }
        };
    let mut out = Vec::with_capacity(pending.len());
    for inst in pending {
        let r = provision(ctx, &inst.id).await;
        out.push((inst.id, r));
    }
    out
}

/// Moves the claim to `booting` with the VM's id and addresses; server pools get their Kasm record.
pub(crate) async fn record_vm(
    ctx: &Ctx,
    creating: &Instance,
    cfg: &AutoscaleConfig,
    vm: &Vm,
    now: DateTime<Utc>,
) -> Result<Instance, AppError> {
    let mut booting = moved(creating, InstanceState::Booting, now)?;
    booting.vm_id = Some(vm.id.clone());
    booting.private_ip = vm.private_ip.clone().or_else(|| vm.public_ip.clone());
    booting.hostname = Some(vm.name.clone());
    booting.last_error = None;
    booting.not_before = None;
    let booting = ctx.store.update(&booting).await?;
    if cfg.autoscale_type == AutoscaleType::Server {
        let server = NewServer {
            server_id: booting.kasm_server_id.clone(),
            hostname: booting.private_ip.clone().unwrap_or_else(|| vm.name.clone()),
            zone_id: cfg.zone_id.clone(),
            pool_id: cfg.server_pool_id.clone(),
            connection_type: format!("{:?}", cfg.connection_type.unwrap_or_default()),
            connection_port: cfg.connection_port,
            connection_username: cfg.connection_username.clone(),
            max_simultaneous_sessions: cfg.max_simultaneous_sessions_per_server,
            require_checkin: cfg.require_checkin,
            enabled: true,
        };
        if let Err(e) = ctx.kasm.create_server(&server).await {
            // The VM exists and is claimed; the next evaluation's provision timeout cleans up if
            // the record never appears.
            tracing::warn!(claim = %booting.id, error = %e, "failed to create the Kasm server record");
        }
    }
    let mut control = ctx.store.control(&booting.autoscale_config).await?;
    if control.value.consecutive_failures != 0 || control.value.backoff_until.is_some() {
        control.value.consecutive_failures = 0;
        control.value.backoff_until = None;
        // Best effort: a concurrent writer wins and the next success resets it.
        let _ = ctx.store.put_control(&booting.autoscale_config, &control.value, control.version).await;
    }
    Ok(booting)
}

async fn handle_create_error(
    ctx: &Ctx,
    creating: &Instance,
    e: ProviderError,
    now: DateTime<Utc>,
) -> Result<ProvisionOutcome, AppError> {
    let msg = e.to_string();
    tracing::warn!(claim = %creating.id, provider = creating.provider, class = ?e.class(), error = %msg, "create_vm failed");
    if e.is_retryable() && creating.attempts < ctx.tuning.max_create_attempts {
        let mut back = moved(creating, InstanceState::Requested, now)?;
        let mut delay =
            ctx.tuning.retry_base_seconds.saturating_mul(1u64 << creating.attempts.min(10).saturating_sub(1));
        if let ProviderError::RateLimited { retry_after: Some(d), .. } = &e {
            delay = delay.max(d.as_secs());
        }
        back.not_before = Some(now + chrono::Duration::seconds(delay as i64));
        back.last_error = Some(msg.clone());
        ctx.store.update(&back).await?;
        return Ok(ProvisionOutcome::Retrying { error: msg, class: Some(e.class()) });
    }
    if e.class() == ErrorClass::OutOfCapacity {
        // Back off the whole config: creating more of the same shape now would fail the same way.
        let mut control = ctx.store.control(&creating.autoscale_config).await?;
        let n = control.value.consecutive_failures.min(8);
        let secs =
            ctx.tuning.capacity_backoff_seconds.saturating_mul(1u64 << n).min(ctx.tuning.capacity_backoff_max_seconds);
        control.value.consecutive_failures += 1;
        control.value.backoff_until = Some(now + chrono::Duration::seconds(secs as i64));
        let _ = ctx.store.put_control(&creating.autoscale_config, &control.value, control.version).await;
    }
    fail(ctx, creating, &msg, now).await?;
    Ok(ProvisionOutcome::Failed { error: msg, class: Some(e.class()) })
}

async fn fail(ctx: &Ctx, inst: &Instance, msg: &str, now: DateTime<Utc>) -> Result<(), AppError> {
    let mut f = moved(inst, InstanceState::Failed, now)?;
    f.last_error = Some(msg.to_string());
    ctx.store.update(&f).await?;
    Ok(())
}

/// The VM spec for a claim: labels, OS, and the rendered, packaged startup script.
pub(crate) async fn build_spec(
    ctx: &Ctx,
    inst: &Instance,
    cfg: &AutoscaleConfig,
    pcfg: &VmProviderConfig,
) -> Result<VmSpec, AppError> {
    let vars = script_vars(ctx, inst, cfg, pcfg).await?;
    let template = pcfg.common().startup_script();
    let script = if template.trim().is_empty() {
        None
    } else {
        let rendered = script::render(template, &vars)
            .map_err(|source| AppError::Script { config: pcfg.name().to_string(), source })?;
        let packaged = script::package(pcfg.kind(), inst.os, rendered)
            .map_err(|source| AppError::Script { config: pcfg.name().to_string(), source })?;
        Some(SecretString::from(packaged))
    };
    Ok(VmSpec {
        claim: inst.id.clone(),
        name: inst.vm_name.clone(),
        labels: OwnerLabels::for_claim(&ctx.configs.settings.deployment_id, inst),
        os: inst.os,
        startup_script: script,
    })
}

/// The startup-script placeholders for a claim (KASM.md). Values that do not apply are `None`,
/// which renders as the text `None` like Kasm.
pub(crate) async fn script_vars(
    ctx: &Ctx,
    inst: &Instance,
    cfg: &AutoscaleConfig,
    pcfg: &VmProviderConfig,
) -> Result<Vars, AppError> {
    let mut v = Vars::new();
    let set = |v: &mut Vars, k: &str, val: Option<String>| {
        v.insert(k.to_string(), val);
    };
    set(&mut v, "server_id", Some(inst.kasm_server_id.clone()));
    let hostname = cfg.register_dns.then(|| inst.vm_name.clone());
    let fqdn = match (&hostname, &cfg.base_domain_name) {
        (Some(h), Some(d)) if !d.is_empty() => Some(format!("{h}.{}", d.trim_start_matches('.'))),
        _ => None,
    };
    set(&mut v, "server_hostname", hostname);
    set(&mut v, "server_external_fqdn", fqdn);
    let kasm = ctx.configs.settings.kasm.as_ref();
    let token = match kasm.and_then(|k| k.manager_token.as_ref()) {
        Some(r) => Some(ctx.secrets.resolve(r).await?.expose_secret().to_string()),
        None => None,
    };
    set(&mut v, "manager_token", token);
    set(&mut v, "upstream_auth_address", kasm.and_then(|k| k.upstream_auth_address.clone()));
    set(&mut v, "provider_name", Some(pcfg.kind().as_str().to_string()));
    set(&mut v, "connection_username", cfg.connection_username.clone());
    let password = match &cfg.connection_password {
        Some(r) => Some(ctx.secrets.resolve(r).await?.expose_secret().to_string()),
        None => None,
    };
    set(&mut v, "connection_password", password);
    // Issued by the Kasm manager for servers it registers itself; an external autoscaler has no
    // way to mint one, so it renders None (see README: server check-in).
    set(&mut v, "checkin_jwt", None);
    set(&mut v, "ad_join_credential", None);
    set(&mut v, "domain", cfg.connection_sso_username_domain.clone());
    set(&mut v, "ssh_key", pcfg.common().ssh_public_key().map(str::to_string));
    set(&mut v, "nginx_cert_in", None);
    set(&mut v, "nginx_key_in", None);
    Ok(v)
}
