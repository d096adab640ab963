//! The Windows password fetcher's handler: every trigger (schedule, a stream batch of Windows claims
//! booting, a direct invocation) runs one pass of [`shared::app::fetch_password`], which is idempotent:
//! a claim whose password was handed over is marked, one whose password is not ready is tried on the next
//! pass (for at least 15 minutes). Passwords are never logged, returned or stored.

use serde_json::{Value, json};

use shared::app::{self, Ctx};

/// Handles one invocation.
pub async fn handle(ctx: &Ctx, event: Value) -> Value {
    let rep = app::fetch_password(ctx).await;
    tracing::info!(
        set = rep.set.len(),
        not_yet = rep.not_yet.len(),
        gave_up = rep.gave_up.len(),
        errors = ?rep.errors,
        "windows password pass"
    );
    let mut out = json!({ "set": rep.set, "not_yet": rep.not_yet, "gave_up": rep.gave_up, "errors": rep.errors });
    if event.get("Records").is_some() {
        // One pass covers every claim; no record needs a retry of its own.
        out["batchItemFailures"] = json!([]);
    }
    out
}

#[cfg(test)]
mod tests;
