//! The provisioner's handler: claim → render startup script → `create_vm` → record the VM.
//! Errors are classified: retryable → back to `requested` with a delay; out of capacity → `failed`
//! and a capacity backoff on the config; anything else → `failed` with the error recorded.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{AppError, Ctx};
use crate::config::settings::AgentRegistration;
use crate::config::{AutoscaleConfig, AutoscaleType, VmProviderConfig};
use crate::kasm::{KasmError, NewServer, ServerKind};
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
    // Records Kasm must hold before the VM boots (server pools; agents in `precreate` mode): Kasm
    // chooses their id, which the startup script needs as `{server_id}`.
    let (creating, registration_jwt) = match ensure_record(ctx, &creating, &cfg).await {
        Ok(r) => r,
        Err(e) => return handle_record_error(ctx, &creating, e, now).await,
    };
    let spec = match build_spec(ctx, &creating, &cfg, &pcfg, registration_jwt).await {
        Ok(s) => s,
        Err(e) => {
            // A config or secret problem: retrying cannot help until an operator fixes it.
            let msg = e.to_string();
            fail(ctx, &creating, &msg, now).await?;
            return Ok(ProvisionOutcome::Failed { error: msg, class: None });
        }
    };
    let provider = match ctx.provider(&creating.provider_config) {
        Ok(p) => p.clone(),
        // The config's provider cannot be built: this config backs off, the others go on.
        Err(AppError::Provider(e)) => return handle_create_error(ctx, &creating, e, now).await,
        Err(e) => return Err(e),
    };
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
    // The VM's A record (register_dns) before the claim records the VM and before the Kasm record is
    // pointed at it; a failure is kept on the claim and retried by the reaper, never losing the VM.
    if let Some(e) = super::dns::register(ctx, &mut booting, cfg, vm, now).await {
        booting.set_error(&e);
    }
    let booting = ctx.store.update(&booting).await?;
    if needs_record(ctx, cfg) {
        // The record was made before the VM with the VM's name as hostname; point it at the address.
        let host = booting.private_ip.clone().unwrap_or_else(|| vm.name.clone());
        if let Err(e) = ctx.kasm.set_hostname(&booting.kasm_server_id, &host).await {
            // The VM exists and is claimed; the provision timeout cleans up if it never becomes usable.
            tracing::warn!(claim = %booting.id, server = %booting.kasm_server_id, error = %e, "failed to set the Kasm record's hostname");
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

/// Whether a claim of `cfg` needs its Kasm record created before its VM: server pools always (Kasm
/// makes server records only through `create_server`), Docker Agents when the settings say
/// `agent_registration: precreate`.
pub(crate) fn needs_record(ctx: &Ctx, cfg: &AutoscaleConfig) -> bool {
    match cfg.autoscale_type {
        AutoscaleType::Server => true,
        AutoscaleType::DockerAgent => {
            ctx.configs.settings.kasm.as_ref().is_some_and(|k| k.agent_registration == AgentRegistration::Precreate)
        }
    }
}

/// Makes sure the claim's Kasm record exists when it needs one (see [`needs_record`]) and the claim
/// holds its id; returns the claim as stored and the record's registration token. Idempotent: the
/// record is found by the claim's VM name, so a retry or a crash after Kasm's accept makes no second.
async fn ensure_record(
    ctx: &Ctx,
    creating: &Instance,
    cfg: &AutoscaleConfig,
) -> Result<(Instance, Option<SecretString>), AppError> {
    if !needs_record(ctx, cfg) {
        return Ok((creating.clone(), None));
    }
    let server = cfg.autoscale_type == AutoscaleType::Server;
    let secret = |r: &Option<crate::config::SecretRef>| {
        let r = r.clone();
        async move {
            match (server, r) {
                (true, Some(r)) => ctx.secrets.resolve(&r).await.map(Some),
                _ => Ok(None),
            }
        }
    };
    let new = NewServer {
        kind: if server { ServerKind::Server } else { ServerKind::Agent },
        friendly_name: creating.vm_name.clone(),
        hostname: creating.vm_name.clone(),
        zone_id: cfg.zone_id.clone(),
        server_pool_id: cfg.server_pool_id.clone(),
        connection_type: server.then(|| format!("{:?}", cfg.connection_type.unwrap_or_default())),
        connection_port: cfg.connection_port.filter(|_| server),
        connection_username: cfg.connection_username.clone().filter(|_| server),
        connection_password: secret(&cfg.connection_password).await?,
        connection_private_key: secret(&cfg.connection_private_key).await?,
        connection_passphrase: secret(&cfg.connection_passphrase).await?,
        use_user_private_key: server && cfg.use_user_private_key,
        connection_info: cfg.connection_info.as_ref().filter(|_| server).map(|j| j.0.clone()),
        max_simultaneous_sessions: cfg.max_simultaneous_sessions_per_server,
        max_simultaneous_users: server.then_some(cfg.max_simultaneous_users),
        // Kasm: true = the record starts `starting` and waits for the Desktop Service to check in.
        agent_installed: server && (cfg.agent_installed || cfg.require_checkin),
        // Enabled by the evaluator once the VM is up (booting → running), never before it exists.
        enabled: false,
    };
    let ensured = ctx.kasm.ensure_server(&new).await?;
    if ensured.created {
        tracing::info!(claim = %creating.id, server = %ensured.server_id, name = %new.friendly_name, "created the Kasm record");
    }
    if crate::kasm::same_id(&creating.kasm_server_id, &ensured.server_id) {
        return Ok((creating.clone(), ensured.registration_jwt));
    }
    let mut with_id = creating.clone();
    with_id.kasm_server_id = ensured.server_id;
    let stored = ctx.store.update(&with_id).await?;
    Ok((stored, ensured.registration_jwt))
}

/// A Kasm failure while making the claim's record: an unreachable or failing manager is retried
/// like a provider error; a refused key or a missing permission fails the claim (retrying cannot
/// help until an operator fixes the key).
async fn handle_record_error(
    ctx: &Ctx,
    creating: &Instance,
    e: AppError,
    now: DateTime<Utc>,
) -> Result<ProvisionOutcome, AppError> {
    let retryable = matches!(&e, AppError::Kasm(KasmError::Unreachable { .. } | KasmError::Api { .. }));
    let msg = crate::http::sanitise(&format!("creating the Kasm record failed: {e}"));
    tracing::warn!(claim = %creating.id, error = %msg, retryable, "Kasm record not made");
    if retryable && creating.attempts < ctx.tuning.max_create_attempts {
        let mut back = moved(creating, InstanceState::Requested, now)?;
        let delay = ctx.tuning.retry_base_seconds.saturating_mul(1u64 << creating.attempts.min(10).saturating_sub(1));
        back.not_before = Some(crate::clock::after(now, delay));
        back.set_error(&msg);
        ctx.store.update(&back).await?;
        return Ok(ProvisionOutcome::Retrying { error: msg, class: None });
    }
    fail(ctx, creating, &msg, now).await?;
    Ok(ProvisionOutcome::Failed { error: msg, class: None })
}

async fn handle_create_error(
    ctx: &Ctx,
    creating: &Instance,
    e: ProviderError,
    now: DateTime<Utc>,
) -> Result<ProvisionOutcome, AppError> {
    let msg = crate::http::sanitise(&e.to_string());
    tracing::warn!(claim = %creating.id, provider = creating.provider, class = ?e.class(), error = %msg, "create_vm failed");
    if e.is_retryable() && creating.attempts < ctx.tuning.max_create_attempts {
        let mut back = moved(creating, InstanceState::Requested, now)?;
        let mut delay =
            ctx.tuning.retry_base_seconds.saturating_mul(1u64 << creating.attempts.min(10).saturating_sub(1));
        if let ProviderError::RateLimited { retry_after: Some(d), .. } = &e {
            delay = delay.max(d.as_secs());
        }
        back.not_before = Some(crate::clock::after(now, delay));
        back.set_error(&msg);
        ctx.store.update(&back).await?;
        return Ok(ProvisionOutcome::Retrying { error: msg, class: Some(e.class()) });
    }
    if matches!(
        e.class(),
        ErrorClass::OutOfCapacity | ErrorClass::Auth | ErrorClass::Permission | ErrorClass::NotSupported
    ) {
        // Back off the whole config: creating more of the same shape now would fail the same way (no
        // capacity), and credentials, permissions or a provider missing from this build need an operator;
        // the other configs are not affected.
        let mut control = ctx.store.control(&creating.autoscale_config).await?;
        let n = control.value.consecutive_failures.min(8);
        let secs =
            ctx.tuning.capacity_backoff_seconds.saturating_mul(1u64 << n).min(ctx.tuning.capacity_backoff_max_seconds);
        control.value.consecutive_failures += 1;
        control.value.backoff_until = Some(crate::clock::after(now, secs));
        let _ = ctx.store.put_control(&creating.autoscale_config, &control.value, control.version).await;
    }
    fail(ctx, creating, &msg, now).await?;
    Ok(ProvisionOutcome::Failed { error: msg, class: Some(e.class()) })
}

async fn fail(ctx: &Ctx, inst: &Instance, msg: &str, now: DateTime<Utc>) -> Result<(), AppError> {
    let mut f = moved(inst, InstanceState::Failed, now)?;
    f.set_error(msg);
    ctx.store.update(&f).await?;
    Ok(())
}

/// The VM spec for a claim: labels, OS, and the rendered, packaged startup script.
pub(crate) async fn build_spec(
    ctx: &Ctx,
    inst: &Instance,
    cfg: &AutoscaleConfig,
    pcfg: &VmProviderConfig,
    registration_jwt: Option<SecretString>,
) -> Result<VmSpec, AppError> {
    let vars = script_vars(ctx, inst, cfg, pcfg, registration_jwt).await?;
    let template = pcfg.common().startup_script();
    let script = if template.trim().is_empty() {
        None
    } else {
        let rendered = script::render(template, &vars)
            .map_err(|source| AppError::Script { config: pcfg.name().to_string(), source })?;
        let packaged = script::package(&pcfg.common().script_rules(), inst.os, rendered)
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
    registration_jwt: Option<SecretString>,
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
    // The record's registration token, as Kasm hands it out on a one-record `get_servers` (a
    // SERVER_AGENT token for `POST /api/set_server_status`); None for records we did not create.
    set(&mut v, "checkin_jwt", registration_jwt.map(|t| t.expose_secret().to_string()));
    set(&mut v, "ad_join_credential", None);
    set(&mut v, "domain", cfg.connection_sso_username_domain.clone());
    set(&mut v, "ssh_key", pcfg.common().ssh_public_key().map(str::to_string));
    set(&mut v, "nginx_cert_in", None);
    set(&mut v, "nginx_key_in", None);
    Ok(v)
}
