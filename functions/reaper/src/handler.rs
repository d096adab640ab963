//! The reaper's handler: every trigger runs one reaper pass ([`shared::app::reap`]), which is
//! idempotent and covers every claim, so a stream batch needs no per-record work and never has a
//! partial failure to report: a record whose work failed is picked up by the next scheduled pass.
//!
//! Triggers, in `aws_lambda_events`' types: an EventBridge scheduled event, a DynamoDB stream batch
//! (claims moved to draining / deleting), or a direct invocation `{}`. Any other payload is refused with
//! the field and the cause, and no pass runs.

use aws_lambda_events::streams::DynamoDbEventResponse;
use serde::Serialize;
use serde_json::{Value, json};

use shared::app::{self, Ctx};
use shared::daemon::Metrics;
use shared::wiring::event::InvalidEvent;
pub use shared::wiring::event::Pass as Event;

/// Reads a payload as the trigger its shape names; anything else is refused with the field and the
/// cause.
pub fn read(payload: Value) -> Result<Event, InvalidEvent> {
    Event::from_json(payload, "reaper")
}

/// What a pass did (`drained`, `deleted`, ... as claim or VM ids); to a stream batch also the partial
/// batch response, always empty (see the module docs).
#[derive(Debug, Serialize)]
pub struct Response {
    /// The pass's report.
    #[serde(flatten)]
    pub report: Value,
    /// To a stream batch: no record to retry.
    #[serde(flatten)]
    pub batch: Option<DynamoDbEventResponse>,
}

/// Handles one invocation; its provider errors are counted in `metrics` by class.
pub async fn handle(ctx: &Ctx, event: Event, metrics: &Metrics) -> Response {
    let rep = app::reap(ctx).await;
    metrics.record_provider_errors(&rep.provider_errors);
    tracing::info!(
        trigger = %event.origin(),
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
    let report = json!({
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
    // Partial batch response: nothing to retry record by record (see the module docs).
    Response { report, batch: event.batch_response() }
}

#[cfg(test)]
mod tests;
