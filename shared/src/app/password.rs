//! The Windows-password fetcher's handler: for Windows claims whose provider retrieves the generated
//! password (`Capabilities::windows_password`; on AWS, `retrieve_windows_vm_password`) and whose autoscale
//! config has no connection password of its own, ask the provider for the password (on AWS, EC2
//! GetPasswordData + RSA decryption) and
//! hand it to the claim's Kasm server record. Then the claim is marked `password_set` with a
//! compare-and-set write. The password is never logged, never put in an error, never stored.
//!
//! EC2 answers with empty data until EC2Launch has set the password, which can take well over ten
//! minutes: "not yet" is retried on the next pass, until [`super::Tuning::password_wait_seconds`] after
//! the claim entered `booting`; then the fetcher gives up and records why on the claim.

use chrono::{DateTime, Utc};

use super::{AppError, Ctx};
use crate::config::AutoscaleConfig;
use crate::model::{ClaimId, Instance, InstanceState, OsFamily};
use crate::store::{InstanceFilter, StoreError};

/// What one fetcher pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PasswordReport {
    /// Claims whose password was handed to their Kasm server record.
    pub set: Vec<ClaimId>,
    /// Claims whose password is not available yet (tried again on the next pass).
    pub not_yet: Vec<ClaimId>,
    /// Claims past the wait budget without a password (recorded in their `last_error`).
    pub gave_up: Vec<ClaimId>,
    /// Errors met, redacted (the pass goes on after each; the claims are tried again).
    pub errors: Vec<String>,
    /// The class of each provider error among `errors`, for the provider-error counts.
    pub provider_errors: Vec<crate::providers::ErrorClass>,
}

/// The message recorded on a claim the fetcher gave up on.
fn gave_up_message(waited: u64) -> String {
    format!(
        "gave up waiting for the Windows password after {waited} s: EC2 never returned password data \
         (is EC2Launch/EC2Config running in the AMI, and was the instance launched with the key pair?); \
         set the connection password on the Kasm server record by hand"
    )
}

/// One pass over every claim that needs its Windows password.
pub async fn fetch_password(ctx: &Ctx) -> PasswordReport {
    let mut rep = PasswordReport::default();
    let filter = InstanceFilter { states: vec![InstanceState::Booting, InstanceState::Running], ..Default::default() };
    let claims = match ctx.store.list(&filter).await {
        Ok(c) => c,
        Err(e) => {
            rep.errors.push(format!("failed to list claims: {e}"));
            return rep;
        }
    };
    let now = ctx.clock.now();
    for inst in claims.iter().filter(|i| needs_password(ctx, i)) {
        if let Err(e) = fetch_one(ctx, inst, now, &mut rep).await {
            rep.errors.push(format!("claim {}: {e}", inst.id));
            rep.provider_errors.extend(e.provider_class());
        }
    }
    rep
}

/// Whether `inst` is a claim the fetcher handles (see the module doc).
fn needs_password(ctx: &Ctx, inst: &Instance) -> bool {
    if inst.os != OsFamily::Windows || inst.password_set || inst.vm_id.is_none() {
        return false;
    }
    let retrieve = match ctx.providers.get(&inst.provider_config) {
        Some(Ok(p)) => p.capabilities().windows_password,
        // A provider that cannot be built: its config decides, and the fetch reports the provider's error.
        Some(Err(_)) => {
            ctx.configs.provider(&inst.provider_config).is_some_and(|c| c.common().retrieves_windows_password())
        }
        None => false,
    };
    let blank = ctx.configs.autoscale(&inst.autoscale_config).is_some_and(has_no_connection_password);
    retrieve && blank
}

/// Kasm's rule: the generated password is used only when the config sets none of its own.
fn has_no_connection_password(cfg: &AutoscaleConfig) -> bool {
    cfg.connection_password.is_none()
}

async fn fetch_one(ctx: &Ctx, inst: &Instance, now: DateTime<Utc>, rep: &mut PasswordReport) -> Result<(), AppError> {
    let Some(vm_id) = inst.vm_id.as_deref() else { return Ok(()) };
    let booted = inst.transitions.get(InstanceState::Booting.as_str()).copied().unwrap_or(inst.created_at);
    let budget = ctx.tuning.password_wait_seconds;
    let waited = (now - booted).num_seconds().max(0) as u64;
    if waited > budget {
        // Recorded once; later passes skip the provider call.
        let msg = crate::http::sanitise(&gave_up_message(budget));
        if inst.last_error.as_deref() != Some(msg.as_str()) {
            let mut n = inst.clone();
            n.set_error(&msg);
            tolerate_conflict(ctx.store.update(&n).await)?;
            tracing::warn!(claim = %inst.id, vm = vm_id, "{msg}");
        }
        rep.gave_up.push(inst.id.clone());
        return Ok(());
    }
    let provider = ctx.provider(&inst.provider_config)?;
    let Some(password) = provider.windows_password(vm_id).await? else {
        rep.not_yet.push(inst.id.clone());
        return Ok(());
    };
    ctx.kasm.set_connection_password(&inst.kasm_server_id, &password).await?;
    drop(password);
    let mut n = inst.clone();
    n.password_set = true;
    n.last_error = None;
    // A conflict means another pass marked it, or the claim moved on: the Kasm record has the password
    // either way, and setting it twice is harmless.
    tolerate_conflict(ctx.store.update(&n).await)?;
    tracing::info!(claim = %inst.id, vm = vm_id, server = %inst.kasm_server_id, "Windows password handed to Kasm");
    rep.set.push(inst.id.clone());
    Ok(())
}

fn tolerate_conflict(r: Result<Instance, StoreError>) -> Result<(), AppError> {
    match r {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
