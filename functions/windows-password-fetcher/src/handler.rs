//! The Windows password fetcher's handler: every trigger (schedule, a stream batch of Windows claims
//! booting, a direct invocation `{}`) runs one pass of [`shared::app::fetch_password`], which is
//! idempotent: a claim whose password was handed over is marked, one whose password is not ready is
//! tried on the next pass (for at least 15 minutes). Passwords are never logged, returned or stored.
//!
//! Triggers are read into `aws_lambda_events`' types; any other payload is refused with the field and
//! the cause, and no pass runs.

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
    Event::from_json(payload, "windows-password-fetcher")
}

/// What a pass did (`set`, `not_yet`, `gave_up` as claim ids, `errors`); to a stream batch also the
/// partial batch response, always empty (one pass covers every claim).
#[derive(Debug, Serialize)]
pub struct Response {
    /// The pass's report.
    #[serde(flatten)]
    pub report: Value,
    /// To a stream batch: no record to retry.
    #[serde(flatten)]
    pub batch: Option<DynamoDbEventResponse>,
}

/// Handles one invocation.
pub async fn handle(ctx: &Ctx, event: Event, metrics: &Metrics) -> Response {
    let rep = app::fetch_password(ctx).await;
    metrics.record_provider_errors(&rep.provider_errors);
    tracing::info!(
        trigger = %event.origin(),
        set = rep.set.len(),
        not_yet = rep.not_yet.len(),
        gave_up = rep.gave_up.len(),
        errors = ?rep.errors,
        "windows password pass"
    );
    let report = json!({ "set": rep.set, "not_yet": rep.not_yet, "gave_up": rep.gave_up, "errors": rep.errors });
    // One pass covers every claim; no record needs a retry of its own.
    Response { report, batch: event.batch_response() }
}

#[cfg(test)]
mod tests;
