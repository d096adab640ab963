//! The reaper's handler: every trigger runs one reaper pass ([`shared::app::reap`]), which is
//! idempotent and covers every claim, so a stream batch needs no per-record work and never has a
//! partial failure to report: a record whose work failed is picked up by the next scheduled pass.

use serde_json::{Value, json};

use shared::app::{self, Ctx};

/// Which trigger an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// EventBridge schedule.
    Schedule,
    /// A DynamoDB stream batch (claims moved to draining / deleting).
    Stream,
    /// Direct invocation.
    Direct,
}

/// Tells the trigger from the payload's shape.
pub fn classify(event: &Value) -> Kind {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        Kind::Schedule
    } else if event.get("Records").and_then(Value::as_array).is_some() {
        Kind::Stream
    } else {
        Kind::Direct
    }
}

/// Handles one invocation.
pub async fn handle(ctx: &Ctx, event: Value) -> Value {
    let kind = classify(&event);
    let rep = app::reap(ctx).await;
    tracing::info!(
        trigger = ?kind,
        drained = rep.drained.len(),
        deleted = rep.deleted.len(),
        waiting_for_sessions = rep.waiting_for_sessions.len(),
        recovered = rep.recovered.len(),
        orphans_suspected = rep.orphans_suspected.len(),
        orphans_deleted = rep.orphans_deleted.len(),
        dns_orphans_suspected = rep.dns_orphans_suspected.len(),
        dns_orphans_deleted = rep.dns_orphans_deleted.len(),
        errors = ?rep.errors,
        "reaper pass"
    );
    let mut out = json!({
        "drained": rep.drained,
        "deleted": rep.deleted,
        "waiting_for_sessions": rep.waiting_for_sessions,
        "recovered": rep.recovered,
        "orphans_suspected": rep.orphans_suspected,
        "orphans_deleted": rep.orphans_deleted,
        "dns_orphans_suspected": rep.dns_orphans_suspected,
        "dns_orphans_deleted": rep.dns_orphans_deleted,
        "errors": rep.errors,
    });
    if kind == Kind::Stream {
        // Partial batch response: nothing to retry record by record (see the module docs).
        out["batchItemFailures"] = json!([]);
    }
    out
}

#[cfg(test)]
mod tests;
